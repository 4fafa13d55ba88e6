// The automation page: the latest evaluation, each automated asset's latest decision and why,
// the schedules with their last and next ticks, and the sources automation watches. Kept
// current by the event stream. Also the asset page's automation section.

import {
  view, enc, esc, debounce, timeHTML, fmtDuration, assetLink, runLink, getJSON, table, errorHTML,
} from './core.js';

const never = '<span class="muted">—</span>';
const when = (t) => (t ? timeHTML(t) : never);

function decisionHTML(d) {
  if (!d || !d.reason) return '<span class="muted">not evaluated yet</span>';
  const cls = d.requested ? 'decision requested' : 'decision';
  return `<span class="${cls}">${esc(d.reason)}</span>${d.run_id ? ` ${runLink(d.run_id)}` : ''}`;
}

function intervalWords(ms) {
  if (ms < 1000) return `${ms} ms`;
  return fmtDuration(ms);
}

export function automationView() {
  view.innerHTML = `<section class="page automation-page">
    <div class="page-head"><h1>Automation</h1></div>
    <div id="automation-body"><p class="muted">Loading…</p></div>
  </section>`;
  const body = view.querySelector('#automation-body');
  let alive = true;
  let loadSeq = 0;

  function render(a) {
    const e = a.evaluation;
    const evaluation = e
      ? `<p class="evaluation">Last evaluation ${timeHTML(e.evaluated_at)} in ${esc(fmtDuration(e.duration_ms))}: ` +
        `${esc(String(e.requested))} of ${esc(String(e.assets))} requested${e.run_id ? ` (${runLink(e.run_id)})` : ''}` +
        `${e.next_at ? `; next by ${timeHTML(e.next_at)}` : ''}.</p>`
      : '<p class="muted">No evaluation yet: automation runs with <code>freshet daemon</code> or <code>freshet serve</code>.</p>';
    const assets = a.assets.length
      ? table(['Asset', 'Condition', 'Decided', 'Decision'], a.assets.map((d) =>
        `<tr data-asset="${esc(d.asset)}" data-requested="${d.requested ? '1' : '0'}"><td>${assetLink(d.asset)}</td>` +
        `<td><code>${esc(d.condition)}</code></td><td>${when(d.decided_at)}</td><td>${decisionHTML(d)}</td></tr>`), 'decisions')
      : '<p class="muted">No asset has an automation condition (<code>-- @automation: eager</code> in a SQL header, or <code>[automation] default</code> in freshet.toml).</p>';
    const schedules = a.schedules.length
      ? table(['Schedule', 'Cron', 'Time zone', 'Selection', 'Last tick', 'Next tick'], a.schedules.map((s) =>
        `<tr data-schedule="${esc(s.name)}"><td>${esc(s.name)}</td><td><code>${esc(s.cron)}</code></td><td>${esc(s.timezone)}</td>` +
        `<td>${s.selection ? `<code>${esc(s.selection)}</code>` : '<span class="muted">every asset</span>'}${s.stale_only ? ' <span class="muted">stale only</span>' : ''}</td>` +
        `<td>${when(s.last_tick)}${s.last_run_id ? ` ${runLink(s.last_run_id)}` : ''}</td><td>${when(s.next_tick)}</td></tr>`), 'schedules')
      : '<p class="muted">No schedules (<code>[schedules.NAME]</code> in freshet.toml).</p>';
    const sensors = a.sensors.length
      ? table(['Source', 'Watched', 'Every', 'Data last changed', 'Last checked'], a.sensors.map((s) =>
        `<tr data-source="${esc(s.source)}"><td>${assetLink(s.source)}</td><td>${esc(s.watch)}</td>` +
        `<td class="num">${esc(intervalWords(s.interval_ms))}</td><td>${when(s.last_change)}</td><td>${when(s.last_checked)}</td></tr>`), 'sensors')
      : '<p class="muted">No sources.</p>';
    body.innerHTML = `${evaluation}<h2>Assets</h2>${assets}<h2>Schedules</h2>${schedules}<h2>Sensors</h2>${sensors}`;
  }

  async function load() {
    const seq = ++loadSeq;
    try {
      const a = await getJSON('/api/automation');
      if (!alive || seq !== loadSeq) return;
      render(a);
    } catch (e) {
      if (!alive || seq !== loadSeq) return;
      body.innerHTML = errorHTML(e, 'Could not load automation:');
    }
  }

  const refresh = debounce(load, 300);
  load();
  return {
    refresh,
    onEvent(type) {
      if (type === 'assets' || type === 'run') refresh();
    },
    destroy() {
      alive = false;
      refresh.cancel();
    },
  };
}

/** The asset page's automation section: its condition, latest decision and recent decisions. */
export async function assetAutomationHTML(key) {
  const a = await getJSON(`/api/assets/${enc(key)}/automation?limit=10`);
  if (!a.condition) {
    return '<p class="muted">Materialized only on request (no automation condition).</p>';
  }
  const history = a.history.length
    ? table(['Decided', 'Decision'], a.history.map((d) =>
      `<tr><td>${when(d.decided_at)}</td><td>${decisionHTML(d)}</td></tr>`), 'decisions')
    : '';
  return `<p>Condition <code>${esc(a.condition)}</code>: ${decisionHTML(a.latest)}</p>${history}`;
}
