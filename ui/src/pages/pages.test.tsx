import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { LosslessNumber, stringify } from 'lossless-json';
import { App } from '../App';
import { KEY_STORAGE } from '../lib/auth';
import { sortTotals } from './Tenants';
import { applicableQuota } from './TenantDetail';
import { validateQuotaForm } from './Quotas';
import { webhookFormErrors } from './Webhooks';
import { ApiError, type Quota, type Webhook, type WebhookDelivery } from '../lib/api';

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

describe('Webhooks page', () => {
  const HOOK_A: Webhook = {
    id: 'wh-a',
    url: 'https://billing.example.com/hooks/metering',
    events: ['quota.threshold', 'quota.exceeded', 'quota.reset'],
    description: 'billing alerts',
    created_at: '2025-11-20T10:00:00Z',
    disabled_at: null,
  };
  const HOOK_B: Webhook = {
    id: 'wh-b',
    url: 'https://gone.example.com/hook',
    events: ['quota.exceeded'],
    description: null,
    created_at: '2025-11-21T10:00:00Z',
    disabled_at: '2025-11-22T10:00:00Z',
  };
  const delivery = (id: string, over: Partial<WebhookDelivery>): WebhookDelivery => ({
    id,
    message_id: `msg_${id}`,
    type: 'quota.threshold',
    status: 'delivered',
    attempts: 1,
    last_status_code: 200,
    created_at: '2025-11-22T09:00:00Z',
    delivered_at: '2025-11-22T09:00:01Z',
    ...over,
  });

  /** A fake of the webhook routes over `hooks` and `deliveries`; records every call but GETs of other routes. */
  function webhookServer(hooks: Webhook[], deliveries: Record<string, WebhookDelivery[]> = {}) {
    const calls: { method: string; path: string; body: string | null }[] = [];
    let createAnswer: { status: number; body: unknown } | null = null;
    const f = installFetch((url, init) => {
      const method = init.method ?? 'GET';
      const path = url.pathname + url.search;
      if (url.pathname.startsWith('/v1/meter/webhooks')) calls.push({ method, path, body: (init.body as string) ?? null });
      const rest = url.pathname.replace(/^\/v1\/meter\/webhooks\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
      if (url.pathname.startsWith('/v1/meter/webhooks')) {
        if (rest.length === 0 && method === 'GET') return { status: 200, body: { webhooks: hooks } };
        if (rest.length === 0 && method === 'POST') {
          if (createAnswer) return createAnswer;
          const req = JSON.parse(init.body as string) as { url: string; events: Webhook['events']; description?: string };
          const w: Webhook = {
            id: `wh-${hooks.length + 1}`,
            url: req.url,
            events: req.events,
            description: req.description ?? null,
            created_at: '2025-11-23T10:00:00Z',
            disabled_at: null,
          };
          hooks.push(w);
          return { status: 201, body: { ...w, secret: 'whsec_dGhlLW9uZS10aW1lLXNlY3JldA==' } };
        }
        const hook = hooks.find((h) => h.id === rest[0]);
        if (!hook) return { status: 404, body: { error: { code: 'NOT_FOUND', message: `webhook ${rest[0]}`, details: null } } };
        if (rest.length === 1 && method === 'DELETE') {
          hooks.splice(hooks.indexOf(hook), 1);
          return { status: 204 };
        }
        if (rest[1] === 'deliveries' && rest.length === 2) return { status: 200, body: { deliveries: deliveries[hook.id] ?? [] } };
        if (rest[1] === 'deliveries' && rest[3] === 'retry' && method === 'POST') {
          const d = (deliveries[hook.id] ?? []).find((x) => x.id === rest[2]);
          if (!d) return { status: 404, body: { error: { code: 'NOT_FOUND', message: 'delivery', details: null } } };
          d.status = 'pending';
          return { status: 202, body: d };
        }
      }
      return api(url);
    });
    return {
      f,
      calls,
      refuseCreation: (status: number, body: unknown) => {
        createAnswer = { status, body };
      },
    };
  }

  beforeEach(() => {
    window.sessionStorage.setItem(KEY_STORAGE, 'good-key');
    window.history.replaceState(null, '', '/webhooks');
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('is in the navigation and lists endpoints with their events and state', async () => {
    webhookServer([HOOK_A, HOOK_B]);
    render(<App />);
    await screen.findByRole('heading', { name: 'Webhooks', level: 1 });
    const nav = screen.getAllByRole('navigation', { name: 'Main' })[0];
    expect(within(nav).getByRole('link', { name: 'Webhooks' }).getAttribute('aria-current')).toBe('page');
    const rows = await screen.findAllByTestId('webhook-row');
    expect(rows.map((r) => r.dataset.url)).toEqual([HOOK_A.url, HOOK_B.url]);
    expect(rows[0].dataset.status).toBe('active');
    expect(rows[0].textContent).toContain('Active');
    expect(rows[0].textContent).toContain('quota.threshold');
    expect(rows[0].textContent).toContain('quota.reset');
    expect(rows[0].textContent).toContain('billing alerts');
    expect(rows[1].dataset.status).toBe('disabled');
    expect(rows[1].textContent).toContain('Disabled');
    expect(rows[1].textContent).not.toContain('quota.threshold');
    expect(document.title).toBe('Webhooks · Metering');
  });

  it('shows an empty state without endpoints', async () => {
    webhookServer([]);
    render(<App />);
    expect((await screen.findByTestId('empty-state')).textContent).toContain('No webhook endpoints');
  });

  it('creates an endpoint and shows its secret once', async () => {
    const hooks = [HOOK_A];
    const { calls } = webhookServer(hooks);
    render(<App />);
    await screen.findAllByTestId('webhook-row');
    fireEvent.click(screen.getByTestId('create-webhook'));
    const dialog = await screen.findByRole('dialog', { name: 'Add webhook endpoint' });
    // Every event type is chosen by default.
    for (const t of ['quota.threshold', 'quota.exceeded', 'quota.reset']) {
      expect((within(dialog).getByTestId(`event-${t}`) as HTMLInputElement).checked).toBe(true);
    }
    fireEvent.change(within(dialog).getByLabelText('URL'), { target: { value: ' https://ops.example.com/hook ' } });
    fireEvent.click(within(dialog).getByLabelText(/quota\.reset/));
    fireEvent.change(within(dialog).getByLabelText('Description (optional)'), { target: { value: 'ops pager' } });
    await act(async () => fireEvent.click(within(dialog).getByTestId('create-webhook-submit')));

    const post = calls.find((c) => c.method === 'POST');
    expect(JSON.parse(post!.body!)).toEqual({
      url: 'https://ops.example.com/hook',
      events: ['quota.threshold', 'quota.exceeded'],
      description: 'ops pager',
    });
    const secretDialog = await screen.findByRole('dialog', { name: 'Copy the signing secret' });
    expect(secretDialog.textContent).toContain('it will not be shown again');
    const secret = within(secretDialog).getByTestId('webhook-secret') as HTMLInputElement;
    expect(secret.value).toBe('whsec_dGhlLW9uZS10aW1lLXNlY3JldA==');
    expect(within(secretDialog).getByTestId('copy-webhook-secret').textContent).toContain('Copy');
    // Not closable by Escape: only the explicit button closes it.
    fireEvent.keyDown(document, { key: 'Escape' });
    expect(screen.getByRole('dialog', { name: 'Copy the signing secret' })).toBeTruthy();

    // The list shows the new endpoint, selected, without a secret.
    await waitFor(() => expect(screen.getAllByTestId('webhook-row')).toHaveLength(2));
    await screen.findByTestId('webhook-deliveries');

    fireEvent.click(within(secretDialog).getByTestId('close-webhook-secret'));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(document.body.innerHTML).not.toContain('whsec_');
    expect(JSON.stringify({ ...window.sessionStorage })).not.toContain('whsec_');
    expect(JSON.stringify({ ...window.localStorage })).not.toContain('whsec_');

    // Opening the form again starts blank, with no secret.
    fireEvent.click(screen.getByTestId('create-webhook'));
    const again = await screen.findByRole('dialog', { name: 'Add webhook endpoint' });
    expect((within(again).getByLabelText('URL') as HTMLInputElement).value).toBe('');
    expect(document.body.innerHTML).not.toContain('whsec_');
  });

  it('shows missing input and the server’s field errors next to the fields', async () => {
    const server = webhookServer([HOOK_A]);
    render(<App />);
    await screen.findAllByTestId('webhook-row');
    fireEvent.click(screen.getByTestId('create-webhook'));
    const dialog = await screen.findByRole('dialog', { name: 'Add webhook endpoint' });

    // Checked before sending: a URL and at least one event type.
    for (const t of ['quota.threshold', 'quota.exceeded', 'quota.reset']) fireEvent.click(within(dialog).getByTestId(`event-${t}`));
    await act(async () => fireEvent.click(within(dialog).getByTestId('create-webhook-submit')));
    expect(dialog.querySelector('#wh-url-error')?.textContent).toMatch(/Enter the URL/);
    expect(dialog.querySelector('#wh-events-error')?.textContent).toMatch(/at least one event type/);
    expect(within(dialog).getByLabelText('URL').getAttribute('aria-invalid')).toBe('true');
    expect(server.calls.some((c) => c.method === 'POST')).toBe(false);

    // Refused by the server: each field error goes next to its field.
    server.refuseCreation(422, {
      error: {
        code: 'VALIDATION_ERROR',
        message: 'url: must be an http or https URL',
        details: {
          errors: [
            { field: 'url', message: 'must be an http or https URL' },
            { field: 'description', message: 'must be at most 1024 characters' },
          ],
        },
      },
    });
    fireEvent.click(within(dialog).getByTestId('event-quota.threshold'));
    fireEvent.change(within(dialog).getByLabelText('URL'), { target: { value: 'ftp://files.example.com' } });
    await act(async () => fireEvent.click(within(dialog).getByTestId('create-webhook-submit')));
    await waitFor(() => expect(dialog.querySelector('#wh-url-error')?.textContent).toBe('must be an http or https URL'));
    expect(dialog.querySelector('#wh-events-error')).toBeNull();
    expect(dialog.querySelector('#wh-description-error')?.textContent).toBe('must be at most 1024 characters');
    expect(within(dialog).getByLabelText('URL').getAttribute('aria-describedby')).toBe('wh-url-error');
    // Every error has its field: no general alert, and the form stays open.
    expect(within(dialog).queryByRole('alert')).toBeNull();
    expect(screen.queryByTestId('webhook-secret')).toBeNull();

    // An error without fields shows as an alert.
    server.refuseCreation(403, { error: { code: 'FORBIDDEN', message: 'a key scoped to a tenant may not do this', details: null } });
    await act(async () => fireEvent.click(within(dialog).getByTestId('create-webhook-submit')));
    expect((await within(dialog).findByRole('alert')).textContent).toContain('scoped to a tenant');
  });

  it('deletes an endpoint after confirmation', async () => {
    const hooks = [HOOK_A, HOOK_B];
    const { calls } = webhookServer(hooks);
    render(<App />);
    const rows = await screen.findAllByTestId('webhook-row');
    fireEvent.click(within(rows[1]).getByRole('button', { name: `Delete endpoint ${HOOK_B.url}` }));
    const dialog = await screen.findByRole('dialog', { name: 'Delete webhook endpoint?' });
    expect(dialog.textContent).toContain(HOOK_B.url);
    // Cancel sends nothing.
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);

    fireEvent.click(within(rows[1]).getByRole('button', { name: `Delete endpoint ${HOOK_B.url}` }));
    await act(async () => fireEvent.click(screen.getByTestId('confirm-delete-webhook')));
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.path)).toEqual(['/v1/meter/webhooks/wh-b']);
    await waitFor(() => expect(screen.getAllByTestId('webhook-row').map((r) => r.dataset.id)).toEqual(['wh-a']));
    expect(screen.queryByRole('dialog')).toBeNull();
  });

  it('lists a selected endpoint’s deliveries, retries one and refreshes', async () => {
    const deliveries = {
      'wh-a': [
        delivery('d3', { type: 'quota.exceeded', status: 'failed', attempts: 8, last_status_code: 500, delivered_at: null }),
        delivery('d2', { status: 'pending', attempts: 2, last_status_code: null, delivered_at: null }),
        delivery('d1', {}),
      ],
    };
    const { calls } = webhookServer([HOOK_A, HOOK_B], deliveries);
    render(<App />);
    const rows = await screen.findAllByTestId('webhook-row');
    await act(async () => fireEvent.click(within(rows[0]).getByTestId('select-webhook')));
    expect(within(rows[0]).getByTestId('select-webhook').getAttribute('aria-current')).toBe('true');
    const card = await screen.findByTestId('webhook-deliveries');
    await within(card).findByTestId('deliveries-table');
    const list = within(card).getAllByTestId('delivery-row');
    expect(list.map((r) => [r.dataset.messageId, r.dataset.type, r.dataset.status, r.dataset.attempts])).toEqual([
      ['msg_d3', 'quota.exceeded', 'failed', '8'],
      ['msg_d2', 'quota.threshold', 'pending', '2'],
      ['msg_d1', 'quota.threshold', 'delivered', '1'],
    ]);
    expect(list[0].textContent).toContain('500');
    expect(list[0].textContent).toContain('failed');
    expect(list[2].textContent).toContain('200');
    const deliveryGets = () => calls.filter((c) => c.method === 'GET' && c.path.startsWith('/v1/meter/webhooks/wh-a/deliveries')).length;
    expect(calls.find((c) => c.path.startsWith('/v1/meter/webhooks/wh-a/deliveries'))?.path).toBe(
      '/v1/meter/webhooks/wh-a/deliveries?limit=50',
    );

    // Retry: POSTed, then the list is fetched again and shows the delivery pending.
    const before = deliveryGets();
    await act(async () => fireEvent.click(within(list[0]).getByRole('button', { name: 'Retry delivery msg_d3' })));
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.path)).toEqual(['/v1/meter/webhooks/wh-a/deliveries/d3/retry']);
    await waitFor(() => expect(deliveryGets()).toBeGreaterThan(before));
    await waitFor(() => expect(within(card).getAllByTestId('delivery-row')[0].dataset.status).toBe('pending'));
    expect(within(card).getByTestId('retry-notice').textContent).toContain('msg_d3');

    // Refresh fetches again.
    const beforeRefresh = deliveryGets();
    await act(async () => fireEvent.click(within(card).getByTestId('refresh-deliveries')));
    await waitFor(() => expect(deliveryGets()).toBeGreaterThan(beforeRefresh));
    await waitFor(() => expect((within(card).getByTestId('refresh-deliveries') as HTMLButtonElement).disabled).toBe(false));

    // Another endpoint without deliveries.
    await act(async () => fireEvent.click(within(rows[1]).getByTestId('select-webhook')));
    await waitFor(() => expect(screen.getByTestId('webhook-deliveries').dataset.webhook).toBe('wh-b'));
    expect((await within(screen.getByTestId('webhook-deliveries')).findByTestId('empty-state')).textContent).toContain(
      'No deliveries yet',
    );
  });

  it('shows a failed retry readably', async () => {
    const deliveries = { 'wh-a': [delivery('d1', {})] };
    const server = webhookServer([HOOK_A], deliveries);
    render(<App />);
    const rows = await screen.findAllByTestId('webhook-row');
    await act(async () => fireEvent.click(within(rows[0]).getByTestId('select-webhook')));
    const row = await screen.findByTestId('delivery-row');
    deliveries['wh-a'][0].id = 'gone';
    await act(async () => fireEvent.click(within(row).getByRole('button', { name: 'Retry delivery msg_d1' })));
    const alert = await within(screen.getByTestId('webhook-deliveries')).findByRole('alert');
    expect(alert.textContent).toContain('Retry failed');
    expect(alert.textContent).toContain('404');
    expect(server.calls.some((c) => c.path.endsWith('/retry'))).toBe(true);
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

  it('places webhook field errors next to the form fields', () => {
    const err = (details: unknown) => new ApiError(422, 'VALIDATION_ERROR', 'invalid', details);
    expect(
      webhookFormErrors(
        err({
          errors: [
            { field: 'events[1]', message: 'appears more than once' },
            { field: 'url', message: 'must name a host' },
          ],
        }),
      ),
    ).toEqual({ fields: { url: 'must name a host', events: 'appears more than once' }, other: false });
    expect(webhookFormErrors(err({ errors: [{ field: 'secret', message: 'unknown field' }] }))).toEqual({ fields: {}, other: true });
    expect(webhookFormErrors(err(null))).toEqual({ fields: {}, other: true });
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
