// The runs: the list of runs (filtered by status, paged), and a run's page with its summary,
// a timeline of its steps and its log, followed live while it goes.

import {
  $, view, enc, esc, debounce, fmtTime, timeHTML, fmtDuration, fmtBytes, fmtInt, shortId,
  assetLink, runLink, getJSON, post, toast, kv, table, errorHTML,
} from './core.js';

const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

function runStatusBadge(status) {
  return `<span class="run-status" data-status="${esc(status)}">${esc(status)}</span>`;
}

function selectionText(r) {
  if (r.selection) return `<code>${esc(r.selection)}</code>`;
  return `<span class="muted">${r.kind === 'observe' ? 'all sources' : 'everything missing or stale'}</span>`;
}

function stepCounts(s) {
  if (!s || !s.total) return '<span class="muted">—</span>';
  const parts = [`<span class="n-ok">${fmtInt(s.materialized)}</span> materialized`];
  if (s.skipped) parts.push(`${fmtInt(s.skipped)} skipped`);
  if (s.failed) parts.push(`<span class="n-failed">${fmtInt(s.failed)} failed</span>`);
  if (s.cancelled) parts.push(`${fmtInt(s.cancelled)} cancelled`);
  return `${parts.join(' · ')} <span class="muted">of ${fmtInt(s.total)}</span>`;
}

export function runsView() {
  view.innerHTML = `<section class="page runs-page">
    <div class="page-head"><h1>Runs</h1>
      <div class="page-actions"><label class="field">Status <select id="run-status-filter">
        <option value="">All</option>${RUN_STATUSES.map((s) => `<option value="${s}">${s}</option>`).join('')}
      </select></label></div></div>
    <div id="runs-body"><p class="muted">Loading…</p></div>
    <div class="more"><button type="button" id="load-more" hidden>Load more</button></div>
  </section>`;
  const filter = $('#run-status-filter');
  const body = $('#runs-body');
  const more = $('#load-more');
  let alive = true;
  let loadSeq = 0;
  let items = [];
  let next = null;

  const query = (limit, cursor) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (filter.value) q.set('status', filter.value);
    if (cursor) q.set('cursor', cursor);
    return `/api/runs?${q}`;
  };

  function render() {
    if (!items.length) {
      body.innerHTML = `<p class="muted">No runs${filter.value ? ` ${esc(filter.value)}` : ''} yet. Start one with <em>Materialize stale</em>.</p>`;
    } else {
      body.innerHTML = table(['Run', 'Kind', 'Status', 'Selection', 'Started', 'Duration', 'Steps'], items.map((r) =>
        `<tr data-run-id="${esc(r.id)}" data-status="${esc(r.status)}"><td>${runLink(r.id)}</td><td>${esc(r.kind)}</td>` +
        `<td>${runStatusBadge(r.status)}</td><td>${selectionText(r)}${r.stale_only && r.selection ? ' <span class="muted">stale only</span>' : ''}</td>` +
        `<td>${timeHTML(r.started_at)}</td><td class="num">${r.duration_ms != null ? esc(fmtDuration(r.duration_ms)) : '<span class="muted">—</span>'}</td>` +
        `<td>${stepCounts(r.steps)}</td></tr>` +
        (r.error ? `<tr class="run-error-row"><td></td><td colspan="6" class="error-text">${esc(r.error)}</td></tr>` : '')), 'runs');
    }
    more.hidden = !next;
  }

  /** Reloads from the top, as many runs as are shown. */
  async function load() {
    const seq = ++loadSeq;
    try {
      const page = await getJSON(query(Math.min(500, Math.max(50, items.length)), null));
      if (!alive || seq !== loadSeq) return;
      items = page.items || [];
      next = page.next;
      render();
    } catch (e) {
      if (!alive || seq !== loadSeq) return;
      body.innerHTML = errorHTML(e, 'Could not load runs:');
    }
  }

  async function loadMore() {
    if (!next) return;
    const seq = ++loadSeq;
    more.disabled = true;
    try {
      const page = await getJSON(query(50, next));
      if (!alive || seq !== loadSeq) return;
      items = items.concat(page.items || []);
      next = page.next;
      render();
    } catch (e) {
      toast(esc(e.message), 'error');
    } finally {
      more.disabled = false;
    }
  }

  filter.addEventListener('change', () => {
    items = [];
    load();
  });
  more.addEventListener('click', loadMore);
  const refresh = debounce(load, 200);
  load();
  return {
    refresh,
    onEvent(type) {
      if (type === 'run' || type === 'step') refresh();
    },
    destroy() {
      alive = false;
      refresh.cancel();
    },
  };
}

export function runView(id) {
  view.innerHTML = `<section class="page run-page"><p class="muted">Loading run ${esc(id)}…</p></section>`;
  let alive = true;
  let loadSeq = 0;
  let data = null;
  let lastSeq = -Infinity;
  let ticker = 0;
  let logsEl = null;

  function logLine(l) {
    const level = l.level || 'info';
    return `<span class="log-line" data-level="${esc(level)}"><span class="log-time">${esc(fmtTime(l.at).slice(11, 19))}</span> ` +
      `<span class="log-level">${esc(level.toUpperCase().padEnd(5))}</span> ` +
      `${l.asset && !String(l.message).includes(l.asset) ? `<span class="log-asset">${esc(l.asset)}</span> ` : ''}` +
      `${linkless(l.message, l.asset)}\n</span>`;
  }

  /** The message, with the asset's key picked out when it names it. */
  function linkless(message, asset) {
    const text = String(message ?? '');
    const i = asset ? text.indexOf(asset) : -1;
    if (i < 0) return esc(text);
    return `${esc(text.slice(0, i))}<span class="log-asset">${esc(asset)}</span>${esc(text.slice(i + asset.length))}`;
  }

  function appendLogs(lines) {
    if (!logsEl) return;
    const fresh = lines.filter((l) => typeof l.seq !== 'number' || l.seq > lastSeq)
      .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    if (!fresh.length) return;
    const atBottom = logsEl.scrollTop + logsEl.clientHeight >= logsEl.scrollHeight - 4;
    if (logsEl.dataset.empty) {
      logsEl.textContent = '';
      delete logsEl.dataset.empty;
    }
    logsEl.insertAdjacentHTML('beforeend', fresh.map(logLine).join(''));
    for (const l of fresh) if (typeof l.seq === 'number') lastSeq = Math.max(lastSeq, l.seq);
    if (atBottom) logsEl.scrollTop = logsEl.scrollHeight;
  }

  function span() {
    const r = data.run;
    const start = new Date(r.started_at).getTime();
    let end = r.finished_at ? new Date(r.finished_at).getTime() : Date.now();
    for (const s of data.steps) {
      if (s.finished_at) end = Math.max(end, new Date(s.finished_at).getTime());
    }
    return { start, total: Math.max(1, end - start) };
  }

  function stepsHTML() {
    if (!data.steps.length) return '<p class="muted">No steps.</p>';
    const { start, total } = span();
    const now = Date.now();
    return `<div class="timeline">${data.steps.map((s) => {
      let bar = '';
      if (s.started_at) {
        const s0 = new Date(s.started_at).getTime();
        const s1 = s.finished_at ? new Date(s.finished_at).getTime() : now;
        const x = Math.max(0, Math.min(1000, ((s0 - start) / total) * 1000));
        const w = Math.max(3, Math.min(1000 - x, ((s1 - s0) / total) * 1000));
        bar = `<rect class="bar" x="${x.toFixed(1)}" y="2" width="${w.toFixed(1)}" height="12" rx="2"/>`;
      }
      const details = [];
      const tries = (data.attempts || []).filter((a) => a.asset === s.asset);
      if (tries.length > 1) {
        const failed = tries.filter((a) => a.error);
        details.push(`${tries.length} attempts` + (failed.length ? ` (${failed.length} failed: ${failed[failed.length - 1].error})` : ''));
      }
      if (s.row_count != null) details.push(`${fmtInt(s.row_count)} rows`);
      if (s.byte_size != null) details.push(fmtBytes(s.byte_size));
      return `<div class="step" data-asset="${esc(s.asset)}" data-state="${esc(s.state)}">` +
        `<span class="step-asset">${assetLink(s.asset)}</span>` +
        `<span class="step-state">${esc(s.state)}</span>` +
        `<svg class="step-bar" viewBox="0 0 1000 16" preserveAspectRatio="none" aria-hidden="true"><rect class="track" x="0" y="7" width="1000" height="2"/>${bar}</svg>` +
        `<span class="step-duration num">${esc(fmtDuration(s.duration_ms))}</span>` +
        `<span class="step-message">${esc(details.join(', '))}${s.message ? `${details.length ? ' · ' : ''}<span class="msg">${esc(s.message)}</span>` : ''}</span>` +
        '</div>';
    }).join('')}</div>`;
  }

  function summaryHTML() {
    const r = data.run;
    return kv([
      ['Status', runStatusBadge(r.status)],
      ['Kind', esc(r.kind) + (r.stale_only ? ' <span class="muted">(missing or stale only)</span>' : '')],
      ['Selection', selectionText(r)],
      ['Started', timeHTML(r.started_at)],
      ['Finished', timeHTML(r.finished_at)],
      ['Duration', r.duration_ms != null ? esc(fmtDuration(r.duration_ms)) : '<span class="muted">—</span>'],
      ['Steps', stepCounts(r.steps)],
      r.error ? ['Error', `<span class="error-text">${esc(r.error)}</span>`] : null,
    ]);
  }

  function renderParts() {
    $('#run-summary').innerHTML = summaryHTML();
    $('#run-steps').innerHTML = stepsHTML();
    const active = data.run.status === 'queued' || data.run.status === 'running';
    $('#cancel').hidden = !active;
    clearInterval(ticker);
    ticker = active ? setInterval(() => {
      if (alive && data) $('#run-steps').innerHTML = stepsHTML();
    }, 1000) : 0;
  }

  async function load() {
    const seq = ++loadSeq;
    let next;
    try {
      next = await getJSON(`/api/runs/${enc(id)}`);
    } catch (e) {
      if (!alive || seq !== loadSeq) return;
      if (!data) {
        view.innerHTML = `<section class="page run-page"><div class="crumbs"><a href="#/runs">Runs</a> / ${esc(id)}</div>${errorHTML(e, 'Could not load this run:')}</section>`;
      }
      return;
    }
    if (!alive || seq !== loadSeq) return;
    const first = !data;
    data = next;
    if (first) {
      view.innerHTML = `<section class="page run-page" data-run-id="${esc(id)}">
        <div class="crumbs"><a href="#/runs">Runs</a> / <span class="mono">${esc(id)}</span></div>
        <div class="page-head"><h1>Run <span class="mono">${esc(shortId(id))}</span></h1>
          <div class="page-actions"><button type="button" id="cancel" class="danger" hidden>Cancel run</button></div></div>
        <div class="cards">
          <section class="card wide"><h2>Summary</h2><div id="run-summary"></div></section>
          <section class="card wide"><h2>Steps</h2><div id="run-steps"></div></section>
          <section class="card wide"><h2>Logs</h2><pre class="logs" data-empty="1">No log lines yet.</pre></section>
        </div></section>`;
      logsEl = $('.logs');
      $('#cancel').addEventListener('click', async (e) => {
        const b = e.currentTarget;
        b.disabled = true;
        try {
          const res = await post(`/api/runs/${enc(id)}/cancel`, {});
          if (res) toast(`Cancelling run <span class="mono">${esc(shortId(id))}</span>`);
        } catch (err) {
          toast(`<strong>Could not cancel: </strong>${esc(err.message)}`, 'error', 15000);
        } finally {
          b.disabled = false;
          refresh();
        }
      });
    }
    renderParts();
    appendLogs(data.logs || []);
  }

  const refresh = debounce(load, 200);
  load();
  return {
    refresh,
    onEvent(type, ev) {
      // A run of another process (a terminal's `freshet materialize`) sends no events of its
      // own: the server's poll of the store says something changed, so read it again.
      if (type === 'assets') {
        if (data && (data.run.status === 'queued' || data.run.status === 'running')) refresh();
        return;
      }
      if (ev.run_id !== id) return;
      if (type === 'log') {
        appendLogs([ev]);
      } else if (type === 'step' && data) {
        const s = data.steps.find((x) => x.asset === ev.asset);
        if (s) {
          s.state = ev.state;
          if (ev.message !== undefined) s.message = ev.message;
          if (ev.state === 'running' && !s.started_at) s.started_at = new Date().toISOString();
          $('#run-steps').innerHTML = stepsHTML();
        }
        refresh();
      } else if (type === 'run') {
        if (data) data.run.status = ev.status;
        refresh();
      }
    },
    destroy() {
      alive = false;
      refresh.cancel();
      clearInterval(ticker);
    },
  };
}
