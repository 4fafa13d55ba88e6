// Freshet's web view: the lineage graph, asset pages, runs and run pages, kept current by the
// server's event stream. Plain JavaScript with no dependencies; every piece of text from the
// server goes through esc() (or textContent) before it reaches the page.
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------------
  // Helpers

  const $ = (selector, root = document) => root.querySelector(selector);
  const view = $('#view');
  const enc = encodeURIComponent;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  /** Escapes text for HTML and SVG markup, in element content and in quoted attributes. */
  function esc(value) {
    return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
  }

  function debounce(fn, ms) {
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
  function fmtTime(iso, minutes = false) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    let s = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    if (!minutes || d.getUTCSeconds() !== 0) s += `:${pad(d.getUTCSeconds())}`;
    return `${s} UTC`;
  }

  /** "3h 12m" for a span of milliseconds, two units at most. */
  function fmtSpan(ms) {
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
  function relTime(iso, now = Date.now()) {
    const t = new Date(iso).getTime();
    if (Number.isNaN(t)) return '';
    const ms = t - now;
    if (Math.abs(ms) < 5000) return 'just now';
    return ms < 0 ? `${fmtSpan(ms)} ago` : `in ${fmtSpan(ms)}`;
  }

  /** A time as "2026-11-22 10:03:12 UTC · 3m ago"; the relative part is kept current. */
  function timeHTML(iso, minutes = false) {
    if (!iso) return '<span class="muted">—</span>';
    return `<time datetime="${esc(iso)}" title="${esc(iso)}">${esc(fmtTime(iso, minutes))}</time>` +
      ` <span class="rel" data-t="${esc(iso)}">${esc(relTime(iso))}</span>`;
  }

  function fmtDuration(ms) {
    if (ms == null) return '—';
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    return fmtSpan(ms);
  }

  function fmtBytes(n) {
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

  const fmtInt = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));
  const shortId = (id) => (id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id || '');
  const shortVersion = (v) => (v ? v.slice(0, 8) : '—');

  const assetHref = (key) => `#/assets/${enc(key)}`;
  const runHref = (id) => `#/runs/${enc(id)}`;
  const assetLink = (key) => `<a class="asset-link" href="${esc(assetHref(key))}">${esc(key)}</a>`;
  const runLink = (id) => `<a class="run-link mono" href="${esc(runHref(id))}" title="${esc(id)}">${esc(shortId(id))}</a>`;

  /** Text with the first whole-word occurrence of `key` turned into a link to its asset. */
  function linkKeyIn(text, key) {
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

  class ApiError extends Error {
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

  async function getJSON(path) {
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
  async function post(path, body) {
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

  function toast(html, kind = 'ok', ms = 8000) {
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
  async function startRun(button, path, body, what) {
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
  // Header: project, selection, global actions, live indicator

  const SELECTION_KEY = 'freshet-selection';
  let selection = '';
  try {
    selection = sessionStorage.getItem(SELECTION_KEY) || '';
  } catch (_) {
    selection = '';
  }
  $('#selection').value = selection;

  $('#selection-form').addEventListener('submit', (e) => {
    e.preventDefault();
    selection = $('#selection').value.trim();
    try {
      sessionStorage.setItem(SELECTION_KEY, selection);
    } catch (_) {
      // Storage disabled: the selection lasts for this page.
    }
    if (location.hash === '' || location.hash === '#/' || location.hash === '#') route();
    else location.hash = '#/';
  });

  $('#materialize-stale').addEventListener('click', (e) => {
    const sel = selection || null;
    startRun(e.currentTarget, '/api/runs', { selection: sel, stale_only: true },
      sel ? `Materialize what is missing or stale in ${sel}` : 'Materialize everything missing or stale');
  });

  $('#observe-sources').addEventListener('click', (e) => {
    const sel = selection || null;
    startRun(e.currentTarget, '/api/observe', { selection: sel },
      sel ? `Observe the sources in ${sel}` : 'Observe every source');
  });

  getJSON('/api/project').then((p) => {
    $('#project-name').textContent = p.name;
    document.title = `${p.name} · Freshet`;
  }).catch(() => {
    // The views report the server being unreachable.
  });

  function setLive(state, label) {
    const el = $('#live');
    el.dataset.state = state;
    el.querySelector('.live-label').textContent = label;
  }

  let everConnected = false;
  function connectEvents() {
    const events = new EventSource('/api/events');
    events.addEventListener('open', () => {
      setLive('live', 'Live');
      // Events may have been missed while disconnected.
      if (everConnected) scheduleRefresh();
      everConnected = true;
    });
    events.addEventListener('error', () => {
      if (events.readyState === EventSource.CLOSED) {
        // The browser gave up (the server refused the stream): try again later.
        setLive('down', 'Offline');
        setTimeout(connectEvents, 5000);
      } else {
        setLive('reconnecting', 'Reconnecting');
      }
    });
    for (const type of ['assets', 'run', 'step', 'log']) {
      events.addEventListener(type, (ev) => {
        let data = {};
        try {
          data = JSON.parse(ev.data || '{}') || {};
        } catch (_) {
          data = {};
        }
        if (current && current.onEvent) current.onEvent(type, data);
      });
    }
  }

  // Relative times ("3m ago") stay current.
  setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll('.rel[data-t]')) {
      el.textContent = relTime(el.dataset.t, now);
    }
  }, 15000);

  // ---------------------------------------------------------------------------------------------
  // Routing

  let current = null;

  function scheduleRefresh() {
    if (current && current.refresh) current.refresh();
  }

  function route() {
    if (current && current.destroy) current.destroy();
    current = null;
    const hash = location.hash || '#/';
    let m;
    let section = '';
    try {
      if (hash === '#/' || hash === '#') {
        section = 'graph';
        current = graphView();
      } else if ((m = hash.match(/^#\/assets\/(.+)$/))) {
        section = 'graph';
        current = assetView(decodeURIComponent(m[1]));
      } else if (hash === '#/runs' || hash === '#/runs/') {
        section = 'runs';
        current = runsView();
      } else if ((m = hash.match(/^#\/runs\/([^/]+)$/))) {
        section = 'runs';
        current = runView(decodeURIComponent(m[1]));
      }
    } catch (e) {
      if (!(e instanceof URIError)) throw e;
      current = null;
    }
    if (!current) current = notFoundView();
    for (const a of document.querySelectorAll('.nav a')) {
      a.classList.toggle('active', a.dataset.nav === section);
    }
    window.scrollTo(0, 0);
  }

  function notFoundView() {
    view.innerHTML = `<section class="page"><h1>Not found</h1>
      <p>There is no page at <code>${esc(location.hash)}</code>. Go to the <a href="#/">lineage</a> or the <a href="#/runs">runs</a>.</p></section>`;
    return {};
  }

  function errorHTML(e, what) {
    const status = e instanceof ApiError ? e.status : 0;
    const msg = e instanceof ApiError ? e.message : 'The server could not be reached.';
    return `<div class="error-box" data-http-status="${status}"><strong>${esc(what)}</strong> ${esc(msg)}</div>`;
  }

  // ---------------------------------------------------------------------------------------------
  // Lineage graph

  const STATUSES = ['fresh', 'stale', 'missing', 'failed', 'running'];
  const FRESHNESS = ['pass', 'warn', 'fail', 'unknown'];

  // Kept across visits so returning from an asset page shows the graph as it was left.
  const savedGraph = { signature: '', transform: null, group: '', search: '' };
  let graphPaintedOnce = false;

  function graphView() {
    view.innerHTML = `<section class="graph-page">
      <div class="toolbar">
        <label class="field">Group <select id="group-filter"><option value="">All groups</option></select></label>
        <input id="search" class="search" type="search" placeholder="Find an asset" title="Highlights matching assets; Enter centres the first" spellcheck="false" autocomplete="off" aria-label="Find an asset">
        <span id="graph-count" class="muted"></span>
        <span id="graph-selection" class="graph-selection"></span>
        <span class="spacer"></span>
        <div class="legend" aria-label="Legend">
          ${STATUSES.map((s) => `<span class="legend-item"><i class="swatch" data-status="${s}"></i>${s}</span>`).join('')}
          <span class="legend-sep"></span>
          ${FRESHNESS.map((f) => `<span class="legend-item" title="freshness ${f}"><i class="fdot" data-freshness="${f}"></i>${f}</span>`).join('')}
        </div>
      </div>
      <div id="graph-wrap" class="graph-wrap">
        <div class="zoom" role="group" aria-label="Zoom">
          <button type="button" id="zoom-in" title="Zoom in">+</button>
          <button type="button" id="zoom-out" title="Zoom out">−</button>
          <button type="button" id="zoom-fit" title="Fit to screen">Fit</button>
        </div>
        <svg id="graph" class="graph" xmlns="${SVG_NS}" role="group" aria-label="Lineage graph">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" class="arrow"/></marker>
            <marker id="arrow-hl" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" class="arrow-hl"/></marker>
          </defs>
          <g id="viewport"></g>
        </svg>
        <div id="graph-message" class="graph-message" hidden></div>
      </div>
    </section>`;

    const svg = $('#graph');
    const viewport = $('#viewport');
    const groupSelect = $('#group-filter');
    const search = $('#search');
    const message = $('#graph-message');
    let alive = true;
    let loadSeq = 0;

    // Graph state, rebuilt on each full render.
    let data = null;
    let signature = '';
    let nodeEls = [];
    let edgeEls = [];
    let edgeFrom = [];
    let edgeTo = [];
    let inEdges = [];
    let outEdges = [];
    let indexOf = new Map();
    let highlighted = [];
    let hovered = -1;
    const t = { x: 0, y: 0, k: 1 };
    // The SVG's box, read once and again only after it changes size (no layout reads per event).
    let svgBox = null;
    const getBox = () => svgBox || (svgBox = svg.getBoundingClientRect());
    const resizes = new ResizeObserver(() => {
      svgBox = null;
    });
    resizes.observe(svg);

    search.value = savedGraph.search;

    function applyTransform() {
      viewport.setAttribute('transform', `translate(${t.x.toFixed(1)},${t.y.toFixed(1)}) scale(${t.k.toFixed(4)})`);
    }

    /** Fits the graph to the screen; `r` is the SVG's box when the caller already has it. */
    function fit(r = getBox()) {
      if (!data || !data.nodes.length) return;
      const margin = 24;
      const w = Math.max(data.width, 1);
      const h = Math.max(data.height, 1);
      t.k = Math.min((r.width - 2 * margin) / w, (r.height - 2 * margin) / h, 1.25);
      t.k = Math.max(t.k, 0.02);
      t.x = (r.width - w * t.k) / 2;
      t.y = (r.height - h * t.k) / 2;
      applyTransform();
    }

    function zoomAt(px, py, factor) {
      const k = Math.min(4, Math.max(0.02, t.k * factor));
      const f = k / t.k;
      t.x = px - (px - t.x) * f;
      t.y = py - (py - t.y) * f;
      t.k = k;
      applyTransform();
    }

    function zoomCentre(factor) {
      const r = getBox();
      zoomAt(r.width / 2, r.height / 2, factor);
    }

    function centreOn(i) {
      const n = data.nodes[i];
      const r = getBox();
      t.k = Math.max(t.k, 1);
      t.x = r.width / 2 - (n.x + data.node_width / 2) * t.k;
      t.y = r.height / 2 - (n.y + data.node_height / 2) * t.k;
      applyTransform();
    }

    function nodeTitle(n) {
      let s = `${n.key} (${n.kind}, group ${n.group}): ${n.display_status}`;
      if (n.freshness && n.freshness !== 'none') s += `, freshness ${n.freshness}`;
      return s;
    }

    function ellipsize(text, max) {
      return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
    }

    /** Builds the whole SVG in one string: no per-node DOM calls and no layout reads. */
    function renderFull() {
      const { nodes, edges } = data;
      const W = data.node_width;
      const H = data.node_height;
      indexOf = new Map();
      for (let i = 0; i < nodes.length; i++) indexOf.set(nodes[i].key, i);
      inEdges = nodes.map(() => []);
      outEdges = nodes.map(() => []);
      edgeFrom = [];
      edgeTo = [];

      const out = ['<g class="edges">'];
      for (const e of edges) {
        const a = indexOf.get(e.from);
        const b = indexOf.get(e.to);
        if (a === undefined || b === undefined) continue;
        const ei = edgeFrom.length;
        edgeFrom.push(a);
        edgeTo.push(b);
        outEdges[a].push(ei);
        inEdges[b].push(ei);
        const na = nodes[a];
        const nb = nodes[b];
        const x1 = na.x + W;
        const y1 = na.y + H / 2;
        const x2 = nb.x - 2;
        const y2 = nb.y + H / 2;
        const dx = Math.max(30, Math.abs(x2 - x1) / 2);
        out.push(`<path class="edge" d="M${x1} ${y1}C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}"/>`);
      }
      out.push('</g><g class="nodes">');
      const maxChars = Math.max(4, Math.floor((W - 30) / 7.25));
      const subChars = Math.max(4, Math.floor((W - 20) / 6));
      const showSub = H >= 32;
      const labelY = showSub ? Math.round(H * 0.43) : Math.round(H / 2 + 4);
      const subY = Math.round(H * 0.8);
      for (let i = 0; i < nodes.length; i++) {
        const n = nodes[i];
        out.push(`<g class="node" tabindex="0" role="link" data-i="${i}" data-key="${esc(n.key)}" data-status="${esc(n.display_status)}" data-freshness="${esc(n.freshness)}" transform="translate(${n.x},${n.y})">`,
          `<title>${esc(nodeTitle(n))}</title>`,
          `<rect class="box" width="${W}" height="${H}" rx="6"/>`,
          `<rect class="stripe" x="0" y="0" width="5" height="${H}" rx="2"/>`,
          `<text class="label" x="12" y="${labelY}">${esc(ellipsize(n.key, maxChars))}</text>`);
        if (showSub) out.push(`<text class="sub" x="12" y="${subY}">${esc(ellipsize(`${n.kind} · ${n.group}`, subChars))}</text>`);
        out.push(`<circle class="fbadge" cx="${W - 10}" cy="10" r="5"/></g>`);
      }
      out.push('</g>');
      viewport.innerHTML = out.join('');
      nodeEls = Array.from(viewport.querySelectorAll('g.node'));
      edgeEls = Array.from(viewport.querySelectorAll('path.edge'));
      highlighted = [];
      hovered = -1;
    }

    /** Same nodes at the same places: only statuses and freshness change. */
    function updateInPlace() {
      const { nodes } = data;
      for (let i = 0; i < nodes.length; i++) {
        const n = nodes[i];
        const el = nodeEls[i];
        if (el.getAttribute('data-status') !== n.display_status) el.setAttribute('data-status', n.display_status);
        if (el.getAttribute('data-freshness') !== n.freshness) el.setAttribute('data-freshness', n.freshness);
        el.firstChild.textContent = nodeTitle(n);
      }
    }

    function buildGroups() {
      const groups = Array.from(new Set(data.nodes.map((n) => n.group))).sort();
      const chosen = groupSelect.value || savedGraph.group;
      groupSelect.innerHTML = '<option value="">All groups</option>' +
        groups.map((g) => `<option value="${esc(g)}">${esc(g)}</option>`).join('');
      groupSelect.value = groups.includes(chosen) ? chosen : '';
    }

    /** Group filter dims, search highlights: one pass writing classes, no reads. */
    function applyFilters() {
      if (!data) return;
      const group = groupSelect.value;
      const q = search.value.trim().toLowerCase();
      const dimmed = new Uint8Array(data.nodes.length);
      let matches = 0;
      for (let i = 0; i < data.nodes.length; i++) {
        const n = data.nodes[i];
        const dim = group !== '' && n.group !== group;
        dimmed[i] = dim ? 1 : 0;
        const match = q !== '' && n.key.toLowerCase().includes(q);
        if (match) matches += 1;
        nodeEls[i].classList.toggle('dim', dim);
        nodeEls[i].classList.toggle('match', match);
      }
      for (let e = 0; e < edgeEls.length; e++) {
        edgeEls[e].classList.toggle('dim', group !== '' && (dimmed[edgeFrom[e]] === 1 || dimmed[edgeTo[e]] === 1));
      }
      svg.classList.toggle('searching', q !== '');
      let count = `${fmtInt(data.nodes.length)} assets · ${fmtInt(edgeEls.length)} edges`;
      if (q) count += ` · ${fmtInt(matches)} matching`;
      $('#graph-count').textContent = count;
      savedGraph.group = group;
      savedGraph.search = search.value;
    }

    function clearHighlight() {
      for (const el of highlighted) el.classList.remove('hl', 'hl-self');
      highlighted = [];
      hovered = -1;
      svg.classList.remove('hovering');
    }

    /** Highlights a node with everything upstream and downstream of it, transitively. */
    function highlight(i) {
      if (i === hovered) return;
      clearHighlight();
      hovered = i;
      const seen = new Uint8Array(nodeEls.length);
      const edgesOn = [];
      seen[i] = 1;
      for (const [adj, other] of [[inEdges, edgeFrom], [outEdges, edgeTo]]) {
        const stack = [i];
        const visited = new Uint8Array(nodeEls.length);
        visited[i] = 1;
        while (stack.length) {
          const v = stack.pop();
          for (const e of adj[v]) {
            edgesOn.push(e);
            const w = other[e];
            if (!visited[w]) {
              visited[w] = 1;
              seen[w] = 1;
              stack.push(w);
            }
          }
        }
      }
      for (let v = 0; v < seen.length; v++) {
        if (seen[v]) {
          nodeEls[v].classList.add('hl');
          highlighted.push(nodeEls[v]);
        }
      }
      nodeEls[i].classList.add('hl-self');
      for (const e of edgesOn) {
        edgeEls[e].classList.add('hl');
        highlighted.push(edgeEls[e]);
      }
      svg.classList.add('hovering');
    }

    function showMessage(html) {
      message.innerHTML = html;
      message.hidden = !html;
    }

    function painted() {
      // The mark is taken in the frame after the one that drew the graph.
      requestAnimationFrame(() => requestAnimationFrame(() => {
        if (!alive) return;
        if (!graphPaintedOnce) {
          graphPaintedOnce = true;
          performance.mark('freshet-graph-painted');
        }
        document.body.dataset.graphReady = '1';
      }));
    }

    async function load() {
      const seq = ++loadSeq;
      const path = selection ? `/api/lineage?selection=${enc(selection)}` : '/api/lineage';
      $('#graph-selection').innerHTML = selection
        ? `selection <code>${esc(selection)}</code> <a href="#/" id="clear-selection">clear</a>` : '';
      let next;
      try {
        next = await getJSON(path);
      } catch (e) {
        if (!alive || seq !== loadSeq) return;
        showMessage(errorHTML(e, selection ? 'Could not show this selection:' : 'Could not load the lineage:'));
        return;
      }
      if (!alive || seq !== loadSeq) return;
      // Numbers go into SVG attributes unescaped: make sure they are numbers.
      next.node_width = Number(next.node_width) || 200;
      next.node_height = Number(next.node_height) || 40;
      next.width = Number(next.width) || 0;
      next.height = Number(next.height) || 0;
      for (const n of next.nodes) {
        n.x = Number(n.x) || 0;
        n.y = Number(n.y) || 0;
      }
      data = next;
      // Measured before the new nodes go in, so the browser lays them out once, in the next frame.
      const box = getBox();
      const sig = `${data.node_width}x${data.node_height}|` +
        data.nodes.map((n) => `${n.key}@${n.x},${n.y}`).join('|') + '|' +
        data.edges.map((e) => `${e.from}>${e.to}`).join('|');
      if (sig === signature) {
        updateInPlace();
      } else {
        renderFull();
        buildGroups();
        if (sig === savedGraph.signature && savedGraph.transform) {
          Object.assign(t, savedGraph.transform);
          applyTransform();
        } else {
          fit(box);
        }
        signature = sig;
        savedGraph.signature = sig;
      }
      applyFilters();
      showMessage(data.nodes.length ? '' : `<p>No assets${selection ? ' match this selection' : ' in this project'}.</p>`);
      painted();
    }

    // Interaction: pan by dragging, zoom with the wheel and the buttons.
    let drag = null;
    let suppressClick = false;
    svg.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      suppressClick = false;
      drag = { x: e.clientX, y: e.clientY, tx: t.x, ty: t.y, moved: false, id: e.pointerId };
    });
    svg.addEventListener('pointermove', (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (!drag.moved) {
        if (Math.abs(dx) + Math.abs(dy) < 4) return;
        drag.moved = true;
        // Captured only once it is a drag, so a plain click still reaches its node.
        svg.setPointerCapture(drag.id);
        svg.classList.add('dragging');
        clearHighlight();
      }
      t.x = drag.tx + dx;
      t.y = drag.ty + dy;
      applyTransform();
    });
    const endDrag = () => {
      if (drag && drag.moved) {
        suppressClick = true;
        svg.classList.remove('dragging');
      }
      drag = null;
    };
    svg.addEventListener('pointerup', endDrag);
    svg.addEventListener('pointercancel', endDrag);
    svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = getBox();
      const scale = e.deltaMode === 1 ? 0.05 : 0.0015;
      zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * scale));
    }, { passive: false });
    svg.addEventListener('click', (e) => {
      if (suppressClick) {
        suppressClick = false;
        return;
      }
      const g = e.target.closest('g.node');
      if (g) location.hash = assetHref(g.dataset.key);
    });
    svg.addEventListener('keydown', (e) => {
      const g = e.target.closest && e.target.closest('g.node');
      if (g && e.key === 'Enter') location.hash = assetHref(g.dataset.key);
    });
    svg.addEventListener('mouseover', (e) => {
      if (drag && drag.moved) return;
      const g = e.target.closest('g.node');
      if (g) highlight(Number(g.dataset.i));
      else if (hovered >= 0) clearHighlight();
    });
    svg.addEventListener('mouseleave', clearHighlight);
    svg.addEventListener('focusin', (e) => {
      const g = e.target.closest('g.node');
      if (g) highlight(Number(g.dataset.i));
    });
    svg.addEventListener('focusout', clearHighlight);
    $('#zoom-in').addEventListener('click', () => zoomCentre(1.25));
    $('#zoom-out').addEventListener('click', () => zoomCentre(0.8));
    $('#zoom-fit').addEventListener('click', () => fit());
    groupSelect.addEventListener('change', applyFilters);
    search.addEventListener('input', applyFilters);
    search.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        const q = search.value.trim().toLowerCase();
        if (!q || !data) return;
        const i = data.nodes.findIndex((n) => n.key.toLowerCase().includes(q));
        if (i >= 0) {
          centreOn(i);
          highlight(i);
        }
      } else if (e.key === 'Escape') {
        search.value = '';
        applyFilters();
      }
    });
    $('#graph-selection').addEventListener('click', (e) => {
      if (e.target.id !== 'clear-selection') return;
      e.preventDefault();
      $('#selection').value = '';
      $('#selection-form').requestSubmit();
    });

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
        resizes.disconnect();
        savedGraph.transform = { ...t };
        delete document.body.dataset.graphReady;
      },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Asset page

  function statusBadge(status) {
    return `<span class="status-badge" data-status="${esc(status)}">${esc(status)}</span>`;
  }

  function freshnessBadge(state) {
    return `<span class="freshness-badge" data-freshness="${esc(state)}">${esc(state === 'none' ? 'no policy' : state)}</span>`;
  }

  function kv(rows) {
    const body = rows.filter((r) => r).map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('');
    return `<dl class="kv">${body}</dl>`;
  }

  const listOr = (items, render, empty = '<span class="muted">none</span>') =>
    (items && items.length ? items.map(render).join(', ') : empty);

  function table(headers, rows, cls = '') {
    return `<div class="table-wrap"><table class="${cls}"><thead><tr>${headers.map((h) => `<th>${h}</th>`).join('')}</tr></thead>` +
      `<tbody>${rows.join('')}</tbody></table></div>`;
  }

  /** Rows and duration of each materialization over time, as two small panels. */
  function historyChart(items) {
    const points = items.filter((m) => m.kind === 'materialization' && m.at)
      .map((m) => ({ t: new Date(m.at).getTime(), rows: m.row_count, ms: m.duration_ms, m }))
      .filter((p) => !Number.isNaN(p.t))
      .sort((a, b) => a.t - b.t);
    if (points.length === 0) return '';
    const Wd = 640;
    const left = 64;
    const right = 16;
    const panels = [
      { field: 'rows', label: 'Rows', cls: 'series-rows', top: 22, fmt: fmtInt },
      { field: 'ms', label: 'Duration', cls: 'series-ms', top: 118, fmt: fmtDuration },
    ];
    const ph = 62;
    const t0 = points[0].t;
    const t1 = points[points.length - 1].t;
    const xOf = (tm) => (t1 === t0 ? (left + Wd - right) / 2 : left + ((tm - t0) / (t1 - t0)) * (Wd - left - right));
    const out = [`<svg class="chart" viewBox="0 0 ${Wd} 212" role="img" aria-label="Rows and duration of each materialization">`];
    for (const p of panels) {
      const values = points.map((q) => q[p.field]).filter((v) => v != null);
      const max = values.length ? Math.max(...values) : 0;
      const yOf = (v) => p.top + ph - (max > 0 ? (v / max) * ph : 0);
      out.push(`<text class="axis-label ${p.cls}-label" x="${left}" y="${p.top - 8}">${esc(p.label)}</text>`,
        `<text class="axis-value" x="${left - 6}" y="${p.top + 4}" text-anchor="end">${esc(p.fmt(max))}</text>`,
        `<text class="axis-value" x="${left - 6}" y="${p.top + ph + 4}" text-anchor="end">0</text>`,
        `<line class="grid-line" x1="${left}" x2="${Wd - right}" y1="${p.top}" y2="${p.top}"/>`,
        `<line class="axis" x1="${left}" x2="${Wd - right}" y1="${p.top + ph}" y2="${p.top + ph}"/>`);
      const pts = points.filter((q) => q[p.field] != null);
      if (pts.length > 1) {
        out.push(`<polyline class="${p.cls}" points="${pts.map((q) => `${xOf(q.t).toFixed(1)},${yOf(q[p.field]).toFixed(1)}`).join(' ')}"/>`);
      }
      for (const q of pts) {
        out.push(`<circle class="${p.cls}-dot" cx="${xOf(q.t).toFixed(1)}" cy="${yOf(q[p.field]).toFixed(1)}" r="3">` +
          `<title>${esc(fmtTime(q.m.at))}: ${esc(p.fmt(q[p.field]))}${p.field === 'rows' ? ' rows' : ''}</title></circle>`);
      }
    }
    out.push(`<text class="axis-value" x="${left}" y="206">${esc(fmtTime(points[0].m.at, true))}</text>`);
    if (t1 !== t0) out.push(`<text class="axis-value" x="${Wd - right}" y="206" text-anchor="end">${esc(fmtTime(points[points.length - 1].m.at, true))}</text>`);
    out.push('</svg>');
    return out.join('');
  }

  function historyTable(items, isSource) {
    if (!items.length) return `<p class="muted">No ${isSource ? 'observations' : 'materializations'} yet.</p>`;
    if (isSource) {
      return table(['Observed', 'Checked', 'Data version', 'Files', 'Size'], items.map((o) =>
        `<tr><td>${timeHTML(o.at)}</td><td>${timeHTML(o.checked_at)}</td><td class="mono">${esc(shortVersion(o.data_version))}</td>` +
        `<td class="num">${fmtInt(o.file_count)}</td><td class="num">${esc(fmtBytes(o.byte_size))}</td></tr>`), 'history');
    }
    return table(['Materialized', 'Run', 'Rows', 'Size', 'Duration', 'Data version', 'Code version', 'Data time'], items.map((m) =>
      `<tr><td>${timeHTML(m.at)}</td><td>${m.run_id ? runLink(m.run_id) : '—'}</td><td class="num">${fmtInt(m.row_count)}</td>` +
      `<td class="num">${esc(fmtBytes(m.byte_size))}</td><td class="num">${esc(fmtDuration(m.duration_ms))}</td>` +
      `<td class="mono">${esc(shortVersion(m.data_version))}</td><td class="mono">${esc(shortVersion(m.code_version))}</td>` +
      `<td>${m.data_time ? esc(fmtTime(m.data_time)) : '<span class="muted">—</span>'}</td></tr>`), 'history');
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
      ['Duration', esc(fmtDuration(c.duration_ms))],
      ['Data version', `<span class="mono">${esc(c.data_version)}</span>`],
      ['Code version', `<span class="mono">${esc(c.code_version || '—')}</span>`],
      ['Data time', timeHTML(c.data_time)],
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
    if (a.causes && a.causes.length) {
      parts.push(`<ul class="causes">${a.causes.map((c) =>
        `<li data-category="${esc(c.category)}"><span class="cat">${esc(c.category)}</span> ${linkKeyIn(c.words || c.reason || '', c.dependency)}</li>`).join('')}</ul>`);
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

  function assetView(key) {
    view.innerHTML = `<section class="page asset-page"><p class="muted">Loading ${esc(key)}…</p></section>`;
    let alive = true;
    let loadSeq = 0;
    let preview = null;
    let previewFor = undefined;

    async function load() {
      const seq = ++loadSeq;
      const base = `/api/assets/${enc(key)}`;
      let a;
      let history;
      try {
        [a, history] = await Promise.all([getJSON(base), getJSON(`${base}/history?limit=50`)]);
      } catch (e) {
        if (!alive || seq !== loadSeq) return;
        view.innerHTML = `<section class="page asset-page"><div class="crumbs"><a href="#/">Lineage</a> / ${esc(key)}</div>${errorHTML(e, 'Could not load this asset:')}</section>`;
        return;
      }
      // The preview is fetched again only when the current version changes.
      const c = a.current;
      const currentId = c ? `${c.id ?? ''}|${c.at ?? ''}|${c.data_version ?? ''}` : null;
      if (currentId !== previewFor) {
        let p = null;
        if (currentId) {
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
      render(a, history.items || []);
    }

    function previewHTML() {
      if (!preview) return '<p class="muted">Nothing to preview yet.</p>';
      if (preview.error) return errorHTML(preview.error, 'Could not load a preview:');
      const cols = preview.columns || [];
      const rows = preview.rows || [];
      if (!rows.length) return '<p class="muted">No rows.</p>';
      return table(cols.map((c) => `${esc(c.name)}<span class="col-type">${esc(c.type)}</span>`),
        rows.map((r) => `<tr>${r.map((v) => (v == null ? '<td class="null">null</td>' : `<td>${esc(v)}</td>`)).join('')}</tr>`),
        'preview');
    }

    function render(a, history) {
      const isSource = a.kind === 'source';
      const actions = isSource
        ? '<button type="button" id="observe" class="primary">Observe</button>'
        : '<button type="button" id="materialize" class="primary">Materialize</button>' +
          '<button type="button" id="materialize-upstream">Materialize with upstream</button>';
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
      const schema = a.schema
        ? table(['Column', 'Type', 'Nullable'], a.schema.map((c) =>
          `<tr><td class="mono">${esc(c.name)}</td><td class="mono">${esc(c.type)}</td><td>${c.nullable ? 'yes' : 'no'}</td></tr>`), 'schema')
        : '<p class="muted">Known once materialized.</p>';
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
          ${sql ? `<section class="card wide">${sql}</section>` : ''}
          <section class="card wide"><h2>History</h2>${chart}${historyTable(history, isSource)}</section>
          ${isSource ? '' : `<section class="card wide"><h2>Output schema</h2>${schema}</section>`}
          <section class="card wide"><h2>Preview</h2>${previewHTML()}</section>
        </div>
      </section>`;

      const bind = (id, path, body, what) => {
        const b = document.getElementById(id);
        if (b) b.addEventListener('click', () => startRun(b, path, body, what));
      };
      bind('materialize', '/api/runs', { selection: a.key, stale_only: false }, `Materialize ${a.key}`);
      bind('materialize-upstream', '/api/runs', { selection: `+${a.key}`, stale_only: false }, `Materialize ${a.key} with its upstream`);
      bind('observe', '/api/observe', { selection: a.key }, `Observe ${a.key}`);
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

  // ---------------------------------------------------------------------------------------------
  // Runs

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
    return `${parts.join(' · ')} <span class="muted">of ${fmtInt(s.total)}</span>`;
  }

  function runsView() {
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

  function runView(id) {
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

  // ---------------------------------------------------------------------------------------------

  window.addEventListener('hashchange', route);
  route();
  connectEvents();
})();
