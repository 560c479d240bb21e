import { type Quantity, toDecimalString, toNumber } from './decimal';

const LOCALE = 'en-US';

/** Adds thousands separators to the integer part of a plain decimal string. */
function groupDigits(intPart: string): string {
  return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * Formats a quantity exactly: numbers and decimal strings alike, with
 * thousands separators and every fractional digit the API sent (at most 9).
 */
export function formatQuantity(q: Quantity | null | undefined): string {
  if (q === null || q === undefined || q === '') return '—';
  let s: string;
  try {
    s = toDecimalString(q);
  } catch {
    return String(q);
  }
  const neg = s.startsWith('-');
  const [ip, fp] = (neg ? s.slice(1) : s).split('.');
  return (neg ? '-' : '') + groupDigits(ip) + (fp ? '.' + fp : '');
}

/**
 * A quantity's exact plain decimal text, without separators ("1234.5"), for
 * raw values and data attributes.
 */
export function formatQuantityPlain(q: Quantity | null | undefined): string {
  if (q === null || q === undefined || q === '') return '—';
  try {
    return toDecimalString(q);
  } catch {
    return String(q);
  }
}

/** Formats an integer count ("1,234"). */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 }).format(n);
}

const compactFmt = new Intl.NumberFormat(LOCALE, {
  notation: 'compact',
  maximumFractionDigits: 1,
});

/** Short form for chart axes and tight spaces ("1.2K", "3.4M"). */
export function formatCompact(q: Quantity | null | undefined): string {
  const n = toNumber(q);
  if (!Number.isFinite(n)) return String(q);
  if (Math.abs(n) < 1000) {
    return new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2 }).format(n);
  }
  return compactFmt.format(n);
}

export type ChangeDirection = 'up' | 'down' | 'flat' | 'new';

export interface Change {
  /** Percentage change, null when the previous value was zero. */
  pct: number | null;
  direction: ChangeDirection;
  label: string;
}

/**
 * Change of `current` against `previous` (the range of equal length just
 * before). Zero against zero is flat; anything against zero is "new".
 */
export function percentChange(
  current: Quantity | null | undefined,
  previous: Quantity | null | undefined,
): Change {
  const cur = toNumber(current);
  const prev = toNumber(previous);
  if (prev === 0) {
    if (cur === 0) return { pct: 0, direction: 'flat', label: '0%' };
    return { pct: null, direction: 'new', label: 'new' };
  }
  const pct = ((cur - prev) / Math.abs(prev)) * 100;
  const rounded = Math.abs(pct) >= 10 ? Math.round(pct) : Math.round(pct * 10) / 10;
  if (rounded === 0) return { pct, direction: 'flat', label: '0%' };
  const sign = rounded > 0 ? '+' : '−';
  if (Math.abs(rounded) > 999) {
    return { pct, direction: rounded > 0 ? 'up' : 'down', label: `${sign}>999%` };
  }
  return {
    pct,
    direction: rounded > 0 ? 'up' : 'down',
    label: `${sign}${new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 }).format(Math.abs(rounded))}%`,
  };
}

/** "Nov 20, 2025, 10:31:00" in the given zone. */
export function formatDateTime(iso: string | null | undefined, tz: string, withSeconds = true): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(LOCALE, {
    timeZone: tz,
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: withSeconds ? '2-digit' : undefined,
    hourCycle: 'h23',
  }).format(d);
}

/** Label of a window start: "14:00" for hourly windows, "Nov 20" for daily. */
export function formatWindowLabel(ms: number, tz: string, windowType: string, long = false): string {
  const d = new Date(ms);
  if (windowType === 'hourly') {
    return new Intl.DateTimeFormat(LOCALE, {
      timeZone: tz,
      ...(long ? { month: 'short', day: 'numeric' } : {}),
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).format(d);
  }
  if (windowType === 'monthly') {
    return new Intl.DateTimeFormat(LOCALE, { timeZone: tz, month: 'short', year: 'numeric' }).format(d);
  }
  return new Intl.DateTimeFormat(LOCALE, {
    timeZone: tz,
    month: 'short',
    day: 'numeric',
    ...(long ? { weekday: 'short', year: 'numeric' } : {}),
  }).format(d);
}

/** "3 min ago", "in 2 h", "just now". */
export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return 'never';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const diff = t - now;
  const abs = Math.abs(diff);
  if (abs < 45_000) return 'just now';
  const units: [number, string][] = [
    [86_400_000 * 365, 'y'],
    [86_400_000 * 30, 'mo'],
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
  ];
  for (const [size, name] of units) {
    if (abs >= size) {
      const n = Math.round(abs / size);
      return diff < 0 ? `${n} ${name} ago` : `in ${n} ${name}`;
    }
  }
  return 'just now';
}

/** Short name of a time zone offset, e.g. "UTC+01:00". */
export function formatOffset(tz: string, at: Date = new Date()): string {
  try {
    const parts = new Intl.DateTimeFormat(LOCALE, { timeZone: tz, timeZoneName: 'longOffset' }).formatToParts(at);
    const name = parts.find((p) => p.type === 'timeZoneName')?.value ?? '';
    const off = name.replace('GMT', 'UTC');
    return off === 'UTC' || /^UTC[+-]00:00$/.test(off) ? 'UTC' : off;
  } catch {
    return '';
  }
}
