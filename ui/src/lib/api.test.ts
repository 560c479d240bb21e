import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, buildQuery, jsonWithExactNumbers, parseErrorBody, toApiError } from './api';

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

describe('helpers', () => {
  it('builds query strings without empty values', () => {
    expect(buildQuery({ a: '1', b: undefined, c: null, d: 0 })).toBe('?a=1&d=0');
    expect(buildQuery({})).toBe('');
  });
  it('keeps exact numbers', () => {
    expect(jsonWithExactNumbers({ limit: '12.5', name: '12.5' }, ['limit'])).toBe('{"limit":12.5,"name":"12.5"}');
  });
});
