// The asset page: an asset's status and why, its freshness, definition, current version, SQL,
// history (with a chart of rows, duration and numeric metadata), output schema and a preview of
// its rows, of the current version or of an older one chosen in the history.

import {
  view, enc, esc, debounce, fmtTime, relTime, timeHTML, fmtDuration, fmtBytes, fmtInt,
  shortId, shortVersion, assetLink, runLink, linkKeyIn, getJSON, startRun, errorHTML, kv, table,
} from './core.js';
import { assetAutomationHTML } from './automation.js';

function statusBadge(status) {
  return `<span class="status-badge" data-status="${esc(status)}">${esc(status)}</span>`;
}

function freshnessBadge(state) {
  return `<span class="freshness-badge" data-freshness="${esc(state)}">${esc(state === 'none' ? 'no policy' : state)}</span>`;
}

const listOr = (items, render, empty = '<span class="muted">none</span>') =>
  (items && items.length ? items.map(render).join(', ') : empty);

/** A metadata number: whole numbers with separators, fractions to four significant digits. */
function fmtNumber(v) {
  if (Number.isInteger(v)) return fmtInt(v);
  if (Math.abs(v) >= 1000) return v.toLocaleString('en-US', { maximumFractionDigits: 1 });
  return String(Number(v.toPrecision(4)));
}

const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);
const metadataOf = (m) => (m && m.metadata && typeof m.metadata === 'object' ? m.metadata : {});

/** The names with a number in some item's metadata, sorted. */
function numericNames(items) {
  const names = new Set();
  for (const m of items) {
    for (const [name, v] of Object.entries(metadataOf(m))) if (isNumber(v)) names.add(name);
  }
  return [...names].sort();
}

/** One panel of the chart: its label, its scale and a point per value `get` gives. */
function chartPanel(p, points, xOf, left, right, Wd, ph) {
  const pts = points.filter((q) => isNumber(p.get(q)));
  const values = pts.map(p.get);
  const lo = values.length ? Math.min(0, ...values) : 0;
  const hi = values.length ? Math.max(0, ...values) : 0;
  const yOf = (v) => p.top + ph - (hi > lo ? ((v - lo) / (hi - lo)) * ph : 0);
  const out = [`<text class="axis-label ${p.cls}-label" x="${left}" y="${p.top - 8}">${esc(p.label)}</text>`,
    `<text class="axis-value" x="${left - 6}" y="${p.top + 4}" text-anchor="end">${esc(p.fmt(hi))}</text>`,
    `<text class="axis-value" x="${left - 6}" y="${p.top + ph + 4}" text-anchor="end">${lo === 0 ? '0' : esc(p.fmt(lo))}</text>`,
    `<line class="grid-line" x1="${left}" x2="${Wd - right}" y1="${p.top}" y2="${p.top}"/>`,
    `<line class="axis" x1="${left}" x2="${Wd - right}" y1="${p.top + ph}" y2="${p.top + ph}"/>`];
  if (pts.length > 1) {
    out.push(`<polyline class="${p.cls}" points="${pts.map((q) => `${xOf(q.t).toFixed(1)},${yOf(p.get(q)).toFixed(1)}`).join(' ')}"/>`);
  }
  for (const q of pts) {
    out.push(`<circle class="${p.cls}-dot" cx="${xOf(q.t).toFixed(1)}" cy="${yOf(p.get(q)).toFixed(1)}" r="3">` +
      `<title>${esc(fmtTime(q.m.at))}: ${esc(p.title(p.get(q)))}</title></circle>`);
  }
  return out.join('');
}

/** Rows, duration and each numeric metadata of the materializations over time, a panel each. */
function historyChart(items) {
  const points = items.filter((m) => m.kind === 'materialization' && m.at)
    .map((m) => ({ t: new Date(m.at).getTime(), rows: m.row_count, ms: m.duration_ms, meta: metadataOf(m), m }))
    .filter((p) => !Number.isNaN(p.t))
    .sort((a, b) => a.t - b.t);
  if (points.length === 0) return '';
  const Wd = 640;
  const left = 64;
  const right = 16;
  const ph = 62;
  const step = 96;
  const panels = [
    { get: (q) => q.rows, label: 'Rows', cls: 'series-rows', fmt: fmtInt, title: (v) => `${fmtInt(v)} rows` },
    { get: (q) => q.ms, label: 'Duration', cls: 'series-ms', fmt: fmtDuration, title: fmtDuration },
    ...numericNames(points.map((q) => q.m)).map((name, i) => ({
      name, get: (q) => q.meta[name], label: name, cls: `series-m${i % 6}`, fmt: fmtNumber, title: (v) => `${name} ${fmtNumber(v)}`,
    })),
  ].map((p, i) => ({ ...p, top: 22 + i * step }));
  const H = panels[panels.length - 1].top + ph + 32;
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  const xOf = (tm) => (t1 === t0 ? (left + Wd - right) / 2 : left + ((tm - t0) / (t1 - t0)) * (Wd - left - right));
  const what = panels.length > 2 ? 'Rows, duration and metadata' : 'Rows and duration';
  const out = [`<svg class="chart" viewBox="0 0 ${Wd} ${H}" role="img" aria-label="${what} of each materialization">`];
  for (const p of panels) {
    const panel = chartPanel(p, points, xOf, left, right, Wd, ph);
    out.push(p.name == null ? panel : `<g class="metadata-panel" data-name="${esc(p.name)}">${panel}</g>`);
  }
  out.push(`<text class="axis-value" x="${left}" y="${H - 6}">${esc(fmtTime(points[0].m.at, true))}</text>`);
  if (t1 !== t0) out.push(`<text class="axis-value" x="${Wd - right}" y="${H - 6}" text-anchor="end">${esc(fmtTime(points[points.length - 1].m.at, true))}</text>`);
  out.push('</svg>');
  return out.join('');
}

const clip = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

/** A materialization's metadata, `name: value` each, long text cut short (in full on hover). */
function metadataHTML(meta, most = 6) {
  const entries = Object.entries(meta);
  if (!entries.length) return '<span class="muted">—</span>';
  const shown = entries.slice(0, most).map(([name, v]) => {
    const text = isNumber(v) ? fmtNumber(v) : typeof v === 'string' ? v : JSON.stringify(v);
    return `<span class="meta-item" title="${esc(`${name}: ${text}`)}"><span class="meta-name">${esc(name)}:</span> ${esc(clip(text, 40))}</span>`;
  });
  if (entries.length > most) {
    shown.push(`<span class="muted" title="${esc(entries.slice(most).map(([name]) => name).join(', '))}">+${entries.length - most} more</span>`);
  }
  return shown.join(' ');
}

/** The Preview cell of a materialization: a button, or why there is none. */
function previewCellHTML(m) {
  if (m.collected_at) {
    return `<span class="muted" title="${esc(`freshet gc removed its files at ${fmtTime(m.collected_at)}`)}">removed by gc</span>`;
  }
  return `<button type="button" class="preview-version small" data-version="${esc(m.id)}">Preview</button>`;
}

function historyTable(items, isSource, currentId) {
  if (!items.length) return `<p class="muted">No ${isSource ? 'observations' : 'materializations'} yet.</p>`;
  if (isSource) {
    return table(['Observed', 'Checked', 'Data version', 'Files', 'Size'], items.map((o) =>
      `<tr><td>${timeHTML(o.at)}</td><td>${timeHTML(o.checked_at)}</td><td class="mono">${esc(shortVersion(o.data_version))}</td>` +
      `<td class="num">${fmtInt(o.file_count)}</td><td class="num">${esc(fmtBytes(o.byte_size))}</td></tr>`), 'history');
  }
  const withMetadata = items.some((m) => Object.keys(metadataOf(m)).length);
  const headers = ['Materialized', 'Run', 'Rows', 'Size', 'Duration', 'Data version', 'Code version', 'Data time'];
  return table([...headers, ...(withMetadata ? ['Metadata'] : []), 'Preview'], items.map((m) => {
    const isCurrent = m.id != null && m.id === currentId;
    return `<tr data-version="${esc(m.id)}"${isCurrent ? ' data-current="1" class="current-row"' : ''}${m.collected_at ? ' data-collected="1"' : ''}>` +
      `<td>${timeHTML(m.at)}${isCurrent ? ' <span class="current-label">current</span>' : ''}</td>` +
      `<td>${m.run_id ? runLink(m.run_id) : '—'}</td><td class="num">${fmtInt(m.row_count)}</td>` +
      `<td class="num">${esc(fmtBytes(m.byte_size))}</td><td class="num">${esc(fmtDuration(m.duration_ms))}</td>` +
      `<td class="mono">${esc(shortVersion(m.data_version))}</td><td class="mono">${esc(shortVersion(m.code_version))}</td>` +
      `<td>${m.data_time ? esc(fmtTime(m.data_time)) : '<span class="muted">—</span>'}</td>` +
      `${withMetadata ? `<td class="metadata">${metadataHTML(metadataOf(m))}</td>` : ''}<td>${previewCellHTML(m)}</td></tr>`;
  }), 'history');
}

function currentHTML(c) {
  if (!c) return '<p class="muted">Never materialized.</p>';
  if (c.kind === 'observation') {
    return kv([
      ['Observed', timeHTML(c.at)],
      ['Last checked', timeHTML(c.checked_at)],
      ['Data version', `<span class="mono">${esc(c.data_version)}</span>`],
      ['Files', fmtInt(c.file_count)],
      ['Size', esc(fmtBytes(c.byte_size))],
    ]);
  }
  return kv([
    ['Materialized', timeHTML(c.at)],
    ['Run', c.run_id ? runLink(c.run_id) : '—'],
    ['Rows', fmtInt(c.row_count)],
    ['Size', esc(fmtBytes(c.byte_size))],
    c.file_count != null ? ['Files', fmtInt(c.file_count)] : null,
    ['Duration', esc(fmtDuration(c.duration_ms))],
    ['Data version', `<span class="mono">${esc(c.data_version)}</span>`],
    ['Code version', `<span class="mono">${esc(c.code_version || '—')}</span>`],
    ['Data time', timeHTML(c.data_time)],
    Object.keys(metadataOf(c)).length ? ['Metadata', metadataHTML(metadataOf(c), 20)] : null,
    Array.isArray(c.inputs) && c.inputs.length
      ? ['Inputs read', c.inputs.map((i) => `${assetLink(i.asset)} <span class="mono muted">${esc(shortVersion(i.data_version))}</span>`).join('<br>')]
      : null,
    ['Location', `<span class="mono break">${esc(c.location)}</span>`],
  ]);
}

function freshnessHTML(f, isSource) {
  if (!f) return '<p class="muted">Unknown.</p>';
  const rows = [
    ['State', freshnessBadge(f.state)],
    ['Policy', f.policy ? `<code>${esc(f.policy)}</code>` : '<span class="muted">none</span>'],
    ['Last ' + (isSource ? 'changed' : 'updated'), timeHTML(f.last_updated)],
  ];
  if (f.next_change_at && f.next_state) {
    rows.push(['Next change', `<span class="next-change">becomes ${freshnessBadge(f.next_state)} at ` +
      `<time datetime="${esc(f.next_change_at)}" title="${esc(f.next_change_at)}">${esc(fmtTime(f.next_change_at, true))}</time>, ` +
      `<span class="rel" data-t="${esc(f.next_change_at)}">${esc(relTime(f.next_change_at))}</span></span>`]);
  }
  return kv(rows);
}

function whyHTML(a) {
  const parts = [];
  if (a.load_error) {
    parts.push(`<p>Its file does not load, so it cannot be materialized:</p><pre class="error-text load-error">${esc(a.load_error)}</pre>`);
  }
  if (a.files_gone) {
    const seen = a.files_gone.last_seen ? ` They were last seen ${timeHTML(a.files_gone.last_seen)}.` : '';
    parts.push(`<p class="files-gone">Its files are gone: ${esc(a.files_gone.reason)}.${seen}</p>`);
  }
  if (a.causes && a.causes.length) {
    parts.push(`<ul class="causes">${a.causes.map((c) =>
      `<li data-category="${esc(c.category)}"><span class="cat">${esc(c.category)}</span> ${linkKeyIn(c.words || c.reason || '', c.dependency)}</li>`).join('')}</ul>`);
  } else if (a.files_gone) {
    // Said above.
  } else if (a.status === 'missing') {
    parts.push(`<p>${a.kind === 'source' ? 'Never observed.' : 'Never materialized.'}</p>`);
  } else if (a.run_state === 'failed') {
    parts.push('<p>Its latest attempt failed; the version before it is still current.</p>');
  } else if (a.run_state === 'running') {
    parts.push('<p>Being materialized now.</p>');
  } else {
    parts.push('<p class="muted">Nothing about this asset itself is out of date.</p>');
  }
  if (a.upstream && a.upstream.length) {
    parts.push(`<h3>Upstream behind</h3><ul class="upstream">${a.upstream.map((u) =>
      `<li data-category="${esc(u.category)}"><span class="cat">${esc(u.category)}</span> upstream ${assetLink(u.key)} ${esc(u.reason)}</li>`).join('')}</ul>`);
  }
  if (a.last_failure) {
    const f = a.last_failure;
    parts.push(`<h3>Last failure</h3><div class="failure">${timeHTML(f.at)} in run ${runLink(f.run_id)}` +
      `<pre class="error-text">${esc(f.error)}</pre></div>`);
  }
  return parts.join('');
}

function originHTML(a) {
  const rows = [];
  const o = a.origin;
  if (o && o.type === 'file') rows.push(['File', `<code>${esc(o.path)}</code>`]);
  else if (o && o.type === 'rust') rows.push(['Rust', `<code>${esc(o.location)}</code>`]);
  if (a.source) {
    rows.push(['Location', `<code class="break">${esc(a.source.location)}</code>`]);
    rows.push(['Format', esc(a.source.format)]);
  }
  return rows;
}

/** Segments the partition health bar has at most. */
const BAR_WIDTH = 120;

/** A range of partitions in words: `2024-03-01..2024-03-31` or one key. */
const span = (r) => (r.first === r.last ? r.first : `${r.first}..${r.last}`);

/** The partitions' table: each range with its count, status and why. */
function rangesHTML(p) {
  if (p.error) return errorHTML(p.error, 'Could not load the partitions:');
  const rows = (p.ranges || []).map((r) => `<tr data-status="${esc(r.status)}"><td class="mono">${esc(span(r))}</td>` +
    `<td class="num">${fmtInt(r.count)}</td><td>${statusBadge(r.status)}</td><td>${esc(r.why || '')}</td></tr>`);
  const more = p.ranges_truncated ? '<p class="muted">More ranges than shown: open a segment of the bar.</p>' : '';
  return table(['Partitions', 'Count', 'Status', 'Why'], rows, 'partition-ranges') + more;
}

/**
 * A partitioned asset's partitions: its counts, the health bar (one segment per run of a status,
 * or the worst status of an equal share of the partitions when there are more runs than the bar
 * has room for) and, for the segment opened, its ranges with why they are stale.
 */
function partitionsHTML(p, opened) {
  if (p.error) return errorHTML(p.error, 'Could not load the partitions:');
  const total = (p.bar || []).reduce((n, s) => n + s.count, 0);
  const Wd = 1000;
  let x = 0;
  const rects = (p.bar || []).map((s) => {
    const w = total ? (s.count / total) * Wd : 0;
    const rect = `<rect class="segment" tabindex="0" role="button" data-status="${esc(s.status)}" data-first="${esc(s.first)}" data-last="${esc(s.last)}"` +
      ` x="${x.toFixed(2)}" y="0" width="${Math.max(w, 0.5).toFixed(2)}" height="18">` +
      `<title>${esc(`${span(s)}: ${s.status} (${fmtInt(s.count)} partition${s.count === 1 ? '' : 's'})`)}</title></rect>`;
    x += w;
    return rect;
  });
  const counts = Object.entries(p.counts || {}).filter(([, n]) => n > 0)
    .map(([status, n]) => `${statusBadge(status)} ${fmtInt(n)}`).join(' ');
  const first = p.bar && p.bar.length ? p.bar[0].first : '';
  const last = p.bar && p.bar.length ? p.bar[p.bar.length - 1].last : '';
  const detail = opened
    ? `<h3>${esc(span(opened))}</h3>${rangesHTML(opened.ranges)}`
    : `<h3>All partitions</h3>${rangesHTML(p)}`;
  return `<p class="partition-summary">By <span class="mono">${esc(p.by)}</span>: ${esc(p.summary)} · ${counts}</p>` +
    `<svg class="partition-bar" viewBox="0 0 ${Wd} 18" preserveAspectRatio="none" role="img" aria-label="${esc(`Partition health of ${p.asset}`)}">${rects.join('')}</svg>` +
    `<div class="partition-axis muted"><span>${esc(first)}</span><span>${esc(last)}</span></div>` +
    `<div class="partition-detail">${detail}</div>`;
}

export function assetView(key) {
  view.innerHTML = `<section class="page asset-page"><p class="muted">Loading ${esc(key)}…</p></section>`;
  let alive = true;
  let loadSeq = 0;
  let preview = null;
  let previewFor = undefined;
  // A version the user chose to preview instead of the current one ({ id, at }), and its preview
  // once loaded ({ id, data }); kept across refreshes until the user asks for the current again.
  let chosen = null;
  let chosenPreview = null;
  let chooseSeq = 0;
  let lastAsset = null;
  let lastHistory = [];
  // A partitioned asset's partitions (bar and ranges), and the segment of the bar the user
  // opened ({ first, last, ranges }), kept across refreshes.
  let partitions = null;
  let opened = null;
  let lastAutomation = '';

  async function load() {
    const seq = ++loadSeq;
    const base = `/api/assets/${enc(key)}`;
    let a;
    let history;
    let automation;
    try {
      [a, history, automation] = await Promise.all([
        getJSON(base),
        getJSON(`${base}/history?limit=50`),
        assetAutomationHTML(key).catch((e) => errorHTML(e, 'Could not load its automation:')),
      ]);
      partitions = a.partitions
        ? await getJSON(`${base}/partitions?width=${BAR_WIDTH}`).catch((e) => ({ error: e }))
        : null;
    } catch (e) {
      if (!alive || seq !== loadSeq) return;
      view.innerHTML = `<section class="page asset-page"><div class="crumbs"><a href="#/">Lineage</a> / ${esc(key)}</div>${errorHTML(e, 'Could not load this asset:')}</section>`;
      return;
    }
    // The preview is fetched again only when the current version changes.
    const c = a.current;
    const currentId = c ? `${c.id ?? ''}|${c.at ?? ''}|${c.data_version ?? ''}|${a.files_gone ? 'gone' : ''}` : null;
    if (currentId !== previewFor) {
      let p = null;
      // A source whose files are gone has nothing to read.
      if (a.files_gone) {
        p = { gone: true };
      } else if (currentId) {
        try {
          p = await getJSON(`${base}/preview?limit=20`);
        } catch (e) {
          p = { error: e };
        }
      }
      if (!alive || seq !== loadSeq) return;
      preview = p;
      previewFor = currentId;
    }
    if (!alive || seq !== loadSeq) return;
    lastAsset = a;
    lastHistory = history.items || [];
    // A chosen version that became the current one is shown as the current one.
    if (chosen && a.current && a.current.id === chosen.id) chosen = null;
    if (chosen) {
      const item = lastHistory.find((m) => m.id === chosen.id);
      if (item) chosen.collected_at = item.collected_at;
    }
    lastAutomation = automation;
    if (opened) {
      // Keep the opened segment's ranges current too.
      const range = `${opened.first}..${opened.last}`;
      opened.ranges = await getJSON(`${base}/partitions?width=1&range=${enc(range)}`).catch((e) => ({ error: e }));
      if (!alive || seq !== loadSeq) return;
    }
    render(a, lastHistory, automation);
  }

  function previewTableHTML(p) {
    if (!p) return '<p class="muted">Nothing to preview yet.</p>';
    if (p.gone) return '<p class="muted">Nothing to preview: its files are gone.</p>';
    if (p.error) return errorHTML(p.error, 'Could not load a preview:');
    const cols = p.columns || [];
    const rows = p.rows || [];
    if (!rows.length) return '<p class="muted">No rows.</p>';
    return table(cols.map((c) => `<span class="col-name">${esc(c.name)}</span><span class="col-type">${esc(c.type)}</span>`),
      rows.map((r) => `<tr>${r.map((v) => (v == null ? '<td class="null">null</td>' : `<td>${esc(v)}</td>`)).join('')}</tr>`),
      'preview');
  }

  /** What the Preview card shows: its attributes, heading and body. */
  function previewCard() {
    if (!chosen) {
      return { attrs: 'data-preview-version="current"', head: '<h2>Preview</h2>', body: previewTableHTML(preview) };
    }
    const which = `of the version of ${esc(fmtTime(chosen.at))} (<span class="mono" title="${esc(chosen.id)}">${esc(shortId(chosen.id))}</span>)`;
    const head = `<div class="card-head"><h2>Preview <span class="preview-of">${which}</span></h2>` +
      '<button type="button" class="preview-current small">Show current</button></div>';
    if (!chosenPreview || chosenPreview.id !== chosen.id) {
      return { attrs: `aria-busy="true" data-preview-loading="${esc(chosen.id)}"`, head, body: '<p class="muted">Loading…</p>' };
    }
    const gone = chosen.collected_at
      ? `<p class="muted">freshet gc has since removed this version's files (${esc(fmtTime(chosen.collected_at))}).</p>`
      : '';
    return { attrs: `data-preview-version="${esc(chosen.id)}"`, head, body: gone + previewTableHTML(chosenPreview.data) };
  }

  function previewCardHTML() {
    const c = previewCard();
    return `<section class="card wide preview-card" ${c.attrs}>${c.head}${c.body}</section>`;
  }

  /** Shows the chosen version in the Preview card and its row in the history, without a reload. */
  function showPreview() {
    const card = view.querySelector('.preview-card');
    if (card) {
      card.outerHTML = previewCardHTML();
      bindPreviewCard();
    }
    markPreviewedRow();
  }

  function markPreviewedRow() {
    for (const tr of view.querySelectorAll('table.history tr[data-version]')) {
      tr.classList.toggle('previewing', !!chosen && tr.dataset.version === chosen.id);
    }
  }

  function bindPreviewCard() {
    const back = view.querySelector('.preview-current');
    if (back) back.addEventListener('click', () => choose(null));
  }

  /** Previews version `id` (the current one when `id` is null or the current version's). */
  async function choose(id) {
    const seq = ++chooseSeq;
    const current = lastAsset && lastAsset.current;
    if (!id || (current && current.id === id)) {
      chosen = null;
      showPreview();
      return;
    }
    const item = lastHistory.find((m) => m.id === id) || { id };
    chosen = { id, at: item.at, collected_at: item.collected_at };
    if (chosenPreview && chosenPreview.id === id) {
      showPreview();
      return;
    }
    chosenPreview = null;
    showPreview();
    let data;
    try {
      data = await getJSON(`/api/assets/${enc(key)}/preview?limit=20&version=${enc(id)}`);
    } catch (e) {
      data = { error: e };
    }
    if (!alive || seq !== chooseSeq) return;
    chosenPreview = { id, data };
    showPreview();
    const card = view.querySelector('.preview-card');
    if (card) card.scrollIntoView({ block: 'nearest' });
  }

  function render(a, history, automation) {
    const isSource = a.kind === 'source';
    // An asset whose file does not load cannot run: the server would refuse it.
    const off = a.load_error ? ' disabled title="Its file does not load; fix it first."' : '';
    const actions = isSource
      ? '<button type="button" id="observe" class="primary">Observe</button>'
      : `<button type="button" id="materialize" class="primary"${off}>Materialize</button>` +
        `<button type="button" id="materialize-upstream"${off}>Materialize with upstream</button>`;
    const definition = kv([
      ['Kind', esc(a.kind)],
      ['Group', esc(a.group)],
      ['Owners', listOr(a.owners, (o) => esc(o))],
      ['Tags', a.tags && a.tags.length ? a.tags.map((tg) => `<span class="tag">${esc(tg)}</span>`).join(' ') : '<span class="muted">none</span>'],
      ['Code version', a.code_version ? `<span class="mono">${esc(a.code_version)}</span>` : '<span class="muted">none</span>'],
      ...originHTML(a),
      ['Reads', listOr(a.deps, assetLink)],
      ['Read by', listOr(a.dependents, assetLink)],
    ]);
    const sql = a.sql ? `<h2>SQL</h2><pre class="sql">${esc(a.sql)}</pre>` : '';
    // The schema recorded when the current version was written, else the one read from its file.
    const recorded = a.current && Array.isArray(a.current.schema) && a.current.schema.length ? a.current.schema : null;
    const columns = recorded || a.schema;
    const schema = columns
      ? table(['Column', 'Type', 'Nullable'], columns.map((c) =>
        `<tr><td class="mono">${esc(c.name)}</td><td class="mono">${esc(c.type)}</td><td>${c.nullable ? 'yes' : 'no'}</td></tr>`), 'schema')
      : '<p class="muted">Known once materialized.</p>';
    const schemaNote = recorded ? '<p class="muted schema-origin">As recorded when the current version was written.</p>' : '';
    const chart = isSource ? '' : historyChart(history);

    view.innerHTML = `<section class="page asset-page" data-key="${esc(a.key)}">
      <div class="crumbs"><a href="#/">Lineage</a> / ${esc(a.group)}</div>
      <div class="page-head">
        <div class="title-block">
          <h1><span class="asset-key">${esc(a.key)}</span> <span class="kind-chip" data-kind="${esc(a.kind)}">${esc(a.kind)}</span></h1>
          <div class="status-line">${statusBadge(a.display_status)} ${freshnessBadge(a.freshness ? a.freshness.state : 'none')}
            <span class="summary">${esc(a.summary)}</span></div>
          ${a.description ? `<p class="description">${esc(a.description)}</p>` : ''}
        </div>
        <div class="page-actions">${actions}</div>
      </div>
      <div class="cards">
        <section class="card why"><h2>Status</h2>${whyHTML(a)}</section>
        <section class="card"><h2>Freshness</h2>${freshnessHTML(a.freshness, isSource)}
          <h3>Data time</h3><p>${a.data_time ? `reflects source data as of ${timeHTML(a.data_time)}` : '<span class="muted">unknown</span>'}</p></section>
        <section class="card"><h2>Definition</h2>${definition}</section>
        <section class="card"><h2>Current version</h2>${currentHTML(a.current)}</section>
        ${partitions ? `<section class="card wide partitions-card"><h2>Partitions</h2>${partitionsHTML(partitions, opened)}</section>` : ''}
        ${isSource ? '' : `<section class="card wide automation"><h2>Automation</h2>${automation}</section>`}
        ${sql ? `<section class="card wide">${sql}</section>` : ''}
        <section class="card wide"><h2>History</h2>${chart}${historyTable(history, isSource, a.current && a.current.id)}</section>
        ${isSource ? '' : `<section class="card wide"><h2>Output schema</h2>${schema}${schemaNote}</section>`}
        ${previewCardHTML()}
      </div>
    </section>`;

    const bind = (id, path, body, what) => {
      const b = document.getElementById(id);
      if (b) b.addEventListener('click', () => startRun(b, path, body, what));
    };
    bind('materialize', '/api/runs', { selection: a.key, stale_only: false }, `Materialize ${a.key}`);
    bind('materialize-upstream', '/api/runs', { selection: `+${a.key}`, stale_only: false }, `Materialize ${a.key} with its upstream`);
    bind('observe', '/api/observe', { selection: a.key }, `Observe ${a.key}`);
    for (const b of view.querySelectorAll('.preview-version')) {
      b.addEventListener('click', () => choose(b.dataset.version));
    }
    bindPreviewCard();
    markPreviewedRow();
    for (const seg of view.querySelectorAll('.partition-bar .segment')) {
      seg.addEventListener('click', () => openSegment(seg.dataset.first, seg.dataset.last));
      seg.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          openSegment(seg.dataset.first, seg.dataset.last);
        }
      });
    }
  }

  /** Shows the ranges (with causes) of the partitions `first`..`last` under the bar. */
  async function openSegment(first, last) {
    const seq = ++loadSeq;
    let ranges;
    try {
      const range = `${first}..${last}`;
      ranges = await getJSON(`/api/assets/${enc(key)}/partitions?width=1&range=${enc(range)}`);
    } catch (e) {
      ranges = { error: e };
    }
    if (!alive || seq !== loadSeq || !lastAsset) return;
    opened = { first, last, ranges };
    render(lastAsset, lastHistory, lastAutomation);
  }

  const refresh = debounce(load, 200);
  load();
  return {
    refresh,
    onEvent(type) {
      if (type === 'assets' || type === 'run' || type === 'step') refresh();
    },
    destroy() {
      alive = false;
      refresh.cancel();
    },
  };
}

