import { type FormEvent, useMemo, useState } from 'react';
import { Pencil, Plus, Ruler, Trash2 } from 'lucide-react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { PageHeader } from '../components/Layout';
import { RangeLabel } from '../components/RangeLabel';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from '../components/ui/card';
import { Button } from '../components/ui/button';
import { Dialog } from '../components/ui/dialog';
import { Field, Input, Select } from '../components/ui/input';
import { Skeleton, SkeletonRows } from '../components/ui/skeleton';
import { Badge } from '../components/ui/badge';
import { TBody, TD, TH, THead, TR, Table } from '../components/ui/table';
import { cn } from '../lib/cn';
import { useApi } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import { toIso } from '../lib/range';
import { AGGREGATIONS, type ApiError, type Meter, type MeterQuery, meterQueryString, toApiError } from '../lib/api';
import { DownloadButton } from '../components/DownloadButton';
import { EMPTY_METER_FORM, type MeterForm, definitionOf, filterSummary, formOf, groupLabel, meterSeries } from '../lib/meters';
import { formatCompact, formatCount, formatQuantity, formatQuantityPlain, formatWindowLabel } from '../lib/format';

const COLORS = ['#4f46e5', '#0891b2', '#16a34a', '#ca8a04', '#dc2626', '#9333ea', '#db2777', '#475569', '#94a3b8'];
const WINDOWS = ['none', 'hourly', 'daily', 'weekly', 'monthly'] as const;

function MeterDialog({
  open,
  editing,
  onClose,
  onSaved,
}: {
  open: boolean;
  editing: Meter | null;
  onClose: () => void;
  onSaved: (key: string) => void;
}) {
  const api = useApi();
  const [form, setForm] = useState<MeterForm>(EMPTY_METER_FORM);
  const [errors, setErrors] = useState<Partial<Record<keyof MeterForm, string>>>({});
  const [apiError, setApiError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [lastOpen, setLastOpen] = useState(false);

  if (open !== lastOpen) {
    setLastOpen(open);
    if (open) {
      setForm(editing ? formOf(editing) : EMPTY_METER_FORM);
      setErrors({});
      setApiError(null);
    }
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const result = definitionOf(form);
    if ('errors' in result) {
      setErrors(result.errors);
      return;
    }
    setErrors({});
    setBusy(true);
    setApiError(null);
    try {
      await api.putMeter(form.key.trim(), result.def);
      onSaved(form.key.trim());
    } catch (err) {
      setApiError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const set = (k: keyof MeterForm) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title={editing ? `Edit meter ${editing.key}` : 'New meter'}
      description="A meter measures every stored event, past and future, exactly. Saving an existing key replaces its definition."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" form="meter-form" disabled={busy} data-testid="save-meter">
            {busy ? 'Saving…' : editing ? 'Save changes' : 'Create meter'}
          </Button>
        </>
      }
    >
      <form id="meter-form" onSubmit={submit} noValidate className="grid grid-cols-1 gap-4 sm:grid-cols-2">
        <Field label="Key" htmlFor="m-key" error={errors.key} hint="a-z, 0-9, _ and -">
          <Input id="m-key" value={form.key} onChange={set('key')} disabled={!!editing} />
        </Field>
        <Field label="Name (optional)" htmlFor="m-name">
          <Input id="m-name" value={form.name} onChange={set('name')} />
        </Field>
        <Field label="Aggregation" htmlFor="m-aggregation">
          <Select id="m-aggregation" value={form.aggregation} onChange={set('aggregation')}>
            {AGGREGATIONS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </Select>
        </Field>
        <Field label="Value" htmlFor="m-value" hint="quantity, or metadata.<key>[.<key>…]">
          <Input id="m-value" value={form.value} onChange={set('value')} />
        </Field>
        <Field label="Resources (optional)" htmlFor="m-resource" hint="Comma-separated; any of them">
          <Input id="m-resource" value={form.resource} onChange={set('resource')} />
        </Field>
        <Field label="Features (optional)" htmlFor="m-feature" hint="Comma-separated; any of them">
          <Input id="m-feature" value={form.feature} onChange={set('feature')} />
        </Field>
        <Field
          label="Metadata conditions (optional)"
          htmlFor="m-metadata"
          error={errors.metadata}
          hint='One key=JSON per line: region="eu", tier=2; repeat a key for any of several values'
          className="sm:col-span-2"
        >
          <textarea
            id="m-metadata"
            value={form.metadata}
            onChange={set('metadata')}
            rows={3}
            className="w-full rounded-md border border-slate-300 px-3 py-2 font-mono text-sm"
          />
        </Field>
        <Field label="Dimensions (optional)" htmlFor="m-dimensions" hint="Comma-separated metadata keys, at most 8" className="sm:col-span-2">
          <Input id="m-dimensions" value={form.dimensions} onChange={set('dimensions')} />
        </Field>
        {apiError ? <ErrorAlert error={apiError} className="sm:col-span-2" /> : null}
      </form>
    </Dialog>
  );
}

function MeterChart({ meter }: { meter: Meter }) {
  const api = useApi();
  const { range, tz } = useSettings();
  const [window, setWindow] = useState<(typeof WINDOWS)[number]>('daily');
  const [groupBy, setGroupBy] = useState('');
  const [filters, setFilters] = useState<Record<string, string>>({});

  const query: MeterQuery | null = range
    ? {
        start_date: toIso(range.start),
        end_date: toIso(range.end),
        window_type: window === 'none' ? null : window,
        tz,
        group_by: groupBy ? [groupBy] : [],
        filters: Object.fromEntries(
          Object.entries(filters)
            .map(([k, v]) => [k, v.split(',').map((x) => x.trim()).filter(Boolean)] as const)
            .filter(([, vs]) => vs.length > 0),
        ),
      }
    : null;
  const res = useQuery(query ? `${meter.key}:${JSON.stringify(query)}` : null, (signal) => api.queryMeter(meter.key, query!, signal));
  const additive = meter.aggregation === 'sum' || meter.aggregation === 'count';
  const series = useMemo(() => meterSeries(res.data?.data ?? [], additive), [res.data, additive]);
  const groupOptions = ['tenant_id', 'resource', 'feature', ...meter.dimensions];

  return (
    <Card className="mt-6" data-testid="meter-detail" data-meter={meter.key}>
      <CardHeader>
        {query ? (
          <div className="float-right">
            <DownloadButton
              path={`/meters/${encodeURIComponent(meter.key)}/query${meterQueryString(query)}`}
              filename={`${meter.key}.csv`}
              testId="download-meter"
            />
          </div>
        ) : null}
        <CardTitle>{meter.name || meter.key}</CardTitle>
        <CardDescription>
          {meter.aggregation} of {meter.aggregation === 'count' ? 'events' : meter.value} · {filterSummary(meter)}
          {range ? (
            <>
              {' · '}
              <RangeLabel range={range} tz={tz} />
            </>
          ) : null}
        </CardDescription>
      </CardHeader>
      <CardContent>
        <div className="mb-4 grid grid-cols-1 gap-3 sm:grid-cols-3">
          <Field label="Window" htmlFor="meter-window">
            <Select id="meter-window" value={window} onChange={(e) => setWindow(e.target.value as (typeof WINDOWS)[number])}>
              {WINDOWS.map((w) => (
                <option key={w} value={w}>
                  {w === 'none' ? 'whole range' : w}
                </option>
              ))}
            </Select>
          </Field>
          <Field label="Group by" htmlFor="meter-group-by">
            <Select id="meter-group-by" value={groupBy} onChange={(e) => setGroupBy(e.target.value)}>
              <option value="">nothing</option>
              {groupOptions.map((g) => (
                <option key={g} value={g}>
                  {g}
                </option>
              ))}
            </Select>
          </Field>
          {meter.dimensions.map((d) => (
            <Field key={d} label={`${d} is`} htmlFor={`meter-filter-${d}`} hint="Comma-separated; any of them">
              <Input
                id={`meter-filter-${d}`}
                value={filters[d] ?? ''}
                onChange={(e) => setFilters({ ...filters, [d]: e.target.value })}
              />
            </Field>
          ))}
        </div>
        {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}
        {res.loading ? (
          <Skeleton className="h-64 w-full" />
        ) : !res.data || res.data.data.length === 0 ? (
          <EmptyState title="No counted events" description="No event in this range matches the meter and the filters." />
        ) : (
          <div className={cn('transition-opacity', res.stale && 'opacity-60')}>
            {window !== 'none' ? (
              <div role="img" aria-label={`${meter.key} per ${window} window`} style={{ height: 260 }} className="w-full">
                <ResponsiveContainer width="100%" height="100%">
                  <LineChart data={series.points} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
                    <CartesianGrid stroke="#e2e8f0" strokeDasharray="3 3" vertical={false} />
                    <XAxis
                      dataKey="t"
                      tickFormatter={(t: string) => formatWindowLabel(Date.parse(t), tz, window)}
                      tick={{ fontSize: 11, fill: '#64748b' }}
                      minTickGap={24}
                    />
                    <YAxis tickFormatter={(v: number) => formatCompact(v)} tick={{ fontSize: 11, fill: '#64748b' }} width={56} />
                    <Tooltip labelFormatter={(t) => formatWindowLabel(Date.parse(String(t)), tz, window, true)} />
                    <Legend />
                    {series.names.map((name, i) => (
                      <Line key={name} dataKey={name} stroke={COLORS[i % COLORS.length]} dot={false} isAnimationActive={false} />
                    ))}
                  </LineChart>
                </ResponsiveContainer>
              </div>
            ) : null}
            <p className="mt-3 text-xs text-slate-500" data-testid="skipped-events">
              {formatCount(res.data.skipped_events)} matching event{res.data.skipped_events === 1 ? '' : 's'} skipped (no usable
              value)
            </p>
            <Table data-testid="meter-rows" className="mt-2">
              <caption className="sr-only">Meter values</caption>
              <THead>
                <tr>
                  <TH>Window</TH>
                  <TH>Group</TH>
                  <TH className="text-right">Value</TH>
                  <TH className="text-right">Events</TH>
                </tr>
              </THead>
              <TBody>
                {res.data.data.map((r) => (
                  <TR
                    key={`${r.window_start}|${JSON.stringify(r.group)}`}
                    data-testid="meter-row"
                    data-window={r.window_start}
                    data-group={JSON.stringify(r.group)}
                    data-value={formatQuantityPlain(r.value)}
                  >
                    <TD className="whitespace-nowrap">{formatWindowLabel(Date.parse(r.window_start), tz, window === 'none' ? 'daily' : window)}</TD>
                    <TD>{groupLabel(r.group)}</TD>
                    <TD className="text-right font-medium tabular-nums">{formatQuantity(r.value)}</TD>
                    <TD className="text-right tabular-nums">{formatCount(r.event_count)}</TD>
                  </TR>
                ))}
              </TBody>
            </Table>
          </div>
        )}
      </CardContent>
    </Card>
  );
}

export function MetersPage() {
  const api = useApi();
  const res = useQuery('meters', (signal) => api.meters(signal));
  const [selected, setSelected] = useState<string | null>(null);
  const [dialog, setDialog] = useState<{ open: boolean; editing: Meter | null }>({ open: false, editing: null });
  const [deleting, setDeleting] = useState<Meter | null>(null);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const meters = res.data?.meters ?? [];
  const current = meters.find((m) => m.key === selected) ?? null;

  const remove = async () => {
    if (!deleting) return;
    setBusy(true);
    setDeleteError(null);
    try {
      await api.deleteMeter(deleting.key);
      if (selected === deleting.key) setSelected(null);
      setDeleting(null);
      res.refetch();
    } catch (err) {
      setDeleteError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <PageHeader
        title="Meters"
        description="What to measure from events: sum, count, unique count, min, max, average or latest of any value, split by metadata."
        actions={
          <Button onClick={() => setDialog({ open: true, editing: null })} data-testid="new-meter">
            <Plus className="h-4 w-4" aria-hidden="true" />
            New meter
          </Button>
        }
      />
      {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}
      <Card className="overflow-hidden">
        {res.loading ? (
          <SkeletonRows className="p-5" />
        ) : meters.length === 0 ? (
          <EmptyState
            icon={<Ruler className="h-5 w-5" aria-hidden="true" />}
            title="No meters yet"
            description="Define a meter to measure a value from your events."
          />
        ) : (
          <Table data-testid="meters-table">
            <caption className="sr-only">Meters</caption>
            <THead>
              <tr>
                <TH>Key</TH>
                <TH>Aggregation</TH>
                <TH className="hidden md:table-cell">Counts</TH>
                <TH className="hidden sm:table-cell">Dimensions</TH>
                <TH className="text-right">
                  <span className="sr-only">Actions</span>
                </TH>
              </tr>
            </THead>
            <TBody>
              {meters.map((m) => (
                <TR key={m.key} data-testid="meter-list-row" data-key={m.key} className={cn(selected === m.key && 'bg-indigo-50/60')}>
                  <TD className="whitespace-nowrap">
                    <button
                      type="button"
                      className="cursor-pointer text-left font-medium text-indigo-700 hover:underline"
                      onClick={() => setSelected(m.key)}
                      data-testid="select-meter"
                    >
                      {m.key}
                    </button>
                    {m.name ? <p className="text-xs text-slate-500">{m.name}</p> : null}
                  </TD>
                  <TD className="whitespace-nowrap">
                    <Badge tone="violet">{m.aggregation}</Badge>
                    {m.aggregation !== 'count' ? <span className="ml-2 font-mono text-xs text-slate-500">{m.value}</span> : null}
                  </TD>
                  <TD className="hidden text-slate-600 md:table-cell">{filterSummary(m)}</TD>
                  <TD className="hidden font-mono text-xs sm:table-cell">{m.dimensions.join(', ') || '—'}</TD>
                  <TD className="text-right whitespace-nowrap">
                    <Button variant="ghost" size="icon-sm" aria-label={`Edit meter ${m.key}`} onClick={() => setDialog({ open: true, editing: m })}>
                      <Pencil className="h-4 w-4" aria-hidden="true" />
                    </Button>
                    <Button
                      variant="ghost-destructive"
                      size="icon-sm"
                      aria-label={`Delete meter ${m.key}`}
                      onClick={() => {
                        setDeleteError(null);
                        setDeleting(m);
                      }}
                    >
                      <Trash2 className="h-4 w-4" aria-hidden="true" />
                    </Button>
                  </TD>
                </TR>
              ))}
            </TBody>
          </Table>
        )}
      </Card>

      {current ? <MeterChart key={current.key} meter={current} /> : null}

      <MeterDialog
        open={dialog.open}
        editing={dialog.editing}
        onClose={() => setDialog({ open: false, editing: null })}
        onSaved={(key) => {
          setDialog({ open: false, editing: null });
          setSelected(key);
          res.refetch();
        }}
      />

      <Dialog
        open={deleting !== null}
        onClose={() => setDeleting(null)}
        title="Delete meter?"
        description={deleting ? `The meter ${deleting.key} and its definition are removed; events are kept.` : null}
        footer={
          <>
            <Button variant="outline" onClick={() => setDeleting(null)} data-autofocus>
              Cancel
            </Button>
            <Button variant="destructive" onClick={remove} disabled={busy} data-testid="confirm-delete-meter">
              {busy ? 'Deleting…' : 'Delete meter'}
            </Button>
          </>
        }
      >
        {deleteError ? <ErrorAlert error={deleteError} /> : <p className="text-sm text-slate-600">This cannot be undone.</p>}
      </Dialog>
    </div>
  );
}
