import { Clock } from 'lucide-react';
import { formatDateTime, formatOffset } from '../lib/format';
import { type TimeRange, toIso } from '../lib/range';

/** The concrete range being shown (exposed as data attributes for tests). */
export function RangeLabel({ range, tz }: { range: TimeRange; tz: string }) {
  return (
    <span
      className="inline-flex flex-wrap items-center gap-x-1.5 gap-y-0.5"
      data-testid="range-label"
      data-start={toIso(range.start)}
      data-end={toIso(range.end)}
      data-window={range.windowType}
      data-tz={tz}
    >
      <Clock className="h-3.5 w-3.5 text-slate-400" aria-hidden="true" />
      <span>
        {formatDateTime(toIso(range.start), tz, false)} – {formatDateTime(toIso(range.end), tz, false)}
      </span>
      <span className="text-slate-400" aria-hidden="true">
        ·
      </span>
      <span>{range.windowType === 'hourly' ? 'hourly' : 'daily'} windows</span>
      <span className="text-slate-400" aria-hidden="true">
        ·
      </span>
      <span>
        {tz}
        {formatOffset(tz, new Date(range.end)) !== tz ? ` (${formatOffset(tz, new Date(range.end))})` : ''}
      </span>
    </span>
  );
}
