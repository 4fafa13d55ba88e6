// A partitioned asset in a real Chromium against a running `freshet serve`: the health bar on its
// page, a click through to the ranges of a segment and why they are stale, and the mini bar on
// its lineage node.
//
// Run with: node --test tests/e2e/partitions.test.mjs
// Environment: FRESHET_URL (the server), FRESHET_ASSET (a daily-partitioned asset whose
// partitions FRESHET_STALE (FIRST..LAST) are stale because an input partition changed, and whose
// earlier partitions from FRESHET_FRESH_FIRST are fresh), CHROMIUM, ARTIFACTS.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { assertNoBrowserErrors as assertNoProblems, attr, launch, watchedPage } from './browser.mjs';

const BASE = (process.env.FRESHET_URL || '').replace(/\/+$/, '');
const ASSET = process.env.FRESHET_ASSET || '';
const STALE = process.env.FRESHET_STALE || '';
const FRESH_FIRST = process.env.FRESHET_FRESH_FIRST || '';
const ARTIFACTS = process.env.ARTIFACTS || path.join('target', 'e2e-artifacts');
const WAIT = 15000;
const TEST_TIMEOUT = 45000;

let browser;
let page;
const problems = [];
const assertNoBrowserErrors = () => assertNoProblems(page, problems);

before(async () => {
  for (const [name, value] of [['FRESHET_URL', BASE], ['FRESHET_ASSET', ASSET], ['FRESHET_STALE', STALE]]) {
    assert.ok(value, `${name} must be set`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launch();
  page = await watchedPage(browser, problems, WAIT);
});

after(async () => {
  if (browser) await browser.close();
});

test('the asset page shows a health bar of its partitions', { timeout: TEST_TIMEOUT }, async () => {
  await page.goto(`${BASE}/#/assets/${encodeURIComponent(ASSET)}`);
  await page.locator('.partition-bar .segment').first().waitFor();
  const summary = (await page.locator('.partition-summary').textContent()).trim();
  assert.match(summary, /^By daily: stale: 2 of [\d,]+/, summary);
  assert.match((await page.locator('.summary').textContent()).trim(), /^partitions by daily: stale: 2 of /);
  const [first, last] = STALE.split('..');
  // Runs of one status each, in order: fresh, the stale ones, fresh, then the days events has not run (blocked).
  const segments = await page.locator('.partition-bar .segment').evaluateAll((rects) =>
    rects.map((r) => ({ status: r.dataset.status, first: r.dataset.first, last: r.dataset.last, width: Number(r.getAttribute('width')) })));
  const stale = segments.filter((s) => s.status === 'stale');
  assert.deepEqual(stale.map((s) => [s.first, s.last]), [[first, last]], JSON.stringify(segments));
  assert.equal(segments[0].status, 'fresh');
  assert.equal(segments[0].first, FRESH_FIRST);
  assert.equal(segments[segments.length - 1].status, 'blocked', 'the days events has not run wait');
  for (let i = 1; i < segments.length; i++) {
    assert.ok(segments[i].status !== segments[i - 1].status, 'neighbours differ');
  }
  const title = await page.locator(`.partition-bar .segment[data-status="stale"] title`).textContent();
  assert.equal(title, `${STALE}: stale (2 partitions)`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'partitions.png'), fullPage: true });
  await assertNoBrowserErrors();
});

test('clicking a segment lists its ranges and why they are stale', { timeout: TEST_TIMEOUT }, async () => {
  await page.locator('.partition-bar .segment[data-status="stale"]').click();
  await page.locator('.partition-detail h3', { hasText: STALE }).waitFor();
  const rows = await page.locator('.partition-detail table.partition-ranges tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
  assert.deepEqual(rows, [[STALE, '2', 'stale', 'events changed since they read it']]);
  await page.screenshot({ path: path.join(ARTIFACTS, 'partitions-opened.png'), fullPage: true });
  await assertNoBrowserErrors();
});

test('the lineage node of a partitioned asset carries a mini bar', { timeout: TEST_TIMEOUT }, async () => {
  await page.goto(`${BASE}/`);
  await page.locator('body[data-graph-ready="1"]').waitFor({ state: 'attached' });
  const node = page.locator(`g.node[data-key=${attr(ASSET)}]`);
  assert.equal(await node.getAttribute('data-status'), 'stale');
  const bars = await node.locator('.mini-bar rect').evaluateAll((rects) => rects.map((r) => r.dataset.status));
  assert.deepEqual(bars, ['fresh', 'blocked', 'stale']);
  const plain = page.locator('g.node[data-key="raw"] .mini-bar');
  assert.equal(await plain.count(), 0, 'an unpartitioned node has none');
  await assertNoBrowserErrors();
});
