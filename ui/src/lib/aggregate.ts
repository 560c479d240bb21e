import type { AggregateRow } from './api';
import { type Quantity, compareQuantities, fromScaled, toNumber, toScaled } from './decimal';
import { type TimeRange, windowStarts } from './range';

export interface SeriesPoint {
  t: number;
  quantity: number;
  /** Exact total for tooltips. */
  exact: string;
  events: number;
}

/**
 * One point per window of the range (windows without events are zero),
 * summing rows of any grouping that share a window.
 */
export function seriesByWindow(rows: AggregateRow[], range: TimeRange, tz: string): SeriesPoint[] {
  const byStart = new Map<number, { q: bigint; n: number }>();
  for (const r of rows) {
    const t = new Date(r.window_start).getTime();
    const cur = byStart.get(t) ?? { q: 0n, n: 0 };
    cur.q += toScaled(r.total_quantity);
    cur.n += r.event_count ?? 0;
    byStart.set(t, cur);
  }
  const starts = windowStarts(range, tz);
  const seen = new Set(starts);
  // Windows the server reports that the local calendar did not predict
  // (e.g. a zone the browser knows differently) are kept, not dropped.
  for (const t of byStart.keys()) if (!seen.has(t) && t >= range.start && t < range.end) starts.push(t);
  starts.sort((a, b) => a - b);
  return starts.map((t) => {
    const v = byStart.get(t);
    const exact = fromScaled(v?.q ?? 0n);
    return { t, quantity: toNumber(exact), exact, events: v?.n ?? 0 };
  });
}

export interface GroupTotal {
  key: string;
  quantity: string;
  events: number;
}

export type Dimension = 'tenant_id' | 'resource' | 'feature';

/** Totals per value of a dimension, largest quantity first. */
export function totalsBy(rows: AggregateRow[], dim: Dimension): GroupTotal[] {
  const m = new Map<string, { q: bigint; n: number }>();
  for (const r of rows) {
    const k = (r[dim] ?? '(none)') as string;
    const cur = m.get(k) ?? { q: 0n, n: 0 };
    cur.q += toScaled(r.total_quantity);
    cur.n += r.event_count ?? 0;
    m.set(k, cur);
  }
  return [...m.entries()]
    .map(([key, v]) => ({ key, quantity: fromScaled(v.q), events: v.n }))
    .sort((a, b) => compareQuantities(b.quantity, a.quantity) || b.events - a.events || a.key.localeCompare(b.key));
}

/** Share of `part` in `whole`, in percent. */
export function share(part: Quantity, whole: Quantity): number {
  const w = toNumber(whole);
  return w ? (toNumber(part) / w) * 100 : 0;
}
