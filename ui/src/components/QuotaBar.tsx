import { formatDateTime, formatQuantity, formatRelative } from '../lib/format';
import type { Quantity } from '../lib/decimal';
import { LEVEL_STYLES, quotaLevel, quotaPercent } from '../lib/quota';
import { cn } from '../lib/cn';
import { Badge } from './ui/badge';

export interface QuotaBarProps {
  label: string;
  scope?: string;
  current: Quantity;
  limit: Quantity | null;
  alertThreshold?: number | null;
  alert?: boolean | null;
  period?: string | null;
  resetAt?: string | null;
  tz: string;
  origin?: string;
}

export function QuotaBar({
  label,
  scope,
  current,
  limit,
  alertThreshold,
  alert,
  period,
  resetAt,
  tz,
  origin,
}: QuotaBarProps) {
  const level = quotaLevel(current, limit, alertThreshold, alert);
  const pct = quotaPercent(current, limit);
  const width = Math.max(0, Math.min(100, pct));
  const style = LEVEL_STYLES[level];
  return (
    <div data-testid="quota-bar" data-level={level} data-feature={label} className="py-3">
      <div className="flex flex-wrap items-baseline justify-between gap-x-4 gap-y-1">
        <div className="flex min-w-0 flex-wrap items-center gap-2">
          <span className="truncate text-sm font-medium text-slate-900">{label}</span>
          {scope ? <Badge tone="slate">{scope}</Badge> : null}
          {origin ? <Badge tone="violet">{origin}</Badge> : null}
        </div>
        <div className="text-sm tabular-nums text-slate-700">
          <span className="font-medium text-slate-900">{formatQuantity(current)}</span>
          <span className="text-slate-400"> / {limit === null ? '∞' : formatQuantity(limit)}</span>
          {limit !== null ? (
            <span className={cn('ml-2 text-xs font-medium', style.text)}>{Math.round(pct)}%</span>
          ) : null}
        </div>
      </div>
      <div
        className="mt-2 h-2 w-full overflow-hidden rounded-full bg-slate-100"
        role="progressbar"
        aria-label={`${label} usage`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(width)}
        aria-valuetext={`${formatQuantity(current)} of ${limit === null ? 'no limit' : formatQuantity(limit)} (${style.label})`}
      >
        <div className={cn('h-full rounded-full transition-[width] duration-500', style.bar)} style={{ width: `${width}%` }} />
      </div>
      <div className="mt-1.5 flex flex-wrap gap-x-3 gap-y-0.5 text-xs text-slate-500">
        <span className={cn('font-medium', style.text)}>{style.label}</span>
        {period ? <span className="capitalize">{period}</span> : null}
        {alertThreshold !== null && alertThreshold !== undefined ? <span>alert at {alertThreshold}%</span> : null}
        {resetAt ? (
          <span>
            resets <time dateTime={resetAt}>{formatDateTime(resetAt, tz, false)}</time> ({formatRelative(resetAt)})
          </span>
        ) : null}
      </div>
    </div>
  );
}
