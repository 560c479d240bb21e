/**
 * Time ranges, previous ranges and window boundaries in an IANA time zone.
 *
 * Ranges are half-open [start, end) like the API's, in epoch milliseconds.
 */

export type WindowType = 'hourly' | 'daily';
export type RangePreset = '24h' | '7d' | '30d' | 'custom';

export interface RangeSpec {
  preset: RangePreset;
  /** Custom range first day, "YYYY-MM-DD" in the selected zone (inclusive). */
  from?: string;
  /** Custom range last day, "YYYY-MM-DD" in the selected zone (inclusive). */
  to?: string;
}

export interface TimeRange {
  start: number;
  end: number;
  windowType: WindowType;
}

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export const PRESETS: { value: RangePreset; label: string; short: string }[] = [
  { value: '24h', label: 'Last 24 hours', short: '24h' },
  { value: '7d', label: 'Last 7 days', short: '7d' },
  { value: '30d', label: 'Last 30 days', short: '30d' },
  { value: 'custom', label: 'Custom range', short: 'Custom' },
];

export interface ZonedParts {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const partsFormatters = new Map<string, Intl.DateTimeFormat>();

function partsFormatter(tz: string): Intl.DateTimeFormat {
  let f = partsFormatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    partsFormatters.set(tz, f);
  }
  return f;
}

/** Wall-clock fields of an instant in a zone. */
export function zonedParts(ms: number, tz: string): ZonedParts {
  const out: Record<string, number> = {};
  for (const p of partsFormatter(tz).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  return {
    year: out.year,
    month: out.month,
    day: out.day,
    hour: out.hour === 24 ? 0 : out.hour,
    minute: out.minute,
    second: out.second,
  };
}

/** Offset of the zone from UTC at an instant, in ms (wall time minus UTC). */
export function zoneOffset(ms: number, tz: string): number {
  const p = zonedParts(ms, tz);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant at which the zone's wall clock shows the given fields. Fields
 * may overflow (day 32, hour -1): they normalise like Date.UTC's. A wall time
 * skipped by a DST jump resolves to the instant just after the jump.
 */
export function zonedToUtc(p: Partial<ZonedParts> & { year: number; month: number; day: number }, tz: string): number {
  const guess = Date.UTC(p.year, p.month - 1, p.day, p.hour ?? 0, p.minute ?? 0, p.second ?? 0);
  const off1 = zoneOffset(guess, tz);
  let t = guess - off1;
  const off2 = zoneOffset(t, tz);
  if (off2 !== off1) {
    const t2 = guess - off2;
    // Keep whichever candidate actually shows the wanted wall time; for a
    // skipped wall time neither does and the later instant is used.
    t = zoneOffset(t2, tz) === off2 ? t2 : Math.max(t, t2);
  }
  return t;
}

export function startOfHour(ms: number, tz: string): number {
  const p = zonedParts(ms, tz);
  return zonedToUtc({ ...p, minute: 0, second: 0 }, tz);
}

export function startOfDay(ms: number, tz: string): number {
  const p = zonedParts(ms, tz);
  return zonedToUtc({ year: p.year, month: p.month, day: p.day }, tz);
}

/** Midnight `n` days after the day containing `ms` (zone calendar days). */
export function addDays(ms: number, n: number, tz: string): number {
  const p = zonedParts(ms, tz);
  return zonedToUtc({ year: p.year, month: p.month, day: p.day + n }, tz);
}

/** Parses "YYYY-MM-DD" as midnight in the zone. */
export function dayStart(date: string, tz: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return null;
  return zonedToUtc({ year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) }, tz);
}

/** "YYYY-MM-DD" of the zone calendar day containing `ms`. */
export function dayString(ms: number, tz: string): string {
  const p = zonedParts(ms, tz);
  return `${String(p.year).padStart(4, '0')}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`;
}

/** Hourly windows for ranges up to 48 h, daily windows beyond. */
export function windowTypeFor(start: number, end: number): WindowType {
  return end - start <= 48 * HOUR ? 'hourly' : 'daily';
}

export class RangeSpecError extends Error {}

/**
 * The concrete range for a spec at `now`. Relative ranges end at the end of
 * the current window (hour or day) so they always include "now", give whole
 * windows, and stay identical (cacheable) until the next window starts.
 */
export function computeRange(spec: RangeSpec, now: number, tz: string): TimeRange {
  switch (spec.preset) {
    case '24h': {
      const end = startOfHour(now, tz) + HOUR;
      return { start: end - 24 * HOUR, end, windowType: 'hourly' };
    }
    case '7d':
    case '30d': {
      const days = spec.preset === '7d' ? 7 : 30;
      const end = addDays(now, 1, tz);
      return { start: addDays(end, -days, tz), end, windowType: 'daily' };
    }
    case 'custom': {
      const from = spec.from ? dayStart(spec.from, tz) : null;
      const toStart = spec.to ? dayStart(spec.to, tz) : null;
      if (from === null || toStart === null) throw new RangeSpecError('Pick a start and an end date.');
      const end = addDays(toStart, 1, tz);
      if (end <= from) throw new RangeSpecError('The end date must not be before the start date.');
      if (end - from > 400 * DAY) throw new RangeSpecError('Pick a range of at most 400 days.');
      return { start: from, end, windowType: windowTypeFor(from, end) };
    }
  }
}

/** The range of equal length just before `r`. */
export function previousRange(r: TimeRange): TimeRange {
  const len = r.end - r.start;
  return { start: r.start - len, end: r.start, windowType: r.windowType };
}

/** Start instants of every window in the range (for zero-filling charts). */
export function windowStarts(r: TimeRange, tz: string): number[] {
  const out: number[] = [];
  if (r.windowType === 'hourly') {
    let t = startOfHour(r.start, tz);
    for (let i = 0; t < r.end && i < 10_000; i++) {
      if (t >= r.start) out.push(t);
      t = startOfHour(t + HOUR + 1000, tz);
    }
  } else {
    let t = startOfDay(r.start, tz);
    for (let i = 0; t < r.end && i < 10_000; i++) {
      if (t >= r.start) out.push(t);
      t = addDays(t, 1, tz);
    }
  }
  return out;
}

/** RFC 3339 UTC timestamp without needless milliseconds. */
export function toIso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** The browser's IANA zone (falls back to UTC). */
export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Every zone the browser knows, with UTC and the given extras first. */
export function timeZoneOptions(extra: string[] = []): string[] {
  let all: string[] = [];
  try {
    const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
    all = intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  } catch {
    all = [];
  }
  const set = new Set<string>(['UTC', ...extra.filter(isValidTimeZone), ...all]);
  return [...set];
}

/**
 * Parses a `<input type="datetime-local">` value ("YYYY-MM-DDTHH:mm") as a
 * wall time in the zone.
 */
export function parseLocalDateTime(value: string, tz: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return null;
  return zonedToUtc(
    {
      year: Number(m[1]),
      month: Number(m[2]),
      day: Number(m[3]),
      hour: Number(m[4]),
      minute: Number(m[5]),
      second: Number(m[6] ?? 0),
    },
    tz,
  );
}

/** Formats an instant for `<input type="datetime-local">` in the zone. */
export function toLocalDateTimeValue(ms: number, tz: string): string {
  const p = zonedParts(ms, tz);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
}
