import { formatCount, formatQuantity } from '../lib/format';
import type { GroupTotal } from '../lib/aggregate';
import { toNumber } from '../lib/decimal';

/** A ranked list with proportional bars (lighter than a chart). */
export function BarList({
  items,
  total,
  limit = 6,
  testId,
  color = 'bg-indigo-100',
}: {
  items: GroupTotal[];
  total: string | number;
  limit?: number;
  testId?: string;
  color?: string;
}) {
  const shown = items.slice(0, limit);
  const max = Math.max(...shown.map((i) => toNumber(i.quantity)), 0);
  const whole = toNumber(total);
  return (
    <ol className="space-y-1.5" data-testid={testId}>
      {shown.map((item) => {
        const q = toNumber(item.quantity);
        const width = max > 0 ? Math.max(2, (q / max) * 100) : 0;
        const pct = whole > 0 ? (q / whole) * 100 : 0;
        return (
          <li key={item.key} className="relative flex items-center justify-between gap-3 rounded-md px-2.5 py-1.5">
            <div aria-hidden="true" className={`absolute inset-y-0 left-0 rounded-md ${color}`} style={{ width: `${width}%` }} />
            <span className="relative min-w-0 truncate text-sm text-slate-800" title={item.key}>
              {item.key}
            </span>
            <span className="relative shrink-0 text-right text-sm tabular-nums">
              <span className="font-medium text-slate-900">{formatQuantity(item.quantity)}</span>
              <span className="ml-2 inline-block w-11 text-xs text-slate-500">{pct.toFixed(pct >= 10 ? 0 : 1)}%</span>
              <span className="sr-only">, {formatCount(item.events)} events</span>
            </span>
          </li>
        );
      })}
    </ol>
  );
}
