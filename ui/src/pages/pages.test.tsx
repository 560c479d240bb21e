import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { LosslessNumber, stringify } from 'lossless-json';
import { App } from '../App';
import { KEY_STORAGE } from '../lib/auth';
import { sortTotals } from './Tenants';
import { applicableQuota } from './TenantDetail';
import { validateQuotaForm } from './Quotas';
import type { Quota } from '../lib/api';

type Handler = (url: URL, init: RequestInit) => { status: number; body?: unknown };

function installFetch(handler: Handler) {
  const f = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://dash.test');
    const key = (init.headers as Record<string, string> | undefined)?.['X-API-Key'];
    if (key !== 'good-key') {
      return new Response(JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'API key is unknown', details: null } }), {
        status: 401,
      });
    }
    const { status, body } = handler(url, init);
    // Decimals go out as exact JSON number literals, as the server writes them.
    return new Response(body === undefined ? null : stringify(body), { status });
  });
  vi.stubGlobal('fetch', f);
  return f;
}

/** A decimal the fake server writes as an exact JSON number. */
const exact = (text: string) => new LosslessNumber(text);

const EVENT = {
  id: 'evt_1',
  tenant_id: 'org_001',
  resource: 'billing',
  feature: 'invoice_generate',
  quantity: exact('999999999999999.999999999'),
  timestamp: '2025-11-20T10:31:00Z',
  metadata: { user: 'u_123', nested: { a: [1, 2] } },
  created_at: '2025-11-20T10:31:01Z',
};

function api(url: URL): { status: number; body?: unknown } {
  const p = url.pathname;
  if (p === '/v1/meter/events') {
    return { status: 200, body: { events: [EVENT], pagination: { page: 1, page_size: 50, total: 1, total_pages: 1 }, next_cursor: null } };
  }
  if (p === '/v1/meter/aggregates') {
    const start = url.searchParams.get('start_date')!;
    // The previous range ends where the current one starts: answer it with smaller totals.
    const isPrevious = url.searchParams.get('group_by') === '';
    return {
      status: 200,
      body: {
        aggregates: isPrevious
          ? []
          : [
              {
                tenant_id: 'org_001',
                resource: 'billing',
                feature: 'invoice_generate',
                window_start: start,
                window_end: start,
                window_type: url.searchParams.get('window_type'),
                total_quantity: exact('9007199254740993'),
                event_count: 150,
              },
            ],
        summary: isPrevious
          ? { total_quantity: 100, total_events: 100 }
          : { total_quantity: exact('9007199254740993'), total_events: 150 },
      },
    };
  }
  if (p === '/v1/meter/events/export') {
    return { status: 200, body: 'id,tenant_id\r\n' };
  }
  if (p === '/v1/meter/meters') {
    return {
      status: 200,
      body: {
        meters: [
          {
            key: 'llm_tokens',
            name: 'LLM tokens',
            aggregation: 'sum',
            value: 'quantity',
            filter: { resource: ['ai'] },
            dimensions: ['model'],
            created_at: '2025-11-01T00:00:00Z',
            updated_at: '2025-11-01T00:00:00Z',
          },
        ],
      },
    };
  }
  if (p === '/v1/meter/meters/llm_tokens/query') {
    return {
      status: 200,
      body: {
        meter: 'llm_tokens',
        aggregation: 'sum',
        window_type: url.searchParams.get('window_type'),
        tz: 'UTC',
        data: [
          {
            window_start: '2025-11-20T00:00:00Z',
            window_end: '2025-11-21T00:00:00Z',
            group: { model: url.searchParams.getAll('filter.model')[0] ?? 'o3' },
            value: exact('999999999999999.999999999'),
            event_count: 12,
          },
        ],
        skipped_events: 3,
      },
    };
  }
  return { status: 404, body: { error: { code: 'NOT_FOUND', message: 'no route', details: null } } };
}

describe('App', () => {
  beforeEach(() => {
    window.history.replaceState(null, '', '/');
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('rejects a wrong key readably and signs in with a good one', async () => {
    installFetch(api);
    render(<App />);
    const input = screen.getByLabelText('API key');
    fireEvent.change(input, { target: { value: 'bad-key' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('API key not accepted');
    expect(alert.textContent).toContain('401');
    expect(window.sessionStorage.getItem(KEY_STORAGE)).toBeNull();

    fireEvent.change(input, { target: { value: 'good-key' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByRole('heading', { name: 'Overview' });
    expect(window.sessionStorage.getItem(KEY_STORAGE)).toBe('good-key');
  });

  it('shows overview totals from the aggregates summary with change against the previous range', async () => {
    const f = installFetch(api);
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    render(<App />);
    const events = await screen.findByTestId('total-events-value');
    expect(events.textContent).toBe('150');
    expect(screen.getByTestId('total-quantity-value').textContent).toBe('9,007,199,254,740,993');
    expect(screen.getByTestId('total-quantity-value').dataset.value).toBe('9007199254740993');
    const card = screen.getByTestId('total-events');
    expect(within(card).getByTestId('change').textContent).toContain('+50%');
    expect(screen.getByTestId('top-resources').textContent).toContain('billing');
    const urls = f.mock.calls.map((c) => String(c[0]));
    expect(urls.every((u) => u.startsWith('/v1/meter/'))).toBe(true);
    expect(urls.some((u) => u.includes('tz='))).toBe(true);
  });

  it('signs out and clears the key', async () => {
    installFetch(api);
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    render(<App />);
    await screen.findByRole('heading', { name: 'Overview' });
    fireEvent.click(screen.getAllByTestId('sign-out')[0]);
    await screen.findByLabelText('API key');
    expect(window.sessionStorage.getItem(KEY_STORAGE)).toBeNull();
  });

  it('events explorer expands a row into its metadata', async () => {
    installFetch(api);
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    window.history.replaceState(null, '', '/events?tenant_id=org_001');
    render(<App />);
    const row = await screen.findByTestId('event-row');
    expect(row.textContent).toContain('999,999,999,999,999.999999999');
    const toggle = within(row).getByRole('button', { name: /Show details/ });
    expect(toggle.getAttribute('aria-expanded')).toBe('false');
    await act(async () => fireEvent.click(toggle));
    expect(screen.getByText('999999999999999.999999999')).toBeTruthy();
    const json = screen.getByTestId('json-view');
    expect(JSON.parse(json.textContent!)).toEqual(EVENT.metadata);
    expect((screen.getByLabelText('Tenant') as HTMLInputElement).value).toBe('org_001');
  });

  it('offers void and amend to admin keys only, and lists voided events when asked', async () => {
    const sent: { method: string; path: string; body: string | null }[] = [];
    let amendStatus = 201;
    const f = installFetch((url, init) => {
      const method = init.method ?? 'GET';
      if (method === 'POST') sent.push({ method, path: url.pathname, body: (init.body as string) ?? null });
      if (url.pathname === '/v1/meter/api-keys') return { status: 200, body: { api_keys: [] } };
      if (url.pathname === '/v1/meter/events/evt_1/void') {
        return { status: 200, body: { ...EVENT, voided_at: '2025-11-21T08:00:00Z', void_reason: 'sent twice' } };
      }
      if (url.pathname === '/v1/meter/events/evt_1/amend') {
        if (amendStatus === 409) {
          return { status: 409, body: { error: { code: 'CONFLICT', message: 'conflict: event `evt_1` is voided', details: null } } };
        }
        return { status: 201, body: { ...EVENT, id: 'evt_1-fixed', quantity: exact('0.000000001'), amends: 'evt_1' } };
      }
      return api(url);
    });
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    window.history.replaceState(null, '', '/events');
    render(<App />);
    const row = await screen.findByTestId('event-row');
    await act(async () => fireEvent.click(within(row).getByRole('button', { name: /Show details/ })));

    // Amend: only the changed field goes, the quantity as an exact number literal.
    fireEvent.click(await screen.findByTestId('amend-event'));
    fireEvent.change(screen.getByLabelText('Quantity'), { target: { value: '0.000000001' } });
    fireEvent.change(screen.getByLabelText(/^Reason/), { target: { value: 'typo' } });
    await act(async () => fireEvent.click(screen.getByTestId('confirm-amend')));
    expect((await screen.findByTestId('correction-notice')).textContent).toContain('replaced by evt_1-fixed');
    expect(sent.at(-1)).toEqual({
      method: 'POST',
      path: '/v1/meter/events/evt_1/amend',
      body: '{"reason":"typo","quantity":0.000000001}',
    });

    // A refused amend shows the server's error and keeps the form.
    amendStatus = 409;
    fireEvent.click(screen.getByTestId('amend-event'));
    fireEvent.change(screen.getByLabelText('Quantity'), { target: { value: '2' } });
    await act(async () => fireEvent.click(screen.getByTestId('confirm-amend')));
    expect((await screen.findByRole('alert')).textContent).toContain('is voided');
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));

    // Void with a reason.
    fireEvent.click(screen.getByTestId('void-event'));
    fireEvent.change(screen.getByLabelText(/^Reason/), { target: { value: 'sent twice' } });
    await act(async () => fireEvent.click(screen.getByTestId('confirm-void')));
    expect((await screen.findByTestId('correction-notice')).textContent).toContain('voided');
    expect(sent.at(-1)).toEqual({ method: 'POST', path: '/v1/meter/events/evt_1/void', body: '{"reason":"sent twice"}' });

    // The toggle asks for voided events too.
    await act(async () => fireEvent.click(screen.getByTestId('show-voided')));
    await waitFor(() => {
      const urls = f.mock.calls.map((c) => String(c[0]));
      expect(urls.some((u) => u.startsWith('/v1/meter/events?') && u.includes('include_voided=true'))).toBe(true);
    });
    expect(window.location.search).toContain('include_voided=true');
  });

  it('shows no correction controls to other keys, and marks voided events', async () => {
    installFetch((url) => {
      if (url.pathname === '/v1/meter/api-keys') {
        return { status: 403, body: { error: { code: 'FORBIDDEN', message: 'a key with role `read` may not do this', details: null } } };
      }
      if (url.pathname === '/v1/meter/events') {
        return {
          status: 200,
          body: {
            events: [{ ...EVENT, voided_at: '2025-11-21T08:00:00Z', void_reason: 'sent twice' }],
            pagination: { page: 1, page_size: 50, total: 1, total_pages: 1 },
            next_cursor: null,
          },
        };
      }
      if (url.pathname === '/v1/meter/events/evt_1/history') {
        return { status: 200, body: { events: [{ ...EVENT, voided_at: '2025-11-21T08:00:00Z' }, { ...EVENT, id: 'evt_2', amends: 'evt_1' }] } };
      }
      return api(url);
    });
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    window.history.replaceState(null, '', '/events?include_voided=true');
    render(<App />);
    const row = await screen.findByTestId('event-row');
    expect(row.dataset.voided).toBe('true');
    expect(row.textContent).toContain('voided');
    expect((screen.getByTestId('show-voided') as HTMLInputElement).checked).toBe(true);
    await act(async () => fireEvent.click(within(row).getByRole('button', { name: /Show details/ })));
    expect(screen.getByTestId('voided-at').textContent).toContain('sent twice');
    const history = await screen.findByTestId('event-history');
    expect(history.textContent).toContain('evt_2');
    expect(screen.queryByTestId('void-event')).toBeNull();
    expect(screen.queryByTestId('amend-event')).toBeNull();
  });

  it('lists meters and shows a selected one exactly, with its filters in the query', async () => {
    const f = installFetch(api);
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    window.history.replaceState(null, '', '/meters');
    render(<App />);
    const row = await screen.findByTestId('meter-list-row');
    expect(row.textContent).toContain('llm_tokens');
    expect(row.textContent).toContain('resource ai');
    await act(async () => fireEvent.click(within(row).getByTestId('select-meter')));
    const value = await screen.findByTestId('meter-row');
    expect(value.dataset.value).toBe('999999999999999.999999999');
    expect(value.textContent).toContain('999,999,999,999,999.999999999');
    expect(screen.getByTestId('skipped-events').textContent).toContain('3 matching events skipped');
    await act(async () => fireEvent.change(screen.getByLabelText('model is'), { target: { value: 'gpt-4o, o3' } }));
    await waitFor(() =>
      expect(
        f.mock.calls.some((c) => {
          const u = new URL(String(c[0]), 'http://dash.test');
          return u.pathname.endsWith('/query') && u.searchParams.getAll('filter.model').join() === 'gpt-4o,o3';
        }),
      ).toBe(true),
    );
  });

  it('downloads the filtered events as CSV with the key', async () => {
    const f = installFetch(api);
    // jsdom has no object URLs: give URL the two functions for this test only.
    const created = vi.fn(() => 'blob:events');
    const urls = URL as unknown as Record<string, unknown>;
    urls.createObjectURL = created;
    urls.revokeObjectURL = vi.fn();
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    window.history.replaceState(null, '', '/events?tenant_id=org_001');
    render(<App />);
    const button = await screen.findByTestId('download-events');
    expect(button.dataset.path).toBe('/events/export?tenant_id=org_001&format=csv');
    await act(async () => fireEvent.click(button));
    await waitFor(() => expect(created).toHaveBeenCalled());
    const call = f.mock.calls.find((c) => String(c[0]).includes('/events/export'));
    expect(String(call?.[0])).toBe('/v1/meter/events/export?tenant_id=org_001&format=csv');
    expect((call?.[1]?.headers as Record<string, string>).Accept).toBe('text/csv');
    delete urls.createObjectURL;
    delete urls.revokeObjectURL;
  });

  it('drops to sign-in when the key stops working', async () => {
    installFetch(api);
    window.sessionStorage.setItem(KEY_STORAGE, 'revoked-key');
    render(<App />);
    await waitFor(() => expect(screen.getByLabelText('API key')).toBeTruthy());
    expect(screen.getByRole('status').textContent).toContain('Signed out');
  });
});

describe('page helpers', () => {
  it('sorts tenant totals by any column', () => {
    const rows = [
      { key: 'b', quantity: '10', events: 1 },
      { key: 'a', quantity: '9007199254740993', events: 3 },
      { key: 'c', quantity: '0.5', events: 2 },
    ];
    expect(sortTotals(rows, 'quantity', 'desc').map((r) => r.key)).toEqual(['a', 'b', 'c']);
    expect(sortTotals(rows, 'key', 'asc').map((r) => r.key)).toEqual(['a', 'b', 'c']);
    expect(sortTotals(rows, 'events', 'asc').map((r) => r.key)).toEqual(['b', 'c', 'a']);
  });

  it('picks the most specific quota like validate does', () => {
    const q = (id: string, tenant_id: string, resource: string | null): Quota => ({
      id,
      tenant_id,
      resource,
      feature: 'f',
      limit: 10,
      period: 'monthly',
      alert_threshold: 80,
    });
    const all = [q('default', '*', null), q('tenant-any', 't', null), q('tenant-r', 't', 'r')];
    expect(applicableQuota(all, 't', 'r', 'f')?.id).toBe('tenant-r');
    expect(applicableQuota(all, 't', null, 'f')?.id).toBe('tenant-any');
    expect(applicableQuota(all, 'other', null, 'f')?.id).toBe('default');
    expect(applicableQuota(all, 'other', 'r', 'f')?.id).toBe('default');
    expect(applicableQuota(all, 't', null, 'g')).toBeNull();
  });

  it('validates the quota form like the API', () => {
    const ok = {
      tenant_id: 't',
      target: 'feature' as const,
      resource: '',
      feature: 'f',
      meter: '',
      limit: '10',
      period: 'monthly' as const,
      alert_threshold: '80',
      tz: '',
    };
    expect(validateQuotaForm(ok)).toEqual({});
    // A meter quota needs a meter key, not a feature.
    expect(validateQuotaForm({ ...ok, target: 'meter', feature: '', meter: 'active_users' })).toEqual({});
    expect(Object.keys(validateQuotaForm({ ...ok, target: 'meter', meter: 'Bad Key' }))).toEqual(['meter']);
    expect(Object.keys(validateQuotaForm({ ...ok, limit: '0', tenant_id: '', alert_threshold: '101', tz: 'Mars/Base' })).sort()).toEqual([
      'alert_threshold',
      'limit',
      'tenant_id',
      'tz',
    ]);
  });
});
