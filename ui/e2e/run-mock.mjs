#!/usr/bin/env node
/**
 * Runs the end-to-end test (e2e/run.mjs) against the in-memory mock server
 * (e2e/mock-server.mjs), which serves the built dashboard from ui/dist.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockServer } from './mock-server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const dist = resolve(HERE, '..', 'dist');
if (!existsSync(join(dist, 'index.html'))) {
  console.error('ui/dist is missing: run `npm run build` first.');
  console.log('0 passed, 1 failed');
  process.exit(2);
}

const adminKey = 'mock-admin-key-e2e';
const mock = await startMockServer({ port: 0, distDir: dist, adminKey });
console.log(`mock server on ${mock.url}`);
const child = spawn(process.execPath, [join(HERE, 'run.mjs')], {
  stdio: 'inherit',
  env: { ...process.env, METERING_E2E_URL: mock.url, METERING_E2E_KEY: adminKey },
});
child.on('exit', async (code) => {
  await mock.close();
  process.exit(code ?? 1);
});
