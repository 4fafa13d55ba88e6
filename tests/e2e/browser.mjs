// What the browser tests share: Chromium launched as they need it (the browser binary from
// CHROMIUM, default /usr/bin/chromium, never downloaded), a page that records every console
// error, uncaught exception and CSP violation, and the check that there were none.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

/** A CSS attribute value in double quotes. */
export const attr = (value) => `"${String(value).replace(/["\\]/g, '\\$&')}"`;

/** Headless Chromium without a sandbox or background traffic. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
}

/**
 * A page of a new 1400x900 context that waits at most `wait` ms and pushes onto `problems` each
 * console error (but the favicon's), uncaught exception and, via `window.__cspViolations`, CSP
 * violation.
 */
export async function watchedPage(browser, problems, wait) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  // Init scripts are injected by the browser itself, so the page's CSP does not block this one.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(wait);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location().url || '';
    if (where.endsWith('/favicon.svg') || where.endsWith('/favicon.ico')) return;
    problems.push(`console error: ${msg.text()}${where ? ` (${where})` : ''}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  return page;
}

/** Fails with every problem `page` had so far (and forgets them). */
export async function assertNoBrowserErrors(page, problems) {
  const violations = await page.evaluate(() => window.__cspViolations || []).catch(() => []);
  const all = problems.splice(0).concat(violations.map((v) => `CSP violation: ${v}`));
  assert.deepEqual(all, [], `the browser reported errors:\n${all.join('\n')}`);
}
