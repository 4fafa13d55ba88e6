// Measures how fast the lineage graph first appears in a real Chromium.
//
// Run with: CHROMIUM=/usr/bin/chromium node tests/e2e/first_paint.mjs http://127.0.0.1:3000/ [runs=5]
//
// Each run opens the page in a fresh browser context (empty cache) and reads the browser's own
// timings: first contentful paint, the `freshet-graph-painted` mark the page sets once the graph
// is drawn, DOMContentLoaded, and how long the /api/lineage request took. Prints figures only.

import { chromium } from 'playwright-core';

const url = process.argv[2];
const runs = Number(process.argv[3] || 5);
if (!url || !Number.isInteger(runs) || runs < 1) {
  console.error('usage: node tests/e2e/first_paint.mjs URL [runs=5]');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
});

const rows = [];
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(
      () => performance.getEntriesByName('freshet-graph-painted', 'mark').length > 0,
      null,
      { timeout: 60000, polling: 50 },
    );
    rows.push(await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      const mark = performance.getEntriesByName('freshet-graph-painted', 'mark')[0];
      const lineage = performance.getEntriesByType('resource')
        .filter((r) => new URL(r.name).pathname === '/api/lineage')[0];
      return {
        fcp: fcp ? fcp.startTime : NaN,
        graph: mark.startTime,
        dcl: nav ? nav.domContentLoadedEventEnd : NaN,
        lineage: lineage ? lineage.duration : NaN,
        nodes: document.querySelectorAll('g.node').length,
      };
    }));
    await context.close();
  }
} finally {
  await browser.close();
}

const ms = (v) => (Number.isFinite(v) ? v.toFixed(1) : '-');
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const cols = [
  ['run', 5],
  ['first paint ms', 15],
  ['graph painted ms', 17],
  ['DOMContentLoaded ms', 20],
  ['/api/lineage ms', 16],
  ['nodes', 7],
];
const line = (cells) => cells.map((c, i) => String(c).padStart(cols[i][1])).join(' ');
console.log(`first paint of ${url}, ${runs} run(s), times from navigation start`);
console.log(line(cols.map((c) => c[0])));
rows.forEach((r, i) => console.log(line([i + 1, ms(r.fcp), ms(r.graph), ms(r.dcl), ms(r.lineage), r.nodes])));
console.log(line(['median', ms(median(rows.map((r) => r.fcp))), ms(median(rows.map((r) => r.graph))),
  ms(median(rows.map((r) => r.dcl))), ms(median(rows.map((r) => r.lineage))), median(rows.map((r) => r.nodes))]));
