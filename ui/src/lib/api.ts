/**
 * The dashboard's only way to the server: the REST API under /v1/meter, same
 * origin, authenticated with the X-API-Key header.
 */
import { isSafeNumber, parse as parseLosslessJson } from 'lossless-json';
import { type Quantity, plainDecimal } from './decimal';

export const API_BASE = '/v1/meter';

/**
 * A JSON number literal as the dashboard sees it: a JS number when a double
 * carries the literal's value exactly ("1", "0.1", "12.5"), otherwise the
 * exact decimal text of the literal ("999999999999999.999999999", integers
 * past 2^53), so that no digit is lost.
 */
export function parseNumberLiteral(literal: string): number | string {
  return isSafeNumber(literal) ? Number(literal) : plainDecimal(literal);
}

/**
 * JSON.parse without loss: the server writes every decimal (quantities,
 * totals, limits, usage) as a JSON number whose text is the exact value, and
 * the ones a double cannot carry come out as decimal strings (see
 * parseNumberLiteral). A repeated key keeps its last value, as in JSON.parse.
 */
export function parseJson(text: string): unknown {
  return parseLosslessJson(text, null, {
    parseNumber: parseNumberLiteral,
    onDuplicateKey: ({ newValue }) => newValue,
  });
}

export interface MeterEvent {
  id: string;
  tenant_id: string;
  resource: string;
  feature: string;
  quantity: Quantity;
  timestamp: string;
  metadata?: Record<string, unknown> | null;
  created_at?: string;
  /** The event this one replaced, when an amend recorded it. */
  amends?: string;
  /** When it was voided; a voided event no longer counts. */
  voided_at?: string;
  void_reason?: string;
}

/** The fields of an amend; every field left out is copied from the original. */
export interface Amendment {
  quantity?: string;
  timestamp?: string;
  metadata?: Record<string, unknown>;
  id?: string;
  reason?: string;
}

export interface EventsPage {
  events: MeterEvent[];
  pagination?: { page?: number; page_size?: number; total?: number; total_pages?: number };
  next_cursor?: string | null;
}

export interface AggregateRow {
  tenant_id?: string | null;
  resource?: string | null;
  feature?: string | null;
  window_start: string;
  window_end: string;
  window_type: string;
  total_quantity: Quantity;
  event_count: number;
}

export interface AggregatesResponse {
  aggregates: AggregateRow[];
  summary: { total_quantity: Quantity; total_events: number };
}

export interface ValidateResponse {
  allowed: boolean;
  remaining: Quantity | null;
  limit: Quantity | null;
  period?: string | null;
  reset_at?: string | null;
  current_usage: Quantity;
  alert?: boolean;
  message?: string | null;
}

export type QuotaPeriod = 'hourly' | 'daily' | 'monthly' | 'yearly';
export const QUOTA_PERIODS: QuotaPeriod[] = ['hourly', 'daily', 'monthly', 'yearly'];

export interface Quota {
  id: string;
  tenant_id: string;
  resource: string | null;
  /** Null for a quota on a meter. */
  feature: string | null;
  /** The meter whose value is limited, instead of a feature's usage. */
  meter?: string | null;
  limit: Quantity;
  period: QuotaPeriod;
  alert_threshold: number;
  tz?: string | null;
  created_at?: string;
  updated_at?: string;
}

export interface QuotaInput {
  tenant_id: string;
  resource: string | null;
  feature: string | null;
  meter?: string | null;
  /** Decimal string, sent as an exact JSON number. */
  limit: string;
  period: QuotaPeriod;
  alert_threshold: number;
  tz: string | null;
}

export type KeyRole = 'admin' | 'ingest' | 'read';
export const KEY_ROLES: KeyRole[] = ['admin', 'ingest', 'read'];

export interface ApiKey {
  id: string;
  name: string;
  role: KeyRole;
  tenant_id?: string | null;
  expires_at?: string | null;
  created_at?: string;
  last_used_at?: string | null;
  revoked_at?: string | null;
  /** Only in the creation response. */
  key?: string;
  [extra: string]: unknown;
}

export interface ApiKeyInput {
  name: string;
  role: KeyRole;
  tenant_id: string | null;
  expires_at: string | null;
}

/** The kinds of alert a webhook endpoint can receive. */
export const WEBHOOK_EVENT_TYPES = ['quota.threshold', 'quota.exceeded', 'quota.reset'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** A webhook endpoint, as listed (never with its secret). */
export interface Webhook {
  id: string;
  url: string;
  events: WebhookEventType[];
  description: string | null;
  created_at: string;
  /** When it answered 410 Gone and stopped receiving messages; null while active. */
  disabled_at: string | null;
}

/** The answer to a creation: the only time the signing secret is shown. */
export interface CreatedWebhook extends Webhook {
  secret: string;
}

export interface WebhookInput {
  url: string;
  events: WebhookEventType[];
  /** Left out of the request when empty. */
  description: string | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One message to one endpoint, with how sending it went. */
export interface WebhookDelivery {
  id: string;
  /** The message's `webhook-id` header. */
  message_id: string;
  type: WebhookEventType;
  status: DeliveryStatus;
  attempts: number;
  /** The HTTP status of the last attempt; null when it got no answer. */
  last_status_code: number | null;
  created_at: string;
  delivered_at: string | null;
}

/**
 * The field errors of a 422 (`details.errors[]` of `{field, message}`), by
 * field: the first message of each field, in the server's order.
 */
export function fieldErrors(details: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!details || typeof details !== 'object') return out;
  const list = (details as { errors?: unknown }).errors;
  if (Array.isArray(list)) {
    for (const e of list) {
      if (!e || typeof e !== 'object') continue;
      const { field, message } = e as { field?: unknown; message?: unknown };
      if (typeof field === 'string' && typeof message === 'string' && !(field in out)) out[field] = message;
    }
  }
  return out;
}

/** An error from the API (or from getting to it), in readable form. */
export const AGGREGATIONS = ['sum', 'count', 'unique_count', 'min', 'max', 'avg', 'latest'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

/** JSON scalars a meter's metadata filter compares with. */
export type Scalar = string | number | boolean | null;

export interface MeterFilter {
  resource?: string[];
  feature?: string[];
  metadata?: Record<string, Scalar[]>;
}

/** The body of PUT /meters/{key}. */
export interface MeterDefinition {
  name?: string | null;
  aggregation: Aggregation;
  value?: string;
  filter?: MeterFilter;
  dimensions?: string[];
}

export interface Meter extends MeterDefinition {
  key: string;
  value: string;
  dimensions: string[];
  created_at: string;
  updated_at: string;
}

export interface MeterRow {
  window_start: string;
  window_end: string;
  group: Record<string, string | null>;
  /** Exact decimal: a JS number when a double carries it exactly, else its text. */
  value: number | string;
  event_count: number;
}

export interface MeterReport {
  meter: string;
  aggregation: Aggregation;
  window_type: string | null;
  tz: string;
  data: MeterRow[];
  skipped_events: number;
}

export interface MeterQuery {
  start_date: string;
  end_date: string;
  window_type?: string | null;
  tz?: string;
  group_by?: string[];
  tenant_id?: string;
  /** Dimension -> any of these values (sent as repeated `filter.<dimension>`). */
  filters?: Record<string, string[]>;
}

/** The query string of a meter query: repeated `filter.<dimension>` for several values. */
export function meterQueryString(q: MeterQuery): string {
  const p = new URLSearchParams();
  p.set('start_date', q.start_date);
  p.set('end_date', q.end_date);
  if (q.window_type) p.set('window_type', q.window_type);
  if (q.tz) p.set('tz', q.tz);
  if (q.group_by && q.group_by.length) p.set('group_by', q.group_by.join(','));
  if (q.tenant_id) p.set('tenant_id', q.tenant_id);
  for (const [dim, values] of Object.entries(q.filters ?? {})) {
    for (const v of values) if (v !== '') p.append(`filter.${dim}`, v);
  }
  return `?${p.toString()}`;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details ?? null;
  }

  /** A short human title for the status. */
  get title(): string {
    return errorTitle(this.status, this.code);
  }
}

const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  422: 'VALIDATION_ERROR',
  429: 'RATE_LIMITED',
  500: 'INTERNAL',
  502: 'BAD_GATEWAY',
  503: 'UNAVAILABLE',
  504: 'GATEWAY_TIMEOUT',
};

export function errorTitle(status: number, code?: string): string {
  if (status === 0) return 'Cannot reach the server';
  switch (code ?? STATUS_CODES[status]) {
    case 'UNAUTHORIZED':
      return 'API key not accepted';
    case 'FORBIDDEN':
      return 'Not allowed';
    case 'NOT_FOUND':
      return 'Not found';
    case 'VALIDATION_ERROR':
      return 'Invalid input';
    case 'BAD_REQUEST':
      return 'Bad request';
    case 'PAYLOAD_TOO_LARGE':
      return 'Request too large';
    case 'RATE_LIMITED':
      return 'Too many requests';
    case 'UNAVAILABLE':
      return 'Service unavailable';
    case 'INTERNAL':
      return 'Server error';
    default:
      return status >= 500 ? 'Server error' : `Request failed (${status})`;
  }
}

const DEFAULT_MESSAGES: Record<number, string> = {
  401: 'The API key is missing, unknown, revoked or expired.',
  403: 'This API key lacks the role for this action, or is scoped to another tenant.',
  404: 'The requested item does not exist.',
  429: 'The rate limit for this key was exceeded. Try again shortly.',
  503: 'The store is unreachable right now.',
};

/**
 * Builds an ApiError from a status and a response body, which should be the
 * envelope {"error": {"code", "message", "details"}} but may be anything
 * (an HTML page from a proxy, plain text, nothing).
 */
export function parseErrorBody(status: number, statusText: string, body: string): ApiError {
  let code = STATUS_CODES[status] ?? `HTTP_${status}`;
  let message = '';
  let details: unknown = null;
  const trimmed = body.trim();
  if (trimmed) {
    try {
      const json = parseJson(trimmed);
      const env =
        json && typeof json === 'object' && 'error' in json ? (json as { error: unknown }).error : json;
      if (env && typeof env === 'object') {
        const e = env as { code?: unknown; message?: unknown; details?: unknown };
        if (typeof e.code === 'string' && e.code) code = e.code;
        if (typeof e.message === 'string') message = e.message;
        if (e.details !== undefined) details = e.details;
      } else if (typeof env === 'string') {
        message = env;
      }
    } catch {
      // Not JSON: use a short plain-text body, never a whole HTML page.
      if (!trimmed.startsWith('<') && trimmed.length <= 300) message = trimmed;
    }
  }
  if (!message) message = DEFAULT_MESSAGES[status] ?? (statusText || `HTTP ${status}`);
  return new ApiError(status, code, message, details);
}

export async function errorFromResponse(res: Response): Promise<ApiError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    text = '';
  }
  return parseErrorBody(res.status, res.statusText, text);
}

/** Turns anything thrown into an ApiError. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof DOMException && err.name === 'AbortError') {
    return new ApiError(0, 'ABORTED', 'The request was cancelled.');
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new ApiError(0, 'NETWORK_ERROR', `The server did not answer (${msg}).`);
}

/** Builds a query string, leaving out empty values. */
export function buildQuery(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * JSON.stringify, except that the listed top-level fields holding decimal
 * strings are written as JSON number literals (exactly, with no float
 * rounding).
 */
export function jsonWithExactNumbers(body: Record<string, unknown>, numericFields: string[]): string {
  const marks = new Map<string, string>();
  const copy: Record<string, unknown> = { ...body };
  numericFields.forEach((f, i) => {
    const v = copy[f];
    if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim())) {
      const mark = `__exact_number_${i}__`;
      marks.set(`"${mark}"`, v.trim());
      copy[f] = mark;
    }
  });
  let s = JSON.stringify(copy);
  for (const [mark, literal] of marks) s = s.replace(mark, literal);
  return s;
}

export interface ApiClientOptions {
  /** Called when any request answers 401 (key revoked or expired). */
  onUnauthorized?: (err: ApiError) => void;
  fetchImpl?: typeof fetch;
}

export type AggregatesQuery = {
  window_type: string;
  start_date: string;
  end_date: string;
  group_by?: string;
  tenant_id?: string;
  resource?: string;
  feature?: string;
  tz?: string;
};

export type EventsQuery = {
  tenant_id?: string;
  resource?: string;
  feature?: string;
  start_date?: string;
  end_date?: string;
  page_size?: number;
  cursor?: string;
  page?: number;
  include_voided?: 'true';
};

export class ApiClient {
  constructor(
    private readonly key: string,
    private readonly opts: ApiClientOptions = {},
  ) {}

  async request<T>(method: string, path: string, body?: string, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { 'X-API-Key': this.key, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const f = this.opts.fetchImpl ?? fetch;
    let res: Response;
    try {
      res = await f(`${API_BASE}${path}`, { method, headers, body, signal, cache: 'no-store' });
    } catch (err) {
      throw toApiError(err);
    }
    if (!res.ok) {
      const err = await errorFromResponse(res);
      if (res.status === 401) this.opts.onUnauthorized?.(err);
      throw err;
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return parseJson(text) as T;
    } catch {
      throw new ApiError(res.status, 'BAD_RESPONSE', 'The server sent a response that is not JSON.');
    }
  }

  events(q: EventsQuery, signal?: AbortSignal): Promise<EventsPage> {
    return this.request('GET', `/events${buildQuery(q)}`, undefined, signal);
  }

  /** Voids an event (admin): it stops counting and is kept for audit. */
  voidEvent(id: string, reason?: string): Promise<MeterEvent> {
    const body = reason ? { reason } : {};
    return this.request('POST', `/events/${encodeURIComponent(id)}/void`, JSON.stringify(body));
  }

  /** Replaces an event by a corrected copy (admin); the quantity is sent as its exact text. */
  amendEvent(id: string, a: Amendment): Promise<MeterEvent> {
    const body: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(a)) if (v !== undefined && v !== '') body[k] = v;
    return this.request('POST', `/events/${encodeURIComponent(id)}/amend`, jsonWithExactNumbers(body, ['quantity']));
  }

  /** The correction chain of an event, oldest first. */
  eventHistory(id: string, signal?: AbortSignal): Promise<{ events: MeterEvent[] }> {
    return this.request('GET', `/events/${encodeURIComponent(id)}/history`, undefined, signal);
  }

  aggregates(q: AggregatesQuery, signal?: AbortSignal): Promise<AggregatesResponse> {
    // group_by="" means "one series" and is sent as an empty value.
    return this.request('GET', `/aggregates${buildQuery(q)}`, undefined, signal);
  }

  validate(
    body:
      | { tenant_id: string; feature: string; resource?: string | null; quantity: number; consume: boolean }
      | { tenant_id: string; meter: string; quantity: number; consume: boolean },
    signal?: AbortSignal,
  ): Promise<ValidateResponse> {
    const b: Record<string, unknown> = { ...body };
    if (b.resource === null || b.resource === undefined) delete b.resource;
    return this.request('POST', '/validate', JSON.stringify(b), signal);
  }

  quotas(tenantId?: string, signal?: AbortSignal): Promise<{ quotas: Quota[] }> {
    return this.request('GET', `/quotas${buildQuery({ tenant_id: tenantId })}`, undefined, signal);
  }

  upsertQuota(q: QuotaInput): Promise<Quota> {
    const body: Record<string, unknown> = { ...q };
    if (!body.tz) delete body.tz;
    if (body.meter) {
      delete body.feature;
      delete body.resource;
    } else {
      delete body.meter;
    }
    return this.request('PUT', '/quotas', jsonWithExactNumbers(body, ['limit']));
  }

  deleteQuota(id: string): Promise<void> {
    return this.request('DELETE', `/quotas/${encodeURIComponent(id)}`);
  }

  apiKeys(signal?: AbortSignal): Promise<{ api_keys: ApiKey[] }> {
    return this.request('GET', '/api-keys', undefined, signal);
  }

  createApiKey(k: ApiKeyInput): Promise<ApiKey> {
    return this.request('POST', '/api-keys', JSON.stringify(k));
  }

  revokeApiKey(id: string): Promise<void> {
    return this.request('DELETE', `/api-keys/${encodeURIComponent(id)}`);
  }

  webhooks(signal?: AbortSignal): Promise<{ webhooks: Webhook[] }> {
    return this.request('GET', '/webhooks', undefined, signal);
  }

  /** Registers an endpoint; the answer holds its signing secret, shown only this once. */
  createWebhook(w: WebhookInput): Promise<CreatedWebhook> {
    const body: Record<string, unknown> = { url: w.url, events: w.events };
    if (w.description) body.description = w.description;
    return this.request('POST', '/webhooks', JSON.stringify(body));
  }

  deleteWebhook(id: string): Promise<void> {
    return this.request('DELETE', `/webhooks/${encodeURIComponent(id)}`);
  }

  /** An endpoint's latest deliveries, newest first (`limit` 1 to 1000; the server's default is 100). */
  webhookDeliveries(id: string, limit?: number, signal?: AbortSignal): Promise<{ deliveries: WebhookDelivery[] }> {
    return this.request('GET', `/webhooks/${encodeURIComponent(id)}/deliveries${buildQuery({ limit })}`, undefined, signal);
  }

  /** Sends a delivery again with the same message id; answers the delivery, now pending. */
  retryDelivery(webhookId: string, deliveryId: string): Promise<WebhookDelivery> {
    return this.request(
      'POST',
      `/webhooks/${encodeURIComponent(webhookId)}/deliveries/${encodeURIComponent(deliveryId)}/retry`,
    );
  }

  /** Fetches a file (an export, or an answer as CSV) as a blob, with the key. */
  async download(path: string, accept: string): Promise<Blob> {
    const f = this.opts.fetchImpl ?? fetch;
    let res: Response;
    try {
      res = await f(`${API_BASE}${path}`, { headers: { 'X-API-Key': this.key, Accept: accept }, cache: 'no-store' });
    } catch (err) {
      throw toApiError(err);
    }
    if (!res.ok) {
      const err = await errorFromResponse(res);
      if (res.status === 401) this.opts.onUnauthorized?.(err);
      throw err;
    }
    return res.blob();
  }

  meters(signal?: AbortSignal): Promise<{ meters: Meter[] }> {
    return this.request('GET', '/meters', undefined, signal);
  }

  putMeter(key: string, def: MeterDefinition): Promise<Meter> {
    return this.request('PUT', `/meters/${encodeURIComponent(key)}`, JSON.stringify(def));
  }

  deleteMeter(key: string): Promise<void> {
    return this.request('DELETE', `/meters/${encodeURIComponent(key)}`);
  }

  queryMeter(key: string, q: MeterQuery, signal?: AbortSignal): Promise<MeterReport> {
    return this.request('GET', `/meters/${encodeURIComponent(key)}/query${meterQueryString(q)}`, undefined, signal);
  }
}

/** Checks a key by a cheap authenticated read; throws ApiError when refused. */
export async function checkKey(key: string, fetchImpl?: typeof fetch): Promise<void> {
  const client = new ApiClient(key, { fetchImpl });
  await client.events({ page_size: 1 });
}
