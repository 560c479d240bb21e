import { describe, expect, it } from 'vitest';
import {
  DAY,
  HOUR,
  computeRange,
  dayStart,
  parseLocalDateTime,
  previousRange,
  startOfDay,
  toIso,
  toLocalDateTimeValue,
  windowStarts,
  windowTypeFor,
  zonedToUtc,
} from './range';

const NOW = Date.parse('2025-11-20T10:31:07Z');

describe('computeRange', () => {
  it('last 24 h: hourly windows ending at the end of the current hour', () => {
    const r = computeRange({ preset: '24h' }, NOW, 'UTC');
    expect(toIso(r.end)).toBe('2025-11-20T11:00:00Z');
    expect(toIso(r.start)).toBe('2025-11-19T11:00:00Z');
    expect(r.windowType).toBe('hourly');
  });

  it('last 24 h in a half-hour zone aligns to that zone', () => {
    const r = computeRange({ preset: '24h' }, NOW, 'Asia/Kolkata');
    // 10:31Z is 16:01 in Kolkata; the hour ends at 17:00 local = 11:30Z.
    expect(toIso(r.end)).toBe('2025-11-20T11:30:00Z');
    expect(r.end - r.start).toBe(24 * HOUR);
  });

  it('last 7 d / 30 d: daily windows ending at the next local midnight', () => {
    const r7 = computeRange({ preset: '7d' }, NOW, 'UTC');
    expect(toIso(r7.start)).toBe('2025-11-14T00:00:00Z');
    expect(toIso(r7.end)).toBe('2025-11-21T00:00:00Z');
    expect(r7.windowType).toBe('daily');
    const r30 = computeRange({ preset: '30d' }, NOW, 'Europe/Paris');
    expect(toIso(r30.end)).toBe('2025-11-20T23:00:00Z');
    // 30 local days back crosses the end of DST (Oct 26): one hour longer.
    expect(toIso(r30.start)).toBe('2025-10-21T22:00:00Z');
    expect(r30.end - r30.start).toBe(30 * DAY + HOUR);
  });

  it('custom ranges include the last day and pick the window size', () => {
    const one = computeRange({ preset: 'custom', from: '2025-11-01', to: '2025-11-01' }, NOW, 'UTC');
    expect(toIso(one.start)).toBe('2025-11-01T00:00:00Z');
    expect(toIso(one.end)).toBe('2025-11-02T00:00:00Z');
    expect(one.windowType).toBe('hourly');
    const three = computeRange({ preset: 'custom', from: '2025-11-01', to: '2025-11-03' }, NOW, 'America/New_York');
    expect(toIso(three.start)).toBe('2025-11-01T04:00:00Z');
    expect(toIso(three.end)).toBe('2025-11-04T05:00:00Z');
    expect(three.windowType).toBe('daily');
  });

  it('rejects bad custom ranges with readable messages', () => {
    expect(() => computeRange({ preset: 'custom', from: '2025-11-05', to: '2025-11-01' }, NOW, 'UTC')).toThrow(/before/);
    expect(() => computeRange({ preset: 'custom' }, NOW, 'UTC')).toThrow(/Pick/);
    expect(() => computeRange({ preset: 'custom', from: '2020-01-01', to: '2025-01-01' }, NOW, 'UTC')).toThrow(/400/);
  });
});

describe('previousRange', () => {
  it('is the range of equal length just before', () => {
    const r = computeRange({ preset: '7d' }, NOW, 'UTC');
    const p = previousRange(r);
    expect(p.end).toBe(r.start);
    expect(p.end - p.start).toBe(r.end - r.start);
    expect(toIso(p.start)).toBe('2025-11-07T00:00:00Z');
    expect(p.windowType).toBe('daily');
  });
});

describe('windows', () => {
  it('hourly for up to 48 h, daily beyond', () => {
    expect(windowTypeFor(0, 48 * HOUR)).toBe('hourly');
    expect(windowTypeFor(0, 48 * HOUR + 1)).toBe('daily');
  });

  it('lists every window start, across DST changes', () => {
    const r = computeRange({ preset: '24h' }, NOW, 'UTC');
    const hours = windowStarts(r, 'UTC');
    expect(hours).toHaveLength(24);
    expect(toIso(hours[0])).toBe('2025-11-19T11:00:00Z');

    const start = dayStart('2025-03-29', 'Europe/Paris')!;
    const end = dayStart('2025-04-01', 'Europe/Paris')!;
    const days = windowStarts({ start, end, windowType: 'daily' }, 'Europe/Paris');
    expect(days.map(toIso)).toEqual(['2025-03-28T23:00:00Z', '2025-03-29T23:00:00Z', '2025-03-30T22:00:00Z']);
    const dstHours = windowStarts({ start: dayStart('2025-03-30', 'Europe/Paris')!, end: dayStart('2025-03-31', 'Europe/Paris')!, windowType: 'hourly' }, 'Europe/Paris');
    expect(dstHours).toHaveLength(23);
  });

  it('maps wall times to instants', () => {
    expect(toIso(zonedToUtc({ year: 2025, month: 7, day: 1, hour: 12 }, 'Europe/Paris'))).toBe('2025-07-01T10:00:00Z');
    expect(toIso(startOfDay(Date.parse('2025-07-01T23:30:00Z'), 'Europe/Paris'))).toBe('2025-07-01T22:00:00Z');
    // 02:30 does not exist on 2025-03-30 in Paris: the instant after the jump.
    expect(toIso(zonedToUtc({ year: 2025, month: 3, day: 30, hour: 2, minute: 30 }, 'Europe/Paris'))).toBe('2025-03-30T01:30:00Z');
  });

  it('round-trips datetime-local values in a zone', () => {
    const t = parseLocalDateTime('2025-11-20T09:15', 'America/New_York')!;
    expect(toIso(t)).toBe('2025-11-20T14:15:00Z');
    expect(toLocalDateTimeValue(t, 'America/New_York')).toBe('2025-11-20T09:15');
    expect(parseLocalDateTime('yesterday', 'UTC')).toBeNull();
  });
});
