//! What the server holds between requests: the project, the store, a cached snapshot of every
//! asset's status, the runs it started, and the channel live updates go out on.
//!
//! **Invariant:** the snapshot is recomputed whenever the store changed (a run here, or
//! `freshet` in another process: a poll notices) or a freshness deadline passed, so no response
//! is staler than one poll interval.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use freshet_core::freshness::Clock;
use freshet_core::store::{Failure, NewRun, RunKind, RunStatus, STOPPED_WITH_PROCESS};
use freshet_core::{AssetKey, Catalogues, Executor, Overrides, PlanRequest, Project, RunId, Store};
use tokio::sync::{broadcast, watch};

use super::layout::{self, Layout};
use crate::automation::Host;
use crate::automation::alerts::Alerter;
use crate::json::{AssetsEventJson, RunEventJson};

mod runs;

pub(crate) use runs::Work;

/// How often the store is polled for changes made by other processes.
const POLL: Duration = Duration::from_secs(1);

/// The server's state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(pub(crate) Arc<Shared>);

/// One live update: an SSE event name and its JSON data.
pub(crate) type LiveEvent = (&'static str, String);

/// The project as last loaded, with what is built from it. Swapped whole when the project's
/// files change and load again.
pub(crate) struct Loaded {
    pub(crate) project: Project,
    pub(crate) executor: Executor,
    /// The whole graph's layout.
    pub(crate) layout: Layout,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// How to load the project again when its files change.
#[derive(Debug)]
struct Reload {
    catalogues: Catalogues,
    overrides: Overrides,
    /// The project files' sizes and times when last loaded.
    files: Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)>,
}

pub(crate) struct Shared {
    current: std::sync::RwLock<Arc<Loaded>>,
    reload: Mutex<Option<Reload>>,
    /// Why the project's files, as they are now, do not load (the previous project serves).
    load_error: Mutex<Option<String>>,
    /// Bumped at each reload.
    generation: std::sync::atomic::AtomicU64,
    /// When this process started serving.
    started: DateTime<Utc>,
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) token: String,
    /// The token that allows reads only, beyond loopback (the action token allows them too).
    read_token: OnceLock<String>,
    /// What this process counts for `/metrics`.
    pub(crate) metrics: super::metrics::Metrics,
    /// Failed sign-ins per client, to slow guessing.
    pub(crate) sign_ins: super::web::SignIns,
    /// Bound to a loopback address: requests must name a loopback host, and the page carries
    /// the token.
    pub(crate) loopback: bool,
    pub(crate) events: broadcast::Sender<LiveEvent>,
    /// Flipped when the server shuts down: ends the event streams, which never end otherwise.
    pub(crate) stopping: watch::Sender<bool>,
    snapshot: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    dirty: AtomicBool,
    /// The sources whose files were gone at the watcher's last look (`None`: not looked yet),
    /// with what their listing found: snapshots are built with it, never listing themselves.
    gone: Mutex<Option<std::collections::BTreeMap<AssetKey, String>>>,
    /// Assets being materialized by this server's runs now.
    running: Mutex<HashMap<AssetKey, RunId>>,
    /// This server's queued and running runs, with the switch that cancels each.
    active: Mutex<HashMap<RunId, watch::Sender<bool>>>,
    /// What each of this server's materialize runs was asked to cover, until it ends (`None`:
    /// everything missing or stale): automation merges its requests into these.
    covering: Mutex<HashMap<RunId, Option<std::collections::BTreeSet<AssetKey>>>>,
    /// A permit per run executing now: at most `[execution] max_runs` (default 1) at once, the
    /// others waiting in request order.
    turns: tokio::sync::Semaphore,
    /// Where alerts go.
    pub(crate) alerter: Alerter,
}

impl Shared {
    /// Whether `token` allows reading: the read token or the action token, compared in
    /// constant time (both compared, whichever matches).
    pub(crate) fn may_read(&self, token: &str) -> bool {
        let action = super::constant_time_eq(token.as_bytes(), self.token.as_bytes());
        let read = self
            .read_token
            .get()
            .is_some_and(|r| super::constant_time_eq(token.as_bytes(), r.as_bytes()));
        action | read
    }

    /// Whether `token` is the action token.
    pub(crate) fn may_act(&self, token: &str) -> bool {
        super::constant_time_eq(token.as_bytes(), self.token.as_bytes())
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Shared")
            .field("project", &self.loaded().project)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

/// How often the watcher looks whether sources' files went (or came back): nothing in the
/// store says so.
const SOURCES_LOOKED_AT: Duration = Duration::from_secs(10);

/// The core [`freshet_core::Snapshot`] (every status and report at one moment) with what the
/// server keeps beside it: each asset's latest failure and the rendered bodies of the two
/// unfiltered lists.
#[derive(Debug)]
pub(crate) struct Snapshot {
    judged: freshet_core::Snapshot,
    /// The project it judged, and what goes with it: handlers read the graph, the layout and the
    /// executor from here, so one request never mixes two versions of the project.
    pub(crate) loaded: Arc<Loaded>,
    pub(crate) failures: HashMap<String, Failure>,
    /// When freshness next changes by time alone (reports are judged when the snapshot is made).
    valid_until: Option<DateTime<Utc>>,
    /// The unfiltered `/api/assets` and `/api/lineage` bodies, rendered on first use.
    pub(crate) assets_body: OnceLock<Bytes>,
    pub(crate) lineage_body: OnceLock<Bytes>,
}

impl std::ops::Deref for Snapshot {
    type Target = freshet_core::Snapshot;

    fn deref(&self) -> &freshet_core::Snapshot {
        &self.judged
    }
}

impl AppState {
    /// State for serving `project`. `loopback` says whether the listening address is a loopback
    /// one (see [`super::serve`]).
    pub fn new(
        project: Project,
        store: Store,
        executor: Executor,
        clock: Arc<dyn Clock>,
        token: String,
        loopback: bool,
    ) -> Self {
        let layout = layout::layout(project.graph(), None);
        let alerter = Alerter::new(&project);
        let max_runs = project.execution().max_runs;
        let (events, _) = broadcast::channel(1024);
        // One clock for what the server judges and what its runs record.
        let executor = executor.with_clock(clock.clone());
        let loaded = Loaded {
            project,
            executor,
            layout,
        };
        Self(Arc::new(Shared {
            current: std::sync::RwLock::new(Arc::new(loaded)),
            reload: Mutex::new(None),
            load_error: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            started: clock.now(),
            store,
            clock,
            token,
            read_token: OnceLock::new(),
            metrics: Default::default(),
            sign_ins: Default::default(),
            loopback,
            events,
            stopping: watch::Sender::new(false),
            snapshot: tokio::sync::Mutex::new(None),
            dirty: AtomicBool::new(true),
            gone: Mutex::new(None),
            running: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            covering: Mutex::new(HashMap::new()),
            turns: tokio::sync::Semaphore::new(max_runs),
            alerter,
        }))
    }

    /// Loads the project again (with these catalogues and overrides) whenever its files change:
    /// `freshet.toml` or a file under its SQL folder. A project that does not load keeps the
    /// previous one serving, with the error shown ([`Shared::load_error`]).
    pub fn reload_on_change(&self, catalogues: Catalogues, overrides: Overrides) {
        let files = project_files(&self.0.loaded().project);
        *lock(&self.0.reload) = Some(Reload {
            catalogues,
            overrides,
            files,
        });
    }

    /// Starts automation ([`crate::automation`]): sensors, schedules, conditions and alerts. It
    /// stops when the server stops (or [`AppState::stop`] is called).
    pub fn spawn_automation(&self) -> tokio::task::JoinHandle<()> {
        let stop = self.0.stopping.subscribe();
        tokio::spawn(crate::automation::run(Arc::new(self.clone()), stop))
    }

    /// Sets the token that allows reading but no action, for a server beyond loopback (the
    /// action token allows reading too). Only the first call counts.
    pub fn set_read_token(&self, token: String) {
        let _ = self.0.read_token.set(token);
    }

    /// The metadata store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// One evaluation of the automation conditions at a time, as the loop makes them.
    pub fn evaluator(&self) -> crate::automation::Evaluator {
        crate::automation::Evaluator::new(Arc::new(self.clone()))
    }

    /// Tells the event streams and automation to stop.
    pub fn stop(&self) {
        self.0.stopping.send_replace(true);
    }

    /// Cancels this process's runs and waits at most `patience` for them to record their end.
    pub async fn cancel_all(&self, patience: Duration) {
        self.0.cancel_all(patience).await;
    }

    /// Waits at most `grace` for this process's runs to end, then cancels the rest and waits
    /// for them to record it: a graceful stop.
    pub async fn finish_runs(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while !lock(&self.0.active).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.0.cancel_all(Duration::from_secs(10)).await;
    }

    /// Where alerts link to, unless `[alerts] web_url` says.
    pub fn set_web_url(&self, url: url::Url) {
        self.0.alerter.default_web_url(url);
    }

    /// Forgets every cached status: the next request reads the store and judges every asset
    /// again. What the server does itself whenever a run moves or the store changed.
    pub fn refresh(&self) {
        self.0.changed();
    }

    /// Watches the store for changes made elsewhere, freshness deadlines and (every 10 s)
    /// sources whose files went or came back, telling live clients when statuses may have
    /// changed; beats the heart of this server's queued runs
    /// (cancelling those another process asked to cancel) and fails the runs of processes that
    /// died. Runs until the returned task is aborted.
    pub fn spawn_watcher(&self) -> tokio::task::JoinHandle<()> {
        let shared = self.0.clone();
        tokio::spawn(async move {
            // In the same task, so aborting it stops both; a slow listing delays no beat.
            let sources = async {
                let mut interval = tokio::time::interval(SOURCES_LOOKED_AT);
                loop {
                    interval.tick().await;
                    shared.look_at_sources().await;
                }
            };
            let store = async {
                let mut last = None;
                let mut interval = tokio::time::interval(POLL);
                loop {
                    shared.watch_store(&mut interval, &mut last).await;
                }
            };
            futures::future::join(sources, store).await;
        })
    }
}

/// Automation runs in the server's state: it follows the project as reloaded, and queues its
/// runs with the API's, one queue and one `max_runs` for all.
impl Host for AppState {
    fn loaded(&self) -> (Project, Executor) {
        let loaded = self.0.loaded();
        (loaded.project.clone(), loaded.executor.clone())
    }

    fn generation(&self) -> u64 {
        self.0.generation()
    }

    fn started(&self) -> DateTime<Utc> {
        self.0.started()
    }

    fn store(&self) -> &Store {
        &self.0.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.0.clock.now()
    }

    fn alerter(&self) -> &Alerter {
        &self.0.alerter
    }

    fn changed(&self) {
        self.0.changed();
    }

    fn running(&self) -> HashSet<AssetKey> {
        self.0.running()
    }

    fn covered(&self) -> (HashSet<AssetKey>, bool) {
        self.0.covered()
    }

    fn materialize<'a>(
        &'a self,
        request: PlanRequest,
        selection: &'a str,
        triggered_by: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<RunId, freshet_core::Error>> {
        Box::pin(
            self.0
                .request(Work::Materialize(request), selection, triggered_by),
        )
    }
}

impl Shared {
    /// One turn of the store watch: reloads the project if its files changed, beats, and tells
    /// clients when the store changed or a freshness deadline passed.
    async fn watch_store(
        &self,
        interval: &mut tokio::time::Interval,
        last: &mut Option<(i64, String, i64, i64)>,
    ) {
        interval.tick().await;
        self.reload_if_changed().await;
        self.beat().await;
        let marker = self.store.change_marker().await.ok();
        let moved = marker.is_some() && last.is_some() && marker != *last;
        if marker.is_some() {
            *last = marker;
        }
        let deadline = {
            let cached = self.snapshot.lock().await;
            cached
                .as_ref()
                .and_then(|s| s.valid_until)
                .is_some_and(|t| self.clock.now() >= t)
        };
        if moved || deadline {
            self.changed();
        }
    }

    /// `request` without the assets whose files do not load (they cannot run), so that a
    /// schedule, a sensor or automation still runs the rest. (The API refuses such a request
    /// before it gets here.)
    fn without_broken(&self, mut request: PlanRequest) -> PlanRequest {
        let loaded = self.loaded();
        let project = &loaded.project;
        let graph = project.graph();
        if project.first_broken(graph.iter().map(|d| &d.key)).is_none() {
            return request;
        }
        let keys = request.selection.get_or_insert_with(|| {
            graph
                .iter()
                .filter(|d| d.kind != freshet_core::AssetKind::Source)
                .map(|d| d.key.clone())
                .collect()
        });
        keys.retain(|k| match project.load_error(k) {
            Some(error) => {
                tracing::info!(asset = %k, error, "not run: its file does not load");
                false
            }
            None => true,
        });
        request.force.retain(|k| project.load_error(k).is_none());
        request
    }

    /// Looks whether sources' files went or came back (a listing of each, nothing read), and
    /// tells clients when that changed.
    async fn look_at_sources(&self) {
        let gone = self.loaded().executor.gone_sources().await;
        let moved = {
            let mut known = lock(&self.gone);
            let moved = known.as_ref() != Some(&gone);
            *known = Some(gone);
            moved
        };
        if moved {
            self.changed();
        }
    }

    /// The sources whose files were gone at the last look, looking now if none was taken.
    async fn gone(&self) -> std::collections::BTreeMap<AssetKey, String> {
        if let Some(known) = lock(&self.gone).clone() {
            return known;
        }
        let gone = self.loaded().executor.gone_sources().await;
        *lock(&self.gone) = Some(gone.clone());
        gone
    }

    /// The project as last loaded.
    pub(crate) fn loaded(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// When this process started serving.
    pub(crate) fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// How many times the project was loaded again.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Why the project's files do not load as they are, if they do not.
    pub(crate) fn load_error(&self) -> Option<String> {
        lock(&self.load_error).clone()
    }

    /// Loads the project again if its files changed since it was last loaded.
    async fn reload_if_changed(&self) {
        if lock(&self.reload).is_none() {
            return;
        }
        let current = self.loaded();
        let files = project_files(&current.project);
        let (catalogues, overrides) = {
            let mut reload = lock(&self.reload);
            let Some(reload) = reload.as_mut() else {
                return;
            };
            if files == reload.files {
                return;
            }
            reload.files = files;
            (reload.catalogues.clone(), reload.overrides.clone())
        };
        let dir = current.project.dir().to_owned();
        let loaded = Project::load(&dir, &catalogues, &overrides).and_then(|project| {
            let executor = Executor::new(project.clone(), self.store.clone())?;
            Ok((project, executor))
        });
        match loaded {
            Ok((project, executor)) => {
                let layout = layout::layout(project.graph(), None);
                let executor = executor.with_clock(self.clock.clone());
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Loaded {
                    project,
                    executor,
                    layout,
                });
                *lock(&self.load_error) = None;
                self.alerter.reload(&self.loaded().project);
                self.generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!("project reloaded");
                self.send(
                    "project",
                    &crate::json::ProjectEventJson { load_error: None },
                );
                self.changed();
            }
            Err(e) => {
                let error = e.to_string();
                if lock(&self.load_error).as_deref() != Some(error.as_str()) {
                    tracing::warn!(error = %error, "the project does not load; still serving the previous one");
                }
                self.send(
                    "project",
                    &crate::json::ProjectEventJson {
                        load_error: Some(&error),
                    },
                );
                *lock(&self.load_error) = Some(error);
            }
        }
    }

    /// One heartbeat for this server's runs, and a look for dead ones.
    async fn beat(&self) {
        let ours: Vec<RunId> = lock(&self.active).keys().cloned().collect();
        let now = self.clock.now();
        match self.store.heartbeat(&ours, now).await {
            Ok(cancel) => {
                for id in cancel {
                    self.cancel(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot record the runs' heartbeat"),
        }
        let timeout = self.loaded().project.execution().heartbeat_timeout;
        match self.store.fail_dead_runs(now, timeout).await {
            Ok(dead) => {
                for run in dead {
                    tracing::warn!(run_id = %run.id, "run failed: its process died");
                    self.send_run(&run.id, RunStatus::Failed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for dead runs"),
        }
    }

    /// Marks the snapshot out of date and tells live clients.
    pub(crate) fn changed(&self) {
        self.dirty.store(true, Ordering::SeqCst);
        self.send("assets", &AssetsEventJson {});
    }

    pub(crate) fn send(&self, name: &'static str, data: &impl serde::Serialize) {
        // Shapes of strings and numbers always serialize. No receivers is fine: nobody is
        // watching.
        if let Ok(text) = serde_json::to_string(data) {
            let _ = self.events.send((name, text));
        }
    }

    /// Every asset's status now, from the cache when nothing changed.
    pub(crate) async fn snapshot(&self) -> Result<Arc<Snapshot>, freshet_core::Error> {
        let now = self.clock.now();
        let mut cached = self.snapshot.lock().await;
        let current = self.loaded();
        if let Some(s) = cached.as_ref()
            && !self.dirty.load(Ordering::SeqCst)
            && s.valid_until.is_none_or(|t| now < t)
            && Arc::ptr_eq(&s.loaded, &current)
        {
            return Ok(s.clone());
        }
        self.dirty.store(false, Ordering::SeqCst);
        let loaded = async {
            let gone = self.gone().await;
            let judged = freshet_core::Snapshot::load(&current.project, &self.store, now)
                .await?
                .with_gone(gone);
            let failures = self.store.failures().await?;
            Ok::<_, freshet_core::Error>((judged, failures))
        };
        let (judged, failures) = match loaded.await {
            Ok(loaded) => loaded,
            Err(e) => {
                // Try again on the next request rather than keep what may be out of date.
                self.dirty.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        let snapshot = Arc::new(Snapshot {
            valid_until: judged.valid_until(),
            judged,
            loaded: current,
            failures: failures.into_iter().map(|f| (f.asset.clone(), f)).collect(),
            assets_body: OnceLock::new(),
            lineage_body: OnceLock::new(),
        });
        *cached = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// The assets being computed now.
    pub(crate) fn running(&self) -> HashSet<AssetKey> {
        lock(&self.running).keys().cloned().collect()
    }

    /// The assets this server's queued and running materialize runs cover, and whether one of
    /// them covers everything missing or stale.
    pub(crate) fn covered(&self) -> (HashSet<AssetKey>, bool) {
        let covering = lock(&self.covering);
        let everything = covering.values().any(Option::is_none);
        let keys = covering.values().flatten().flatten().cloned().collect();
        (keys, everything)
    }

    /// Queues a run that `triggered_by` asked for (`api`, `automation`, `schedule NAME`) and
    /// starts a task that runs it in turn; returns its id at once.
    pub(crate) async fn request(
        self: &Arc<Self>,
        work: Work,
        selection: &str,
        triggered_by: &str,
    ) -> Result<RunId, freshet_core::Error> {
        if *self.stopping.borrow() {
            return Err(freshet_core::Error::Stopping);
        }
        let work = match work {
            Work::Materialize(request) => Work::Materialize(self.without_broken(request)),
            observe => observe,
        };
        let id = RunId::generate();
        let (kind, stale_only) = match &work {
            Work::Materialize(request) => (RunKind::Materialize, request.stale_only),
            Work::Observe(_) => (RunKind::Observe, false),
        };
        self.store
            .queue_run(
                &id,
                &NewRun {
                    kind,
                    selection,
                    stale_only,
                    triggered_by,
                },
                self.clock.now(),
            )
            .await?;
        let (cancel, mut cancelled) = watch::channel(false);
        lock(&self.active).insert(id.clone(), cancel);
        if let Work::Materialize(request) = &work {
            lock(&self.covering).insert(id.clone(), request.selection.clone());
        }
        self.send_run(&id, RunStatus::Queued);
        self.changed();

        let shared = self.clone();
        let run_id = id.clone();
        tokio::spawn(async move {
            // Wait for this run's turn, unless it is cancelled first.
            shared.metrics.waiting.fetch_add(1, Ordering::Relaxed);
            let turn = tokio::select! {
                turn = shared.turns.acquire() => turn.ok(),
                _ = cancelled.wait_for(|c| *c) => None,
            };
            shared.metrics.waiting.fetch_sub(1, Ordering::Relaxed);
            if turn.is_none() || *cancelled.borrow() {
                let _ = shared
                    .store
                    .finish_run(
                        &run_id,
                        RunStatus::Cancelled,
                        shared.clock.now(),
                        Some(if *shared.stopping.borrow() {
                            STOPPED_WITH_PROCESS
                        } else {
                            "cancelled before it started"
                        }),
                    )
                    .await;
            } else {
                shared.send_run(&run_id, RunStatus::Running);
                // In a task of its own, so a panic in an asset's code ends this run, not the
                // bookkeeping below.
                let work = tokio::spawn(runs::run(shared.clone(), run_id.clone(), work, cancelled));
                if let Err(e) = work.await {
                    tracing::error!(run_id = %run_id, error = %e, "run task ended abnormally");
                }
            }
            drop(turn);
            lock(&shared.active).remove(&run_id);
            lock(&shared.covering).remove(&run_id);
            lock(&shared.running).retain(|_, r| r != &run_id);
            let status = match shared.store.run_status(&run_id).await {
                Ok(Some((status, _))) if status.is_finished() => status,
                _ => {
                    // It did not get to record its end (a panic, the store went away).
                    let _ = shared
                        .store
                        .finish_run(
                            &run_id,
                            RunStatus::Failed,
                            shared.clock.now(),
                            Some("the run stopped abnormally (see the server log)"),
                        )
                        .await;
                    // What the store holds now: the run may have recorded its end after all.
                    match shared.store.run_status(&run_id).await {
                        Ok(Some((status, _))) => status,
                        _ => RunStatus::Failed,
                    }
                }
            };
            shared.send_run(&run_id, status);
            shared.changed();
            shared
                .alerter
                .run_ended(&shared.store, &run_id, shared.clock.now())
                .await;
        });
        Ok(id)
    }

    /// Cancels every run of this server and waits (at most `patience`) for them to record how
    /// they ended: what a server does before it exits.
    pub(crate) async fn cancel_all(&self, patience: Duration) {
        for switch in lock(&self.active).values() {
            switch.send_replace(true);
        }
        let deadline = tokio::time::Instant::now() + patience;
        while !lock(&self.active).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Cancels one of this server's runs. `false` when it is not one of them (finished, or run
    /// by another process).
    pub(crate) fn cancel(&self, id: &RunId) -> bool {
        match lock(&self.active).get(id) {
            Some(switch) => {
                switch.send_replace(true);
                true
            }
            None => false,
        }
    }

    fn send_run(&self, id: &RunId, status: RunStatus) {
        self.send(
            "run",
            &RunEventJson {
                run_id: id.as_str(),
                status: status.as_str(),
            },
        );
    }
}

/// `freshet.toml` and every file under the SQL folder, with their sizes and modification times:
/// what a reload watches.
fn project_files(
    project: &Project,
) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![
        project.dir().join(freshet_core::project::CONFIG_FILE),
        project.sql_dir().to_path_buf(),
    ];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else {
            out.push((path, meta.len(), meta.modified().ok()));
        }
    }
    out.sort();
    out
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain maps).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
