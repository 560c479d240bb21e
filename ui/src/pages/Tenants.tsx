import { useMemo, useState } from 'react';
import { ArrowDown, ArrowUp, ArrowUpDown, Search, Users } from 'lucide-react';
import { PageHeader } from '../components/Layout';
import { RangeLabel } from '../components/RangeLabel';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { UsageBarChart } from '../components/charts';
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from '../components/ui/card';
import { Input, Label } from '../components/ui/input';
import { Skeleton } from '../components/ui/skeleton';
import { TBody, TD, TH, THead, TR, Table } from '../components/ui/table';
import { focusRing } from '../components/ui/button';
import { cn } from '../lib/cn';
import { useApi } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import { Link } from '../lib/router';
import { type GroupTotal, share, totalsBy } from '../lib/aggregate';
import { compareQuantities, toNumber } from '../lib/decimal';
import { formatCount, formatQuantity } from '../lib/format';
import { rangeQuery } from './Overview';

type SortKey = 'key' | 'events' | 'quantity';

export function sortTotals(rows: GroupTotal[], key: SortKey, dir: 'asc' | 'desc'): GroupTotal[] {
  const m = dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    let c = 0;
    if (key === 'key') c = a.key.localeCompare(b.key);
    else if (key === 'events') c = a.events - b.events;
    else c = compareQuantities(a.quantity, b.quantity);
    return c * m || a.key.localeCompare(b.key);
  });
}

function SortHeader({
  label,
  k,
  sort,
  onSort,
  align = 'left',
}: {
  label: string;
  k: SortKey;
  sort: { key: SortKey; dir: 'asc' | 'desc' };
  onSort: (k: SortKey) => void;
  align?: 'left' | 'right';
}) {
  const active = sort.key === k;
  const Icon = !active ? ArrowUpDown : sort.dir === 'asc' ? ArrowUp : ArrowDown;
  return (
    <TH
      aria-sort={active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'}
      className={align === 'right' ? 'text-right' : undefined}
    >
      <button
        type="button"
        onClick={() => onSort(k)}
        className={cn(
          'inline-flex cursor-pointer items-center gap-1 rounded px-1 -mx-1 hover:text-slate-900',
          focusRing,
          active && 'text-slate-900',
        )}
      >
        {label}
        <Icon className={cn('h-3 w-3', active ? 'text-slate-700' : 'text-slate-300')} aria-hidden="true" />
      </button>
    </TH>
  );
}

export function TenantsPage() {
  const api = useApi();
  const { range, tz, rangeError } = useSettings();
  const [sort, setSort] = useState<{ key: SortKey; dir: 'asc' | 'desc' }>({ key: 'quantity', dir: 'desc' });
  const [filter, setFilter] = useState('');

  const q = range ? rangeQuery(range, tz, { group_by: 'tenant_id' }) : null;
  const res = useQuery(q ? JSON.stringify(q) : null, (signal) => api.aggregates(q!, signal));

  const totals = useMemo(() => (res.data ? totalsBy(res.data.aggregates, 'tenant_id') : []), [res.data]);
  const grand = res.data?.summary.total_quantity ?? 0;
  const rows = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return sortTotals(f ? totals.filter((t) => t.key.toLowerCase().includes(f)) : totals, sort.key, sort.dir);
  }, [totals, sort, filter]);
  const chartData = useMemo(
    () => totals.slice(0, 15).map((t) => ({ key: t.key, value: toNumber(t.quantity), exact: t.quantity, events: t.events })),
    [totals],
  );

  const onSort = (k: SortKey) =>
    setSort((s) => (s.key === k ? { key: k, dir: s.dir === 'asc' ? 'desc' : 'asc' } : { key: k, dir: k === 'key' ? 'asc' : 'desc' }));

  return (
    <div>
      <PageHeader title="Tenants" description={range ? <RangeLabel range={range} tz={tz} /> : null} />
      {rangeError ? <ErrorAlert error={new Error(rangeError)} title="Invalid range" className="mb-4" /> : null}
      {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}

      <Card className={cn('transition-opacity', res.stale && 'opacity-60')}>
        <CardHeader>
          <CardTitle>Usage by tenant</CardTitle>
          <CardDescription>
            {totals.length > 15 ? 'Top 15 tenants by total quantity' : 'Total quantity per tenant'}
          </CardDescription>
        </CardHeader>
        <CardContent>
          {res.loading ? (
            <Skeleton className="h-[260px] w-full" />
          ) : totals.length === 0 ? (
            <EmptyState
              className="h-[260px]"
              icon={<Users className="h-5 w-5" aria-hidden="true" />}
              title="No tenant usage in this range"
            />
          ) : (
            <UsageBarChart
              data={chartData}
              label="Bar chart of total quantity per tenant"
              tickFormatter={(k) => (k.length > 12 ? `${k.slice(0, 11)}…` : k)}
            />
          )}
        </CardContent>
      </Card>

      <Card className={cn('mt-4 transition-opacity', res.stale && 'opacity-60')}>
        <CardHeader className="flex-row flex-wrap items-center justify-between gap-3">
          <div>
            <CardTitle>All tenants</CardTitle>
            <CardDescription>
              {res.data ? `${formatCount(totals.length)} tenant${totals.length === 1 ? '' : 's'} with usage` : ' '}
            </CardDescription>
          </div>
          <div className="relative w-full sm:w-64">
            <Label htmlFor="tenant-filter" className="sr-only">
              Filter tenants
            </Label>
            <Search className="pointer-events-none absolute top-2.5 left-2.5 h-4 w-4 text-slate-400" aria-hidden="true" />
            <Input
              id="tenant-filter"
              placeholder="Filter tenants…"
              value={filter}
              onChange={(e) => setFilter(e.target.value)}
              className="pl-8"
            />
          </div>
        </CardHeader>
        <div className="border-t border-slate-100">
          {res.loading ? (
            <div className="space-y-2 p-5">
              {[0, 1, 2, 3, 4].map((i) => (
                <Skeleton key={i} className="h-8 w-full" />
              ))}
            </div>
          ) : rows.length === 0 ? (
            <EmptyState title={filter ? 'No tenant matches the filter' : 'No tenants yet'} />
          ) : (
            <Table data-testid="tenants-table">
              <caption className="sr-only">Usage by tenant, sortable</caption>
              <THead>
                <tr>
                  <SortHeader label="Tenant" k="key" sort={sort} onSort={onSort} />
                  <SortHeader label="Events" k="events" sort={sort} onSort={onSort} align="right" />
                  <SortHeader label="Quantity" k="quantity" sort={sort} onSort={onSort} align="right" />
                  <TH className="hidden w-48 sm:table-cell">Share</TH>
                </tr>
              </THead>
              <TBody>
                {rows.map((t) => {
                  const pct = share(t.quantity, grand);
                  return (
                    <TR key={t.key} data-tenant={t.key}>
                      <TD className="max-w-[16rem] truncate">
                        <Link
                          to={`/tenants/${encodeURIComponent(t.key)}`}
                          className={cn('rounded font-medium text-indigo-700 hover:underline', focusRing)}
                        >
                          {t.key}
                        </Link>
                      </TD>
                      <TD className="text-right tabular-nums">{formatCount(t.events)}</TD>
                      <TD className="text-right font-medium text-slate-900 tabular-nums">{formatQuantity(t.quantity)}</TD>
                      <TD className="hidden sm:table-cell">
                        <div className="flex items-center gap-2">
                          <div className="h-1.5 flex-1 overflow-hidden rounded-full bg-slate-100" aria-hidden="true">
                            <div className="h-full rounded-full bg-indigo-500" style={{ width: `${Math.min(100, pct)}%` }} />
                          </div>
                          <span className="w-12 text-right text-xs text-slate-500 tabular-nums">{pct.toFixed(1)}%</span>
                        </div>
                      </TD>
                    </TR>
                  );
                })}
              </TBody>
            </Table>
          )}
        </div>
      </Card>
    </div>
  );
}
