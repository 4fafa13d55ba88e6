// The lineage graph: every asset as a node of one SVG, laid out by the server, with pan, zoom,
// a group filter, search, and everything up- and downstream of a node highlighted.

import {
  $, view, enc, SVG_NS, esc, debounce, fmtInt, assetHref, getJSON, errorHTML, selection,
} from './core.js';

const STATUSES = ['fresh', 'stale', 'missing', 'failed', 'running'];
const FRESHNESS = ['pass', 'warn', 'fail', 'unknown'];

// Kept across visits so returning from an asset page shows the graph as it was left.
const savedGraph = { signature: '', transform: null, group: '', search: '' };
let graphPaintedOnce = false;

export function graphView() {
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

  /** A partitioned node's partitions as a thin bar along its foot: each status's share. */
  function miniBar(counts, W, H) {
    const order = ['fresh', 'blocked', 'missing', 'stale', 'failed'];
    const total = order.reduce((n, s) => n + (counts[s] || 0), 0);
    if (!total) return '';
    const left = 8;
    const width = W - 16;
    let x = left;
    const out = ['<g class="mini-bar">'];
    for (const status of order) {
      const n = counts[status] || 0;
      if (!n) continue;
      const w = Math.max((n / total) * width, 1);
      out.push(`<rect data-status="${status}" x="${x.toFixed(1)}" y="${H - 5}" width="${w.toFixed(1)}" height="3"/>`);
      x += (n / total) * width;
    }
    out.push('</g>');
    return out.join('');
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
      if (n.partitions) out.push(miniBar(n.partitions, W, H));
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

