// Freshet's web view: the lineage graph (graph.js), asset pages (asset.js), runs and run pages
// (runs.js), kept current by the server's event stream. Plain JavaScript modules with no
// dependencies and no build step; what the pages share is in core.js. This entry module wires the
// header, the event stream and the hash routes.

import {
  $, view, esc, relTime, getJSON, startRun, selection, setSelection, currentView, setCurrentView,
  scheduleRefresh,
} from './core.js';
import { graphView } from './graph.js';
import { assetView } from './asset.js';
import { runsView, runView } from './runs.js';
import { automationView } from './automation.js';

// ---------------------------------------------------------------------------------------------
// Header: project, selection, global actions, live indicator

$('#selection').value = selection;

$('#selection-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setSelection($('#selection').value.trim());
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

/** Shows why the project's files do not load (the server keeps serving the last good one). */
function showLoadError(error) {
  const el = $('#project-error');
  el.hidden = !error;
  el.innerHTML = error
    ? `<strong>The project's files do not load</strong>; still showing the last version that did: <code>${esc(error)}</code>`
    : '';
}

function loadProject() {
  getJSON('/api/project').then((p) => {
    $('#project-name').textContent = p.name;
    document.title = `${p.name} · Freshet`;
    showLoadError(p.load_error);
  }).catch(() => {
    // The views report the server being unreachable.
  });
}
loadProject();

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
  // The project was loaded again, or its files stopped loading.
  events.addEventListener('project', () => loadProject());
  for (const type of ['assets', 'run', 'step', 'log']) {
    events.addEventListener(type, (ev) => {
      let data = {};
      try {
        data = JSON.parse(ev.data || '{}') || {};
      } catch (_) {
        data = {};
      }
      const current = currentView();
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

function route() {
  const old = currentView();
  if (old && old.destroy) old.destroy();
  setCurrentView(null);
  let current = null;
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
    } else if (hash === '#/automation') {
      section = 'automation';
      current = automationView();
    } else if ((m = hash.match(/^#\/runs\/([^/]+)$/))) {
      section = 'runs';
      current = runView(decodeURIComponent(m[1]));
    }
  } catch (e) {
    if (!(e instanceof URIError)) throw e;
    current = null;
  }
  if (!current) current = notFoundView();
  setCurrentView(current);
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

// ---------------------------------------------------------------------------------------------
// Start

window.addEventListener('hashchange', route);
route();
connectEvents();
