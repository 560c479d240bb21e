import { describe, expect, it, vi } from 'vitest';
import {
  ApiClient,
  ApiError,
  buildQuery,
  fieldErrors,
  jsonWithExactNumbers,
  parseErrorBody,
  parseJson,
  parseNumberLiteral,
  toApiError,
} from './api';
import { sumQuantities } from './decimal';
import { formatQuantity, formatQuantityPlain } from './format';

function fakeFetch(status: number, body: unknown, headers: Record<string, string> = {}) {
  return vi.fn(async () =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), {
      status,
      headers: { 'Content-Type': 'application/json', ...headers },
    }),
  );
}

describe('error parsing', () => {
  it('reads the error envelope', () => {
    const e = parseErrorBody(
      422,
      'Unprocessable Entity',
      JSON.stringify({ error: { code: 'VALIDATION_ERROR', message: 'quantity must be > 0', details: { field: 'events[3].quantity' } } }),
    );
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(422);
    expect(e.code).toBe('VALIDATION_ERROR');
    expect(e.message).toBe('quantity must be > 0');
    expect(e.details).toEqual({ field: 'events[3].quantity' });
    expect(e.title).toBe('Invalid input');
  });

  it('gives readable defaults for 401 and 403 without a body', () => {
    const e401 = parseErrorBody(401, 'Unauthorized', '');
    expect(e401.code).toBe('UNAUTHORIZED');
    expect(e401.title).toBe('API key not accepted');
    expect(e401.message).toMatch(/missing, unknown, revoked or expired/);
    const e403 = parseErrorBody(403, 'Forbidden', '{}');
    expect(e403.code).toBe('FORBIDDEN');
    expect(e403.title).toBe('Not allowed');
    expect(e403.message).toMatch(/role/);
  });

  it('never shows an HTML page as the message', () => {
    const e = parseErrorBody(502, 'Bad Gateway', '<html><body>nginx</body></html>');
    expect(e.message).toBe('Bad Gateway');
    expect(e.title).toBe('Server error');
    expect(parseErrorBody(500, '', 'boom').message).toBe('boom');
  });

  it('turns network failures into status 0 errors', () => {
    const e = toApiError(new TypeError('Failed to fetch'));
    expect(e.status).toBe(0);
    expect(e.title).toBe('Cannot reach the server');
  });
});

describe('ApiClient', () => {
  it('calls same-origin relative URLs with the X-API-Key header', async () => {
    const f = fakeFetch(200, { events: [], next_cursor: null });
    const c = new ApiClient('k_123', { fetchImpl: f as unknown as typeof fetch });
    await c.events({ tenant_id: 'org 1', page_size: 1 });
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/v1/meter/events?tenant_id=org+1&page_size=1');
    expect((init.headers as Record<string, string>)['X-API-Key']).toBe('k_123');
  });

  it('sends an empty group_by for a single series', async () => {
    const f = fakeFetch(200, { aggregates: [], summary: { total_quantity: 0, total_events: 0 } });
    const c = new ApiClient('k', { fetchImpl: f as unknown as typeof fetch });
    await c.aggregates({ window_type: 'daily', start_date: 'a', end_date: 'b', group_by: '', tz: 'UTC' });
    expect((f.mock.calls[0] as unknown as [string])[0]).toBe(
      '/v1/meter/aggregates?window_type=daily&start_date=a&end_date=b&group_by=&tz=UTC',
    );
  });

  it('throws ApiError and reports 401s', async () => {
    const onUnauthorized = vi.fn();
    const f = fakeFetch(401, { error: { code: 'UNAUTHORIZED', message: 'API key revoked', details: null } });
    const c = new ApiClient('k', { fetchImpl: f as unknown as typeof fetch, onUnauthorized });
    await expect(c.quotas()).rejects.toMatchObject({ status: 401, message: 'API key revoked' });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('handles 204 and validate bodies', async () => {
    const f = fakeFetch(200, { allowed: true });
    const c = new ApiClient('k', { fetchImpl: f as unknown as typeof fetch });
    await c.validate({ tenant_id: 't', feature: 'f', resource: null, quantity: 1, consume: false });
    const init = (f.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect(JSON.parse(init.body as string)).toEqual({ tenant_id: 't', feature: 'f', quantity: 1, consume: false });
    const del = vi.fn(async () => new Response(null, { status: 204 }));
    await expect(new ApiClient('k', { fetchImpl: del as unknown as typeof fetch }).deleteQuota('q/1')).resolves.toBeUndefined();
    expect((del.mock.calls[0] as unknown as [string])[0]).toBe('/v1/meter/quotas/q%2F1');
  });

  it('writes quota limits as exact JSON numbers', async () => {
    const f = fakeFetch(200, {});
    const c = new ApiClient('k', { fetchImpl: f as unknown as typeof fetch });
    await c.upsertQuota({
      tenant_id: 't',
      resource: null,
      feature: 'f',
      limit: '9007199254740993.5',
      period: 'monthly',
      alert_threshold: 80,
      tz: null,
    });
    const body = (f.mock.calls[0] as unknown as [string, RequestInit])[1].body as string;
    expect(body).toContain('"limit":9007199254740993.5');
    expect(body).not.toContain('"tz"');
  });
});

describe('webhooks', () => {
  const WEBHOOK = {
    id: '0193a1b2-0000-7000-8000-000000000001',
    url: 'https://example.com/hooks',
    events: ['quota.threshold'],
    description: null,
    created_at: '2025-11-20T10:00:00Z',
    disabled_at: null,
  };
  const call = (f: ReturnType<typeof fakeFetch>, i = 0) => f.mock.calls[i] as unknown as [string, RequestInit];

  it('creates an endpoint, leaving out an empty description, and returns the secret', async () => {
    const f = fakeFetch(201, { ...WEBHOOK, secret: 'whsec_c2VjcmV0' });
    const c = new ApiClient('k', { fetchImpl: f as unknown as typeof fetch });
    const w = await c.createWebhook({ url: 'https://example.com/hooks', events: ['quota.threshold'], description: null });
    expect(w.secret).toBe('whsec_c2VjcmV0');
    const [url, init] = call(f);
    expect(url).toBe('/v1/meter/webhooks');
    expect(init.method).toBe('POST');
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
    expect(JSON.parse(init.body as string)).toEqual({ url: 'https://example.com/hooks', events: ['quota.threshold'] });
    await c.createWebhook({ url: 'https://x.test', events: ['quota.reset', 'quota.exceeded'], description: 'ops' });
    expect(JSON.parse(call(f, 1)[1].body as string)).toEqual({
      url: 'https://x.test',
      events: ['quota.reset', 'quota.exceeded'],
      description: 'ops',
    });
  });

  it('lists, deletes, lists deliveries and retries with encoded ids', async () => {
    const list = fakeFetch(200, { webhooks: [WEBHOOK] });
    const c = new ApiClient('k', { fetchImpl: list as unknown as typeof fetch });
    expect((await c.webhooks()).webhooks[0].url).toBe('https://example.com/hooks');
    expect(call(list)[0]).toBe('/v1/meter/webhooks');
    expect(call(list)[1].method).toBe('GET');

    const del = vi.fn(async () => new Response(null, { status: 204 }));
    await expect(new ApiClient('k', { fetchImpl: del as unknown as typeof fetch }).deleteWebhook('a/b')).resolves.toBeUndefined();
    expect((del.mock.calls[0] as unknown as [string, RequestInit])[0]).toBe('/v1/meter/webhooks/a%2Fb');
    expect((del.mock.calls[0] as unknown as [string, RequestInit])[1].method).toBe('DELETE');

    const delivery = {
      id: 'd1',
      message_id: 'msg_1',
      type: 'quota.threshold',
      status: 'pending',
      attempts: 1,
      last_status_code: null,
      created_at: '2025-11-20T10:00:01Z',
      delivered_at: null,
    };
    const dl = fakeFetch(200, { deliveries: [delivery] });
    const c2 = new ApiClient('k', { fetchImpl: dl as unknown as typeof fetch });
    const got = await c2.webhookDeliveries('w 1', 20);
    expect(got.deliveries[0].last_status_code).toBeNull();
    expect(call(dl)[0]).toBe('/v1/meter/webhooks/w%201/deliveries?limit=20');
    await c2.webhookDeliveries('w1');
    expect(call(dl, 1)[0]).toBe('/v1/meter/webhooks/w1/deliveries');

    const retry = fakeFetch(202, delivery);
    const c3 = new ApiClient('k', { fetchImpl: retry as unknown as typeof fetch });
    expect((await c3.retryDelivery('w1', 'd/1')).status).toBe('pending');
    expect(call(retry)[0]).toBe('/v1/meter/webhooks/w1/deliveries/d%2F1/retry');
    expect(call(retry)[1].method).toBe('POST');
    expect(call(retry)[1].body).toBeUndefined();
  });

  it('reports a refused creation with its field errors', async () => {
    const f = fakeFetch(422, {
      error: {
        code: 'VALIDATION_ERROR',
        message: 'url: must be an http or https URL',
        details: {
          errors: [
            { field: 'url', message: 'must be an http or https URL' },
            { field: 'events[0]', message: 'must be one of quota.threshold, quota.exceeded, quota.reset' },
            { field: 'url', message: 'second message for url' },
          ],
        },
      },
    });
    const c = new ApiClient('k', { fetchImpl: f as unknown as typeof fetch });
    const err = await c.createWebhook({ url: 'ftp://x', events: ['quota.threshold'], description: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(422);
    expect(fieldErrors((err as ApiError).details)).toEqual({
      url: 'must be an http or https URL',
      'events[0]': 'must be one of quota.threshold, quota.exceeded, quota.reset',
    });
  });

  it('reads no field errors from other details', () => {
    expect(fieldErrors(null)).toEqual({});
    expect(fieldErrors({ field: 'limit' })).toEqual({});
    expect(fieldErrors({ errors: [null, 'x', { field: 1, message: 'm' }, { field: 'f', message: 'ok' }] })).toEqual({ f: 'ok' });
  });
});

describe('lossless responses', () => {
  // Response texts as the server writes them: every decimal an exact JSON number.
  const EVENTS_TEXT = `{"events":[
    {"id":"evt_1","tenant_id":"org_001","resource":"billing","feature":"invoice_generate",
     "quantity":999999999999999.999999999,"timestamp":"2025-11-20T10:31:00Z",
     "metadata":{"user":"u_123","count":3,"ratio":0.1},"created_at":"2025-11-20T10:31:01Z"},
    {"id":"evt_2","tenant_id":"org_001","resource":"billing","feature":"invoice_generate",
     "quantity":12.5,"timestamp":"2025-11-20T10:32:00Z","metadata":null}
  ],"pagination":{"page":1,"page_size":50,"total":2,"total_pages":1},"next_cursor":null}`;
  const AGGREGATES_TEXT = `{"aggregates":[
    {"tenant_id":"org_001","resource":null,"feature":null,"window_start":"2025-11-20T00:00:00Z",
     "window_end":"2025-11-21T00:00:00Z","window_type":"daily",
     "total_quantity":123456789012345.123456789,"event_count":150},
    {"tenant_id":"org_002","resource":null,"feature":null,"window_start":"2025-11-20T00:00:00Z",
     "window_end":"2025-11-21T00:00:00Z","window_type":"daily",
     "total_quantity":0.000000001,"event_count":1}
  ],"summary":{"total_quantity":123456789012345.123456790,"total_events":151}}`;

  function client(text: string) {
    const f = fakeFetch(200, text);
    return new ApiClient('k', { fetchImpl: f as unknown as typeof fetch });
  }

  it('keeps every digit of event quantities', async () => {
    const page = await client(EVENTS_TEXT).events({ tenant_id: 'org_001' });
    const [big, small] = page.events;
    expect(big.quantity).toBe('999999999999999.999999999');
    expect(formatQuantity(big.quantity)).toBe('999,999,999,999,999.999999999');
    expect(formatQuantityPlain(big.quantity)).toBe('999999999999999.999999999');
    // Ordinary numbers stay numbers.
    expect(small.quantity).toBe(12.5);
    expect(formatQuantity(small.quantity)).toBe('12.5');
    expect(page.pagination).toEqual({ page: 1, page_size: 50, total: 2, total_pages: 1 });
    expect(big.metadata).toEqual({ user: 'u_123', count: 3, ratio: 0.1 });
    expect(page.next_cursor).toBeNull();
  });

  it('keeps every digit of aggregate totals, and sums them exactly', async () => {
    const resp = await client(AGGREGATES_TEXT).aggregates({ window_type: 'daily', start_date: 'a', end_date: 'b' });
    const [a, b] = resp.aggregates;
    expect(a.total_quantity).toBe('123456789012345.123456789');
    expect(formatQuantity(a.total_quantity)).toBe('123,456,789,012,345.123456789');
    expect(a.event_count).toBe(150);
    expect(b.total_quantity).toBe(0.000000001);
    expect(sumQuantities(resp.aggregates.map((r) => r.total_quantity))).toBe('123456789012345.12345679');
    expect(formatQuantity(resp.summary.total_quantity)).toBe('123,456,789,012,345.12345679');
    expect(resp.summary.total_events).toBe(151);
  });

  it('keeps quota limits and usage exact', async () => {
    const v = await client(
      '{"allowed":true,"remaining":900000000000000.000000001,"limit":999999999999999.999999999,' +
        '"period":"monthly","reset_at":null,"current_usage":99999999999999.999999998,"alert":false}',
    ).validate({ tenant_id: 't', feature: 'f', quantity: 1, consume: false });
    expect(formatQuantity(v.limit)).toBe('999,999,999,999,999.999999999');
    expect(formatQuantity(v.remaining)).toBe('900,000,000,000,000.000000001');
    expect(formatQuantity(v.current_usage)).toBe('99,999,999,999,999.999999998');
    expect(v.allowed).toBe(true);
  });

  it('turns only the numbers a double cannot carry into decimal text', () => {
    expect(parseNumberLiteral('1')).toBe(1);
    expect(parseNumberLiteral('0.1')).toBe(0.1);
    expect(parseNumberLiteral('12.50')).toBe(12.5);
    expect(parseNumberLiteral('-3')).toBe(-3);
    expect(parseNumberLiteral('9007199254740991')).toBe(9007199254740991);
    expect(parseNumberLiteral('9007199254740993')).toBe('9007199254740993');
    expect(parseNumberLiteral('0.30000000000000004441')).toBe('0.30000000000000004441');
    expect(parseNumberLiteral('999999999999999.999999999')).toBe('999999999999999.999999999');
    expect(parseNumberLiteral('1e21')).toBe('1000000000000000000000');
    expect(parseNumberLiteral('1.5e-7')).toBe(1.5e-7);
  });

  it('parses like JSON.parse otherwise', () => {
    const text = '{"a":[1,2.5,true,false,null,"x\\u00e9"],"b":{"c":-0.25},"__proto__":{"d":1},"e":1,"e":2}';
    expect(parseJson(text)).toEqual(JSON.parse(text));
    expect(Object.getPrototypeOf(parseJson('{"__proto__":{"d":1}}'))).toBe(Object.prototype);
    expect(() => parseJson('{"a":')).toThrow();
  });

  it('reads error details losslessly too', () => {
    const e = parseErrorBody(
      422,
      '',
      '{"error":{"code":"QUOTA_EXCEEDED","message":"over","details":{"limit":999999999999999.999999999}}}',
    );
    expect(e.details).toEqual({ limit: '999999999999999.999999999' });
  });

  it('reports a body that is not JSON', async () => {
    await expect(client('<html>').events({})).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
  });
});

describe('helpers', () => {
  it('builds query strings without empty values', () => {
    expect(buildQuery({ a: '1', b: undefined, c: null, d: 0 })).toBe('?a=1&d=0');
    expect(buildQuery({})).toBe('');
  });
  it('keeps exact numbers', () => {
    expect(jsonWithExactNumbers({ limit: '12.5', name: '12.5' }, ['limit'])).toBe('{"limit":12.5,"name":"12.5"}');
  });
});
