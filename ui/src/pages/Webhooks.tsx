import { type FormEvent, useState } from 'react';
import { Plus, RefreshCw, RotateCcw, Send, Trash2, TriangleAlert, Webhook as WebhookIcon } from 'lucide-react';
import { PageHeader } from '../components/Layout';
import { ErrorAlert } from '../components/ErrorAlert';
import { EmptyState } from '../components/EmptyState';
import { CopyButton } from '../components/CopyButton';
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from '../components/ui/card';
import { Button } from '../components/ui/button';
import { Dialog } from '../components/ui/dialog';
import { Field, Input } from '../components/ui/input';
import { SkeletonRows } from '../components/ui/skeleton';
import { Badge, type BadgeTone } from '../components/ui/badge';
import { TBody, TD, TH, THead, TR, Table } from '../components/ui/table';
import { cn } from '../lib/cn';
import { useApi } from '../lib/auth';
import { useSettings } from '../lib/settings';
import { useQuery } from '../lib/useQuery';
import {
  type ApiError,
  type CreatedWebhook,
  type DeliveryStatus,
  WEBHOOK_EVENT_TYPES,
  type Webhook,
  type WebhookDelivery,
  type WebhookEventType,
  fieldErrors,
  toApiError,
} from '../lib/api';
import { formatDateTime, formatRelative } from '../lib/format';

/** How many of an endpoint's latest deliveries are listed. */
export const DELIVERY_LIMIT = 50;

const EVENT_HELP: Record<WebhookEventType, string> = {
  'quota.threshold': 'Usage reached one of a quota’s thresholds',
  'quota.exceeded': 'Usage reached the limit, or a check was refused',
  'quota.reset': 'A period in which alerts fired has ended',
};

const STATUS_TONE: Record<DeliveryStatus, BadgeTone> = { pending: 'amber', delivered: 'green', failed: 'red' };

export interface WebhookFormErrors {
  url?: string;
  events?: string;
  description?: string;
}

/**
 * Places a 422's field errors next to the form's fields (`events[1]` goes to
 * the events); `other` is true when some error belongs to none of them.
 */
export function webhookFormErrors(err: ApiError): { fields: WebhookFormErrors; other: boolean } {
  const all = fieldErrors(err.details);
  const fields: WebhookFormErrors = {};
  let other = false;
  for (const [field, message] of Object.entries(all)) {
    if (field === 'url' || field === 'description') fields[field] ??= message;
    else if (field === 'events' || /^events\[\d+\]$/.test(field)) fields.events ??= message;
    else other = true;
  }
  return { fields, other: other || Object.keys(fields).length === 0 };
}

function SecretDialog({ created, onClose }: { created: CreatedWebhook; onClose: () => void }) {
  return (
    <Dialog
      open
      onClose={onClose}
      dismissible={false}
      title="Copy the signing secret"
      description="This is the only time the secret is shown. Store it now: it will not be shown again."
      footer={
        <Button onClick={onClose} data-testid="close-webhook-secret">
          I have stored the secret
        </Button>
      }
    >
      <div className="space-y-3">
        <div className="flex items-start gap-2 rounded-lg border border-amber-200 bg-amber-50 px-3 py-2.5 text-xs text-amber-800">
          <TriangleAlert className="mt-0.5 h-4 w-4 shrink-0" aria-hidden="true" />
          <span>
            Store it now, it will not be shown again. Your endpoint verifies the{' '}
            <span className="font-mono">webhook-signature</span> header of each message with it (Standard Webhooks); if it is
            lost, delete the endpoint and add it again.
          </span>
        </div>
        <label htmlFor="new-webhook-secret" className="text-xs font-medium text-slate-700">
          Signing secret for <span className="break-all font-mono">{created.url}</span>
        </label>
        <div className="flex gap-2">
          <Input
            id="new-webhook-secret"
            readOnly
            value={created.secret}
            className="font-mono text-xs"
            data-testid="webhook-secret"
            autoComplete="off"
            spellCheck={false}
            onFocus={(e) => e.currentTarget.select()}
          />
          <CopyButton text={created.secret} data-autofocus data-testid="copy-webhook-secret" />
        </div>
        <p className="text-xs text-slate-500">
          Receives{' '}
          {created.events.map((t) => (
            <Badge key={t} tone="indigo" className="mr-1">
              {t}
            </Badge>
          ))}
        </p>
      </div>
    </Dialog>
  );
}

function CreateWebhookDialog({
  open,
  onClose,
  onCreated,
}: {
  open: boolean;
  onClose: () => void;
  onCreated: (id: string) => void;
}) {
  const api = useApi();
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<WebhookEventType[]>([...WEBHOOK_EVENT_TYPES]);
  const [description, setDescription] = useState('');
  const [errors, setErrors] = useState<WebhookFormErrors>({});
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  // Held only while the dialog shows it; cleared on close, never stored elsewhere.
  const [created, setCreated] = useState<CreatedWebhook | null>(null);
  const [lastOpen, setLastOpen] = useState(false);

  if (open !== lastOpen) {
    setLastOpen(open);
    if (open) {
      setUrl('');
      setEvents([...WEBHOOK_EVENT_TYPES]);
      setDescription('');
      setErrors({});
      setError(null);
    }
    setCreated(null);
  }

  const toggle = (t: WebhookEventType, on: boolean) => {
    const next = new Set(events);
    if (on) next.add(t);
    else next.delete(t);
    // Keep the wire order whatever the clicking order.
    setEvents(WEBHOOK_EVENT_TYPES.filter((x) => next.has(x)));
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const local: WebhookFormErrors = {};
    if (!url.trim()) local.url = 'Enter the URL alerts are POSTed to, e.g. https://example.com/hooks/metering.';
    if (events.length === 0) local.events = 'Choose at least one event type.';
    setErrors(local);
    setError(null);
    if (Object.keys(local).length > 0) return;
    setBusy(true);
    try {
      const w = await api.createWebhook({ url: url.trim(), events, description: description.trim() || null });
      setCreated(w);
      onCreated(w.id);
    } catch (err) {
      const apiErr = toApiError(err);
      const placed = webhookFormErrors(apiErr);
      setErrors(placed.fields);
      setError(placed.other ? apiErr : null);
    } finally {
      setBusy(false);
    }
  };

  if (!open) return null;
  if (created) return <SecretDialog created={created} onClose={onClose} />;

  const invalid = (field: keyof WebhookFormErrors, id: string) =>
    errors[field] ? { 'aria-invalid': true, 'aria-describedby': `${id}-error` } : {};

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="Add webhook endpoint"
      description="Quota alerts are POSTed to the endpoint, signed with a secret shown once after it is added."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" form="webhook-form" disabled={busy} data-testid="create-webhook-submit">
            {busy ? 'Adding…' : 'Add endpoint'}
          </Button>
        </>
      }
    >
      <form id="webhook-form" onSubmit={submit} noValidate className="grid grid-cols-1 gap-4">
        <Field label="URL" htmlFor="wh-url" error={errors.url} hint="An http or https URL; it receives every tenant’s alerts">
          <Input
            id="wh-url"
            type="url"
            inputMode="url"
            value={url}
            onChange={(e) => setUrl(e.target.value)}
            placeholder="https://example.com/hooks/metering"
            {...invalid('url', 'wh-url')}
          />
        </Field>
        <fieldset className="min-w-0" aria-describedby={errors.events ? 'wh-events-error' : undefined}>
          <legend className="mb-1.5 text-xs font-medium text-slate-700">Events</legend>
          <div className="space-y-2">
            {WEBHOOK_EVENT_TYPES.map((t) => (
              <label key={t} className="flex cursor-pointer items-start gap-2">
                <input
                  type="checkbox"
                  className="mt-0.5 h-3.5 w-3.5 accent-indigo-600"
                  checked={events.includes(t)}
                  onChange={(e) => toggle(t, e.target.checked)}
                  aria-invalid={errors.events ? true : undefined}
                  data-testid={`event-${t}`}
                />
                <span className="min-w-0">
                  <span className="block font-mono text-xs text-slate-900">{t}</span>
                  <span className="block text-xs text-slate-500">{EVENT_HELP[t]}</span>
                </span>
              </label>
            ))}
          </div>
          {errors.events ? (
            <p id="wh-events-error" className="mt-1.5 text-xs text-red-600">
              {errors.events}
            </p>
          ) : null}
        </fieldset>
        <Field label="Description (optional)" htmlFor="wh-description" error={errors.description}>
          <Input
            id="wh-description"
            value={description}
            onChange={(e) => setDescription(e.target.value)}
            placeholder="billing alerts"
            {...invalid('description', 'wh-description')}
          />
        </Field>
        {error ? <ErrorAlert error={error} /> : null}
      </form>
    </Dialog>
  );
}

function DeliveriesCard({ webhook }: { webhook: Webhook }) {
  const api = useApi();
  const { tz } = useSettings();
  const [refreshing, setRefreshing] = useState(false);
  const [retrying, setRetrying] = useState<string | null>(null);
  const [retryError, setRetryError] = useState<ApiError | null>(null);
  const [retried, setRetried] = useState<WebhookDelivery | null>(null);
  const res = useQuery(`webhook-deliveries:${webhook.id}`, async (signal) => {
    try {
      return await api.webhookDeliveries(webhook.id, DELIVERY_LIMIT, signal);
    } finally {
      if (!signal.aborted) setRefreshing(false);
    }
  });
  const deliveries = res.data?.deliveries ?? [];

  const refresh = () => {
    setRefreshing(true);
    res.refetch();
  };

  const retry = async (d: WebhookDelivery) => {
    setRetrying(d.id);
    setRetryError(null);
    setRetried(null);
    try {
      setRetried(await api.retryDelivery(webhook.id, d.id));
      refresh();
    } catch (err) {
      setRetryError(toApiError(err));
    } finally {
      setRetrying(null);
    }
  };

  return (
    <Card className="mt-6" data-testid="webhook-deliveries" data-webhook={webhook.id}>
      <CardHeader className="flex-row items-start justify-between gap-3">
        <div className="min-w-0">
          <CardTitle>Deliveries</CardTitle>
          <CardDescription>
            The latest {DELIVERY_LIMIT} messages to <span className="break-all font-mono">{webhook.url}</span>, newest first.
            Pending ones are retried; Retry sends one again with the same <span className="font-mono">webhook-id</span>.
          </CardDescription>
        </div>
        <Button
          variant="outline"
          size="sm"
          onClick={refresh}
          disabled={refreshing}
          aria-busy={refreshing}
          data-testid="refresh-deliveries"
        >
          <RefreshCw className={cn('h-3.5 w-3.5', refreshing && 'animate-spin')} aria-hidden="true" />
          {refreshing ? 'Refreshing…' : 'Refresh'}
        </Button>
      </CardHeader>
      <CardContent>
        {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}
        {retryError ? <ErrorAlert error={retryError} title="Retry failed" className="mb-4" /> : null}
        <p role="status" className={cn('text-xs text-slate-500', retried && 'mb-3')} data-testid="retry-notice">
          {retried ? (
            <>
              Message <span className="font-mono">{retried.message_id}</span> queued to be sent again.
            </>
          ) : null}
        </p>
        {res.loading ? (
          <SkeletonRows />
        ) : deliveries.length === 0 ? (
          <EmptyState
            icon={<Send className="h-5 w-5" aria-hidden="true" />}
            title={res.error ? 'Deliveries unavailable' : 'No deliveries yet'}
            description={
              res.error ? undefined : 'A message is written when a quota’s usage crosses a threshold, reaches the limit, or its period ends.'
            }
          />
        ) : (
          <Table data-testid="deliveries-table" className={cn('transition-opacity', res.stale && 'opacity-60')}>
            <caption className="sr-only">Deliveries to {webhook.url}</caption>
            <THead>
              <tr>
                <TH>Type</TH>
                <TH>Status</TH>
                <TH className="text-right">Attempts</TH>
                <TH className="hidden text-right sm:table-cell">Last status</TH>
                <TH className="hidden md:table-cell">Created</TH>
                <TH className="hidden md:table-cell">Delivered</TH>
                <TH className="text-right">
                  <span className="sr-only">Actions</span>
                </TH>
              </tr>
            </THead>
            <TBody>
              {deliveries.map((d) => (
                <TR
                  key={d.id}
                  data-testid="delivery-row"
                  data-id={d.id}
                  data-message-id={d.message_id}
                  data-type={d.type}
                  data-status={d.status}
                  data-attempts={d.attempts}
                >
                  <TD className="whitespace-nowrap">
                    <span className="font-mono text-xs text-slate-900">{d.type}</span>
                    <p className="font-mono text-[11px] text-slate-400" title="webhook-id">
                      {d.message_id}
                    </p>
                  </TD>
                  <TD>
                    <Badge tone={STATUS_TONE[d.status] ?? 'slate'}>{d.status}</Badge>
                  </TD>
                  <TD className="text-right tabular-nums">{d.attempts}</TD>
                  <TD className="hidden text-right font-mono text-xs sm:table-cell">
                    {d.last_status_code === null ? (
                      <span className="text-slate-400" title="No answer (timeout or connection error), or not sent yet">
                        —
                      </span>
                    ) : (
                      <span className={d.last_status_code >= 200 && d.last_status_code < 300 ? 'text-emerald-700' : 'text-red-700'}>
                        {d.last_status_code}
                      </span>
                    )}
                  </TD>
                  <TD className="hidden whitespace-nowrap text-slate-500 md:table-cell" title={formatDateTime(d.created_at, tz)}>
                    {formatRelative(d.created_at)}
                  </TD>
                  <TD
                    className="hidden whitespace-nowrap text-slate-500 md:table-cell"
                    title={d.delivered_at ? formatDateTime(d.delivered_at, tz) : 'Not delivered'}
                  >
                    {d.delivered_at ? formatRelative(d.delivered_at) : <span className="text-slate-400">—</span>}
                  </TD>
                  <TD className="text-right">
                    <Button
                      variant="outline"
                      size="sm"
                      onClick={() => retry(d)}
                      disabled={retrying !== null}
                      aria-label={`Retry delivery ${d.message_id}`}
                      data-testid="retry-delivery"
                    >
                      <RotateCcw className="h-3.5 w-3.5" aria-hidden="true" />
                      {retrying === d.id ? 'Retrying…' : 'Retry'}
                    </Button>
                  </TD>
                </TR>
              ))}
            </TBody>
          </Table>
        )}
      </CardContent>
    </Card>
  );
}

export function WebhooksPage() {
  const api = useApi();
  const { tz } = useSettings();
  const res = useQuery('webhooks', (signal) => api.webhooks(signal));
  const [creating, setCreating] = useState(false);
  const [selected, setSelected] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<Webhook | null>(null);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const webhooks = res.data?.webhooks ?? [];
  const current = webhooks.find((w) => w.id === selected) ?? null;

  const remove = async () => {
    if (!deleting) return;
    setBusy(true);
    setDeleteError(null);
    try {
      await api.deleteWebhook(deleting.id);
      if (selected === deleting.id) setSelected(null);
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
        title="Webhooks"
        description="Endpoints that receive quota alerts (thresholds crossed, limits reached, periods reset), signed as Standard Webhooks."
        actions={
          <Button onClick={() => setCreating(true)} data-testid="create-webhook">
            <Plus className="h-4 w-4" aria-hidden="true" />
            Add endpoint
          </Button>
        }
      />
      {res.error ? <ErrorAlert error={res.error} className="mb-4" /> : null}

      <Card className="overflow-hidden">
        {res.loading ? (
          <SkeletonRows className="p-5" />
        ) : webhooks.length === 0 ? (
          <EmptyState
            icon={<WebhookIcon className="h-5 w-5" aria-hidden="true" />}
            title={res.error ? 'Endpoints unavailable' : 'No webhook endpoints'}
            description={
              res.error ? undefined : 'Add an endpoint to be told when a tenant’s usage crosses a quota threshold or reaches its limit.'
            }
          />
        ) : (
          <Table data-testid="webhooks-table">
            <caption className="sr-only">Webhook endpoints</caption>
            <THead>
              <tr>
                <TH>Endpoint</TH>
                <TH>Events</TH>
                <TH className="hidden lg:table-cell">Description</TH>
                <TH className="hidden sm:table-cell">Status</TH>
                <TH className="hidden md:table-cell">Created</TH>
                <TH className="text-right">
                  <span className="sr-only">Actions</span>
                </TH>
              </tr>
            </THead>
            <TBody>
              {webhooks.map((w) => {
                const isSelected = selected === w.id;
                return (
                  <TR
                    key={w.id}
                    data-testid="webhook-row"
                    data-id={w.id}
                    data-url={w.url}
                    data-status={w.disabled_at ? 'disabled' : 'active'}
                    className={cn(isSelected && 'bg-indigo-50/60')}
                  >
                    <TD className="max-w-xs">
                      <button
                        type="button"
                        className="cursor-pointer break-all text-left font-mono text-xs font-medium text-indigo-700 hover:underline"
                        onClick={() => setSelected(w.id)}
                        aria-current={isSelected ? 'true' : undefined}
                        title="Show its deliveries"
                        data-testid="select-webhook"
                      >
                        {w.url}
                      </button>
                      {w.description ? <p className="text-xs text-slate-500 lg:hidden">{w.description}</p> : null}
                      {w.disabled_at ? (
                        <Badge tone="red" className="mt-1 sm:hidden">
                          Disabled
                        </Badge>
                      ) : null}
                    </TD>
                    <TD>
                      <div className="flex flex-wrap gap-1">
                        {w.events.map((t) => (
                          <Badge key={t} tone="indigo" className="font-mono">
                            {t}
                          </Badge>
                        ))}
                      </div>
                    </TD>
                    <TD className="hidden text-slate-600 lg:table-cell">
                      {w.description || <span className="text-slate-400">—</span>}
                    </TD>
                    <TD className="hidden sm:table-cell">
                      {w.disabled_at ? (
                        <Badge
                          tone="red"
                          title={`Answered 410 Gone ${formatDateTime(w.disabled_at, tz)}; it receives nothing more`}
                        >
                          Disabled
                        </Badge>
                      ) : (
                        <Badge tone="green">Active</Badge>
                      )}
                    </TD>
                    <TD className="hidden whitespace-nowrap text-slate-500 md:table-cell" title={formatDateTime(w.created_at, tz)}>
                      {formatRelative(w.created_at)}
                    </TD>
                    <TD className="text-right">
                      <Button
                        variant="ghost-destructive"
                        size="icon-sm"
                        aria-label={`Delete endpoint ${w.url}`}
                        onClick={() => {
                          setDeleteError(null);
                          setDeleting(w);
                        }}
                      >
                        <Trash2 className="h-4 w-4" aria-hidden="true" />
                      </Button>
                    </TD>
                  </TR>
                );
              })}
            </TBody>
          </Table>
        )}
      </Card>

      {current ? <DeliveriesCard key={current.id} webhook={current} /> : null}

      <CreateWebhookDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(id) => {
          setSelected(id);
          res.refetch();
        }}
      />

      <Dialog
        open={deleting !== null}
        onClose={() => setDeleting(null)}
        title="Delete webhook endpoint?"
        description={
          deleting ? (
            <>
              <span className="break-all font-mono text-slate-700">{deleting.url}</span> receives no more alerts, and its
              deliveries are removed.
            </>
          ) : null
        }
        footer={
          <>
            <Button variant="outline" onClick={() => setDeleting(null)} data-autofocus>
              Cancel
            </Button>
            <Button variant="destructive" onClick={remove} disabled={busy} data-testid="confirm-delete-webhook">
              {busy ? 'Deleting…' : 'Delete endpoint'}
            </Button>
          </>
        }
      >
        {deleteError ? <ErrorAlert error={deleteError} /> : <p className="text-sm text-slate-600">This cannot be undone.</p>}
      </Dialog>
    </div>
  );
}
