// Freshet's web view, what every page shares: helpers and formatting, escaping, the API and its
// token, toasts, the markup the pages have in common, and the shared state (the selection and the
// view on the page). Every piece of text from the server goes through esc() (or textContent)
// before it reaches the page.

// ---------------------------------------------------------------------------------------------
// Helpers

export const $ = (selector, root = document) => root.querySelector(selector);
export const view = $('#view');
export const enc = encodeURIComponent;
export const SVG_NS = 'http://www.w3.org/2000/svg';

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Escapes text for HTML and SVG markup, in element content and in quoted attributes. */
export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export function debounce(fn, ms) {
  let timer = 0;
  const run = () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
  run.cancel = () => clearTimeout(timer);
  return run;
}

const pad = (n) => String(n).padStart(2, '0');

/** "2026-11-22 10:03:12 UTC"; with `minutes`, seconds are left out when they are zero. */
export function fmtTime(iso, minutes = false) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  let s = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  if (!minutes || d.getUTCSeconds() !== 0) s += `:${pad(d.getUTCSeconds())}`;
  return `${s} UTC`;
}

/** "3h 12m" for a span of milliseconds, two units at most. */
export function fmtSpan(ms) {
  let s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return h ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m ? `${h}h ${m}m` : `${h}h`;
  return s ? `${m}m ${s}s` : `${m}m`;
}

/** "3m ago" or "in 3h 12m". */
export function relTime(iso, now = Date.now()) {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return '';
  const ms = t - now;
  if (Math.abs(ms) < 5000) return 'just now';
  return ms < 0 ? `${fmtSpan(ms)} ago` : `in ${fmtSpan(ms)}`;
}

/** A time as "2026-11-22 10:03:12 UTC · 3m ago"; the relative part is kept current. */
export function timeHTML(iso, minutes = false) {
  if (!iso) return '<span class="muted">—</span>';
  return `<time datetime="${esc(iso)}" title="${esc(iso)}">${esc(fmtTime(iso, minutes))}</time>` +
    ` <span class="rel" data-t="${esc(iso)}">${esc(relTime(iso))}</span>`;
}

export function fmtDuration(ms) {
  if (ms == null) return '—';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return fmtSpan(ms);
}

export function fmtBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export const fmtInt = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));
export const shortId = (id) => (id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id || '');
export const shortVersion = (v) => (v ? v.slice(0, 8) : '—');

export const assetHref = (key) => `#/assets/${enc(key)}`;
export const runHref = (id) => `#/runs/${enc(id)}`;
export const assetLink = (key) => `<a class="asset-link" href="${esc(assetHref(key))}">${esc(key)}</a>`;
export const runLink = (id) => `<a class="run-link mono" href="${esc(runHref(id))}" title="${esc(id)}">${esc(shortId(id))}</a>`;

/** Text with the first whole-word occurrence of `key` turned into a link to its asset. */
export function linkKeyIn(text, key) {
  if (key) {
    const word = /[\w/.-]/;
    let from = 0;
    for (;;) {
      const i = text.indexOf(key, from);
      if (i < 0) break;
      const before = text[i - 1];
      const after = text[i + key.length];
      if ((!before || !word.test(before)) && (!after || !word.test(after) || after === '.')) {
        return esc(text.slice(0, i)) + assetLink(key) + esc(text.slice(i + key.length));
      }
      from = i + 1;
    }
  }
  return esc(text);
}

// ---------------------------------------------------------------------------------------------
// The API

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readError(res) {
  try {
    const body = await res.json();
    if (body && typeof body.error === 'string') return body.error;
  } catch (_) {
    // Not JSON: fall back to the status line.
  }
  return `${res.status} ${res.statusText || 'error'}`.trim();
}

export async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: 'application/json' } });
  if (!res.ok) throw new ApiError(res.status, await readError(res));
  return res.json();
}

// The token for POSTs: one typed into this tab wins over the page's meta tag, and a meta token
// the server refused is not offered again.
const TOKEN_KEY = 'freshet-token';
let metaTokenRefused = false;

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // Storage disabled: the token lasts until the next prompt.
  }
}

function metaToken() {
  const meta = document.querySelector('meta[name="freshet-token"]');
  return (meta && meta.content.trim()) || '';
}

let memoryToken = '';
function currentToken() {
  return storedToken() || memoryToken || (metaTokenRefused ? '' : metaToken());
}

/** Asks for the token; resolves to it, or to null when the user cancels. */
function askToken(message) {
  const dialog = $('#token-dialog');
  const input = dialog.querySelector('input[name="token"]');
  dialog.querySelector('.token-message').textContent = message;
  input.value = '';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const token = dialog.returnValue === 'ok' ? input.value.trim() : '';
      if (token) {
        memoryToken = token;
        storeToken(token);
      }
      resolve(token || null);
    }, { once: true });
    dialog.showModal();
    input.focus();
  });
}

/** POSTs JSON with the bearer token, asking for a token when there is none or it is refused.
 * Resolves to the response body, or null when the user gave up; throws ApiError otherwise. */
export async function post(path, body) {
  let token = currentToken();
  let message = 'Enter the access token of this Freshet server.';
  for (;;) {
    if (!token) {
      token = await askToken(message);
      if (!token) return null;
    }
    const res = await fetch(path, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        Authorization: `Bearer ${token}`,
      },
      body: JSON.stringify(body),
    });
    if (res.status === 401 || res.status === 403) {
      message = await readError(res);
      if (token === storedToken() || token === memoryToken) {
        storeToken('');
        memoryToken = '';
      } else {
        metaTokenRefused = true;
      }
      token = '';
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, await readError(res));
    return res.json();
  }
}

// ---------------------------------------------------------------------------------------------
// Toasts

export function toast(html, kind = 'ok', ms = 8000) {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.innerHTML = `<div class="toast-body">${html}</div><button type="button" class="toast-close" aria-label="Dismiss">×</button>`;
  const remove = () => el.remove();
  el.querySelector('.toast-close').addEventListener('click', remove);
  el.addEventListener('click', (e) => {
    if (e.target.closest('a')) remove();
  });
  $('#toasts').prepend(el);
  setTimeout(remove, ms);
  return el;
}

/** Starts a run (or observation) from a button, reporting the outcome in a toast. */
export async function startRun(button, path, body, what) {
  if (button) button.disabled = true;
  try {
    const data = await post(path, body);
    if (data && data.run_id) {
      toast(`Run <a href="${esc(runHref(data.run_id))}" class="mono">${esc(shortId(data.run_id))}</a> queued` +
        `<div class="toast-detail">${esc(what)}</div>`);
      scheduleRefresh();
    }
    return data;
  } catch (e) {
    toast(`<strong>Could not start: </strong>${esc(e.message)}`, 'error', 15000);
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Markup shared by the pages

export function errorHTML(e, what) {
  const status = e instanceof ApiError ? e.status : 0;
  const msg = e instanceof ApiError ? e.message : 'The server could not be reached.';
  return `<div class="error-box" data-http-status="${status}"><strong>${esc(what)}</strong> ${esc(msg)}</div>`;
}

export function kv(rows) {
  const body = rows.filter((r) => r).map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('');
  return `<dl class="kv">${body}</dl>`;
}

export function table(headers, rows, cls = '') {
  return `<div class="table-wrap"><table class="${cls}"><thead><tr>${headers.map((h) => `<th>${h}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></div>`;
}

// ---------------------------------------------------------------------------------------------
// Shared state

// The selection typed in the header, kept for this tab; the lineage shows only what it selects.
const SELECTION_KEY = 'freshet-selection';
export let selection = '';
try {
  selection = sessionStorage.getItem(SELECTION_KEY) || '';
} catch (_) {
  selection = '';
}

export function setSelection(value) {
  selection = value;
  try {
    sessionStorage.setItem(SELECTION_KEY, selection);
  } catch (_) {
    // Storage disabled: the selection lasts for this page.
  }
}

// The view on the page, set by the router in app.js: a run started from any page refreshes it.
let current = null;

export const currentView = () => current;

export function setCurrentView(next) {
  current = next;
}

export function scheduleRefresh() {
  if (current && current.refresh) current.refresh();
}
