import type { ReactNode } from 'react';
import { ArrowDownRight, ArrowUpRight, Minus, Sparkles } from 'lucide-react';
import type { Change } from '../lib/format';
import { cn } from '../lib/cn';
import { Card } from './ui/card';
import { Skeleton } from './ui/skeleton';

export function ChangeBadge({ change, className }: { change: Change; className?: string }) {
  const styles = {
    up: 'bg-emerald-50 text-emerald-700',
    down: 'bg-red-50 text-red-700',
    flat: 'bg-slate-100 text-slate-600',
    new: 'bg-indigo-50 text-indigo-700',
  }[change.direction];
  const Icon = { up: ArrowUpRight, down: ArrowDownRight, flat: Minus, new: Sparkles }[change.direction];
  const spoken = {
    up: `up ${change.label}`,
    down: `down ${change.label.replace('−', '')}`,
    flat: 'no change',
    new: 'new (nothing in the previous range)',
  }[change.direction];
  return (
    <span
      className={cn('inline-flex items-center gap-0.5 rounded-full px-1.5 py-0.5 text-xs font-medium', styles, className)}
      data-testid="change"
      data-direction={change.direction}
    >
      <Icon className="h-3 w-3" aria-hidden="true" />
      <span aria-hidden="true">{change.label}</span>
      <span className="sr-only">{spoken}</span>
    </span>
  );
}

/** Long exact values get a smaller font instead of being cut off. */
function valueSize(text: string): string {
  if (text.length > 20) return 'text-base leading-7';
  if (text.length > 16) return 'text-lg leading-7';
  if (text.length > 11) return 'text-xl leading-8';
  return 'text-2xl leading-8';
}

/**
 * A formatted number with its fractional digits set smaller; the fraction
 * moves to the next line as a whole when the card is narrow.
 */
function NumberText({ text }: { text: string }) {
  const m = /^(-?[\d,]+)(\.\d+)$/.exec(text);
  if (!m) return <span className="break-words">{text}</span>;
  return (
    <>
      <span className={valueSize(m[1])}>{m[1]}</span>
      <span className="inline-block text-base font-medium text-slate-500">{m[2]}</span>
    </>
  );
}

export function StatCard({
  label,
  value,
  rawValue,
  change,
  hint,
  icon,
  loading,
  testId,
}: {
  label: string;
  value: ReactNode;
  /** The exact value as sent by the API, for tests and tooltips. */
  rawValue?: string;
  change?: Change | null;
  hint?: ReactNode;
  icon?: ReactNode;
  loading?: boolean;
  testId?: string;
}) {
  return (
    <Card className="p-5" data-testid={testId}>
      <div className="flex items-center justify-between gap-2">
        <p className="text-sm font-medium text-slate-500">{label}</p>
        {icon ? <span className="text-slate-400">{icon}</span> : null}
      </div>
      {loading ? (
        <Skeleton className="mt-3 h-8 w-32" />
      ) : (
        <p
          className={cn(
            'mt-2 font-semibold tracking-tight text-slate-900 tabular-nums wrap-anywhere',
            valueSize(typeof value === 'string' ? value.split('.')[0] : ''),
          )}
          data-testid={testId ? `${testId}-value` : undefined}
          data-value={rawValue}
          title={typeof value === 'string' ? value : undefined}
        >
          {typeof value === 'string' ? <NumberText text={value} /> : value}
        </p>
      )}
      <div className="mt-2 flex min-h-5 flex-wrap items-center gap-2 text-xs text-slate-500">
        {loading ? <Skeleton className="h-4 w-24" /> : null}
        {!loading && change ? <ChangeBadge change={change} /> : null}
        {!loading && hint ? <span>{hint}</span> : null}
      </div>
    </Card>
  );
}
