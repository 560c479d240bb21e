#!/usr/bin/env node
/**
 * A small in-memory stand-in for metering-server: just enough of the REST
 * contract (/v1/meter/...) for the dashboard and its end-to-end test, plus
 * the built dashboard (ui/dist) served at / with SPA fallback.
 *
 *   node e2e/mock-server.mjs            # listens on 127.0.0.1:8000 (PORT, HOST)
 *
 * Keys: METERING_MOCK_ADMIN_KEY (default "mock-admin-key") is an admin key;
 * "mock-read-key" and "mock-ingest-key" have the read and ingest roles.
 *
 * Webhooks: endpoints are registered, listed and deleted as on the server; quota
 * thresholds (`thresholds`, or `alert_threshold`) and limits crossed by
 * POST /events write quota.threshold / quota.exceeded messages (once per quota,
 * tenant and period), which a background loop POSTs to the subscribed
 * endpoints signed as Standard Webhooks, retrying until a 2xx (a 410 disables
 * the endpoint).
 */
import { createServer } from 'node:http';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------- decimals
const SCALE = 10n ** 9n;

function parseDec(v) {
  const s = typeof v === 'number' ? numToPlain(v) : String(v).trim();
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?$/.exec(s);
  if (!m) return null;
  const v2 = BigInt(m[2]) * SCALE + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -v2 : v2;
}

function numToPlain(n) {
  if (!Number.isFinite(n)) return 'NaN';
  const s = String(n);
  if (!/e/i.test(s)) return s;
  return n.toFixed(9).replace(/\.?0+$/, '');
}

function decToString(v) {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const ip = (a / SCALE).toString();
  const fp = (a % SCALE).toString().padStart(9, '0').replace(/0+$/, '');
  return (neg ? '-' : '') + ip + (fp ? `.${fp}` : '');
}

/** Marks a scaled decimal for `toJson`, which writes it as a JSON number whose text is the exact value. */
class Dec {
  constructor(v) {
    this.v = v;
  }
  toJSON() {
    return `@@DEC:${decToString(this.v)}@@`;
  }
}

function toJson(obj) {
  return JSON.stringify(obj).replace(/"@@DEC:(-?[\d.]+)@@"/g, (_, s) => s);
}

// --------------------------------------------------------------- time zones
const fmtCache = new Map();
function zonedParts(ms, tz) {
  let f = fmtCache.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    fmtCache.set(tz, f);
  }
  const o = {};
  for (const p of f.formatToParts(new Date(ms))) if (p.type !== 'literal') o[p.type] = Number(p.value);
  if (o.hour === 24) o.hour = 0;
  return o;
}
function zoneOffset(ms, tz) {
  const p = zonedParts(ms, tz);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}
function zonedToUtc(y, mo, d, h, mi, tz) {
  const guess = Date.UTC(y, mo - 1, d, h, mi, 0);
  const o1 = zoneOffset(guess, tz);
  let t = guess - o1;
  const o2 = zoneOffset(t, tz);
  if (o2 !== o1) {
    const t2 = guess - o2;
    t = zoneOffset(t2, tz) === o2 ? t2 : Math.max(t, t2);
  }
  return t;
}
function validTz(tz) {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const windowCache = new Map();
/** [start, end) of the window of `type` containing `ms` in `tz`. */
function windowOf(ms, type, tz) {
  // Every zone offset is a multiple of 15 minutes, so the window depends only
  // on the quarter hour: cache per quarter hour.
  const q = Math.floor(ms / 900_000);
  const key = `${tz}|${type}|${q}`;
  const hit = windowCache.get(key);
  if (hit) return hit;
  const p = zonedParts(ms, tz);
  let start;
  let end;
  if (type === 'hourly') {
    start = zonedToUtc(p.year, p.month, p.day, p.hour, 0, tz);
    end = zonedToUtc(p.year, p.month, p.day, p.hour + 1, 0, tz);
    if (end <= start) end = start + HOUR;
  } else if (type === 'daily') {
    start = zonedToUtc(p.year, p.month, p.day, 0, 0, tz);
    end = zonedToUtc(p.year, p.month, p.day + 1, 0, 0, tz);
  } else if (type === 'weekly') {
    const dow = (new Date(Date.UTC(p.year, p.month - 1, p.day)).getUTCDay() + 6) % 7; // Monday = 0
    start = zonedToUtc(p.year, p.month, p.day - dow, 0, 0, tz);
    end = zonedToUtc(p.year, p.month, p.day - dow + 7, 0, 0, tz);
  } else if (type === 'monthly') {
    start = zonedToUtc(p.year, p.month, 1, 0, 0, tz);
    end = zonedToUtc(p.year, p.month + 1, 1, 0, 0, tz);
  } else {
    start = zonedToUtc(p.year, 1, 1, 0, 0, tz);
    end = zonedToUtc(p.year + 1, 1, 1, 0, 0, tz);
  }
  const w = [start, end];
  if (windowCache.size > 200_000) windowCache.clear();
  windowCache.set(key, w);
  return w;
}

const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

// -------------------------------------------------------------------- data
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CATALOG = [
  { resource: 'api', feature: 'api_call', weight: 8, qty: (r) => String(1 + Math.floor(r() * 20)) },
  { resource: 'billing', feature: 'invoice_generate', weight: 3, qty: () => '1' },
  { resource: 'billing', feature: 'payment_process', weight: 2, qty: (r) => String(1 + Math.floor(r() * 3)) },
  { resource: 'reports', feature: 'pdf_export', weight: 2, qty: () => '1' },
  { resource: 'reports', feature: 'csv_export', weight: 1, qty: () => '1' },
  { resource: 'storage', feature: 'gb_stored', weight: 2, qty: (r) => (Math.round(r() * 5e9) / 1e9 + 0.125).toFixed(9) },
  // Token counts make sums of millions with 9 decimals: exact JSON numbers past a double.
  { resource: 'ai', feature: 'llm_tokens', weight: 3, qty: (r) => String(500 + Math.floor(r() * 8000)) },
];
const TENANTS = [
  'org_001', 'org_002', 'org_003', 'org_004', 'org_005', 'org_006',
  'acme-corp', 'globex', 'initech', 'umbrella', 'stark-industries', 'wayne-enterprises',
];
const REGIONS = ['eu-west-1', 'us-east-1', 'ap-southeast-2'];
const PLANS = ['free', 'pro', 'enterprise'];

export function createStore({ now = Date.now(), seed = 42, days = 60, adminKey = 'mock-admin-key' } = {}) {
  const r = prng(seed);
  const events = [];
  const totalWeight = CATALOG.reduce((s, c) => s + c.weight, 0);
  let n = 0;
  for (let d = days; d >= 0; d--) {
    const dayStart = Math.floor((now - d * DAY) / DAY) * DAY;
    for (let h = 0; h < 24; h++) {
      const hourStart = dayStart + h * HOUR;
      if (hourStart > now) break;
      // Business-hours shaped traffic, growing slowly over time.
      const base = 2 + 4 * Math.max(0, Math.sin(((h - 6) / 24) * 2 * Math.PI)) + (days - d) * 0.03;
      const count = Math.floor(base * (0.6 + r() * 0.8));
      for (let i = 0; i < count; i++) {
        const ts = hourStart + Math.floor(r() * HOUR);
        if (ts > now) continue;
        // Tenants have skewed sizes.
        const tenant = TENANTS[Math.min(TENANTS.length - 1, Math.floor(Math.pow(r(), 1.8) * TENANTS.length))];
        let pick = r() * totalWeight;
        let c = CATALOG[0];
        for (const x of CATALOG) {
          if ((pick -= x.weight) < 0) {
            c = x;
            break;
          }
        }
        n++;
        events.push({
          id: `evt_${String(n).padStart(6, '0')}`,
          tenant_id: tenant,
          resource: c.resource,
          feature: c.feature,
          q: parseDec(c.qty(r)),
          ts,
          metadata: {
            user: `u_${100 + Math.floor(r() * 900)}`,
            region: REGIONS[Math.floor(r() * REGIONS.length)],
            plan: PLANS[Math.floor(r() * PLANS.length)],
            request: { id: `req_${Math.floor(r() * 1e9).toString(36)}`, latency_ms: Math.floor(r() * 400) },
          },
          created_at: ts + 400 + Math.floor(r() * 800),
        });
      }
    }
  }
  sortEvents(events);

  const keys = new Map();
  const addKey = (secret, name, role, tenant_id = null, created = now - 20 * DAY) => {
    const id = randomUUID();
    keys.set(secret, {
      id,
      name,
      role,
      tenant_id,
      expires_at: null,
      created_at: iso(created),
      last_used_at: null,
      prefix: secret.slice(0, 8),
    });
  };
  addKey(adminKey, 'dashboard-admin', 'admin');
  addKey('mock-read-key', 'analytics-readonly', 'read');
  addKey('mock-ingest-key', 'billing-service', 'ingest', null, now - 12 * DAY);
  keys.get('mock-ingest-key').last_used_at = iso(now - 3 * 60_000);

  const quotas = new Map();
  const addQuota = (tenant_id, resource, feature, limit, period, alert_threshold = 80) => {
    const id = randomUUID();
    quotas.set(id, {
      id,
      tenant_id,
      resource,
      feature,
      limit: parseDec(String(limit)),
      period,
      alert_threshold,
      tz: 'UTC',
      created_at: iso(now - 10 * DAY),
      updated_at: iso(now - 2 * DAY),
    });
  };
  // Limits relative to the seeded usage, so the bars show every colour.
  const usage = (tenant, resource, feature, period) => {
    const [ws, we] = windowOf(now, period, 'UTC');
    let u = 0n;
    for (const e of events) {
      if (e.ts >= ws && e.ts < we && e.tenant_id === tenant && e.feature === feature && (!resource || e.resource === resource)) u += e.q;
    }
    return Number(u / SCALE);
  };
  addQuota('org_001', null, 'api_call', Math.max(100, usage('org_001', null, 'api_call', 'monthly') * 3), 'monthly');
  addQuota('org_001', 'billing', 'invoice_generate', Math.max(2, Math.ceil(usage('org_001', 'billing', 'invoice_generate', 'monthly') * 1.15)), 'monthly', 75);
  addQuota('org_001', null, 'pdf_export', Math.max(1, usage('org_001', null, 'pdf_export', 'monthly')), 'monthly');
  addQuota('org_002', null, 'pdf_export', 5, 'daily');
  addQuota('*', null, 'csv_export', 500, 'monthly', 90);

  return { events, keys, quotas, webhooks: new Map(), deliveries: [], alertMarks: new Set() };
}

function sortEvents(events) {
  events.sort((a, b) => b.ts - a.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

// -------------------------------------------------------------------- http
class HttpError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}
const bad = (message, details) => new HttpError(400, 'BAD_REQUEST', message, details);
const invalid = (message, details) => new HttpError(422, 'VALIDATION_ERROR', message, details);

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : toJson(body);
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 5 * 1024 * 1024) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', 'body over 5 MiB');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) throw bad('body is empty');
  try {
    return JSON.parse(text);
  } catch {
    throw bad('body is not JSON');
  }
}

const ROLE_ALLOWS = {
  admin: () => true,
  ingest: (m, route) => m === 'POST' && (route === 'events' || route === 'validate'),
  read: (m, route) => m === 'GET' && ['events', 'aggregates', 'quotas'].includes(route),
};

function checkName(v, field) {
  if (typeof v !== 'string' || !v.trim() || v.trim().length > 255 || /[\u0000-\u001f\u007f]/.test(v)) {
    return { field, message: `${field} is required: 1-255 chars, no control characters` };
  }
  return null;
}

export function createApp({ distDir = resolve(HERE, '..', 'dist'), adminKey = 'mock-admin-key', now, latencyMs = 0 } = {}) {
  const store = createStore({ now, adminKey });
  const { events, keys, quotas, webhooks, deliveries, alertMarks } = store;

  function auth(req, route) {
    let key = req.headers['x-api-key'];
    const authz = req.headers.authorization;
    if (!key && typeof authz === 'string' && authz.startsWith('Bearer ')) key = authz.slice(7);
    const rec = typeof key === 'string' ? keys.get(key) : undefined;
    if (!rec) throw new HttpError(401, 'UNAUTHORIZED', key ? 'API key is unknown or revoked' : 'API key missing');
    if (rec.expires_at && Date.parse(rec.expires_at) <= Date.now()) throw new HttpError(401, 'UNAUTHORIZED', 'API key expired');
    if (!ROLE_ALLOWS[rec.role](req.method, route)) {
      throw new HttpError(403, 'FORBIDDEN', `the ${rec.role} role may not ${req.method} /v1/meter/${route}`);
    }
    rec.last_used_at = iso(Date.now());
    return rec;
  }

  function tenantScope(rec, requested) {
    if (!rec.tenant_id) return requested || null;
    if (requested && requested !== rec.tenant_id) throw new HttpError(403, 'FORBIDDEN', 'key is scoped to another tenant');
    return rec.tenant_id;
  }

  function parseDate(v, field) {
    if (v === null || v === undefined || v === '') return null;
    const t = Date.parse(v);
    if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(t)) throw bad(`${field} is not an RFC 3339 timestamp`, { field });
    return t;
  }

  function filterEvents(q, rec) {
    const tenant = tenantScope(rec, q.get('tenant_id'));
    const resource = q.get('resource');
    const feature = q.get('feature');
    const start = parseDate(q.get('start_date'), 'start_date');
    const end = parseDate(q.get('end_date'), 'end_date');
    return events.filter(
      (e) =>
        (!tenant || e.tenant_id === tenant) &&
        (!resource || e.resource === resource) &&
        (!feature || e.feature === feature) &&
        (start === null || e.ts >= start) &&
        (end === null || e.ts < end),
    );
  }

  const renderEvent = (e) => ({
    id: e.id,
    tenant_id: e.tenant_id,
    resource: e.resource,
    feature: e.feature,
    quantity: new Dec(e.q),
    timestamp: iso(e.ts),
    metadata: e.metadata ?? null,
    created_at: iso(e.created_at),
  });

  function getEvents(q, rec) {
    const list = filterEvents(q, rec);
    const size = Number(q.get('page_size') ?? 50);
    if (!Number.isInteger(size) || size < 1 || size > 1000) throw invalid('page_size must be 1-1000', { field: 'page_size' });
    const cursor = q.get('cursor');
    let offset = 0;
    let page = 1;
    if (cursor) {
      const m = /^o:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
      if (!m) throw bad('cursor is not valid', { field: 'cursor' });
      offset = Number(m[1]);
    } else if (q.get('page')) {
      page = Number(q.get('page'));
      if (!Number.isInteger(page) || page < 1) throw invalid('page must be >= 1', { field: 'page' });
      offset = (page - 1) * size;
    }
    const slice = list.slice(offset, offset + size);
    const next = offset + size < list.length ? Buffer.from(`o:${offset + size}`).toString('base64url') : null;
    return {
      events: slice.map(renderEvent),
      pagination: cursor
        ? { page_size: size }
        : { page, page_size: size, total: list.length, total_pages: Math.ceil(list.length / size) },
      next_cursor: next,
    };
  }

  function validateEvent(ev, i, errors, rec) {
    const at = (f) => (i === null ? f : `events[${i}].${f}`);
    if (!ev || typeof ev !== 'object' || Array.isArray(ev)) {
      errors.push({ index: i ?? 0, field: at(''), message: 'event must be an object' });
      return null;
    }
    for (const f of ['tenant_id', 'resource', 'feature']) {
      const e = checkName(ev[f], at(f));
      if (e) errors.push({ index: i ?? 0, ...e });
    }
    if (rec.tenant_id && ev.tenant_id && ev.tenant_id !== rec.tenant_id) {
      throw new HttpError(403, 'FORBIDDEN', 'key is scoped to another tenant');
    }
    const q = ev.quantity === undefined ? parseDec('1') : parseDec(ev.quantity);
    if (q === null || q <= 0n || q > 10n ** 15n * SCALE) {
      errors.push({ index: i ?? 0, field: at('quantity'), message: 'quantity must be > 0, at most 10^15, at most 9 decimals' });
    }
    let ts = Date.now();
    if (ev.timestamp !== undefined) {
      ts = Date.parse(ev.timestamp);
      if (typeof ev.timestamp !== 'string' || Number.isNaN(ts)) {
        errors.push({ index: i ?? 0, field: at('timestamp'), message: 'timestamp must be RFC 3339' });
      } else if (ts > Date.now() + HOUR) {
        errors.push({ index: i ?? 0, field: at('timestamp'), message: 'timestamp is too far in the future' });
      }
    }
    if (ev.metadata !== undefined && ev.metadata !== null && (typeof ev.metadata !== 'object' || Array.isArray(ev.metadata))) {
      errors.push({ index: i ?? 0, field: at('metadata'), message: 'metadata must be an object' });
    }
    return { id: ev.id, tenant_id: ev.tenant_id?.trim(), resource: ev.resource?.trim(), feature: ev.feature?.trim(), q, ts, metadata: ev.metadata ?? null };
  }

  function postEvents(body, rec) {
    const batch = body && Array.isArray(body.events);
    const list = batch ? body.events : [body];
    if (list.length < 1 || list.length > 10_000) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', 'a batch holds 1-10000 events');
    const errors = [];
    const parsed = list.map((e, i) => validateEvent(e, batch ? i : null, errors, rec));
    if (errors.length) throw invalid(errors[0].message, { errors });
    const ids = [];
    const fresh = [];
    let dup = 0;
    let written = 0;
    for (const p of parsed) {
      const id = p.id ?? randomUUID();
      ids.push(id);
      if (p.id && events.some((e) => e.id === p.id)) {
        dup++;
        continue;
      }
      const ev = { ...p, id, created_at: Date.now() };
      events.push(ev);
      fresh.push(ev);
      written++;
    }
    sortEvents(events);
    checkAlerts(fresh);
    return { status: 'success', events_processed: written, duplicates: dup, event_ids: ids };
  }

  function getAggregates(q, rec) {
    const windowType = q.get('window_type');
    if (!windowType) throw invalid('window_type is required', { field: 'window_type' });
    if (!['hourly', 'daily', 'weekly', 'monthly'].includes(windowType)) throw bad(`unknown window_type ${windowType}`);
    if (!q.get('start_date') || !q.get('end_date')) throw invalid('start_date and end_date are required', { field: 'start_date' });
    const tz = q.get('tz') || 'UTC';
    if (!validTz(tz)) throw bad(`unknown time zone ${tz}`, { field: 'tz' });
    const groupRaw = q.has('group_by') ? q.get('group_by') : 'resource,feature';
    const dims = groupRaw.split(',').map((s) => s.trim()).filter(Boolean);
    for (const d of dims) if (!['tenant_id', 'resource', 'feature'].includes(d)) throw bad(`unknown group_by ${d}`);
    const list = filterEvents(q, rec);
    const groups = new Map();
    let total = 0n;
    for (const e of list) {
      const [ws, we] = windowOf(e.ts, windowType, tz);
      const key = [ws, ...dims.map((d) => e[d])].join('\u0000');
      let g = groups.get(key);
      if (!g) {
        g = { ws, we, dims: Object.fromEntries(dims.map((d) => [d, e[d]])), q: 0n, n: 0 };
        groups.set(key, g);
      }
      g.q += e.q;
      g.n++;
      total += e.q;
    }
    const rows = [...groups.values()].sort((a, b) => {
      if (a.ws !== b.ws) return a.ws - b.ws;
      for (const d of dims) if (a.dims[d] !== b.dims[d]) return a.dims[d] < b.dims[d] ? -1 : 1;
      return 0;
    });
    return {
      aggregates: rows.map((g) => ({
        ...g.dims,
        window_start: iso(g.ws),
        window_end: iso(g.we),
        window_type: windowType,
        total_quantity: new Dec(g.q),
        event_count: g.n,
      })),
      summary: { total_quantity: new Dec(total), total_events: list.length },
    };
  }

  const renderQuota = (x) => ({
    ...x,
    limit: new Dec(x.limit),
    thresholds: (x.thresholds ?? [{ percent: x.alert_threshold }]).map((t) =>
      t.usage !== undefined ? { usage: new Dec(t.usage) } : { percent: t.percent },
    ),
  });

  /** `thresholds` of a quota: [{percent: 1-100} | {usage: > 0}], at most 16; null when not given. */
  function parseThresholds(raw, alertThreshold, errors) {
    if (raw === undefined || raw === null) return null;
    if (!Array.isArray(raw) || raw.length > 16) {
      errors.push({ field: 'thresholds', message: 'thresholds must be an array of at most 16 entries' });
      return null;
    }
    const out = [];
    raw.forEach((t, i) => {
      if (t && Number.isInteger(t.percent) && t.percent >= 1 && t.percent <= 100 && t.usage === undefined) out.push({ percent: t.percent });
      else if (t && t.percent === undefined && parseDec(t.usage) !== null && parseDec(t.usage) > 0n) out.push({ usage: parseDec(t.usage) });
      else errors.push({ field: `thresholds[${i}]`, message: 'must be {"percent": 1-100} or {"usage": > 0}' });
    });
    const first = out.find((t) => t.percent !== undefined)?.percent;
    if (typeof alertThreshold === 'number' && first !== undefined && alertThreshold !== first) {
      errors.push({ field: 'alert_threshold', message: 'must equal the first percent threshold' });
    }
    return out;
  }

  // ------------------------------------------------------------ webhooks
  const WEBHOOK_TYPES = ['quota.threshold', 'quota.exceeded', 'quota.reset'];
  const renderWebhook = (w) => ({
    id: w.id,
    url: w.url,
    events: w.events,
    description: w.description,
    created_at: w.created_at,
    disabled_at: w.disabled_at,
  });
  const renderDelivery = (d) => ({
    id: d.id,
    message_id: d.message_id,
    type: d.type,
    status: d.status,
    attempts: d.attempts,
    last_status_code: d.last_status_code,
    created_at: d.created_at,
    delivered_at: d.delivered_at,
  });

  function adminOnly(rec) {
    if (rec.tenant_id) throw new HttpError(403, 'FORBIDDEN', 'a key scoped to a tenant may not manage webhook endpoints');
  }

  function postWebhook(body) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('body: must be a JSON object', { errors: [{ field: 'body', message: 'must be a JSON object' }] });
    const errors = [];
    let events = [...WEBHOOK_TYPES];
    for (const k of Object.keys(body)) if (!['url', 'events', 'description'].includes(k)) errors.push({ field: k, message: 'unknown field' });
    if (typeof body.url !== 'string') {
      errors.push({ field: 'url', message: body.url === undefined ? 'is required' : 'must be a string' });
    } else {
      let u = null;
      try {
        u = new URL(body.url);
      } catch {
        errors.push({ field: 'url', message: 'must be an absolute http or https URL' });
      }
      if (u && !['http:', 'https:'].includes(u.protocol)) errors.push({ field: 'url', message: 'must be an http or https URL' });
      else if (u && (u.username || u.password)) errors.push({ field: 'url', message: 'must not hold credentials; receivers authenticate messages by their signature' });
      else if (u && body.url.includes('#')) errors.push({ field: 'url', message: 'must not have a fragment (#...)' });
      else if (body.url.length > 2048) errors.push({ field: 'url', message: 'must be at most 2048 bytes' });
    }
    if (body.events !== undefined && body.events !== null) {
      if (!Array.isArray(body.events)) {
        errors.push({ field: 'events', message: 'must be an array of event types' });
      } else {
        events = [];
        body.events.forEach((t, i) => {
          if (!WEBHOOK_TYPES.includes(t)) errors.push({ field: `events[${i}]`, message: 'must be one of quota.threshold, quota.exceeded, quota.reset' });
          else if (events.includes(t)) errors.push({ field: `events[${i}]`, message: 'appears more than once' });
          else events.push(t);
        });
        if (body.events.length === 0) errors.push({ field: 'events', message: 'must name at least one event type' });
      }
    }
    if (body.description !== undefined && body.description !== null) {
      if (typeof body.description !== 'string') errors.push({ field: 'description', message: 'must be a string or null' });
      else if ([...body.description].length > 1024) errors.push({ field: 'description', message: 'must be at most 1024 characters' });
    }
    if (errors.length) {
      const more = errors.length > 1 ? ` (and ${errors.length - 1} more errors)` : '';
      throw invalid(`${errors[0].field}: ${errors[0].message}${more}`, { errors });
    }
    events.sort((a, b) => WEBHOOK_TYPES.indexOf(a) - WEBHOOK_TYPES.indexOf(b));
    const key = randomBytes(24);
    const w = {
      id: randomUUID(),
      url: body.url,
      events,
      description: body.description ?? null,
      created_at: iso(Date.now()),
      disabled_at: null,
      key,
    };
    webhooks.set(w.id, w);
    return { ...renderWebhook(w), secret: `whsec_${key.toString('base64')}` };
  }

  function findWebhook(raw) {
    const w = webhooks.get(decodeURIComponent(raw));
    if (!w) throw new HttpError(404, 'NOT_FOUND', `webhook \`${raw}\``);
    return w;
  }

  /** Writes a message about `quota` for every endpoint subscribed to `type`. */
  function writeAlert(type, quota, tenant, window, usage, threshold) {
    const id = `msg_${randomUUID().replace(/-/g, '')}`;
    const payload = toJson({
      type,
      id,
      timestamp: iso(Date.now()),
      data: {
        tenant_id: tenant,
        quota_id: quota.id,
        resource: quota.resource,
        feature: quota.feature,
        period_start: iso(window[0]),
        period_end: iso(window[1]),
        limit: new Dec(quota.limit),
        usage: new Dec(usage),
        threshold: threshold === null ? null : threshold.usage !== undefined ? { usage: new Dec(threshold.usage) } : { percent: threshold.percent },
      },
    });
    for (const w of webhooks.values()) {
      if (w.disabled_at || !w.events.includes(type)) continue;
      deliveries.push({
        id: randomUUID(),
        webhook_id: w.id,
        message_id: id,
        type,
        status: 'pending',
        attempts: 0,
        last_status_code: null,
        created_at: iso(Date.now()),
        delivered_at: null,
        payload,
        next_at: Date.now(),
        sending: false,
      });
    }
  }

  /** After an ingest: marks (and messages) for the thresholds and limits the tenants' usage reached. */
  function checkAlerts(written) {
    const seen = new Set();
    for (const e of written) {
      for (const quota of quotas.values()) {
        if (quota.feature !== e.feature || (quota.resource && quota.resource !== e.resource)) continue;
        if (quota.tenant_id !== e.tenant_id && quota.tenant_id !== '*') continue;
        const pair = `${quota.id}|${e.tenant_id}`;
        if (seen.has(pair)) continue;
        seen.add(pair);
        const window = windowOf(Date.now(), quota.period, quota.tz || 'UTC');
        let usage = 0n;
        for (const x of events) {
          if (x.ts < window[0] || x.ts >= window[1] || x.tenant_id !== e.tenant_id || x.feature !== quota.feature) continue;
          if (quota.resource && x.resource !== quota.resource) continue;
          usage += x.q;
        }
        const mark = (what) => {
          const k = `${pair}|${window[0]}|${what}`;
          if (alertMarks.has(k)) return false;
          alertMarks.add(k);
          return true;
        };
        for (const t of quota.thresholds ?? []) {
          const level = t.usage !== undefined ? t.usage : (quota.limit * BigInt(t.percent)) / 100n;
          if (usage >= level && mark(t.usage !== undefined ? `usage:${t.usage}` : `percent:${t.percent}`)) {
            writeAlert('quota.threshold', quota, e.tenant_id, window, usage, t);
          }
        }
        if (usage >= quota.limit && mark('exceeded')) writeAlert('quota.exceeded', quota, e.tenant_id, window, usage, null);
      }
    }
  }

  /** Sends one due delivery, signed as Standard Webhooks. */
  async function send1(d) {
    const w = webhooks.get(d.webhook_id);
    if (!w) return;
    d.sending = true;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = createHmac('sha256', w.key).update(`${d.message_id}.${timestamp}.${d.payload}`).digest('base64');
    let status = null;
    try {
      const res = await fetch(w.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': d.message_id,
          'webhook-timestamp': timestamp,
          'webhook-signature': `v1,${signature}`,
        },
        body: d.payload,
        signal: AbortSignal.timeout(5000),
      });
      status = res.status;
      await res.arrayBuffer().catch(() => null);
    } catch {
      status = null;
    }
    d.sending = false;
    d.attempts += 1;
    d.last_status_code = status;
    if (status !== null && status >= 200 && status < 300) {
      d.status = 'delivered';
      d.delivered_at = iso(Date.now());
    } else if (status === 410) {
      d.status = 'failed';
      w.disabled_at = iso(Date.now());
    } else if (d.attempts >= 6) {
      d.status = 'failed';
    } else {
      d.next_at = Date.now() + 1000 * 2 ** d.attempts;
    }
  }

  function deliverDue() {
    const now = Date.now();
    for (const d of deliveries) {
      if (d.status === 'pending' && !d.sending && d.next_at <= now) send1(d);
    }
  }
  const deliveryLoop = setInterval(deliverDue, 200);
  deliveryLoop.unref?.();

  function findQuota(tenant, resource, feature) {
    const all = [...quotas.values()];
    const order = resource
      ? [[tenant, resource], [tenant, null], ['*', resource], ['*', null]]
      : [[tenant, null], ['*', null]];
    for (const [t, r] of order) {
      const q = all.find((x) => x.tenant_id === t && x.resource === r && x.feature === feature);
      if (q) return q;
    }
    return null;
  }

  function postValidate(body, rec) {
    const errors = [];
    for (const f of ['tenant_id', 'feature']) {
      const e = checkName(body?.[f], f);
      if (e) errors.push(e);
    }
    if (body?.resource !== undefined && body.resource !== null) {
      const e = checkName(body.resource, 'resource');
      if (e) errors.push(e);
    }
    const qty = body?.quantity === undefined ? parseDec('1') : parseDec(body.quantity);
    if (qty === null || qty <= 0n) errors.push({ field: 'quantity', message: 'quantity must be > 0' });
    if (errors.length) throw invalid(errors[0].message, { field: errors[0].field });
    tenantScope(rec, body.tenant_id);
    const quota = findQuota(body.tenant_id, body.resource ?? null, body.feature);
    if (!quota) {
      return { allowed: true, remaining: null, limit: null, period: body.period ?? null, reset_at: null, current_usage: 0, alert: false, message: 'no quota configured' };
    }
    const type = { hourly: 'hourly', daily: 'daily', monthly: 'monthly', yearly: 'yearly' }[quota.period];
    const [ws, we] = windowOf(Date.now(), type, quota.tz || 'UTC');
    let usage = 0n;
    for (const e of events) {
      if (e.ts < ws || e.ts >= we) continue;
      if (e.tenant_id !== body.tenant_id || e.feature !== quota.feature) continue;
      if (quota.resource && e.resource !== quota.resource) continue;
      usage += e.q;
    }
    const allowed = usage + qty <= quota.limit;
    let eventId;
    if (body.consume && allowed) {
      eventId = body.id ?? randomUUID();
      events.push({
        id: eventId,
        tenant_id: body.tenant_id,
        resource: body.resource ?? quota.resource ?? 'default',
        feature: body.feature,
        q: qty,
        ts: Date.now(),
        metadata: body.metadata ?? null,
        created_at: Date.now(),
      });
      sortEvents(events);
      usage += qty;
    }
    const remaining = quota.limit - usage > 0n ? quota.limit - usage : 0n;
    return {
      allowed,
      remaining: new Dec(remaining),
      limit: new Dec(quota.limit),
      period: quota.period,
      reset_at: iso(we),
      current_usage: new Dec(usage),
      alert: usage * 100n >= quota.limit * BigInt(quota.alert_threshold),
      message: allowed ? null : 'quota exceeded',
      ...(eventId ? { event_id: eventId } : {}),
    };
  }

  function putQuota(body) {
    const errors = [];
    const tenant = body?.tenant_id;
    if (!(tenant === '*' || !checkName(tenant, 'tenant_id'))) errors.push({ field: 'tenant_id', message: 'tenant_id is required' });
    const e = checkName(body?.feature, 'feature');
    if (e) errors.push(e);
    if (body?.resource !== undefined && body.resource !== null && checkName(body.resource, 'resource')) {
      errors.push({ field: 'resource', message: 'resource must be 1-255 chars or null' });
    }
    const limit = body?.limit === undefined ? null : parseDec(body.limit);
    if (limit === null || limit <= 0n) errors.push({ field: 'limit', message: 'limit must be > 0' });
    if (!['hourly', 'daily', 'monthly', 'yearly'].includes(body?.period)) {
      errors.push({ field: 'period', message: 'period must be hourly, daily, monthly or yearly' });
    }
    const thresholds = parseThresholds(body?.thresholds, body?.alert_threshold, errors);
    const firstPercent = thresholds?.find((t) => t.percent !== undefined)?.percent;
    const at = body?.alert_threshold ?? (thresholds ? (firstPercent ?? 0) : 80);
    if (typeof at !== 'number' || at < 0 || at > 100) errors.push({ field: 'alert_threshold', message: 'alert_threshold must be 0-100' });
    const tz = body?.tz ?? 'UTC';
    if (!validTz(tz)) errors.push({ field: 'tz', message: 'tz is not a known IANA zone' });
    if (errors.length) throw invalid(errors[0].message, { field: errors[0].field });
    const resource = body.resource ?? null;
    const existing = [...quotas.values()].find((x) => x.tenant_id === tenant && x.resource === resource && x.feature === body.feature);
    const stamp = iso(Date.now());
    const q = {
      id: existing?.id ?? randomUUID(),
      tenant_id: tenant,
      resource,
      feature: body.feature,
      limit,
      period: body.period,
      alert_threshold: at,
      thresholds: thresholds ?? (at > 0 ? [{ percent: at }] : []),
      tz,
      created_at: existing?.created_at ?? stamp,
      updated_at: stamp,
    };
    quotas.set(q.id, q);
    return renderQuota(q);
  }

  function postKey(body) {
    const e = checkName(body?.name, 'name');
    if (e) throw invalid(e.message, { field: 'name' });
    if (!['admin', 'ingest', 'read'].includes(body.role)) throw invalid('role must be admin, ingest or read', { field: 'role' });
    if (body.expires_at && Number.isNaN(Date.parse(body.expires_at))) throw invalid('expires_at must be RFC 3339', { field: 'expires_at' });
    const secret = `mk_${randomBytes(24).toString('base64url')}`;
    const rec = {
      id: randomUUID(),
      name: body.name.trim(),
      role: body.role,
      tenant_id: body.tenant_id || null,
      expires_at: body.expires_at || null,
      created_at: iso(Date.now()),
      last_used_at: null,
      prefix: secret.slice(0, 8),
    };
    keys.set(secret, rec);
    return { ...rec, key: secret };
  }

  async function api(req, res, url) {
    const parts = url.pathname.replace(/^\/v1\/meter\/?/, '').split('/').filter(Boolean);
    const route = parts[0] ?? '';
    const m = req.method;
    if (route === 'health' && m === 'GET') {
      return send(res, 200, {
        status: 'healthy',
        timestamp: iso(Date.now()),
        version: 'mock',
        services: { database: 'connected', quota_cache: 'connected' },
      });
    }
    const known = {
      events: ['GET', 'POST'],
      aggregates: ['GET'],
      validate: ['POST'],
      quotas: parts.length > 1 ? ['DELETE'] : ['GET', 'PUT'],
      'api-keys': parts.length > 1 ? ['DELETE'] : ['GET', 'POST'],
      webhooks:
        parts.length === 1
          ? ['GET', 'POST']
          : parts.length === 2
            ? ['DELETE']
            : parts.length === 3 && parts[2] === 'deliveries'
              ? ['GET']
              : parts.length === 5 && parts[2] === 'deliveries' && parts[4] === 'retry'
                ? ['POST']
                : [],
    }[route];
    if (!known || !known.includes(m)) throw new HttpError(404, 'NOT_FOUND', `no route ${m} ${url.pathname}`);
    const rec = auth(req, route);
    const q = url.searchParams;
    switch (`${m} ${route}`) {
      case 'GET events':
        return send(res, 200, getEvents(q, rec));
      case 'POST events':
        return send(res, 201, postEvents(await readBody(req), rec));
      case 'GET aggregates':
        return send(res, 200, getAggregates(q, rec));
      case 'POST validate':
        return send(res, 200, postValidate(await readBody(req), rec));
      case 'GET quotas': {
        const t = tenantScope(rec, q.get('tenant_id'));
        return send(res, 200, { quotas: [...quotas.values()].filter((x) => !t || x.tenant_id === t).map(renderQuota) });
      }
      case 'PUT quotas':
        return send(res, 200, putQuota(await readBody(req)));
      case 'DELETE quotas':
        if (!quotas.delete(decodeURIComponent(parts[1]))) throw new HttpError(404, 'NOT_FOUND', 'no such quota');
        return send(res, 204);
      case 'GET api-keys':
        return send(res, 200, { api_keys: [...keys.values()] });
      case 'POST api-keys':
        return send(res, 201, postKey(await readBody(req)));
      case 'GET webhooks': {
        adminOnly(rec);
        if (parts.length === 1) return send(res, 200, { webhooks: [...webhooks.values()].map(renderWebhook) });
        const w = findWebhook(parts[1]);
        const limit = q.has('limit') ? Number(q.get('limit')) : 100;
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
          throw invalid('limit: must be from 1 to 1000', { errors: [{ field: 'limit', message: 'must be from 1 to 1000' }] });
        }
        const list = deliveries.filter((d) => d.webhook_id === w.id).reverse().slice(0, limit);
        return send(res, 200, { deliveries: list.map(renderDelivery) });
      }
      case 'POST webhooks': {
        adminOnly(rec);
        if (parts.length === 1) return send(res, 201, postWebhook(await readBody(req)));
        const w = findWebhook(parts[1]);
        const d = deliveries.find((x) => x.webhook_id === w.id && x.id === decodeURIComponent(parts[3]));
        if (!d) throw new HttpError(404, 'NOT_FOUND', `delivery \`${parts[3]}\``);
        d.status = 'pending';
        d.next_at = Date.now();
        return send(res, 202, renderDelivery(d));
      }
      case 'DELETE webhooks': {
        adminOnly(rec);
        const w = findWebhook(parts[1]);
        webhooks.delete(w.id);
        for (let i = deliveries.length - 1; i >= 0; i--) if (deliveries[i].webhook_id === w.id) deliveries.splice(i, 1);
        return send(res, 204);
      }
      case 'DELETE api-keys': {
        const id = decodeURIComponent(parts[1]);
        const entry = [...keys.entries()].find(([, v]) => v.id === id);
        if (!entry) throw new HttpError(404, 'NOT_FOUND', 'no such key');
        keys.delete(entry[0]);
        return send(res, 204);
      }
    }
    throw new HttpError(404, 'NOT_FOUND', 'not found');
  }

  const TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.svg': 'image/svg+xml',
    '.woff2': 'font/woff2',
    '.png': 'image/png',
    '.json': 'application/json',
    '.ico': 'image/x-icon',
  };

  async function serveStatic(req, res, url) {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(404, 'NOT_FOUND', 'not found');
    const root = resolve(distDir);
    let rel;
    try {
      rel = decodeURIComponent(url.pathname);
    } catch {
      throw bad('bad path');
    }
    let file = normalize(join(root, rel));
    if (file !== root && !file.startsWith(root + sep)) throw new HttpError(404, 'NOT_FOUND', 'not found');
    let st = await stat(file).catch(() => null);
    let fallback = false;
    if (!st || st.isDirectory()) {
      if (rel.startsWith('/assets/')) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        return res.end('not found');
      }
      file = join(root, 'index.html');
      st = await stat(file).catch(() => null);
      fallback = true;
      if (!st) {
        res.writeHead(503, { 'Content-Type': 'text/plain' });
        return res.end('dashboard not built: run npm run build');
      }
    }
    const data = await readFile(file);
    const hashed = !fallback && rel.startsWith('/assets/');
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
      'Content-Length': data.length,
    });
    res.end(req.method === 'HEAD' ? undefined : data);
  }

  const handler = async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://mock.invalid');
    try {
      if (latencyMs) await new Promise((r) => setTimeout(r, latencyMs));
      if (url.pathname === '/v1/meter' || url.pathname.startsWith('/v1/meter/')) return await api(req, res, url);
      if (url.pathname.startsWith('/v1/')) throw new HttpError(404, 'NOT_FOUND', 'not found');
      return await serveStatic(req, res, url);
    } catch (err) {
      if (err instanceof HttpError) {
        return send(res, err.status, {
          error: { code: err.code, message: err.message, details: err.details ?? null },
        });
      }
      console.error(err);
      return send(res, 500, { error: { code: 'INTERNAL', message: 'internal error', details: null } });
    }
  };

  return { handler, store, stop: () => clearInterval(deliveryLoop) };
}

/** Starts the mock; resolves to { url, close, store }. */
export function startMockServer({ port = 0, host = '127.0.0.1', ...opts } = {}) {
  const { handler, store, stop } = createApp(opts);
  const server = createServer(handler);
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolvePromise({
        url: `http://${host}:${addr.port}`,
        store,
        close: () =>
          new Promise((r) => {
            stop();
            server.close(() => r());
          }),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 8000);
  const host = process.env.HOST ?? '127.0.0.1';
  const adminKey = process.env.METERING_MOCK_ADMIN_KEY ?? 'mock-admin-key';
  const latencyMs = Number(process.env.METERING_MOCK_LATENCY_MS ?? 0);
  startMockServer({ port, host, adminKey, latencyMs }).then(({ url, store }) => {
    console.log(`mock metering server on ${url} (${store.events.length} events); admin key: ${adminKey}`);
  });
}
