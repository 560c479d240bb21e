import { useMemo, useState } from 'react';
import { Activity, ArrowLeft, Gauge, Hash, ScrollText } from 'lucide-react';
import { PageHeader } from '../components/Layout';
import { RangeLabel } from '../components/RangeLabel';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { StatCard } from '../components/StatCard';
import { QuotaBar } from '../components/QuotaBar';
import { TrendChart } from '../components/charts';
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from '../components/ui/card';
import { Skeleton } from '../components/ui/skeleton';
import { TBody, TD, TH, THead, TR, Table } from '../components/ui/table';
import { buttonClass, focusRing } from '../components/ui/button';
import { cn } from '../lib/cn';
import { useApi } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import { Link } from '../lib/router';
import type { AggregatesResponse, ApiClient, Quota, ValidateResponse } from '../lib/api';
import { seriesByWindow } from '../lib/aggregate';
import { sumQuantities, toScaled, fromScaled, compareQuantities } from '../lib/decimal';
import { formatCount, formatQuantity, formatQuantityPlain, formatWindowLabel } from '../lib/format';
import { quotaLevel, quotaTarget } from '../lib/quota';
import type { TimeRange } from '../lib/range';
import { MetricToggle, rangeQuery } from './Overview';

export interface QuotaStatus {
  quota: Quota;
  result: ValidateResponse;
}

/** The quota that validate applies to (resource, feature) for a tenant, most specific first. */
export function applicableQuota(quotas: Quota[], tenant: string, resource: string | null, feature: string): Quota | null {
  const order: [string, string | null][] = resource
    ? [
        [tenant, resource],
        [tenant, null],
        ['*', resource],
        ['*', null],
      ]
    : [
        [tenant, null],
        ['*', null],
      ];
  for (const [t, r] of order) {
    const q = quotas.find((x) => x.tenant_id === t && (x.resource ?? null) === r && x.feature === feature);
    if (q) return q;
  }
  return null;
}

/** Checks every quota that can apply to the tenant (without consuming anything). */
export async function tenantQuotaStatus(api: ApiClient, tenant: string, signal: AbortSignal): Promise<QuotaStatus[]> {
  const { quotas } = await api.quotas(undefined, signal);
  const relevant = quotas.filter((q) => q.tenant_id === tenant || q.tenant_id === '*');
  const applied = new Map<string, { quota: Quota; resource: string | null }>();
  for (const q of relevant) {
    // A meter quota: the tenant's own wins over the default.
    const a = q.meter
      ? (relevant.find((x) => x.meter === q.meter && x.tenant_id === tenant) ?? q)
      : applicableQuota(relevant, tenant, q.resource ?? null, q.feature ?? '');
    if (a && !applied.has(a.id)) applied.set(a.id, { quota: a, resource: q.resource ?? null });
  }
  const out = await Promise.all(
    [...applied.values()].map(async ({ quota, resource }) => ({
      quota,
      // validate needs quantity > 0; consume:false records nothing.
      result: await api.validate(
        quota.meter
          ? { tenant_id: tenant, meter: quota.meter, quantity: 1, consume: false }
          : { tenant_id: tenant, resource, feature: quota.feature ?? '', quantity: 1, consume: false },
        signal,
      ),
    })),
  );
  const rank = { exceeded: 0, alert: 1, ok: 2, none: 3 };
  return out.sort(
    (a, b) =>
      rank[quotaLevel(a.result.current_usage, a.result.limit, a.quota.alert_threshold, a.result.alert)] -
        rank[quotaLevel(b.result.current_usage, b.result.limit, b.quota.alert_threshold, b.result.alert)] ||
      quotaTarget(a.quota).localeCompare(quotaTarget(b.quota)),
  );
}

interface UsageResult {
  range: TimeRange;
  tz: string;
  resp: AggregatesResponse;
}

export function TenantDetailPage({ tenant }: { tenant: string }) {
  const api = useApi();
  const { range, tz, rangeError } = useSettings();
  const [metric, setMetric] = useState<'quantity' | 'events'>('quantity');

  const q = range ? rangeQuery(range, tz, { group_by: 'resource,feature', tenant_id: tenant }) : null;
  const usage = useQuery<UsageResult>(q ? JSON.stringify(q) : null, async (signal) => ({
    range: range!,
    tz,
    resp: await api.aggregates(q!, signal),
  }));
  const quotas = useQuery(`quotas:${tenant}`, (signal) => tenantQuotaStatus(api, tenant, signal));

  const derived = useMemo(() => {
    if (!usage.data) return null;
    const { resp, range: r, tz: z } = usage.data;
    const series = seriesByWindow(resp.aggregates, r, z);
    const combos = new Map<string, { resource: string; feature: string; q: bigint; n: number }>();
    for (const row of resp.aggregates) {
      const k = `${row.resource ?? ''}\u0000${row.feature ?? ''}`;
      const c = combos.get(k) ?? { resource: row.resource ?? '—', feature: row.feature ?? '—', q: 0n, n: 0 };
      c.q += toScaled(row.total_quantity);
      c.n += row.event_count;
      combos.set(k, c);
    }
    const breakdown = [...combos.values()]
      .map((c) => ({ ...c, quantity: fromScaled(c.q) }))
      .sort((a, b) => compareQuantities(b.quantity, a.quantity) || a.feature.localeCompare(b.feature));
    return { series, breakdown };
  }, [usage.data]);

  const summary = usage.data?.resp.summary;
  const windowType = usage.data?.range.windowType ?? range?.windowType ?? 'daily';
  const unit = windowType === 'hourly' ? 'hour' : 'day';
  const nonEmptyWindows = derived ? [...derived.series].filter((p) => p.events > 0).reverse() : [];

  return (
    <div>
      <PageHeader
        title={<span data-testid="tenant-title">{tenant}</span>}
        description={range ? <RangeLabel range={range} tz={tz} /> : null}
        actions={
          <Link
            to={`/events?tenant_id=${encodeURIComponent(tenant)}`}
            className={buttonClass('outline', 'sm')}
          >
            <ScrollText className="h-3.5 w-3.5" aria-hidden="true" />
            View events
          </Link>
        }
      >
        <Link
          to="/tenants"
          className={cn('mb-2 inline-flex items-center gap-1 rounded text-xs font-medium text-slate-500 hover:text-slate-900', focusRing)}
        >
          <ArrowLeft className="h-3.5 w-3.5" aria-hidden="true" />
          All tenants
        </Link>
      </PageHeader>
      {rangeError ? <ErrorAlert error={new Error(rangeError)} title="Invalid range" className="mb-4" /> : null}
      {usage.error ? <ErrorAlert error={usage.error} className="mb-4" /> : null}

      <div className={cn('grid grid-cols-1 gap-4 sm:grid-cols-3 transition-opacity', usage.stale && 'opacity-60')}>
        <StatCard
          testId="tenant-events"
          label="Events"
          icon={<Activity className="h-4 w-4" aria-hidden="true" />}
          loading={usage.loading}
          value={summary ? formatCount(summary.total_events) : '—'}
          rawValue={summary ? String(summary.total_events) : undefined}
        />
        <StatCard
          testId="tenant-quantity"
          label="Quantity"
          icon={<Hash className="h-4 w-4" aria-hidden="true" />}
          loading={usage.loading}
          value={summary ? formatQuantity(summary.total_quantity) : '—'}
          rawValue={summary ? formatQuantityPlain(summary.total_quantity) : undefined}
        />
        <StatCard
          testId="tenant-quotas"
          label="Quotas"
          icon={<Gauge className="h-4 w-4" aria-hidden="true" />}
          loading={quotas.loading}
          value={quotas.data ? formatCount(quotas.data.length) : '—'}
          hint={
            quotas.data
              ? `${quotas.data.filter((s) => quotaLevel(s.result.current_usage, s.result.limit, s.quota.alert_threshold, s.result.alert) === 'exceeded').length} at limit · ${
                  quotas.data.filter((s) => quotaLevel(s.result.current_usage, s.result.limit, s.quota.alert_threshold, s.result.alert) === 'alert').length
                } past alert`
              : undefined
          }
        />
      </div>

      <div className="mt-4 grid grid-cols-1 gap-4 xl:grid-cols-5">
        <Card className={cn('xl:col-span-3 transition-opacity', usage.stale && 'opacity-60')}>
          <CardHeader className="flex-row flex-wrap items-start justify-between gap-3">
            <div>
              <CardTitle>{unit === 'day' ? 'Daily' : 'Hourly'} usage</CardTitle>
              <CardDescription>{metric === 'quantity' ? 'Quantity' : 'Events'} per {unit}</CardDescription>
            </div>
            <MetricToggle metric={metric} onChange={setMetric} />
          </CardHeader>
          <CardContent>
            {usage.loading ? (
              <Skeleton className="h-[240px] w-full" />
            ) : summary?.total_events === 0 ? (
              <EmptyState className="h-[240px]" title="No usage in this range" />
            ) : derived ? (
              <TrendChart
                points={derived.series}
                tz={usage.data!.tz}
                windowType={windowType}
                metric={metric}
                height={240}
                label={`${tenant} usage per ${unit}`}
              />
            ) : null}
          </CardContent>
        </Card>

        <Card className="xl:col-span-2" data-testid="quota-card">
          <CardHeader>
            <CardTitle>Quotas</CardTitle>
            <CardDescription>Consumption in the current quota period</CardDescription>
          </CardHeader>
          <CardContent>
            {quotas.error ? <ErrorAlert error={quotas.error} /> : null}
            {quotas.loading ? (
              <div className="space-y-4">
                {[0, 1].map((i) => (
                  <Skeleton key={i} className="h-12 w-full" />
                ))}
              </div>
            ) : quotas.data && quotas.data.length > 0 ? (
              <div className="divide-y divide-slate-100">
                {quotas.data.map(({ quota, result }) => (
                  <QuotaBar
                    key={quota.id}
                    label={quotaTarget(quota)}
                    scope={quota.meter ? 'meter value' : quota.resource ? quota.resource : 'any resource'}
                    origin={quota.tenant_id === '*' ? 'default' : undefined}
                    current={result.current_usage}
                    limit={result.limit}
                    alertThreshold={quota.alert_threshold}
                    alert={result.alert}
                    period={result.period ?? quota.period}
                    resetAt={result.reset_at}
                    tz={tz}
                  />
                ))}
              </div>
            ) : !quotas.error ? (
              <EmptyState
                icon={<Gauge className="h-5 w-5" aria-hidden="true" />}
                title="No quotas apply"
                description="Quotas for this tenant (or defaults for all tenants) appear here."
                action={
                  <Link to="/quotas" className={buttonClass('outline', 'sm')}>
                    Manage quotas
                  </Link>
                }
              />
            ) : null}
          </CardContent>
        </Card>
      </div>

      <div className={cn('mt-4 grid grid-cols-1 gap-4 xl:grid-cols-2 transition-opacity', usage.stale && 'opacity-60')}>
        <Card>
          <CardHeader>
            <CardTitle>By resource and feature</CardTitle>
            <CardDescription>Totals in the range</CardDescription>
          </CardHeader>
          <div className="border-t border-slate-100">
            {usage.loading ? (
              <div className="p-5">
                <Skeleton className="h-24 w-full" />
              </div>
            ) : derived && derived.breakdown.length > 0 ? (
              <Table>
                <THead>
                  <tr>
                    <TH>Resource</TH>
                    <TH>Feature</TH>
                    <TH className="text-right">Events</TH>
                    <TH className="text-right">Quantity</TH>
                  </tr>
                </THead>
                <TBody>
                  {derived.breakdown.map((b) => (
                    <TR key={`${b.resource}/${b.feature}`}>
                      <TD>{b.resource}</TD>
                      <TD className="font-medium text-slate-900">{b.feature}</TD>
                      <TD className="text-right tabular-nums">{formatCount(b.n)}</TD>
                      <TD className="text-right tabular-nums">{formatQuantity(b.quantity)}</TD>
                    </TR>
                  ))}
                </TBody>
              </Table>
            ) : (
              <EmptyState title="No usage in this range" />
            )}
          </div>
        </Card>
        <Card>
          <CardHeader>
            <CardTitle>{unit === 'day' ? 'Daily' : 'Hourly'} breakdown</CardTitle>
            <CardDescription>{unit === 'day' ? 'Days' : 'Hours'} with usage, newest first</CardDescription>
          </CardHeader>
          <div className="max-h-80 overflow-y-auto border-t border-slate-100">
            {usage.loading ? (
              <div className="p-5">
                <Skeleton className="h-24 w-full" />
              </div>
            ) : nonEmptyWindows.length > 0 ? (
              <Table data-testid="daily-breakdown">
                <THead>
                  <tr>
                    <TH>{unit === 'day' ? 'Day' : 'Hour'}</TH>
                    <TH className="text-right">Events</TH>
                    <TH className="text-right">Quantity</TH>
                  </tr>
                </THead>
                <TBody>
                  {nonEmptyWindows.map((p) => (
                    <TR key={p.t}>
                      <TD>{formatWindowLabel(p.t, usage.data!.tz, windowType, true)}</TD>
                      <TD className="text-right tabular-nums">{formatCount(p.events)}</TD>
                      <TD className="text-right tabular-nums">{formatQuantity(p.exact)}</TD>
                    </TR>
                  ))}
                  <TR className="bg-slate-50/60 font-medium">
                    <TD>Total</TD>
                    <TD className="text-right tabular-nums">{formatCount(nonEmptyWindows.reduce((s, p) => s + p.events, 0))}</TD>
                    <TD className="text-right tabular-nums">{formatQuantity(sumQuantities(nonEmptyWindows.map((p) => p.exact)))}</TD>
                  </TR>
                </TBody>
              </Table>
            ) : (
              <EmptyState title="No usage in this range" />
            )}
          </div>
        </Card>
      </div>
    </div>
  );
}
