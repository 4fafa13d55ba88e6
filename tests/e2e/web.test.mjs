// The web view in a real Chromium against a running `freshet serve`.
//
// Run with: node --test tests/e2e/web.test.mjs
// Environment: FRESHET_URL (the server), FRESHET_TOKEN (its bearer token), FRESHET_STALE_ASSET
// (an asset the server reports as stale because its code changed), FRESHET_PROJECT_DIR (the
// project's folder, which the last test edits), CHROMIUM (the browser binary, default
// /usr/bin/chromium), ARTIFACTS (a folder for screenshots).
//
// The tests run in order on one page, as a user would: the graph, the stale asset's page,
// materializing it and watching it turn fresh without a reload, then the run it started, then
// previewing the version before it and the metadata a Rust asset records.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { assertNoBrowserErrors as assertNoProblems, attr, launch, watchedPage } from './browser.mjs';

const BASE = (process.env.FRESHET_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.FRESHET_TOKEN || '';
const STALE = process.env.FRESHET_STALE_ASSET || '';
const PROJECT_DIR = process.env.FRESHET_PROJECT_DIR || '';
const ARTIFACTS = process.env.ARTIFACTS || path.join('target', 'e2e-artifacts');
const WAIT = 15000;
const TEST_TIMEOUT = 45000;

let browser;
let page;
let runId = null;
const problems = [];

const nodeSelector = (key) => `g.node[data-key=${attr(key)}]`;
const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });

async function api(pathname) {
  const res = await fetch(`${BASE}${pathname}`);
  assert.equal(res.status, 200, `GET ${pathname}`);
  return res.json();
}

/** Fails with every console error, uncaught exception and CSP violation the page had so far. */
const assertNoBrowserErrors = () => assertNoProblems(page, problems);

before(async () => {
  for (const [name, value] of [['FRESHET_URL', BASE], ['FRESHET_TOKEN', TOKEN], ['FRESHET_STALE_ASSET', STALE]]) {
    assert.ok(value, `${name} must be set`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launch();
  page = await watchedPage(browser, problems, WAIT);
});

after(async () => {
  if (browser) await browser.close();
});

test('the lineage graph shows every asset with its status', { timeout: TEST_TIMEOUT }, async () => {
  const truth = await api('/api/assets');
  assert.ok(truth.assets.length > 0, 'the project has assets');
  const stale = truth.assets.find((a) => a.key === STALE);
  assert.ok(stale, `${STALE} is an asset`);
  assert.equal(stale.display_status, 'stale', `${STALE} starts stale`);

  await page.goto(`${BASE}/`);
  await page.locator('body[data-graph-ready="1"]').waitFor({ state: 'attached' });
  for (const a of truth.assets) {
    const node = page.locator(nodeSelector(a.key));
    assert.equal(await node.count(), 1, `one node for ${a.key}`);
    assert.equal(await node.getAttribute('data-status'), a.display_status, `status of ${a.key}`);
  }
  assert.equal(await page.locator('g.node').count(), truth.assets.length, 'no other nodes');
  await shot('graph.png');
  await assertNoBrowserErrors();
});

test('clicking the stale asset opens its page saying why it is stale', { timeout: TEST_TIMEOUT }, async () => {
  await page.locator(nodeSelector(STALE)).click();
  await page.waitForFunction((key) => location.hash === `#/assets/${encodeURIComponent(key)}`, STALE);
  await page.locator('.status-badge[data-status="stale"]').waitFor();
  assert.equal((await page.locator('.asset-key').textContent()).trim(), STALE);
  await page.locator('.causes li', { hasText: /\bcode\b/ }).first().waitFor();
  await shot('asset.png');
  await assertNoBrowserErrors();
});

test('materializing from the asset page turns it fresh without a reload', { timeout: TEST_TIMEOUT }, async () => {
  await page.evaluate(() => {
    window.__marker = 1;
  });
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/api/runs' && r.request().method() === 'POST'),
    page.locator('#materialize').click(),
  ]);
  assert.equal(response.status(), 202, 'the run was accepted');
  assert.equal(response.request().headers().authorization, `Bearer ${TOKEN}`, 'the page sent its token');
  runId = (await response.json()).run_id;
  assert.ok(runId, 'the server returned a run id');

  await page.locator(`.toast a[href=${attr(`#/runs/${encodeURIComponent(runId)}`)}]`).waitFor();
  await page.locator('.status-badge[data-status="fresh"]').waitFor();
  assert.equal(await page.evaluate(() => window.__marker), 1, 'the page was not reloaded');
  await assertNoBrowserErrors();
});

test('the run is listed and its page shows the asset materialized', { timeout: TEST_TIMEOUT }, async () => {
  assert.ok(runId, 'the previous test started a run');
  await page.locator('nav a[href="#/runs"]').click();
  const row = page.locator(`tr[data-run-id=${attr(runId)}]`);
  await row.waitFor();
  await row.locator('a.run-link').click();
  await page.waitForFunction((id) => location.hash === `#/runs/${encodeURIComponent(id)}`, runId);
  await page.locator(`.step[data-asset=${attr(STALE)}][data-state="materialized"]`).waitFor();
  await page.locator('.logs').waitFor();
  await shot('run.png');
  await assertNoBrowserErrors();
});

test('an older version can be previewed from the history', { timeout: TEST_TIMEOUT }, async () => {
  // The stale asset (daily_revenue, whose rows have an `orders` column) has two versions now: the
  // project's set-up wrote one, the run of the test before the last wrote the other.
  const history = await api(`/api/assets/${encodeURIComponent(STALE)}/history`);
  const versions = history.items.filter((m) => m.kind === 'materialization');
  assert.ok(versions.length >= 2, `${STALE} has two versions: ${JSON.stringify(versions.map((m) => m.id))}`);
  const [latest, older] = versions;

  await page.goto(`${BASE}/#/assets/${encodeURIComponent(STALE)}`);
  await page.locator('table.history tr[data-version] .preview-version').nth(1).waitFor();
  await page.locator(`table.history tr[data-current="1"][data-version=${attr(latest.id)}]`).waitFor();
  assert.equal(await page.locator('table.history tr[data-collected="1"]').count(), 0, 'no version was collected');
  await page.locator(`.preview-version[data-version=${attr(older.id)}]`).click();

  const card = page.locator(`.preview-card[data-preview-version=${attr(older.id)}]`);
  await card.waitFor();
  assert.ok(await card.locator('table.preview tbody tr').count() >= 1, 'the older version has rows');
  const columns = (await card.locator('table.preview th .col-name').allTextContents()).map((c) => c.trim());
  assert.ok(columns.includes('orders'), `the columns include orders: ${columns.join(', ')}`);
  await shot('version-preview.png');

  await card.locator('.preview-current').click();
  await page.locator('.preview-card[data-preview-version="current"]').waitFor();
  await assertNoBrowserErrors();
});

test('numeric metadata of a Rust asset is plotted over time', { timeout: TEST_TIMEOUT }, async () => {
  await page.goto(`${BASE}/#/assets/web_sessions`);
  const panel = page.locator('g.metadata-panel[data-name="sessions"]');
  await panel.waitFor();
  const history = await api('/api/assets/web_sessions/history');
  const versions = history.items.filter((m) => m.kind === 'materialization');
  assert.ok(versions.length >= 1, 'web_sessions was materialized');
  const sessions = versions[0].metadata && versions[0].metadata.sessions;
  assert.equal(typeof sessions, 'number', `its latest version records sessions: ${JSON.stringify(versions[0].metadata)}`);
  assert.ok(sessions > 0, `sessions is positive: ${sessions}`);
  const plotted = versions.filter((m) => typeof (m.metadata || {}).sessions === 'number').length;
  assert.equal(await panel.locator('circle').count(), plotted, 'a point for each version with a count of sessions');
  await shot('metadata.png');
  await assertNoBrowserErrors();
});

/** GET / with a given Host header (fetch cannot set one). */
function getWithHost(host) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${BASE}/`, { headers: { Host: host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
  });
}

test('the server refuses runs without the token and serves the page with a strict CSP', { timeout: TEST_TIMEOUT }, async () => {
  const body = JSON.stringify({ selection: STALE, stale_only: false });
  const headers = { 'Content-Type': 'application/json' };
  const anonymous = await fetch(`${BASE}/api/runs`, { method: 'POST', headers, body });
  assert.equal(anonymous.status, 401, 'no token: 401');
  assert.equal(typeof (await anonymous.json()).error, 'string');
  const wrong = await fetch(`${BASE}/api/runs`, {
    method: 'POST',
    headers: { ...headers, Authorization: `Bearer not-${TOKEN}` },
    body,
  });
  assert.equal(wrong.status, 403, 'wrong token: 403');

  const index = await fetch(`${BASE}/`);
  assert.equal(index.status, 200);
  const csp = index.headers.get('content-security-policy') || '';
  for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]) {
    assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
  }
  assert.ok(!csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'), `CSP allows nothing inline: ${csp}`);
  assert.ok((await index.text()).includes(`content="${TOKEN}"`), 'a loopback page carries the token');

  // Another host name (as after DNS rebinding) never gets the token.
  const foreign = await getWithHost('freshet.example');
  assert.ok(foreign.status !== 200 || !foreign.body.includes(TOKEN), 'a page for another host does not carry the token');
});

test('the automation page lists the sources automation watches and the asset page its condition', { timeout: TEST_TIMEOUT }, async () => {
  await page.locator('nav a[href="#/automation"]').click();
  await page.waitForFunction(() => location.hash === '#/automation');
  await page.locator('table.sensors tr[data-source="raw_orders"]').waitFor();
  await page.locator('.automation-page', { hasText: 'No asset has an automation condition' }).waitFor();
  await shot('automation.png');
  await page.goto(`${BASE}/#/assets/${encodeURIComponent(STALE)}`);
  await page.locator('.card.automation', { hasText: 'Materialized only on request' }).waitFor();
  await assertNoBrowserErrors();
});

test('a broken SQL file shows as a broken asset with its error, a broken freshet.toml as the project\'s error, and the fixes clear both, without a reload', { timeout: TEST_TIMEOUT }, async () => {
  assert.ok(PROJECT_DIR, 'FRESHET_PROJECT_DIR must be set');
  await page.goto(`${BASE}/`);
  await page.locator('body[data-graph-ready="1"]').waitFor({ state: 'attached' });
  const broken = path.join(PROJECT_DIR, 'sql', 'broken_edit.sql');
  const toml = path.join(PROJECT_DIR, 'freshet.toml');
  const goodToml = fs.readFileSync(toml, 'utf8');
  fs.writeFileSync(broken, 'SELEC nothing');
  try {
    // The rest of the project loads; the asset says its file does not.
    await page.locator(`${nodeSelector('broken_edit')}[data-status="broken"]`).waitFor({ timeout: WAIT });
    await page.locator(nodeSelector(STALE)).waitFor();
    await page.goto(`${BASE}/#/assets/broken_edit`);
    await page.locator('.load-error', { hasText: 'sql/broken_edit.sql: invalid SQL' }).waitFor({ timeout: WAIT });
    assert.ok(await page.locator('#materialize').isDisabled(), 'a broken asset cannot be materialized from its page');
    await shot('broken-asset.png');
    // A freshet.toml that does not parse: the last good project is still shown, and why.
    fs.writeFileSync(toml, '[project\n');
    await page.locator('#project-error:not([hidden])', { hasText: 'freshet.toml' }).waitFor({ timeout: WAIT });
    await page.goto(`${BASE}/`);
    await page.locator(nodeSelector(STALE)).waitFor();
    await shot('project-error.png');
  } finally {
    fs.writeFileSync(toml, goodToml);
    fs.rmSync(broken, { force: true });
  }
  await page.locator('#project-error').waitFor({ state: 'hidden', timeout: WAIT });
  await page.locator(nodeSelector('broken_edit')).waitFor({ state: 'detached', timeout: WAIT });
  await assertNoBrowserErrors();
});

test('a source whose files are deleted turns missing with why, and fresh again when they are back, without a reload', { timeout: 90000 }, async () => {
  assert.ok(PROJECT_DIR, 'FRESHET_PROJECT_DIR must be set');
  await page.goto(`${BASE}/`);
  await page.locator('body[data-graph-ready="1"]').waitFor({ state: 'attached' });
  const file = path.join(PROJECT_DIR, 'data', 'customers.csv');
  const saved = fs.readFileSync(file);
  await page.locator(`${nodeSelector('raw_customers')}[data-status="fresh"]`).waitFor({ timeout: WAIT });
  fs.rmSync(file);
  try {
    // The server looks at sources' files every 10 s.
    await page.locator(`${nodeSelector('raw_customers')}[data-status="missing"]`).waitFor({ timeout: 30000 });
    await page.goto(`${BASE}/#/assets/raw_customers`);
    await page.locator('.files-gone', { hasText: `Its files are gone: no files match ${file}` }).waitFor({ timeout: WAIT });
    await shot('files-gone.png');
  } finally {
    fs.writeFileSync(file, saved);
  }
  await page.goto(`${BASE}/`);
  await page.locator(`${nodeSelector('raw_customers')}[data-status="fresh"]`).waitFor({ timeout: 30000 });
  await assertNoBrowserErrors();
});
