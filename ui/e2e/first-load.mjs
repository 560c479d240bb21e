#!/usr/bin/env node
/**
 * Measures the dashboard's first load: a fresh browser profile (empty HTTP cache) opens the
 * overview of a signed-in user and the time is taken from navigation start until the page is
 * interactive with its data: the totals carry their values, the trend chart has drawn its
 * line, no skeleton is left and the range buttons are enabled.
 *
 *   METERING_E2E_URL=http://127.0.0.1:8000 METERING_E2E_KEY=<admin key> node e2e/first-load.mjs
 *
 * Optional: FIRST_LOAD_RUNS (per range, default 7), METERING_E2E_CHROMIUM.
 * Prints one line per range (24h, 7d, 30d) with the median, the worst run, the
 * DOMContentLoaded median and the bytes transferred. This is a measurement, not a test: it
 * asserts nothing about the time (see benches/dashboard.sh).
 */
import { chromium } from 'playwright-core';

const BASE = (process.env.METERING_E2E_URL ?? '').replace(/\/+$/, '');
const KEY = process.env.METERING_E2E_KEY ?? '';
const CHROMIUM = process.env.METERING_E2E_CHROMIUM || '/usr/bin/chromium';
const RUNS = Number(process.env.FIRST_LOAD_RUNS || 7);

if (!BASE || !KEY) {
  console.error('Set METERING_E2E_URL and METERING_E2E_KEY (an admin API key).');
  process.exit(2);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function once(browser, preset) {
  // A new context is a new profile: no HTTP cache, no service worker, empty storage.
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, timezoneId: 'UTC' });
  await context.addInitScript(
    ([key, preset]) => {
      window.sessionStorage.setItem('metering.apiKey', key);
      window.sessionStorage.setItem('metering.settings', JSON.stringify({ spec: { preset }, tz: 'UTC', live: true }));
    },
    [KEY, preset],
  );
  const page = await context.newPage();
  let bytes = 0;
  page.on('requestfinished', async (request) => {
    // The encoded (on the wire) body size.
    const sizes = await request.sizes().catch(() => null);
    if (sizes) bytes += sizes.responseBodySize + sizes.responseHeadersSize;
  });
  await page.goto(`${BASE}/`, { waitUntil: 'commit' });
  await page.waitForFunction(
    () => {
      const main = document.querySelector('main');
      if (!main || main.querySelector('.animate-pulse')) return false;
      const total = document.querySelector('[data-testid="total-events-value"]');
      if (!total || !total.getAttribute('data-value')) return false;
      // Recharts draws the trend as a path with a d attribute once it has laid out.
      if (!main.querySelector('.recharts-line-curve[d], .recharts-area-curve[d]')) return false;
      const button = [...document.querySelectorAll('button')].find((b) => b.textContent?.trim() === '30d');
      return Boolean(button && !button.disabled);
    },
    null,
    { polling: 'raf', timeout: 30000 },
  );
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return { ready: performance.now(), dcl: nav ? nav.domContentLoadedEventEnd : NaN };
  });
  await context.close();
  return { ...timing, bytes };
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
});
try {
  await once(browser, '7d'); // warm the server's own caches, not the browser's
  for (const preset of ['24h', '7d', '30d']) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await once(browser, preset));
    const ready = runs.map((r) => r.ready);
    console.log(
      `first load, overview ${preset}: interactive with data median ${median(ready).toFixed(0)} ms, ` +
        `worst ${Math.max(...ready).toFixed(0)} ms (${RUNS} runs, cold browser cache); ` +
        `DOMContentLoaded median ${median(runs.map((r) => r.dcl)).toFixed(0)} ms; ` +
        `${(median(runs.map((r) => r.bytes)) / 1024).toFixed(0)} KB transferred`,
    );
  }
} finally {
  await browser.close();
}
