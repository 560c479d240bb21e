import { type FormEvent, useEffect, useMemo, useState } from 'react';
import { Globe } from 'lucide-react';
import { cn } from '../lib/cn';
import { formatOffset } from '../lib/format';
import { PRESETS, type RangePreset, browserTimeZone, dayString, timeZoneOptions, DAY } from '../lib/range';
import { useSettings } from '../lib/settings';
import { Button, focusRing } from './ui/button';
import { Input, Label, Select } from './ui/input';

/** Preset buttons (24 h / 7 d / 30 d / custom) plus the custom date fields. */
export function RangePicker() {
  const { spec, setSpec, tz, range } = useSettings();
  const [custom, setCustom] = useState(spec.preset === 'custom');
  const [from, setFrom] = useState(spec.from ?? dayString(Date.now() - 6 * DAY, tz));
  const [to, setTo] = useState(spec.to ?? dayString(Date.now(), tz));

  useEffect(() => {
    setCustom(spec.preset === 'custom');
  }, [spec.preset]);

  const choose = (p: RangePreset) => {
    if (p === 'custom') {
      setCustom(true);
      if (range) {
        setFrom(dayString(range.start, tz));
        setTo(dayString(range.end - 1, tz));
      }
      return;
    }
    setCustom(false);
    setSpec({ preset: p });
  };

  const apply = (e: FormEvent) => {
    e.preventDefault();
    setSpec({ preset: 'custom', from, to });
  };

  return (
    <div className="flex flex-wrap items-center gap-2">
      <div role="group" aria-label="Time range" className="inline-flex rounded-lg border border-slate-200 bg-slate-100/70 p-0.5">
        {PRESETS.map((p) => {
          const active = custom ? p.value === 'custom' : spec.preset === p.value;
          return (
            <button
              key={p.value}
              type="button"
              aria-pressed={active}
              title={p.label}
              onClick={() => choose(p.value)}
              className={cn(
                'h-7 cursor-pointer rounded-md px-2.5 text-xs font-medium transition-colors',
                focusRing,
                active ? 'bg-white text-slate-900 shadow-sm' : 'text-slate-600 hover:text-slate-900',
              )}
            >
              {p.short}
            </button>
          );
        })}
      </div>
      {custom ? (
        <form onSubmit={apply} className="flex flex-wrap items-center gap-1.5" aria-label="Custom range">
          <Label htmlFor="range-from" className="sr-only">
            From
          </Label>
          <Input
            id="range-from"
            type="date"
            value={from}
            max={to}
            onChange={(e) => setFrom(e.target.value)}
            fieldSize="sm"
            block={false}
            className="w-[9.5rem]"
            required
          />
          <span className="text-xs text-slate-400" aria-hidden="true">
            –
          </span>
          <Label htmlFor="range-to" className="sr-only">
            To
          </Label>
          <Input
            id="range-to"
            type="date"
            value={to}
            min={from}
            onChange={(e) => setTo(e.target.value)}
            fieldSize="sm"
            block={false}
            className="w-[9.5rem]"
            required
          />
          <Button type="submit" size="sm">
            Apply
          </Button>
        </form>
      ) : null}
    </div>
  );
}

export function TimeZoneSelect({ className }: { className?: string }) {
  const { tz, setTz } = useSettings();
  const options = useMemo(() => timeZoneOptions([browserTimeZone(), tz]), [tz]);
  return (
    <div className={cn('relative flex items-center', className)}>
      <Label htmlFor="tz-select" className="sr-only">
        Time zone
      </Label>
      <Globe className="pointer-events-none absolute left-2.5 h-3.5 w-3.5 text-slate-400" aria-hidden="true" />
      <Select
        id="tz-select"
        value={tz}
        onChange={(e) => setTz(e.target.value)}
        fieldSize="sm"
        className="max-w-[15rem] pl-8"
        title={`Time zone: ${tz} (${formatOffset(tz)})`}
      >
        {options.map((z) => (
          <option key={z} value={z}>
            {z === browserTimeZone() ? `${z} (browser)` : z}
          </option>
        ))}
      </Select>
    </div>
  );
}

export function LiveToggle() {
  const { live, setLive } = useSettings();
  return (
    <button
      type="button"
      aria-pressed={live}
      onClick={() => setLive(!live)}
      title={live ? 'Auto-refresh is on (every 2.5 s). Click to pause.' : 'Auto-refresh is paused. Click to resume.'}
      className={cn(
        'inline-flex h-8 cursor-pointer items-center gap-2 rounded-md border px-2.5 text-xs font-medium transition-colors',
        focusRing,
        live
          ? 'border-emerald-200 bg-emerald-50 text-emerald-700 hover:bg-emerald-100'
          : 'border-slate-200 bg-white text-slate-600 hover:bg-slate-50',
      )}
    >
      <span className="relative flex h-2 w-2" aria-hidden="true">
        <span className={cn('relative inline-flex h-2 w-2 rounded-full', live ? 'bg-emerald-500' : 'bg-slate-400')} />
      </span>
      {live ? 'Live' : 'Paused'}
      <span className="sr-only"> auto-refresh</span>
    </button>
  );
}
