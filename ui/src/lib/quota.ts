import { type Quantity, compareQuantities, toNumber, toScaled } from './decimal';
import type { Quota } from './api';

/** What a quota limits, for people: its feature, or `meter <key>`. */
export function quotaTarget(q: Pick<Quota, 'feature' | 'meter'>): string {
  return q.meter ? `meter ${q.meter}` : (q.feature ?? '');
}

/** ok: below the alert threshold; alert: amber; exceeded: red; none: no limit. */
export type QuotaLevel = 'ok' | 'alert' | 'exceeded' | 'none';

/**
 * The colour rule of a quota bar: red once usage reaches the limit, amber once
 * it reaches `alertThreshold` percent of the limit (or the server says
 * `alert`), otherwise normal.
 */
export function quotaLevel(
  current: Quantity | null | undefined,
  limit: Quantity | null | undefined,
  alertThreshold: number | null | undefined,
  alertFlag?: boolean | null,
): QuotaLevel {
  if (limit === null || limit === undefined || limit === '') return 'none';
  const cur = current ?? 0;
  if (compareQuantities(cur, limit) >= 0) return 'exceeded';
  if (alertFlag) return 'alert';
  const threshold = alertThreshold ?? 80;
  // usage * 100 >= limit * threshold, exactly.
  if (toScaled(cur) * 100n >= toScaled(limit) * BigInt(Math.round(threshold * 1000)) / 1000n) return 'alert';
  return 'ok';
}

/** Share of the limit used, in percent (unclamped; 0 without a limit). */
export function quotaPercent(current: Quantity | null | undefined, limit: Quantity | null | undefined): number {
  const l = toNumber(limit);
  if (!l) return 0;
  return (toNumber(current) / l) * 100;
}

export const LEVEL_STYLES: Record<QuotaLevel, { bar: string; text: string; label: string }> = {
  ok: { bar: 'bg-emerald-500', text: 'text-emerald-700', label: 'Within quota' },
  alert: { bar: 'bg-amber-500', text: 'text-amber-700', label: 'Past alert threshold' },
  exceeded: { bar: 'bg-red-500', text: 'text-red-700', label: 'Limit reached' },
  none: { bar: 'bg-slate-400', text: 'text-slate-600', label: 'No quota' },
};
