/**
 * Exact decimal arithmetic for quantities.
 *
 * The API writes every quantity as a JSON number whose text is the exact
 * value. The API client parses them losslessly: a value a double carries
 * exactly arrives as a number, any other as its exact decimal text (a string).
 * Quantities carry at most 9 fractional digits, so a BigInt scaled by 10^9
 * represents every one of them (and every sum of them) exactly.
 */

export type Quantity = number | string;

const SCALE_DIGITS = 9;
const SCALE = 10n ** BigInt(SCALE_DIGITS);

const DECIMAL_RE = /^([+-])?(\d*)(?:\.(\d*))?$/;

const EXPONENT_RE = /^([+-])?(\d*)(?:\.(\d*))?e([+-]?\d+)$/i;

/** Exponents beyond this are left as they are rather than written out. */
const MAX_EXPONENT = 1000;

/**
 * Writes a decimal literal in exponent form as plain decimal text
 * ("1.5e-7" → "0.00000015", "1e+21" → "1000000000000000000000"). Any other
 * text is returned as it is.
 */
export function plainDecimal(s: string): string {
  const m = EXPONENT_RE.exec(s);
  if (!m || (m[2] === '' && !m[3])) return s;
  const exp = Number(m[4]);
  if (Math.abs(exp) > MAX_EXPONENT) return s;
  const neg = m[1] === '-';
  const ip = m[2];
  const fp = m[3] ?? '';
  const all = ip + fp;
  const point = ip.length + exp;
  let out: string;
  if (point <= 0) {
    out = '0.' + '0'.repeat(-point) + all;
  } else if (point >= all.length) {
    out = all + '0'.repeat(point - all.length);
  } else {
    out = all.slice(0, point) + '.' + all.slice(point);
  }
  out = out.replace(/^0+(?=\d)/, '');
  if (out.includes('.')) out = out.replace(/0+$/, '').replace(/\.$/, '');
  return (neg ? '-' : '') + out;
}

/** Turns a JS number into a plain (non-exponent) decimal string. */
export function numberToPlainString(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`not a finite number: ${n}`);
  return plainDecimal(String(n));
}

/** Parses a quantity (number or decimal string) into scaled units. */
export function toScaled(q: Quantity | null | undefined): bigint {
  if (q === null || q === undefined || q === '') return 0n;
  const s = typeof q === 'number' ? numberToPlainString(q) : plainDecimal(q.trim());
  const m = DECIMAL_RE.exec(s);
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) {
    throw new Error(`not a decimal: ${JSON.stringify(q)}`);
  }
  const sign = m[1] === '-' ? -1n : 1n;
  const intPart = m[2] || '0';
  // Round away anything past 9 fractional digits (the API never sends more;
  // floats converted from numbers may carry binary noise).
  let frac = (m[3] ?? '').padEnd(SCALE_DIGITS + 1, '0');
  const roundUp = Number(frac[SCALE_DIGITS]) >= 5;
  frac = frac.slice(0, SCALE_DIGITS);
  let v = BigInt(intPart) * SCALE + BigInt(frac);
  if (roundUp) v += 1n;
  return sign * v;
}

/** Renders scaled units as a canonical decimal string ("12", "0.5", "-3.25"). */
export function fromScaled(v: bigint): string {
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const ip = abs / SCALE;
  const fp = (abs % SCALE).toString().padStart(SCALE_DIGITS, '0').replace(/0+$/, '');
  return (neg ? '-' : '') + ip.toString() + (fp ? '.' + fp : '');
}

/** Canonical decimal string of a quantity. */
export function toDecimalString(q: Quantity | null | undefined): string {
  return fromScaled(toScaled(q));
}

/** Exact sum of quantities, as a canonical decimal string. */
export function sumQuantities(values: Iterable<Quantity | null | undefined>): string {
  let total = 0n;
  for (const v of values) total += toScaled(v);
  return fromScaled(total);
}

/** Exact comparison: negative, zero or positive. */
export function compareQuantities(a: Quantity, b: Quantity): number {
  const x = toScaled(a);
  const y = toScaled(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Approximate numeric value (for charts and percentages). */
export function toNumber(q: Quantity | null | undefined): number {
  if (q === null || q === undefined || q === '') return 0;
  return typeof q === 'number' ? q : Number(q);
}

/** True when the string is a valid positive quantity for a form field. */
export function isPositiveDecimal(s: string): boolean {
  const t = s.trim();
  if (!/^\d+(\.\d{1,9})?$/.test(t)) return false;
  return toScaled(t) > 0n;
}
