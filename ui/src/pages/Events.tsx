import { type FormEvent, Fragment, useEffect, useMemo, useState } from 'react';
import { Ban, ChevronDown, ChevronLeft, ChevronRight, Filter, PencilLine, RotateCcw, ScrollText } from 'lucide-react';
import { PageHeader } from '../components/Layout';
import { DownloadButton } from '../components/DownloadButton';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { JsonView } from '../components/JsonView';
import { Card } from '../components/ui/card';
import { Button, focusRing } from '../components/ui/button';
import { Field, Input, Label, Select } from '../components/ui/input';
import { Skeleton } from '../components/ui/skeleton';
import { Badge } from '../components/ui/badge';
import { TBody, TD, TH, THead, TR, Table } from '../components/ui/table';
import { cn } from '../lib/cn';
import { useApi } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import { useRouter, useSearchParams } from '../lib/router';
import { type Amendment, type ApiClient, type EventsQuery, type MeterEvent, buildQuery, parseJson } from '../lib/api';
import { formatCount, formatDateTime, formatQuantity, formatQuantityPlain } from '../lib/format';
import { parseLocalDateTime, toIso, toLocalDateTimeValue } from '../lib/range';

const FILTER_KEYS = ['tenant_id', 'resource', 'feature', 'start_date', 'end_date', 'include_voided'] as const;
type Filters = Partial<Record<(typeof FILTER_KEYS)[number], string>>;
const PAGE_SIZES = [25, 50, 100];

function filtersFromParams(p: URLSearchParams): Filters {
  const f: Filters = {};
  for (const k of FILTER_KEYS) {
    const v = p.get(k);
    if (v) f[k] = v;
  }
  return f;
}

/** The correction chain of an event (its amends), oldest first. */
function History({ api, id, tz }: { api: ApiClient; id: string; tz: string }) {
  const res = useQuery(`history:${id}`, (signal) => api.eventHistory(id, signal));
  if (res.error) return <ErrorAlert error={res.error} title="The history could not be read" />;
  const chain = res.data?.events ?? [];
  if (chain.length < 2) return null;
  return (
    <div data-testid="event-history">
      <p className="mb-1.5 text-xs font-medium text-slate-600">Correction history</p>
      <ol className="space-y-1 text-xs">
        {chain.map((e) => (
          <li key={e.id} className="flex flex-wrap items-baseline gap-2">
            <span className="font-mono text-slate-800">{e.id}</span>
            <span className={cn('font-mono tabular-nums', e.voided_at ? 'text-slate-400 line-through' : 'text-slate-800')}>
              {formatQuantityPlain(e.quantity)}
            </span>
            <span className="text-slate-500">{formatDateTime(e.timestamp, tz)}</span>
            {e.voided_at ? <Badge tone="red">voided{e.void_reason ? `: ${e.void_reason}` : ''}</Badge> : <Badge tone="green">counts</Badge>}
          </li>
        ))}
      </ol>
    </div>
  );
}

type Correction = 'void' | 'amend' | null;

/** Void and amend controls of one event, for admin keys. */
function Corrections({ api, ev, onDone }: { api: ApiClient; ev: MeterEvent; onDone: (message: string) => void }) {
  const [open, setOpen] = useState<Correction>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [reason, setReason] = useState('');
  const [amend, setAmend] = useState({ quantity: '', timestamp: '', metadata: '', id: '' });
  const idBase = `corr-${ev.id}`.replace(/[^A-Za-z0-9_-]/g, '_');

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const a: Amendment = { reason: reason.trim() || undefined };
    if (open === 'amend') {
      if (amend.quantity.trim()) a.quantity = amend.quantity.trim();
      if (amend.timestamp.trim()) a.timestamp = amend.timestamp.trim();
      if (amend.id.trim()) a.id = amend.id.trim();
      if (amend.metadata.trim()) {
        let parsed: unknown;
        try {
          parsed = parseJson(amend.metadata);
        } catch {
          parsed = undefined;
        }
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
          setError(new Error('The metadata must be a JSON object.'));
          return;
        }
        a.metadata = parsed as Record<string, unknown>;
      }
      if (!a.quantity && !a.timestamp && !a.metadata) {
        setError(new Error('Change the quantity, the timestamp or the metadata.'));
        return;
      }
    }
    setBusy(true);
    try {
      if (open === 'void') {
        await api.voidEvent(ev.id, a.reason);
        onDone(`Event ${ev.id} was voided.`);
      } else {
        const replacement = await api.amendEvent(ev.id, a);
        onDone(`Event ${ev.id} was replaced by ${replacement.id}.`);
      }
      setOpen(null);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  if (open === null) {
    return (
      <div className="flex flex-wrap gap-2">
        <Button size="sm" variant="outline" onClick={() => setOpen('amend')} data-testid="amend-event">
          <PencilLine className="h-3.5 w-3.5" aria-hidden="true" />
          Amend
        </Button>
        <Button size="sm" variant="outline-destructive" onClick={() => setOpen('void')} data-testid="void-event">
          <Ban className="h-3.5 w-3.5" aria-hidden="true" />
          Void
        </Button>
      </div>
    );
  }
  return (
    <form
      onSubmit={submit}
      aria-label={open === 'void' ? `Void event ${ev.id}` : `Amend event ${ev.id}`}
      className="space-y-3 rounded-lg border border-slate-200 bg-white p-3"
    >
      <p className="text-xs text-slate-600">
        {open === 'void'
          ? 'The event stops counting in usage, meters and quotas. It stays stored, marked as voided.'
          : 'The event is voided and replaced by a copy with these changes; fields left empty are copied.'}
      </p>
      {open === 'amend' ? (
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label="Quantity" htmlFor={`${idBase}-quantity`}>
            <Input
              id={`${idBase}-quantity`}
              inputMode="decimal"
              placeholder={formatQuantityPlain(ev.quantity)}
              value={amend.quantity}
              onChange={(e) => setAmend({ ...amend, quantity: e.target.value })}
            />
          </Field>
          <Field label="Timestamp (RFC 3339)" htmlFor={`${idBase}-timestamp`}>
            <Input
              id={`${idBase}-timestamp`}
              placeholder={ev.timestamp}
              value={amend.timestamp}
              onChange={(e) => setAmend({ ...amend, timestamp: e.target.value })}
            />
          </Field>
          <Field label="Metadata (JSON object, replaces the original's)" htmlFor={`${idBase}-metadata`} className="sm:col-span-2">
            <Input
              id={`${idBase}-metadata`}
              placeholder={ev.metadata ? JSON.stringify(ev.metadata) : '{}'}
              value={amend.metadata}
              onChange={(e) => setAmend({ ...amend, metadata: e.target.value })}
            />
          </Field>
          <Field label="Replacement id (optional; makes a retry safe)" htmlFor={`${idBase}-id`}>
            <Input id={`${idBase}-id`} value={amend.id} onChange={(e) => setAmend({ ...amend, id: e.target.value })} />
          </Field>
        </div>
      ) : null}
      <Field label="Reason (optional, kept with the voided event)" htmlFor={`${idBase}-reason`}>
        <Input id={`${idBase}-reason`} maxLength={1000} value={reason} onChange={(e) => setReason(e.target.value)} />
      </Field>
      {error ? <ErrorAlert error={error} title={open === 'void' ? 'The event was not voided' : 'The event was not amended'} /> : null}
      <div className="flex gap-2">
        <Button
          type="submit"
          size="sm"
          variant={open === 'void' ? 'destructive' : 'default'}
          disabled={busy}
          data-testid={open === 'void' ? 'confirm-void' : 'confirm-amend'}
        >
          {open === 'void' ? 'Void event' : 'Record the correction'}
        </Button>
        <Button size="sm" variant="ghost" onClick={() => setOpen(null)} disabled={busy}>
          Cancel
        </Button>
      </div>
    </form>
  );
}

function EventDetails({
  ev,
  tz,
  api,
  canCorrect,
  onCorrected,
}: {
  ev: MeterEvent;
  tz: string;
  api: ApiClient;
  canCorrect: boolean;
  onCorrected: (message: string) => void;
}) {
  const hasMeta = ev.metadata && typeof ev.metadata === 'object' && Object.keys(ev.metadata).length > 0;
  return (
    <div className="grid gap-4 bg-slate-50/70 px-4 py-4 md:grid-cols-[minmax(0,16rem)_minmax(0,1fr)]">
      <dl className="grid grid-cols-[auto_minmax(0,1fr)] content-start gap-x-3 gap-y-1.5 text-xs">
        <dt className="text-slate-500">Event ID</dt>
        <dd className="break-all font-mono text-slate-800">{ev.id}</dd>
        <dt className="text-slate-500">Timestamp</dt>
        <dd className="text-slate-800">
          {formatDateTime(ev.timestamp, tz)}
          <br />
          <span className="font-mono text-slate-500">{ev.timestamp}</span>
        </dd>
        <dt className="text-slate-500">Received</dt>
        <dd className="text-slate-800">{formatDateTime(ev.created_at, tz)}</dd>
        <dt className="text-slate-500">Quantity</dt>
        <dd className="break-all font-mono text-slate-800">{formatQuantityPlain(ev.quantity)}</dd>
        {ev.amends ? (
          <>
            <dt className="text-slate-500">Amends</dt>
            <dd className="break-all font-mono text-slate-800">{ev.amends}</dd>
          </>
        ) : null}
        {ev.voided_at ? (
          <>
            <dt className="text-slate-500">Voided</dt>
            <dd className="text-slate-800" data-testid="voided-at">
              {formatDateTime(ev.voided_at, tz)}
              {ev.void_reason ? <span className="block text-slate-500">{ev.void_reason}</span> : null}
            </dd>
          </>
        ) : null}
      </dl>
      <div className="min-w-0 space-y-4">
        <p className="mb-1.5 text-xs font-medium text-slate-600">Metadata</p>
        {hasMeta ? (
          <JsonView value={ev.metadata} />
        ) : (
          <p className="rounded-lg border border-dashed border-slate-300 px-3 py-4 text-center text-xs text-slate-500">
            This event has no metadata.
          </p>
        )}
        {ev.voided_at || ev.amends ? <History api={api} id={ev.id} tz={tz} /> : null}
        {canCorrect && !ev.voided_at ? <Corrections api={api} ev={ev} onDone={onCorrected} /> : null}
      </div>
    </div>
  );
}

export function EventsPage() {
  const api = useApi();
  const { tz, range } = useSettings();
  const { navigate, path } = useRouter();
  const params = useSearchParams();
  const filters = useMemo(() => filtersFromParams(params), [params]);

  const [draft, setDraft] = useState(() => ({
    tenant_id: filters.tenant_id ?? '',
    resource: filters.resource ?? '',
    feature: filters.feature ?? '',
    from: filters.start_date ? toLocalDateTimeValue(Date.parse(filters.start_date), tz) : '',
    to: filters.end_date ? toLocalDateTimeValue(Date.parse(filters.end_date), tz) : '',
  }));
  const [formError, setFormError] = useState<string | null>(null);
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [pageSize, setPageSize] = useState(50);
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const filterKey = JSON.stringify(filters);

  useEffect(() => {
    setCursors([undefined]);
    setExpanded(new Set());
    setDraft({
      tenant_id: filters.tenant_id ?? '',
      resource: filters.resource ?? '',
      feature: filters.feature ?? '',
      from: filters.start_date ? toLocalDateTimeValue(Date.parse(filters.start_date), tz) : '',
      to: filters.end_date ? toLocalDateTimeValue(Date.parse(filters.end_date), tz) : '',
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [filterKey, tz]);

  const showVoided = filters.include_voided === 'true';
  const cursor = cursors[cursors.length - 1];
  const query: EventsQuery = {
    ...filters,
    include_voided: showVoided ? 'true' : undefined,
    page_size: pageSize,
    ...(cursor ? { cursor } : {}),
  };
  const res = useQuery(JSON.stringify(query), (signal) => api.events(query, signal));
  // Corrections are for admin keys: listing the keys is the cheapest admin-only read.
  const admin = useQuery('can-correct', (signal) => api.apiKeys(signal));
  const canCorrect = admin.data !== undefined;
  const [notice, setNotice] = useState<string | null>(null);
  const corrected = (message: string) => {
    setNotice(message);
    res.refetch();
  };

  const setShowVoided = (on: boolean) => {
    const next = new URLSearchParams(params);
    if (on) next.set('include_voided', 'true');
    else next.delete('include_voided');
    const qs = next.toString();
    navigate(`${path}${qs ? `?${qs}` : ''}`, { replace: true });
  };

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (showVoided) next.set('include_voided', 'true');
    for (const k of ['tenant_id', 'resource', 'feature'] as const) {
      const v = draft[k].trim();
      if (v) next.set(k, v);
    }
    let start: number | null = null;
    let end: number | null = null;
    if (draft.from) {
      start = parseLocalDateTime(draft.from, tz);
      if (start === null) return setFormError('The start time is not valid.');
      next.set('start_date', toIso(start));
    }
    if (draft.to) {
      end = parseLocalDateTime(draft.to, tz);
      if (end === null) return setFormError('The end time is not valid.');
      next.set('end_date', toIso(end));
    }
    if (start !== null && end !== null && end <= start) return setFormError('The end must be after the start.');
    setFormError(null);
    const qs = next.toString();
    navigate(`${path}${qs ? `?${qs}` : ''}`, { replace: true });
  };

  const reset = () => {
    setFormError(null);
    navigate(path, { replace: true });
  };

  const fillDashboardRange = () => {
    if (!range) return;
    setDraft((d) => ({ ...d, from: toLocalDateTimeValue(range.start, tz), to: toLocalDateTimeValue(range.end, tz) }));
  };

  const toggle = (id: string) =>
    setExpanded((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  const events = res.data?.events ?? [];
  const total = res.data?.pagination?.total;
  const page = cursors.length;
  const nextCursor = res.data?.next_cursor ?? null;
  const activeFilters = Object.entries(filters).filter(([k]) => k !== 'include_voided');

  return (
    <div>
      <PageHeader
        title="Events"
        description="Raw usage events, newest first. Expand a row to see its metadata, and (with an admin key) to void or amend it."
        actions={
          <DownloadButton
            path={`/events/export${buildQuery({ ...filters, format: 'csv' })}`}
            filename="events.csv"
            testId="download-events"
          />
        }
      />

      <Card className="mb-4 p-4">
        <form onSubmit={apply} aria-label="Event filters" className="grid grid-cols-1 gap-3 sm:grid-cols-2 lg:grid-cols-3">
          <Field label="Tenant" htmlFor="f-tenant">
            <Input
              id="f-tenant"
              value={draft.tenant_id}
              placeholder="any tenant"
              onChange={(e) => setDraft({ ...draft, tenant_id: e.target.value })}
            />
          </Field>
          <Field label="Resource" htmlFor="f-resource">
            <Input
              id="f-resource"
              value={draft.resource}
              placeholder="any resource"
              onChange={(e) => setDraft({ ...draft, resource: e.target.value })}
            />
          </Field>
          <Field label="Feature" htmlFor="f-feature">
            <Input
              id="f-feature"
              value={draft.feature}
              placeholder="any feature"
              onChange={(e) => setDraft({ ...draft, feature: e.target.value })}
            />
          </Field>
          <Field label={`From (${tz})`} htmlFor="f-from">
            <Input id="f-from" type="datetime-local" value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
          </Field>
          <Field label={`To (${tz})`} htmlFor="f-to">
            <Input id="f-to" type="datetime-local" value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
          </Field>
          <div className="flex items-end gap-2 sm:col-span-2 lg:col-span-1">
            <Button type="submit" className="flex-1" data-testid="apply-filters">
              <Filter className="h-3.5 w-3.5" aria-hidden="true" />
              Apply
            </Button>
            <Button type="button" variant="outline" size="icon" onClick={reset} aria-label="Clear filters" title="Clear filters">
              <RotateCcw className="h-4 w-4" aria-hidden="true" />
            </Button>
          </div>
        </form>
        <div className="mt-3 flex flex-wrap items-center gap-2 text-xs text-slate-500">
          <Button variant="link" size="sm" className="h-auto text-xs" onClick={fillDashboardRange} disabled={!range}>
            Use the dashboard range
          </Button>
          <label className="flex cursor-pointer items-center gap-1.5 text-slate-600">
            <input
              type="checkbox"
              className="h-3.5 w-3.5 accent-indigo-600"
              checked={showVoided}
              onChange={(e) => setShowVoided(e.target.checked)}
              data-testid="show-voided"
            />
            Show voided events
          </label>
          {activeFilters.length > 0 ? <span aria-hidden="true">·</span> : null}
          {activeFilters.map(([k, v]) => (
            <Badge key={k} tone="indigo">
              {k}: {k.endsWith('_date') ? formatDateTime(v, tz, false) : v}
            </Badge>
          ))}
        </div>
        {formError ? <ErrorAlert error={new Error(formError)} title="Check the filters" className="mt-3" /> : null}
      </Card>

      {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}
      {notice ? (
        <p role="status" className="mb-4 rounded-lg border border-emerald-200 bg-emerald-50 px-3 py-2 text-sm text-emerald-800" data-testid="correction-notice">
          {notice}
        </p>
      ) : null}

      <Card className={cn('overflow-hidden transition-opacity', res.stale && 'opacity-60')}>
        {res.loading ? (
          <div className="space-y-2 p-5">
            {[0, 1, 2, 3, 4, 5].map((i) => (
              <Skeleton key={i} className="h-9 w-full" />
            ))}
          </div>
        ) : events.length === 0 ? (
          <EmptyState
            icon={<ScrollText className="h-5 w-5" aria-hidden="true" />}
            title={activeFilters.length ? 'No events match these filters' : 'No events yet'}
            description={activeFilters.length ? 'Try a wider time range or clear the filters.' : 'Send usage with POST /v1/meter/events.'}
          />
        ) : (
          <Table data-testid="events-table">
            <caption className="sr-only">Events</caption>
            <THead>
              <tr>
                <TH className="w-10">
                  <span className="sr-only">Details</span>
                </TH>
                <TH>Time</TH>
                <TH>Tenant</TH>
                <TH className="hidden sm:table-cell">Resource</TH>
                <TH>Feature</TH>
                <TH className="text-right">Quantity</TH>
              </tr>
            </THead>
            <TBody>
              {events.map((ev) => {
                const open = expanded.has(ev.id);
                const detailsId = `ev-${ev.id}`.replace(/[^A-Za-z0-9_-]/g, '_');
                return (
                  <Fragment key={ev.id}>
                    <TR
                      data-testid="event-row"
                      data-tenant={ev.tenant_id}
                      data-voided={ev.voided_at ? 'true' : undefined}
                      className={cn(open && 'bg-slate-50/80', ev.voided_at && 'text-slate-400')}
                    >
                      <TD className="py-1.5 pr-0">
                        <button
                          type="button"
                          aria-expanded={open}
                          aria-controls={detailsId}
                          aria-label={`${open ? 'Hide' : 'Show'} details of event ${ev.id}`}
                          onClick={() => toggle(ev.id)}
                          className={cn(
                            'flex h-7 w-7 cursor-pointer items-center justify-center rounded-md text-slate-500 hover:bg-slate-200/70 hover:text-slate-900',
                            focusRing,
                          )}
                        >
                          {open ? <ChevronDown className="h-4 w-4" aria-hidden="true" /> : <ChevronRight className="h-4 w-4" aria-hidden="true" />}
                        </button>
                      </TD>
                      <TD className="whitespace-nowrap tabular-nums">
                        <time dateTime={ev.timestamp}>{formatDateTime(ev.timestamp, tz)}</time>
                      </TD>
                      <TD className="font-medium whitespace-nowrap text-slate-900">{ev.tenant_id}</TD>
                      <TD className="hidden whitespace-nowrap sm:table-cell">{ev.resource}</TD>
                      <TD className="whitespace-nowrap">
                        <Badge tone="slate">{ev.feature}</Badge>
                        {ev.voided_at ? (
                          <Badge tone="red" className="ml-1.5" title={ev.void_reason ?? undefined}>
                            voided
                          </Badge>
                        ) : null}
                        {ev.amends ? (
                          <Badge tone="violet" className="ml-1.5" title={`amends ${ev.amends}`}>
                            amended
                          </Badge>
                        ) : null}
                      </TD>
                      <TD
                        className={cn(
                          'text-right font-medium whitespace-nowrap tabular-nums',
                          ev.voided_at ? 'text-slate-400 line-through' : 'text-slate-900',
                        )}
                      >
                        {formatQuantity(ev.quantity)}
                      </TD>
                    </TR>
                    {open ? (
                      <tr id={detailsId} data-testid="event-details">
                        <td colSpan={6} className="border-t border-slate-100 p-0">
                          <EventDetails ev={ev} tz={tz} api={api} canCorrect={canCorrect} onCorrected={corrected} />
                        </td>
                      </tr>
                    ) : null}
                  </Fragment>
                );
              })}
            </TBody>
          </Table>
        )}
        <div className="flex flex-wrap items-center justify-between gap-3 border-t border-slate-100 px-4 py-3 text-xs text-slate-500">
          <div className="flex items-center gap-2">
            <span>
              Page {page}
              {total !== undefined ? ` · ${formatCount(total)} matching event${total === 1 ? '' : 's'}` : ''}
            </span>
            <Label htmlFor="page-size" className="sr-only">
              Rows per page
            </Label>
            <Select
              id="page-size"
              value={pageSize}
              onChange={(e) => {
                setPageSize(Number(e.target.value));
                setCursors([undefined]);
              }}
              fieldSize="sm"
              block={false}
            >
              {PAGE_SIZES.map((n) => (
                <option key={n} value={n}>
                  {n} / page
                </option>
              ))}
            </Select>
          </div>
          <div className="flex items-center gap-2">
            <Button
              variant="outline"
              size="sm"
              disabled={cursors.length <= 1}
              onClick={() => setCursors((c) => c.slice(0, -1))}
            >
              <ChevronLeft className="h-3.5 w-3.5" aria-hidden="true" />
              Newer
            </Button>
            <Button
              variant="outline"
              size="sm"
              disabled={!nextCursor || res.stale}
              onClick={() => nextCursor && setCursors((c) => [...c, nextCursor])}
              data-testid="next-page"
            >
              Older
              <ChevronRight className="h-3.5 w-3.5" aria-hidden="true" />
            </Button>
          </div>
        </div>
      </Card>
    </div>
  );
}
