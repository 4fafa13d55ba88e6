// The web view of a server listening beyond loopback (`freshet serve --addr 0.0.0.0:PORT`), in a
// real Chromium: nothing without a token, the sign-in form, the page with the read token (it
// reads everything, and asks for the action token before an action), and with the action token
// a materialization from the page.
//
// Run with: node --test tests/e2e/remote.test.mjs
// Environment: FRESHET_URL (the server, reached on 127.0.0.1), FRESHET_TOKEN (its action token),
// FRESHET_READ_TOKEN (its read token), FRESHET_STALE_ASSET (an asset stale by code), CHROMIUM,
// ARTIFACTS (a folder for screenshots).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.FRESHET_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.FRESHET_TOKEN || '';
const READ_TOKEN = process.env.FRESHET_READ_TOKEN || '';
const STALE = process.env.FRESHET_STALE_ASSET || '';
const ARTIFACTS = process.env.ARTIFACTS || path.join('target', 'e2e-artifacts');
const WAIT = 15000;
const TEST_TIMEOUT = 45000;

let browser;
const problems = [];

const attr = (value) => `"${String(value).replace(/["\\]/g, '\\$&')}"`;
const nodeSelector = (key) => `g.node[data-key=${attr(key)}]`;

before(async () => {
  for (const [name, value] of [['FRESHET_URL', BASE], ['FRESHET_TOKEN', TOKEN], ['FRESHET_READ_TOKEN', READ_TOKEN], ['FRESHET_STALE_ASSET', STALE]]) {
    assert.ok(value, `${name} must be set`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  if (browser) await browser.close();
});

/** A new browser tab of its own (its own cookies), reporting console errors and uncaught ones. */
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('console', (msg) => {
    // The sign-in page is answered 401 on purpose; the browser logs that as an error.
    if (msg.type() === 'error' && !/status of 40[13]/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  return page;
}

async function signIn(page, token) {
  const response = await page.goto(`${BASE}/`);
  assert.equal(response.status(), 401, 'the page needs a token');
  await page.locator('input[name="token"]').fill(token);
  await Promise.all([
    page.waitForURL(`${BASE}/`),
    page.locator('button[type="submit"]').click(),
  ]);
  await page.locator('body[data-graph-ready="1"]').waitFor({ state: 'attached' });
}

test('without a token the server shows only the sign-in form', { timeout: TEST_TIMEOUT }, async () => {
  for (const pathname of ['/api/assets', '/api/lineage', `/api/assets/${STALE}/preview`, '/metrics', '/app.js']) {
    const res = await fetch(`${BASE}${pathname}`);
    assert.equal(res.status, 401, `GET ${pathname} without a token`);
    const body = await res.text();
    assert.ok(!body.includes(STALE), `GET ${pathname} leaked: ${body}`);
  }
  const page = await newPage();
  const response = await page.goto(`${BASE}/`);
  assert.equal(response.status(), 401);
  const text = await page.locator('body').textContent();
  assert.match(text, /needs a token/);
  assert.ok(!text.includes(STALE), 'no asset is named on the sign-in page');
  // A wrong token is refused, on the same form.
  await page.locator('input[name="token"]').fill('not-this-servers-token-000');
  await page.locator('button[type="submit"]').click();
  await page.locator('#login-message', { hasText: 'not this server' }).waitFor();
  await page.screenshot({ path: path.join(ARTIFACTS, 'sign-in.png'), fullPage: true });
  await page.context().close();
});

test('with the read token the page shows the lineage and asks for the action token before a run', { timeout: TEST_TIMEOUT }, async () => {
  const page = await newPage();
  await signIn(page, READ_TOKEN);
  await page.locator(nodeSelector(STALE)).waitFor();
  assert.equal(await page.locator('g.node').count(), 10, 'every asset of the demo');
  await page.locator(nodeSelector(STALE)).click();
  await page.locator('.status-badge[data-status="stale"]').waitFor();
  await page.screenshot({ path: path.join(ARTIFACTS, 'remote-read.png'), fullPage: true });
  // The read token cannot act: the page asks for a token, and cancelling it starts nothing.
  await page.locator('#materialize').click();
  const dialog = page.locator('#token-dialog');
  await dialog.waitFor();
  await dialog.locator('button[value="cancel"], button:has-text("Cancel")').first().click();
  await page.locator('.status-badge[data-status="stale"]').waitFor();
  assert.deepEqual(problems.splice(0), []);
  await page.context().close();
});

test('with the action token the page materializes the stale asset', { timeout: TEST_TIMEOUT }, async () => {
  const page = await newPage();
  await signIn(page, TOKEN);
  await page.locator(nodeSelector(STALE)).click();
  await page.locator('.status-badge[data-status="stale"]').waitFor();
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/api/runs' && r.request().method() === 'POST'),
    page.locator('#materialize').click(),
  ]);
  assert.equal(response.status(), 202, 'the run was accepted');
  await page.locator('.status-badge[data-status="fresh"]').waitFor();
  await page.screenshot({ path: path.join(ARTIFACTS, 'remote-action.png'), fullPage: true });
  assert.deepEqual(problems.splice(0), []);
  await page.context().close();
});
