import { type FormEvent, useMemo, useState } from 'react';
import { Gauge, Pencil, Plus, Search, Trash2 } from 'lucide-react';
import { PageHeader } from '../components/Layout';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { Card } from '../components/ui/card';
import { Button, focusRing } from '../components/ui/button';
import { Dialog } from '../components/ui/dialog';
import { Field, Input, Label, Select } from '../components/ui/input';
import { SkeletonRows } from '../components/ui/skeleton';
import { Badge } from '../components/ui/badge';
import { TBody, TD, TH, THead, TR, Table } from '../components/ui/table';
import { cn } from '../lib/cn';
import { useApi } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import { Link } from '../lib/router';
import { type ApiError, QUOTA_PERIODS, type Quota, type QuotaInput, type QuotaPeriod, toApiError } from '../lib/api';
import { isPositiveDecimal, toDecimalString } from '../lib/decimal';
import { formatDateTime, formatQuantity, formatRelative } from '../lib/format';
import { quotaTarget } from '../lib/quota';
import { isValidTimeZone } from '../lib/range';

interface FormState {
  tenant_id: string;
  /** What is limited: a feature's usage or a meter's value. */
  target: 'feature' | 'meter';
  resource: string;
  feature: string;
  meter: string;
  limit: string;
  period: QuotaPeriod;
  alert_threshold: string;
  tz: string;
}

const EMPTY: FormState = {
  tenant_id: '',
  target: 'feature',
  resource: '',
  feature: '',
  meter: '',
  limit: '',
  period: 'monthly',
  alert_threshold: '80',
  tz: '',
};

/** Client-side checks mirroring the API's rules; returns field errors. */
export function validateQuotaForm(f: FormState): Partial<Record<keyof FormState, string>> {
  const e: Partial<Record<keyof FormState, string>> = {};
  if (!f.tenant_id.trim()) e.tenant_id = 'Required (use * for every tenant).';
  if (f.target === 'feature' && !f.feature.trim()) e.feature = 'Required.';
  if (f.target === 'meter' && !/^[a-z0-9_-]{1,64}$/.test(f.meter.trim())) e.meter = 'A meter key: 1 to 64 of a-z, 0-9, _ and -.';
  if (!isPositiveDecimal(f.limit)) e.limit = 'A number greater than 0, at most 9 decimals.';
  const t = Number(f.alert_threshold);
  if (f.alert_threshold.trim() === '' || !Number.isFinite(t) || t < 0 || t > 100) e.alert_threshold = 'Between 0 and 100.';
  if (f.tz.trim() && !isValidTimeZone(f.tz.trim())) e.tz = 'Not a known IANA time zone.';
  return e;
}

function toInput(f: FormState): QuotaInput {
  const meter = f.target === 'meter';
  return {
    tenant_id: f.tenant_id.trim(),
    resource: meter ? null : f.resource.trim() || null,
    feature: meter ? null : f.feature.trim(),
    meter: meter ? f.meter.trim() : null,
    limit: f.limit.trim(),
    period: f.period,
    alert_threshold: Number(f.alert_threshold),
    tz: f.tz.trim() || null,
  };
}

function QuotaDialog({
  open,
  editing,
  onClose,
  onSaved,
}: {
  open: boolean;
  editing: Quota | null;
  onClose: () => void;
  onSaved: () => void;
}) {
  const api = useApi();
  const [form, setForm] = useState<FormState>(EMPTY);
  const [errors, setErrors] = useState<Partial<Record<keyof FormState, string>>>({});
  const [apiError, setApiError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [lastOpen, setLastOpen] = useState(false);

  if (open !== lastOpen) {
    setLastOpen(open);
    if (open) {
      setForm(
        editing
          ? {
              tenant_id: editing.tenant_id,
              target: editing.meter ? 'meter' : 'feature',
              resource: editing.resource ?? '',
              feature: editing.feature ?? '',
              meter: editing.meter ?? '',
              limit: toDecimalString(editing.limit),
              period: editing.period,
              alert_threshold: String(editing.alert_threshold ?? 80),
              tz: editing.tz ?? '',
            }
          : EMPTY,
      );
      setErrors({});
      setApiError(null);
    }
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs = validateQuotaForm(form);
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setApiError(null);
    try {
      await api.upsertQuota(toInput(form));
      onSaved();
    } catch (err) {
      setApiError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const set = (k: keyof FormState) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const invalid = (k: keyof FormState) => (errors[k] ? { 'aria-invalid': true, 'aria-describedby': `q-${k}-error` } : {});

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title={editing ? 'Edit quota' : 'New quota'}
      description={
        editing
          ? 'Change the limit, period, alert threshold or time zone.'
          : 'Limit usage of a feature, or the value of a sum, count or unique_count meter, per tenant and period. Saving a quota for an existing tenant and feature (or meter) replaces it.'
      }
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" form="quota-form" disabled={busy} data-testid="save-quota">
            {busy ? 'Saving…' : editing ? 'Save changes' : 'Create quota'}
          </Button>
        </>
      }
    >
      <form id="quota-form" onSubmit={submit} noValidate className="grid grid-cols-1 gap-4 sm:grid-cols-2">
        <Field label="Tenant" htmlFor="q-tenant_id" error={errors.tenant_id} hint="* applies to every tenant">
          <Input id="q-tenant_id" value={form.tenant_id} onChange={set('tenant_id')} disabled={!!editing} {...invalid('tenant_id')} />
        </Field>
        <Field label="Quota on" htmlFor="q-target">
          <Select id="q-target" value={form.target} onChange={set('target')} disabled={!!editing}>
            <option value="feature">a feature’s usage</option>
            <option value="meter">a meter’s value</option>
          </Select>
        </Field>
        {form.target === 'meter' ? (
          <Field label="Meter" htmlFor="q-meter" error={errors.meter} hint="Its key; sum, count or unique_count" className="sm:col-span-2">
            <Input id="q-meter" value={form.meter} onChange={set('meter')} disabled={!!editing} {...invalid('meter')} />
          </Field>
        ) : (
          <>
            <Field label="Feature" htmlFor="q-feature" error={errors.feature}>
              <Input id="q-feature" value={form.feature} onChange={set('feature')} disabled={!!editing} {...invalid('feature')} />
            </Field>
            <Field label="Resource (optional)" htmlFor="q-resource" hint="Empty: any resource">
              <Input id="q-resource" value={form.resource} onChange={set('resource')} disabled={!!editing} />
            </Field>
          </>
        )}
        <Field label="Limit" htmlFor="q-limit" error={errors.limit}>
          <Input id="q-limit" inputMode="decimal" value={form.limit} onChange={set('limit')} {...invalid('limit')} />
        </Field>
        <Field label="Period" htmlFor="q-period">
          <Select id="q-period" value={form.period} onChange={set('period')}>
            {QUOTA_PERIODS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </Select>
        </Field>
        <Field label="Alert threshold (%)" htmlFor="q-alert_threshold" error={errors.alert_threshold}>
          <Input
            id="q-alert_threshold"
            type="number"
            min={0}
            max={100}
            value={form.alert_threshold}
            onChange={set('alert_threshold')}
            {...invalid('alert_threshold')}
          />
        </Field>
        <Field label="Time zone (optional)" htmlFor="q-tz" error={errors.tz} hint="Period boundaries; default UTC">
          <Input id="q-tz" value={form.tz} placeholder="UTC" onChange={set('tz')} {...invalid('tz')} />
        </Field>
        {apiError ? <ErrorAlert error={apiError} className="sm:col-span-2" /> : null}
      </form>
    </Dialog>
  );
}

export function QuotasPage() {
  const api = useApi();
  const { tz } = useSettings();
  const res = useQuery('quotas', (signal) => api.quotas(undefined, signal));
  const [dialog, setDialog] = useState<{ open: boolean; editing: Quota | null }>({ open: false, editing: null });
  const [deleting, setDeleting] = useState<Quota | null>(null);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [filter, setFilter] = useState('');

  const quotas = useMemo(() => {
    const list = [...(res.data?.quotas ?? [])].sort(
      (a, b) =>
        a.tenant_id.localeCompare(b.tenant_id) ||
        quotaTarget(a).localeCompare(quotaTarget(b)) ||
        (a.resource ?? '').localeCompare(b.resource ?? ''),
    );
    const f = filter.trim().toLowerCase();
    return f
      ? list.filter((q) => `${q.tenant_id} ${q.resource ?? ''} ${quotaTarget(q)}`.toLowerCase().includes(f))
      : list;
  }, [res.data, filter]);

  const remove = async () => {
    if (!deleting) return;
    setBusy(true);
    setDeleteError(null);
    try {
      await api.deleteQuota(deleting.id);
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
        title="Quotas"
        description="Limits per tenant and period on a feature’s usage or a meter’s value. Checks and atomic consumption use POST /v1/meter/validate."
        actions={
          <Button onClick={() => setDialog({ open: true, editing: null })} data-testid="new-quota">
            <Plus className="h-4 w-4" aria-hidden="true" />
            New quota
          </Button>
        }
      />
      {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}

      <Card className="overflow-hidden">
        <div className="flex flex-wrap items-center justify-between gap-3 px-4 py-3">
          <p className="text-sm text-slate-500">
            {res.data ? `${quotas.length} quota${quotas.length === 1 ? '' : 's'}` : ' '}
          </p>
          <div className="relative w-full sm:w-64">
            <Label htmlFor="quota-filter" className="sr-only">
              Filter quotas
            </Label>
            <Search className="pointer-events-none absolute top-2.5 left-2.5 h-4 w-4 text-slate-400" aria-hidden="true" />
            <Input id="quota-filter" placeholder="Filter by tenant, feature…" value={filter} onChange={(e) => setFilter(e.target.value)} className="pl-8" />
          </div>
        </div>
        <div className="border-t border-slate-100">
          {res.loading ? (
            <SkeletonRows className="p-5" />
          ) : quotas.length === 0 ? (
            <EmptyState
              icon={<Gauge className="h-5 w-5" aria-hidden="true" />}
              title={filter ? 'No quota matches the filter' : 'No quotas yet'}
              description={filter ? undefined : 'Create a quota to cap a tenant’s usage of a feature.'}
              action={
                filter ? undefined : (
                  <Button size="sm" onClick={() => setDialog({ open: true, editing: null })}>
                    <Plus className="h-3.5 w-3.5" aria-hidden="true" />
                    New quota
                  </Button>
                )
              }
            />
          ) : (
            <Table data-testid="quotas-table">
              <caption className="sr-only">Quotas</caption>
              <THead>
                <tr>
                  <TH>Tenant</TH>
                  <TH>Feature</TH>
                  <TH className="hidden sm:table-cell">Resource</TH>
                  <TH className="text-right">Limit</TH>
                  <TH className="hidden sm:table-cell">Period</TH>
                  <TH className="hidden text-right md:table-cell">Alert</TH>
                  <TH className="hidden md:table-cell">Updated</TH>
                  <TH className="text-right">
                    <span className="sr-only">Actions</span>
                  </TH>
                </tr>
              </THead>
              <TBody>
                {quotas.map((q) => (
                  <TR key={q.id} data-testid="quota-row" data-tenant={q.tenant_id} data-feature={q.feature ?? undefined} data-meter={q.meter ?? undefined}>
                    <TD className="whitespace-nowrap">
                      {q.tenant_id === '*' ? (
                        <Badge tone="violet">all tenants</Badge>
                      ) : (
                        <Link
                          to={`/tenants/${encodeURIComponent(q.tenant_id)}`}
                          className={cn('rounded font-medium text-indigo-700 hover:underline', focusRing)}
                        >
                          {q.tenant_id}
                        </Link>
                      )}
                    </TD>
                    <TD className="font-medium whitespace-nowrap text-slate-900">
                      {q.meter ? (
                        <>
                          <Badge tone="indigo">meter</Badge> <span className="ml-1">{q.meter}</span>
                        </>
                      ) : (
                        q.feature
                      )}
                    </TD>
                    <TD className="hidden whitespace-nowrap sm:table-cell">
                      {q.meter ? <span className="text-slate-400">—</span> : (q.resource ?? <span className="text-slate-400">any</span>)}
                    </TD>
                    <TD className="text-right font-medium whitespace-nowrap text-slate-900 tabular-nums">{formatQuantity(q.limit)}</TD>
                    <TD className="hidden whitespace-nowrap capitalize sm:table-cell">
                      {q.period}
                      {q.tz && q.tz !== 'UTC' ? <span className="ml-1 text-xs text-slate-400 normal-case">({q.tz})</span> : null}
                    </TD>
                    <TD className="hidden text-right tabular-nums md:table-cell">{q.alert_threshold}%</TD>
                    <TD className="hidden whitespace-nowrap text-slate-500 md:table-cell" title={formatDateTime(q.updated_at, tz)}>
                      {formatRelative(q.updated_at)}
                    </TD>
                    <TD className="text-right whitespace-nowrap">
                      <Button
                        variant="ghost"
                        size="icon-sm"
                        aria-label={`Edit quota ${q.tenant_id} / ${quotaTarget(q)}`}
                        onClick={() => setDialog({ open: true, editing: q })}
                      >
                        <Pencil className="h-4 w-4" aria-hidden="true" />
                      </Button>
                      <Button
                        variant="ghost-destructive"
                        size="icon-sm"
                        aria-label={`Delete quota ${q.tenant_id} / ${quotaTarget(q)}`}
                        onClick={() => {
                          setDeleteError(null);
                          setDeleting(q);
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
        </div>
      </Card>

      <QuotaDialog
        open={dialog.open}
        editing={dialog.editing}
        onClose={() => setDialog({ open: false, editing: null })}
        onSaved={() => {
          setDialog({ open: false, editing: null });
          res.refetch();
        }}
      />

      <Dialog
        open={deleting !== null}
        onClose={() => setDeleting(null)}
        title="Delete quota?"
        description={
          deleting ? (
            <>
              The limit on <strong className="text-slate-700">{quotaTarget(deleting)}</strong> for{' '}
              <strong className="text-slate-700">{deleting.tenant_id === '*' ? 'all tenants' : deleting.tenant_id}</strong> stops
              applying at once.
            </>
          ) : null
        }
        footer={
          <>
            <Button variant="outline" onClick={() => setDeleting(null)} data-autofocus>
              Cancel
            </Button>
            <Button variant="destructive" onClick={remove} disabled={busy} data-testid="confirm-delete">
              {busy ? 'Deleting…' : 'Delete quota'}
            </Button>
          </>
        }
      >
        {deleteError ? <ErrorAlert error={deleteError} /> : <p className="text-sm text-slate-600">This cannot be undone.</p>}
      </Dialog>
    </div>
  );
}
