#!/usr/bin/env node
/**
 * End-to-end test of the dashboard, driving Debian's chromium through
 * playwright-core (no browser download).
 *
 *   METERING_E2E_URL=http://127.0.0.1:8000 METERING_E2E_KEY=<admin key> npm run e2e
 *
 * Optional: METERING_E2E_SCREENSHOTS (folder, default ui/e2e/screenshots),
 * METERING_E2E_CHROMIUM (default /usr/bin/chromium), METERING_E2E_CORS_PORT (a free port
 * whose origin, http://127.0.0.1:<port>, the server lists in --cors-origin: a page served
 * there must reach the API, a page on another port must be blocked; the CORS test is
 * skipped without it).
 * Prints one line per test and "N passed, N failed" as its last line; exits
 * non-zero when a test failed.
 */
import { isSafeNumber, parse as parseLosslessJson } from 'lossless-json';
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.METERING_E2E_URL ?? '').replace(/\/+$/, '');
const KEY = process.env.METERING_E2E_KEY ?? '';
const SHOTS = resolve(process.env.METERING_E2E_SCREENSHOTS || join(HERE, 'screenshots'));
const CHROMIUM = process.env.METERING_E2E_CHROMIUM || '/usr/bin/chromium';
const CORS_PORT = Number(process.env.METERING_E2E_CORS_PORT || 0);
const RUN = Date.now().toString(36);
const TENANT = `e2e-${RUN}`;
const FEATURE = 'e2e_feature';

if (!BASE || !KEY) {
  console.error('Set METERING_E2E_URL (the server, e.g. http://127.0.0.1:8000) and METERING_E2E_KEY (an admin API key).');
  console.error('To run against the bundled mock server instead: npm run e2e:mock');
  console.log('0 passed, 1 failed');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  console.log('0 passed, 1 failed');
  process.exit(2);
}

// ------------------------------------------------------------ tiny harness
const results = [];
let currentPage = null;

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`not ok - ${name} (${Date.now() - t0} ms)`);
    console.log(`  ${String(err?.stack ?? err).split('\n').slice(0, 6).join('\n  ')}`);
    if (currentPage) {
      await currentPage
        .screenshot({ path: join(SHOTS, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`), fullPage: true })
        .catch(() => {});
    }
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertEqual(actual, expected, msg) {
  if (actual !== expected) throw new Error(`${msg}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function eventually(fn, { timeout = 8000, interval = 200, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v !== false && v !== undefined && v !== null) return v;
      last = new Error(`${what} not met`);
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${last?.message ?? last}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

// ------------------------------------------------------------- API helpers
async function api(method, path, body, key = KEY) {
  const res = await fetch(`${BASE}/v1/meter${path}`, {
    method,
    headers: { 'X-API-Key': key, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try {
    // Decimals are exact JSON numbers: keep the ones a double cannot carry as text.
    json = text ? parseLosslessJson(text, null, (n) => (isSafeNumber(n) ? Number(n) : n)) : null;
  } catch {
    json = null;
  }
  return { status: res.status, json };
}

/** Canonical decimal text of a quantity (number or decimal string). */
function canon(v) {
  let s = typeof v === 'number' ? String(v) : String(v).trim();
  if (/e/i.test(s)) s = Number(v).toFixed(9);
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s;
}

// --------------------------------------------------------- page helpers
async function shot(page, name) {
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, key = KEY) {
  await page.goto(`${BASE}/`);
  await page.getByLabel('API key').fill(key);
  await page.getByLabel('API key').press('Enter');
  // The sign-in page has a <main> and an <h1> too: wait for the signed-in layout's.
  await page.locator('#main h1').first().waitFor();
}

async function goto(page, path) {
  // A full load of `path`; the key stays in the tab's sessionStorage, so the page is signed in.
  await page.goto(`${BASE}${path}`);
  await page.locator('#main h1').first().waitFor();
}

async function settle(page) {
  // Wait for skeletons to go away.
  await page.waitForFunction(() => !document.querySelector('main .animate-pulse'), null, { timeout: 15000 });
}

/** Serves an empty page on 127.0.0.1:`port` (0: any free port); resolves to its origin. */
function pageServer(port) {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>another origin</title><p>another origin</p>');
  });
  return new Promise((resolveServer, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      resolveServer({ origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() });
    });
  });
}

/**
 * A webhook receiver on 127.0.0.1 (any free port): answers 200 and records each
 * request's method, path, headers and body. Resolves to { url, requests, close }.
 */
function webhookReceiver() {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  return new Promise((resolveServer, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolveServer({
        url: `http://127.0.0.1:${server.address().port}`,
        requests,
        close: () => {
          server.closeAllConnections?.();
          server.close();
        },
      });
    });
  });
}

/** Checks a Standard Webhooks signature (`v1,<base64 HMAC-SHA256>`) against the endpoint's secret. */
function signatureValid(secret, headers, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key)
    .update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`)
    .digest('base64');
  return String(headers['webhook-signature'] ?? '')
    .split(' ')
    .some((s) => s === `v1,${expected}`);
}

/** In a page on `origin`, GETs a page of events and POSTs one event with the key. */
async function crossOriginCalls(context, origin, tenant) {
  const other = await context.newPage();
  try {
    await other.goto(`${origin}/`);
    return await other.evaluate(
      async ({ base, key, tenant }) => {
        const call = async (method, path, body) => {
          try {
            const res = await fetch(`${base}/v1/meter${path}`, {
              method,
              headers: { 'X-API-Key': key, ...(body ? { 'Content-Type': 'application/json' } : {}) },
              body: body ? JSON.stringify(body) : undefined,
            });
            return { status: res.status, requestId: res.headers.get('x-request-id') };
          } catch (err) {
            // The browser withholds a cross-origin answer it may not show: a TypeError.
            return { blocked: String(err) };
          }
        };
        return {
          list: await call('GET', '/events?page_size=1'),
          post: await call('POST', '/events', { tenant_id: tenant, resource: 'cors', feature: 'page', quantity: 1 }),
        };
      },
      { base: BASE, key: KEY, tenant },
    );
  } finally {
    await other.close();
  }
}

// ------------------------------------------------------------------ tests
async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const userDataDir = mkdtempSync(join(tmpdir(), 'metering-e2e-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 860 },
    timezoneId: 'UTC',
    locale: 'en-US',
  });
  context.setDefaultTimeout(15000);
  const pageErrors = [];
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  currentPage = page;

  // Something to find: a tenant of this run with one event (and metadata).
  let sample = null;

  try {
    await test('server answers and the dashboard is served at / with SPA fallback', async () => {
      const root = await fetch(`${BASE}/`);
      assertEqual(root.status, 200, 'GET /');
      assert((root.headers.get('content-type') ?? '').includes('text/html'), 'GET / is HTML');
      const deep = await fetch(`${BASE}/tenants/some-tenant`);
      assertEqual(deep.status, 200, 'SPA fallback for /tenants/some-tenant');
      const r = await api('GET', '/events?page_size=1');
      assertEqual(r.status, 200, 'GET /v1/meter/events with the admin key');
    });

    await test('a full load of /webhooks serves the dashboard (SPA fallback)', async () => {
      const res = await fetch(`${BASE}/webhooks`);
      const type = res.headers.get('content-type') ?? '';
      assert(
        res.status === 200 && type.includes('text/html'),
        `GET /webhooks answered ${res.status} ${type}: the server must list "webhooks" among the dashboard's routes`,
      );
    });

    await test('sign-in rejects a wrong key with a readable 401', async () => {
      await page.goto(`${BASE}/`);
      await shot(page, 'desktop-01-sign-in');
      await page.getByLabel('API key').fill('definitely-not-a-key');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const alert = page.getByRole('alert');
      await alert.waitFor();
      const text = await alert.innerText();
      assert(/401/.test(text) && /not accepted/i.test(text), `error text: ${text}`);
      await shot(page, 'desktop-02-sign-in-error');
    });

    await test('signs in with the keyboard and keeps the key in sessionStorage', async () => {
      await page.getByLabel('API key').fill(KEY);
      await page.getByLabel('API key').press('Enter');
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      const stored = await page.evaluate(() => sessionStorage.getItem('metering.apiKey'));
      assertEqual(stored, KEY, 'sessionStorage key');
    });

    await test('overview totals equal GET /v1/meter/aggregates for the same range (24h, 7d, 30d)', async () => {
      for (const [preset, shotName] of [
        ['24h', 'desktop-03-overview-24h'],
        ['30d', 'desktop-04-overview-30d'],
        ['7d', 'desktop-05-overview-7d'],
      ]) {
        await page.getByRole('button', { name: preset, exact: true }).click();
        await settle(page);
        await eventually(
          async () => {
            const label = page.getByTestId('range-label');
            const start = await label.getAttribute('data-start');
            const end = await label.getAttribute('data-end');
            const windowType = await label.getAttribute('data-window');
            const tz = await label.getAttribute('data-tz');
            const qs = new URLSearchParams({ window_type: windowType, start_date: start, end_date: end, tz, group_by: '' });
            const r = await api('GET', `/aggregates?${qs}`);
            assertEqual(r.status, 200, 'aggregates status');
            const events = await page.getByTestId('total-events-value').getAttribute('data-value');
            const quantity = await page.getByTestId('total-quantity-value').getAttribute('data-value');
            const eventsText = (await page.getByTestId('total-events-value').innerText()).replace(/,/g, '');
            const quantityText = (await page.getByTestId('total-quantity-value').innerText()).replace(/,/g, '');
            assertEqual(events, String(r.json.summary.total_events), `${preset} total events (data)`);
            assertEqual(eventsText, String(r.json.summary.total_events), `${preset} total events (shown)`);
            assertEqual(canon(quantity), canon(r.json.summary.total_quantity), `${preset} total quantity (data)`);
            assertEqual(quantityText, canon(r.json.summary.total_quantity), `${preset} total quantity (shown)`);
            return true;
          },
          { timeout: 10000, what: `${preset} overview totals to match the API` },
        );
        await shot(page, shotName);
      }
    });

    await test('a new event shows up on the overview within 3 seconds', async () => {
      const before = Number(await page.getByTestId('total-events-value').getAttribute('data-value'));
      const r = await api('POST', '/events', {
        tenant_id: TENANT,
        resource: 'e2e',
        feature: FEATURE,
        quantity: 1,
        metadata: { source: 'dashboard-e2e', run: RUN, nested: { ok: true, list: [1, 2, 3] } },
      });
      assertEqual(r.status, 201, 'POST /events');
      const t0 = Date.now();
      await eventually(
        async () => Number(await page.getByTestId('total-events-value').getAttribute('data-value')) >= before + 1,
        { timeout: 3500, interval: 100, what: 'the new event on the overview' },
      );
      console.log(`  (appeared after ${Date.now() - t0} ms)`);
    });

    await test('tenants page lists tenants with a chart and sorts', async () => {
      await page.getByRole('link', { name: 'Tenants' }).first().click();
      await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
      await settle(page);
      const rows = page.locator('[data-testid="tenants-table"] tbody tr');
      await rows.first().waitFor();
      assert((await rows.count()) > 0, 'tenant rows');
      await page.getByRole('button', { name: 'Tenant', exact: true }).click();
      const first = await rows.first().getAttribute('data-tenant');
      const names = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-tenant')));
      assertEqual(first, [...names].sort((a, b) => a.localeCompare(b))[0], 'sorted by name');
      await page.getByRole('button', { name: 'Quantity', exact: true }).click();
      await shot(page, 'desktop-06-tenants');
    });

    await test('events can be filtered by tenant and a metadata view opened', async () => {
      const r = await api('GET', '/events?page_size=1');
      sample = r.json.events[0];
      assert(sample, 'at least one event exists');
      await page.getByRole('link', { name: 'Events' }).first().click();
      await page.getByRole('heading', { name: 'Events', level: 1 }).waitFor();
      await page.getByLabel('Tenant', { exact: true }).fill(sample.tenant_id);
      await page.getByRole('button', { name: 'Apply' }).click();
      await eventually(
        async () => {
          const tenants = await page
            .locator('[data-testid="event-row"]')
            .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-tenant')));
          return tenants.length > 0 && tenants.every((t) => t === sample.tenant_id) && page.url().includes('tenant_id=');
        },
        { what: `only ${sample.tenant_id} rows` },
      );
      const expected = await api('GET', `/events?page_size=1&tenant_id=${encodeURIComponent(sample.tenant_id)}`);
      const ev = expected.json.events[0];
      const row = page.locator('[data-testid="event-row"]').first();
      await row.getByRole('button', { name: /Show details/ }).click();
      const view = page.getByTestId('event-details').first();
      await view.waitFor();
      const json = view.getByTestId('json-view');
      if (ev.metadata && Object.keys(ev.metadata).length) {
        const shown = JSON.parse(await json.innerText());
        assertEqual(JSON.stringify(shown), JSON.stringify(ev.metadata), 'metadata shown');
      }
      const expandedAttr = await row.getByRole('button', { name: /Hide details/ }).getAttribute('aria-expanded');
      assertEqual(expandedAttr, 'true', 'aria-expanded');
      await shot(page, 'desktop-07-events-filtered');
    });

    await test('events of this run show their metadata and page with the cursor', async () => {
      await page.goto(`${BASE}/events?tenant_id=${encodeURIComponent(TENANT)}`);
      const row = page.locator('[data-testid="event-row"]').first();
      await row.waitFor();
      await row.getByRole('button', { name: /Show details/ }).click();
      const shown = JSON.parse(await page.getByTestId('json-view').first().innerText());
      assertEqual(shown.run, RUN, 'metadata.run');
      // Cursor paging over all events.
      await page.goto(`${BASE}/events`);
      await page.locator('[data-testid="event-row"]').first().waitFor();
      const firstIds = await page.locator('[data-testid="event-row"] time').allInnerTexts();
      const next = page.getByTestId('next-page');
      if (await next.isEnabled()) {
        await next.click();
        await page.getByText('Page 2').waitFor();
        await eventually(async () => {
          const ids = await page.locator('[data-testid="event-row"] time').allInnerTexts();
          return ids.length > 0 && ids.join() !== firstIds.join();
        }, { what: 'second page' });
        await page.getByRole('button', { name: 'Newer' }).click();
        await page.getByText('Page 1').waitFor();
      }
    });

    await test('an admin amends and voids events in the UI; listings, history and aggregates agree', async () => {
      const tenant = `${TENANT}-fix`;
      const [a, b] = [`${RUN}-a`, `${RUN}-b`];
      const now = new Date();
      const r = await api('POST', '/events', {
        events: [
          { id: a, tenant_id: tenant, resource: 'e2e', feature: FEATURE, quantity: 2, timestamp: now.toISOString() },
          { id: b, tenant_id: tenant, resource: 'e2e', feature: FEATURE, quantity: 3, timestamp: now.toISOString() },
        ],
      });
      assertEqual(r.status, 201, 'POST /events');
      await goto(page, `/events?tenant_id=${encodeURIComponent(tenant)}`);
      await page.getByRole('button', { name: `Show details of event ${a}` }).click();
      await page.getByTestId('amend-event').click();
      await page.getByLabel('Quantity').fill('0.5');
      await page.getByLabel(/^Reason/).fill('e2e amend');
      await page.getByTestId('confirm-amend').click();
      const notice = page.getByTestId('correction-notice');
      await eventually(async () => /replaced by/.test(await notice.innerText()), { what: 'the amend notice' });
      const history = await api('GET', `/events/${encodeURIComponent(a)}/history`);
      assertEqual(history.status, 200, 'history');
      assertEqual(history.json.events.length, 2, 'chain length');
      assertEqual(history.json.events[0].void_reason, 'e2e amend', 'original voided with the reason');
      assertEqual(canon(history.json.events[1].quantity), '0.5', 'replacement quantity');
      assertEqual(history.json.events[1].amends, a, 'replacement amends the original');

      await page.getByRole('button', { name: `Show details of event ${b}` }).click();
      await page.getByTestId('void-event').click();
      await page.getByLabel(/^Reason/).fill('e2e void');
      await page.getByTestId('confirm-void').click();
      await eventually(async () => /was voided/.test(await notice.innerText()), { what: 'the void notice' });
      // Listed without the voided events; both come back with the toggle.
      await eventually(
        async () => (await page.locator('[data-testid="event-row"]').count()) === 1,
        { what: 'only the replacement listed' },
      );
      await page.getByTestId('show-voided').check();
      await eventually(
        async () => (await page.locator('[data-testid="event-row"][data-voided="true"]').count()) === 2,
        { what: 'two voided rows with the toggle' },
      );
      await shot(page, 'desktop-07b-events-corrected');
      const day = now.toISOString().slice(0, 10);
      const next = new Date(now.getTime() + 86_400_000).toISOString().slice(0, 10);
      const agg = await api(
        'GET',
        `/aggregates?tenant_id=${encodeURIComponent(tenant)}&window_type=daily&start_date=${day}&end_date=${next}&group_by=`,
      );
      assertEqual(agg.status, 200, 'aggregates');
      assertEqual(canon(agg.json.summary.total_quantity), '0.5', 'the tenant total counts only the replacement');
      assertEqual(agg.json.summary.total_events, 1, 'one event counts');
    });

    await test('a quota created in the UI shows its bar on the tenant page (amber, then red)', async () => {
      await page.getByRole('link', { name: 'Quotas' }).first().click();
      await page.getByRole('heading', { name: 'Quotas', level: 1 }).waitFor();
      await settle(page);
      await shot(page, 'desktop-08-quotas');
      await page.getByTestId('new-quota').click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Tenant', { exact: true }).fill(TENANT);
      await dialog.getByLabel('Feature', { exact: true }).fill(FEATURE);
      await dialog.getByLabel('Limit').fill('2');
      await dialog.getByLabel('Period').selectOption('monthly');
      await dialog.getByLabel('Alert threshold (%)').fill('50');
      await shot(page, 'desktop-09-quota-dialog');
      await dialog.getByTestId('save-quota').click();
      await dialog.waitFor({ state: 'detached' });
      const row = page.locator(`[data-testid="quota-row"][data-tenant="${TENANT}"]`);
      await row.waitFor();
      const listed = await api('GET', '/quotas');
      assert(listed.json.quotas.some((q) => q.tenant_id === TENANT && q.feature === FEATURE), 'quota stored');

      await row.getByRole('link', { name: TENANT }).click();
      await page.getByTestId('tenant-title').waitFor();
      const bar = page.locator(`[data-testid="quota-bar"][data-feature="${FEATURE}"]`);
      await bar.waitFor();
      await eventually(async () => (await bar.getAttribute('data-level')) === 'alert', { what: 'amber bar (1 of 2, alert at 50%)' });
      assert((await bar.innerText()).includes('resets'), 'reset time shown');
      await shot(page, 'desktop-10-tenant-detail-amber');

      // Edit the limit down to the usage: the bar turns red.
      await page.getByRole('link', { name: 'Quotas' }).first().click();
      await row.getByRole('button', { name: /Edit quota/ }).click();
      await page.getByRole('dialog').getByLabel('Limit').fill('1');
      await page.getByRole('dialog').getByTestId('save-quota').click();
      await page.getByRole('dialog').waitFor({ state: 'detached' });
      await page.goto(`${BASE}/tenants/${encodeURIComponent(TENANT)}`);
      await eventually(async () => (await bar.getAttribute('data-level')) === 'exceeded', { what: 'red bar (limit reached)' });
      await settle(page);
      await shot(page, 'desktop-11-tenant-detail-red');
    });

    await test('the quota can be deleted', async () => {
      await page.getByRole('link', { name: 'Quotas' }).first().click();
      const row = page.locator(`[data-testid="quota-row"][data-tenant="${TENANT}"]`);
      await row.getByRole('button', { name: /Delete quota/ }).click();
      await shot(page, 'desktop-12-quota-delete');
      await page.getByTestId('confirm-delete').click();
      await row.waitFor({ state: 'detached' });
      const listed = await api('GET', '/quotas');
      assert(!listed.json.quotas.some((q) => q.tenant_id === TENANT), 'quota gone from the API');
    });

    await test('a quota on a meter is made in the UI, shows the meter value on the tenant page, and keeps its meter', async () => {
      // The tenant's calls through the API, counted by the demo's `api_calls` meter.
      const calls = Array.from({ length: 3 }, (_, i) => ({
        tenant_id: TENANT,
        resource: 'api',
        feature: 'api_call',
        id: `meter-quota-${RUN}-${i}`,
      }));
      assert((await api('POST', '/events', { events: calls })).status === 201, 'calls ingested');
      await page.getByRole('link', { name: 'Quotas' }).first().click();
      await page.getByTestId('new-quota').click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Tenant', { exact: true }).fill(TENANT);
      await dialog.getByLabel('Quota on').selectOption('meter');
      await dialog.getByLabel('Meter', { exact: true }).fill('api_calls');
      await dialog.getByLabel('Limit').fill('3');
      await dialog.getByTestId('save-quota').click();
      await dialog.waitFor({ state: 'detached' });
      const row = page.locator(`[data-testid="quota-row"][data-tenant="${TENANT}"][data-meter="api_calls"]`);
      await row.waitFor();
      const listed = await api('GET', '/quotas');
      const stored = listed.json.quotas.find((q) => q.tenant_id === TENANT && q.meter === 'api_calls');
      assert(stored && stored.feature === null, 'a meter quota stored');
      const del = await api('DELETE', '/meters/api_calls');
      assert(del.status === 409, `the meter is kept while the quota uses it (${del.status})`);

      await row.getByRole('link', { name: TENANT }).click();
      const bar = page.locator('[data-testid="quota-bar"][data-feature="meter api_calls"]');
      await bar.waitFor();
      const check = await api('POST', '/validate', { tenant_id: TENANT, meter: 'api_calls' });
      assert(check.json.current_usage === 3, `the API counts 3 calls (${JSON.stringify(check.json)})`);
      await eventually(async () => (await bar.getAttribute('data-level')) === 'exceeded', { what: 'red bar (3 calls of 3)' });
      assert((await bar.innerText()).includes('3'), 'the bar shows the meter value');
      await shot(page, 'desktop-12b-tenant-meter-quota');

      await page.getByRole('link', { name: 'Quotas' }).first().click();
      await row.getByRole('button', { name: /Delete quota/ }).click();
      await page.getByTestId('confirm-delete').click();
      await row.waitFor({ state: 'detached' });
    });

    await test('meters: the demo meters are listed, a query equals the API, one is defined, refused and deleted', async () => {
      await page.getByRole('link', { name: 'Meters' }).first().click();
      await page.getByRole('heading', { name: 'Meters', level: 1 }).waitFor();
      await settle(page);
      for (const key of ['active_users', 'api_calls', 'llm_tokens', 'peak_storage']) {
        await page.locator(`[data-testid="meter-list-row"][data-key="${key}"]`).waitFor();
      }
      await page.locator('[data-testid="meter-list-row"][data-key="llm_tokens"]').getByTestId('select-meter').click();
      const detail = page.locator('[data-testid="meter-detail"][data-meter="llm_tokens"]');
      await detail.waitFor();
      await detail.getByLabel('Group by').selectOption('model');
      await eventually(
        async () => {
          const label = page.getByTestId('range-label');
          const qs = new URLSearchParams({
            start_date: await label.getAttribute('data-start'),
            end_date: await label.getAttribute('data-end'),
            tz: await label.getAttribute('data-tz'),
            window_type: 'daily',
            group_by: 'model',
          });
          const r = await api('GET', `/meters/llm_tokens/query?${qs}`);
          assertEqual(r.status, 200, 'meter query status');
          assert(r.json.data.length > 0, 'the demo tokens have rows');
          const rows = page.getByTestId('meter-row');
          assertEqual(await rows.count(), r.json.data.length, 'rows shown');
          for (let i = 0; i < r.json.data.length; i += 1) {
            const want = r.json.data[i];
            const got = rows.nth(i);
            assertEqual(await got.getAttribute('data-window'), want.window_start, `row ${i} window`);
            assertEqual(await got.getAttribute('data-group'), JSON.stringify(want.group), `row ${i} group`);
            assertEqual(canon(await got.getAttribute('data-value')), canon(want.value), `row ${i} value`);
          }
          return true;
        },
        { timeout: 15000, what: 'meter rows to match the API' },
      );
      await shot(page, 'desktop-13-meters');

      const key = `e2e_${RUN}`.toLowerCase();
      await page.getByTestId('new-meter').click();
      let dialog = page.getByRole('dialog');
      await dialog.getByLabel('Key').fill(key);
      await dialog.getByLabel('Aggregation').selectOption('unique_count');
      await dialog.getByLabel('Value').fill('metadata.user');
      await dialog.getByLabel('Dimensions (optional)').fill('source');
      await dialog.getByTestId('save-meter').click();
      await dialog.waitFor({ state: 'detached' });
      await page.locator(`[data-testid="meter-list-row"][data-key="${key}"]`).waitFor();
      const stored = await api('GET', `/meters/${key}`);
      assertEqual(stored.status, 200, 'the new meter is stored');
      assertEqual(stored.json.aggregation, 'unique_count', 'its aggregation');
      await page.locator(`[data-testid="meter-detail"][data-meter="${key}"]`).waitFor();

      // unique_count over the quantity is refused with the field named, and nothing is stored.
      await page.getByTestId('new-meter').click();
      dialog = page.getByRole('dialog');
      await dialog.getByLabel('Key').fill(`${key}_bad`);
      await dialog.getByLabel('Aggregation').selectOption('unique_count');
      await dialog.getByLabel('Value').fill('quantity');
      await dialog.getByTestId('save-meter').click();
      const alert = dialog.getByTestId('error-alert');
      await alert.waitFor();
      assert((await alert.innerText()).includes('value'), 'the error names the field');
      await shot(page, 'desktop-14-meter-refused');
      assertEqual((await api('GET', `/meters/${key}_bad`)).status, 404, 'the refused meter is not stored');
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });

      const row = page.locator(`[data-testid="meter-list-row"][data-key="${key}"]`);
      await row.getByRole('button', { name: /Delete meter/ }).click();
      await page.getByTestId('confirm-delete-meter').click();
      await row.waitFor({ state: 'detached' });
      assertEqual((await api('GET', `/meters/${key}`)).status, 404, 'the meter is gone from the API');
    });

    await test('downloads: the events export and the overview CSV are the API\'s files', async () => {
      const fetchText = async (path, accept) => {
        const res = await fetch(`${BASE}/v1/meter${path}`, { headers: { 'X-API-Key': KEY, Accept: accept } });
        assertEqual(res.status, 200, `${path} status`);
        return res.text();
      };
      const downloaded = async (button) => {
        const [download] = await Promise.all([page.waitForEvent('download'), button.click()]);
        return { name: download.suggestedFilename(), text: readFileSync(await download.path(), 'utf8') };
      };
      await goto(page, `/events?tenant_id=${encodeURIComponent(TENANT)}`);
      await settle(page);
      const events = page.getByTestId('download-events');
      const file = await downloaded(events);
      assertEqual(file.name, 'events.csv', 'events file name');
      assert(file.text.startsWith('id,tenant_id,resource,feature,quantity,timestamp,created_at,metadata\r\n'), 'CSV header');
      assert(file.text.includes(TENANT), 'this run\'s events are in the file');
      assertEqual(file.text, await fetchText(await events.getAttribute('data-path'), 'text/csv'), 'events file = API export');

      await goto(page, '/');
      await settle(page);
      const aggregates = page.getByTestId('download-aggregates');
      const csv = await downloaded(aggregates);
      assertEqual(csv.name, 'aggregates.csv', 'aggregates file name');
      assert(csv.text.startsWith('window_start,window_end,window_type,tenant_id,resource,feature,total_quantity,event_count\r\n'), 'aggregates header');
      assertEqual(csv.text, await fetchText(await aggregates.getAttribute('data-path'), 'text/csv'), 'aggregates file = API CSV');
    });

    await test('an API key is created (secret shown once, copyable) and revoked', async () => {
      await page.getByRole('link', { name: 'API keys' }).first().click();
      await page.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
      await settle(page);
      await shot(page, 'desktop-13-api-keys');
      await page.getByTestId('create-key').click();
      const dialog = page.getByRole('dialog');
      const name = `e2e-key-${RUN}`;
      await dialog.getByLabel('Name').fill(name);
      await dialog.getByLabel('Role').selectOption('read');
      await dialog.getByTestId('create-key-submit').click();
      const secretInput = page.getByTestId('new-key-secret');
      await secretInput.waitFor();
      const secret = await secretInput.inputValue();
      assert(secret.length >= 16, 'secret shown');
      await page.getByTestId('copy-key').click();
      await page.getByRole('button', { name: 'Copied', exact: true }).or(page.getByRole('button', { name: 'Press Ctrl+C', exact: true })).waitFor();
      await shot(page, 'desktop-14-api-key-secret');
      assertEqual((await api('GET', '/events?page_size=1', undefined, secret)).status, 200, 'new key works');
      await page.getByTestId('close-secret').click();
      const row = page.locator(`[data-testid="key-row"][data-name="${name}"]`);
      await row.waitFor();
      assert(!(await page.content()).includes(secret), 'secret no longer in the page');
      await row.getByRole('button', { name: /Revoke key/ }).click();
      await page.getByTestId('confirm-revoke').click();
      await eventually(
        async () => (await row.count()) === 0 || /revoked/.test(await row.innerText()),
        { what: 'key gone or marked revoked' },
      );
      assertEqual((await api('GET', '/events?page_size=1', undefined, secret)).status, 401, 'revoked key refused');
    });

    await test('a webhook endpoint gets a signed quota.threshold alert, shown delivered, retried with the same id, and is deleted', async () => {
      const receiver = await webhookReceiver();
      const tenant = `${TENANT}-hook`;
      let quotaId = null;
      try {
        const hookUrl = `${receiver.url}/hooks/${RUN}`;
        await page.getByRole('link', { name: 'Webhooks' }).first().click();
        await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
        await settle(page);

        // The server refuses a URL that is not http(s): its message shows next to the field.
        await page.getByTestId('create-webhook').click();
        const dialog = page.getByRole('dialog', { name: 'Add webhook endpoint' });
        for (const t of ['quota.threshold', 'quota.exceeded', 'quota.reset']) {
          assert(await dialog.getByTestId(`event-${t}`).isChecked(), `${t} is chosen by default`);
        }
        await dialog.getByLabel('URL').fill('ftp://files.example.com/hook');
        await dialog.getByTestId('create-webhook-submit').click();
        const urlError = dialog.locator('#wh-url-error');
        await urlError.waitFor();
        assert(/http or https/.test(await urlError.innerText()), `URL error: ${await urlError.innerText()}`);
        assertEqual(await dialog.getByLabel('URL').getAttribute('aria-invalid'), 'true', 'URL marked invalid');
        await shot(page, 'desktop-15-webhook-refused');

        await dialog.getByLabel('URL').fill(hookUrl);
        await dialog.getByLabel('Description (optional)').fill(`e2e ${RUN}`);
        await dialog.getByTestId('create-webhook-submit').click();
        const secretInput = page.getByTestId('webhook-secret');
        await secretInput.waitFor();
        const secret = await secretInput.inputValue();
        assert(secret.startsWith('whsec_') && secret.length > 16, 'a whsec_ secret is shown');
        assert(/will not be shown again/.test(await page.getByRole('dialog').innerText()), 'the dialog says it is shown once');
        await page.getByTestId('copy-webhook-secret').click();
        await page
          .getByRole('button', { name: 'Copied', exact: true })
          .or(page.getByRole('button', { name: 'Press Ctrl+C', exact: true }))
          .waitFor();
        await shot(page, 'desktop-16-webhook-secret');
        const listed = await api('GET', '/webhooks');
        assertEqual(listed.status, 200, 'GET /webhooks');
        const stored = listed.json.webhooks.find((w) => w.url === hookUrl);
        assert(stored, 'the endpoint is stored');
        assert(!JSON.stringify(listed.json).includes(secret), 'the listing has no secret');
        await page.getByTestId('close-webhook-secret').click();
        await page.getByRole('dialog').waitFor({ state: 'detached' });
        assert(!(await page.content()).includes(secret), 'secret no longer in the page');
        const storage = await page.evaluate(() => JSON.stringify({ ...sessionStorage, ...localStorage }));
        assert(!storage.includes(secret), 'secret not in web storage');

        const row = page.locator(`[data-testid="webhook-row"][data-id="${stored.id}"]`);
        await row.waitFor();
        assertEqual(await row.getAttribute('data-status'), 'active', 'endpoint active');
        assert((await row.innerText()).includes('quota.threshold'), 'events listed');
        await row.getByTestId('select-webhook').click();
        const card = page.locator(`[data-testid="webhook-deliveries"][data-webhook="${stored.id}"]`);
        await card.waitFor();

        // A quota of 10 with a threshold at 50 %, and 6 units of usage: one quota.threshold message.
        const put = await api('PUT', '/quotas', {
          tenant_id: tenant,
          resource: null,
          feature: FEATURE,
          limit: 10,
          period: 'monthly',
          thresholds: [{ percent: 50 }],
        });
        assert(put.status === 200 || put.status === 201, `PUT /quotas: ${put.status} ${JSON.stringify(put.json)}`);
        quotaId = put.json.id;
        const ingest = await api('POST', '/events', { tenant_id: tenant, resource: 'e2e', feature: FEATURE, quantity: 6 });
        assertEqual(ingest.status, 201, 'POST /events');

        const t0 = Date.now();
        const first = await eventually(
          () => receiver.requests.find((r) => r.body.includes(tenant) && r.body.includes('quota.threshold')),
          { timeout: 10000, interval: 100, what: 'the receiver to get the quota.threshold message' },
        );
        console.log(`  (received after ${Date.now() - t0} ms)`);
        const msgId = first.headers['webhook-id'];
        assertEqual(first.method, 'POST', 'method');
        assert(typeof msgId === 'string' && msgId.length > 0, 'webhook-id header');
        assert(/^\d+$/.test(String(first.headers['webhook-timestamp'])), 'webhook-timestamp header');
        assert(String(first.headers['webhook-signature']).startsWith('v1,'), 'webhook-signature starts with v1,');
        assert(signatureValid(secret, first.headers, first.body), 'the signature verifies with the secret');
        const payload = JSON.parse(first.body);
        assertEqual(payload.type, 'quota.threshold', 'payload type');
        assertEqual(payload.id, msgId, 'payload id = webhook-id');
        assertEqual(payload.data.tenant_id, tenant, 'payload tenant');

        const delivery = card.locator(`[data-testid="delivery-row"][data-message-id="${msgId}"]`);
        await eventually(
          async () => {
            await card.getByTestId('refresh-deliveries').click();
            return (await delivery.count()) === 1 && (await delivery.getAttribute('data-status')) === 'delivered';
          },
          { timeout: 10000, interval: 500, what: 'the delivery shown delivered' },
        );
        assertEqual(await delivery.getAttribute('data-type'), 'quota.threshold', 'delivery type');
        assert((await delivery.innerText()).includes('200'), 'last status code 200 shown');
        await settle(page);
        await shot(page, 'desktop-17-webhook-deliveries');

        // Retry: the same message again, with the same webhook-id.
        await delivery.getByRole('button', { name: `Retry delivery ${msgId}` }).click();
        await eventually(async () => /queued to be sent again/.test(await card.getByTestId('retry-notice').innerText()), {
          what: 'the retry notice',
        });
        await eventually(() => receiver.requests.filter((r) => r.headers['webhook-id'] === msgId).length >= 2, {
          timeout: 10000,
          interval: 100,
          what: 'the receiver to get the message again',
        });
        const again = receiver.requests.filter((r) => r.headers['webhook-id'] === msgId)[1];
        assertEqual(again.body, first.body, 'the same message body');
        assert(signatureValid(secret, again.headers, again.body), 'the resent message verifies too');
        await eventually(
          async () => {
            await card.getByTestId('refresh-deliveries').click();
            return (
              (await delivery.getAttribute('data-status')) === 'delivered' && Number(await delivery.getAttribute('data-attempts')) >= 2
            );
          },
          { timeout: 10000, interval: 500, what: 'the delivery delivered again, two attempts' },
        );
        const deliveries = await api('GET', `/webhooks/${stored.id}/deliveries?limit=10`);
        const apiDelivery = deliveries.json.deliveries.find((d) => d.message_id === msgId);
        assertEqual(apiDelivery?.status, 'delivered', 'the API agrees');
        await shot(page, 'desktop-18-webhook-retried');

        // Delete, after confirming.
        await row.getByRole('button', { name: `Delete endpoint ${hookUrl}` }).click();
        const confirm = page.getByRole('dialog', { name: 'Delete webhook endpoint?' });
        await confirm.waitFor();
        await shot(page, 'desktop-19-webhook-delete');
        await confirm.getByTestId('confirm-delete-webhook').click();
        await row.waitFor({ state: 'detached' });
        await card.waitFor({ state: 'detached' });
        const after = await api('GET', '/webhooks');
        assert(!after.json.webhooks.some((w) => w.id === stored.id), 'the endpoint is gone from the API');
      } finally {
        receiver.close();
        if (quotaId) await api('DELETE', `/quotas/${encodeURIComponent(quotaId)}`).catch(() => {});
      }
    });

    await test('phone width: every page renders without horizontal overflow', async () => {
      const phone = await context.newPage();
      currentPage = phone;
      phone.on('pageerror', (e) => pageErrors.push(String(e)));
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`${BASE}/`);
      await shot(phone, 'phone-01-sign-in');
      await signIn(phone);
      const pages = [
        ['/', 'phone-02-overview'],
        ['/tenants', 'phone-03-tenants'],
        [`/tenants/${encodeURIComponent(sample?.tenant_id ?? TENANT)}`, 'phone-04-tenant-detail'],
        ['/events', 'phone-05-events'],
        ['/quotas', 'phone-06-quotas'],
        ['/meters', 'phone-06b-meters'],
        ['/keys', 'phone-07-api-keys'],
      ];
      for (const [path, name] of pages) {
        await goto(phone, path);
        await settle(phone);
        const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert(overflow <= 1, `${path} overflows horizontally by ${overflow}px`);
        await shot(phone, name);
      }
      // Webhooks through the menu (a full load of /webhooks is checked on its own).
      await phone.getByRole('button', { name: 'Open menu' }).click();
      await phone.getByRole('dialog', { name: 'Navigation' }).getByRole('link', { name: 'Webhooks' }).click();
      await phone.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
      await settle(phone);
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 1, `/webhooks overflows horizontally by ${overflow}px`);
      await shot(phone, 'phone-06c-webhooks');
      await phone.getByRole('button', { name: 'Open menu' }).click();
      await phone.getByRole('dialog', { name: 'Navigation' }).waitFor();
      await shot(phone, 'phone-08-menu');
      await phone.getByRole('dialog', { name: 'Navigation' }).getByRole('link', { name: 'Tenants' }).click();
      await phone.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
      await phone.close();
      currentPage = page;
    });

    await test('sign-out clears the key', async () => {
      await page.getByTestId('sign-out').click();
      await page.getByLabel('API key').waitFor();
      const stored = await page.evaluate(() => sessionStorage.getItem('metering.apiKey'));
      assertEqual(stored, null, 'sessionStorage after sign-out');
    });

    await test('a page on a listed origin calls the API; on another origin the browser blocks it (CORS)', async () => {
      if (!CORS_PORT) {
        console.log('  skipped: METERING_E2E_CORS_PORT is not set');
        return;
      }
      const allowed = await pageServer(CORS_PORT);
      const unknown = await pageServer(0);
      try {
        const okTenant = `${TENANT}-cors-ok`;
        const ok = await crossOriginCalls(context, allowed.origin, okTenant);
        assertEqual(ok.list.status, 200, `GET from ${allowed.origin}: ${JSON.stringify(ok.list)}`);
        assertEqual(ok.post.status, 201, `POST from ${allowed.origin}: ${JSON.stringify(ok.post)}`);
        assert(ok.list.requestId, 'X-Request-Id is exposed to the page');
        const stored = await api('GET', `/events?tenant_id=${okTenant}&page_size=5`);
        assertEqual(stored.json?.events?.length, 1, 'the allowed page stored its event');

        const blockedTenant = `${TENANT}-cors-blocked`;
        const blocked = await crossOriginCalls(context, unknown.origin, blockedTenant);
        assert(blocked.list.blocked, `GET from ${unknown.origin} was not blocked: ${JSON.stringify(blocked.list)}`);
        assert(blocked.post.blocked, `POST from ${unknown.origin} was not blocked: ${JSON.stringify(blocked.post)}`);
        // The POST's preflight was refused, so the browser never sent it.
        const none = await api('GET', `/events?tenant_id=${blockedTenant}&page_size=5`);
        assertEqual(none.json?.events?.length, 0, 'the blocked page stored nothing');
      } finally {
        allowed.close();
        unknown.close();
      }
    });

    await test('no uncaught errors in the page', async () => {
      assertEqual(pageErrors.length, 0, `page errors: ${pageErrors.join(' | ')}`);
    });
  } finally {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

main()
  .catch((err) => {
    console.log(`not ok - harness: ${err?.stack ?? err}`);
    results.push({ name: 'harness', ok: false });
  })
  .finally(() => {
    const passed = results.filter((r) => r.ok).length;
    const failed = results.length - passed;
    console.log(`screenshots: ${SHOTS}`);
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  });
