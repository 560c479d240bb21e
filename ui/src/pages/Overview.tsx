import { useMemo, useState } from 'react';
import { Activity, Boxes, Hash, TrendingUp } from 'lucide-react';
import { PageHeader } from '../components/Layout';
import { RangeLabel } from '../components/RangeLabel';
import { StatCard } from '../components/StatCard';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { BarList } from '../components/BarList';
import { TrendChart } from '../components/charts';
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from '../components/ui/card';
import { Skeleton } from '../components/ui/skeleton';
import { cn } from '../lib/cn';
import { focusRing } from '../components/ui/button';
import { useApi } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import { previousRange, toIso, type TimeRange } from '../lib/range';
import { type AggregatesQuery, type AggregatesResponse, buildQuery } from '../lib/api';
import { DownloadButton } from '../components/DownloadButton';
import { seriesByWindow, totalsBy } from '../lib/aggregate';
import { compareQuantities } from '../lib/decimal';
import { formatCount, formatQuantity, formatQuantityPlain, formatWindowLabel, percentChange } from '../lib/format';

interface Result {
  range: TimeRange;
  tz: string;
  resp: AggregatesResponse;
}

export function rangeQuery(range: TimeRange, tz: string, extra: Partial<AggregatesQuery> = {}): AggregatesQuery {
  return {
    window_type: range.windowType,
    start_date: toIso(range.start),
    end_date: toIso(range.end),
    tz,
    ...extra,
  };
}

export function MetricToggle({
  metric,
  onChange,
}: {
  metric: 'quantity' | 'events';
  onChange: (m: 'quantity' | 'events') => void;
}) {
  return (
    <div role="group" aria-label="Chart metric" className="inline-flex rounded-lg border border-slate-200 bg-slate-100/70 p-0.5">
      {(['quantity', 'events'] as const).map((m) => (
        <button
          key={m}
          type="button"
          aria-pressed={metric === m}
          onClick={() => onChange(m)}
          className={cn(
            'h-7 cursor-pointer rounded-md px-2.5 text-xs font-medium capitalize transition-colors',
            focusRing,
            metric === m ? 'bg-white text-slate-900 shadow-sm' : 'text-slate-600 hover:text-slate-900',
          )}
        >
          {m}
        </button>
      ))}
    </div>
  );
}

export function OverviewPage() {
  const api = useApi();
  const { range, tz, rangeError } = useSettings();
  const [metric, setMetric] = useState<'quantity' | 'events'>('quantity');

  const curQ = range ? rangeQuery(range, tz, { group_by: 'resource,feature' }) : null;
  const prevRange = range ? previousRange(range) : null;
  const prevQ = prevRange ? rangeQuery(prevRange, tz, { group_by: '' }) : null;

  const cur = useQuery<Result>(curQ && range ? JSON.stringify(curQ) : null, async (signal) => ({
    range: range!,
    tz,
    resp: await api.aggregates(curQ!, signal),
  }));
  const prev = useQuery<AggregatesResponse>(prevQ ? JSON.stringify(prevQ) : null, (signal) =>
    api.aggregates(prevQ!, signal),
  );

  const derived = useMemo(() => {
    if (!cur.data) return null;
    const { resp, range: r, tz: z } = cur.data;
    const series = seriesByWindow(resp.aggregates, r, z);
    let peak = series[0];
    for (const p of series) if (peak && compareQuantities(p.exact, peak.exact) > 0) peak = p;
    return {
      series,
      peak,
      resources: totalsBy(resp.aggregates, 'resource'),
      features: totalsBy(resp.aggregates, 'feature'),
    };
  }, [cur.data]);

  const summary = cur.data?.resp.summary;
  const prevSummary = prev.data?.summary;
  const loading = cur.loading;
  const empty = summary !== undefined && summary.total_events === 0;
  const windowType = cur.data?.range.windowType ?? range?.windowType ?? 'daily';
  const unit = windowType === 'hourly' ? 'hour' : 'day';

  return (
    <div>
      <PageHeader
        title="Overview"
        description={range ? <RangeLabel range={range} tz={tz} /> : 'Pick a range'}
        actions={
          curQ ? (
            <DownloadButton path={`/aggregates${buildQuery(curQ)}`} filename="aggregates.csv" testId="download-aggregates" />
          ) : null
        }
      />
      {rangeError ? <ErrorAlert error={new Error(rangeError)} title="Invalid range" className="mb-4" /> : null}
      {cur.error ? <ErrorAlert error={cur.error} className="mb-4" /> : null}

      <div className={cn('grid grid-cols-1 gap-4 sm:grid-cols-2 xl:grid-cols-4 transition-opacity', cur.stale && 'opacity-60')}>
        <StatCard
          testId="total-events"
          label="Total events"
          icon={<Activity className="h-4 w-4" aria-hidden="true" />}
          loading={loading}
          value={summary ? formatCount(summary.total_events) : '—'}
          rawValue={summary ? String(summary.total_events) : undefined}
          change={summary && prevSummary ? percentChange(summary.total_events, prevSummary.total_events) : null}
          hint={prevSummary ? `vs ${formatCount(prevSummary.total_events)} in previous period` : undefined}
        />
        <StatCard
          testId="total-quantity"
          label="Total quantity"
          icon={<Hash className="h-4 w-4" aria-hidden="true" />}
          loading={loading}
          value={summary ? formatQuantity(summary.total_quantity) : '—'}
          rawValue={summary ? formatQuantityPlain(summary.total_quantity) : undefined}
          change={summary && prevSummary ? percentChange(summary.total_quantity, prevSummary.total_quantity) : null}
          hint={prevSummary ? `vs ${formatQuantity(prevSummary.total_quantity)} in previous period` : undefined}
        />
        <StatCard
          testId="peak"
          label={`Busiest ${unit}`}
          icon={<TrendingUp className="h-4 w-4" aria-hidden="true" />}
          loading={loading}
          value={derived?.peak && !empty ? formatQuantity(derived.peak.exact) : '—'}
          hint={
            derived?.peak && !empty
              ? `${formatWindowLabel(derived.peak.t, cur.data!.tz, windowType, true)} · ${formatCount(derived.peak.events)} events`
              : 'No usage yet'
          }
        />
        <StatCard
          testId="active"
          label="Active features"
          icon={<Boxes className="h-4 w-4" aria-hidden="true" />}
          loading={loading}
          value={derived ? formatCount(derived.features.length) : '—'}
          hint={derived ? `across ${formatCount(derived.resources.length)} resource${derived.resources.length === 1 ? '' : 's'}` : undefined}
        />
      </div>

      <Card className={cn('mt-4 transition-opacity', cur.stale && 'opacity-60')}>
        <CardHeader className="flex-row flex-wrap items-start justify-between gap-3">
          <div>
            <CardTitle>Usage trend</CardTitle>
            <CardDescription>
              {metric === 'quantity' ? 'Total quantity' : 'Event count'} per {unit}
            </CardDescription>
          </div>
          <MetricToggle metric={metric} onChange={setMetric} />
        </CardHeader>
        <CardContent>
          {loading ? (
            <Skeleton className="h-[280px] w-full" />
          ) : empty ? (
            <EmptyState
              className="h-[280px]"
              title="No events in this range"
              description="Events sent to POST /v1/meter/events show up here within seconds."
            />
          ) : derived ? (
            <TrendChart
              points={derived.series}
              tz={cur.data!.tz}
              windowType={windowType}
              metric={metric}
              label={`Usage trend: ${metric} per ${unit}`}
            />
          ) : null}
        </CardContent>
      </Card>

      <div className={cn('mt-4 grid grid-cols-1 gap-4 lg:grid-cols-2 transition-opacity', cur.stale && 'opacity-60')}>
        {(['resources', 'features'] as const).map((kind) => (
          <Card key={kind}>
            <CardHeader>
              <CardTitle>Top {kind}</CardTitle>
              <CardDescription>By total quantity in the range</CardDescription>
            </CardHeader>
            <CardContent>
              {loading ? (
                <div className="space-y-2">
                  {[0, 1, 2, 3].map((i) => (
                    <Skeleton key={i} className="h-8 w-full" />
                  ))}
                </div>
              ) : derived && derived[kind].length > 0 ? (
                <BarList
                  testId={`top-${kind}`}
                  items={derived[kind]}
                  total={summary?.total_quantity ?? 0}
                  color={kind === 'resources' ? 'bg-indigo-100/80' : 'bg-sky-100/80'}
                />
              ) : (
                <EmptyState title={`No ${kind} yet`} className="py-6" />
              )}
            </CardContent>
          </Card>
        ))}
      </div>
    </div>
  );
}
