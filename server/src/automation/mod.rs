//! Automation: the long-running side that `freshet daemon` and `freshet serve` run. Every
//! quarter second it looks at the sources that are due (local files each time, sources on
//! object stores at their interval), handles schedules whose tick passed, and, when anything
//! may have changed (new source data, the store moved, a deadline came, or 30 s passed),
//! evaluates every asset's automation condition ([`freshet_core::automation`]) and turns what
//! is requested into one run through the server's queue. Every decision is recorded with its
//! reason; alerts go out as runs fail and freshness turns.
//!
//! **Invariant:** the loop never waits for a run: requests are queued, and the next evaluation
//! sees them in progress, so an asset is never requested twice for one situation.
//!
//! **Boundary:** automation knows the process it runs in only through [`Host`], which the
//! server's state implements; it imports nothing of `serve`.

pub(crate) mod alerts;
mod schedules;
mod sensors;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use freshet_core::automation::{self, Cursor, Facts, FailureFact, RequestKind, RunFact};
use freshet_core::freshness::FreshnessEvaluator;
use freshet_core::model::{EvaluationId, FreshnessState};
use freshet_core::planner::Statuses;
use freshet_core::project::Computation;
use freshet_core::store::{DecisionRecord, EvaluationRecord, RunStatus};
use freshet_core::triggers::LOCAL_OBSERVE_INTERVAL;
use freshet_core::{AssetKey, Executor, PlanRequest, Project, RunId, Store};
use futures::future::BoxFuture;
use tokio::sync::watch;

use alerts::Alerter;

/// How often the loop looks around.
const TICK: Duration = Duration::from_millis(250);

/// An evaluation at least this often, even when nothing seems to have changed.
const RE_EVALUATE: Duration = Duration::from_secs(30);

/// An evaluation is recorded when a decision changed, or at least this often.
const RECORD_EVERY: Duration = Duration::from_secs(60);

/// The lineage is kept in memory and caught up from the heads that moved; it is read whole
/// again this often, in case a commit landed later than [`CATCH_UP_MARGIN`] after its event.
const FULL_RELOAD: Duration = Duration::from_secs(300);

/// How far before the previous read catching up reads again, for commits still in flight: longer
/// than a writer takes from an event's time to its commit (SQLite's busy timeout is 5 s); a
/// commit later still is caught by the next [`FULL_RELOAD`].
const CATCH_UP_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// How often the loop renews its hold on automation for the store, and how long a silent
/// holder keeps it.
const OWNER_BEAT: Duration = Duration::from_secs(2);
const OWNER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the loop waits after a failed evaluation.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long the assets' usual durations (for `freshness` lead times) are kept before read again.
const DURATIONS_FOR: Duration = Duration::from_secs(300);

/// What automation needs of the process it runs in: the project as last loaded, the store, the
/// clock, where alerts go, and the queue its runs go through. The server's state implements it
/// (for `freshet serve` and `freshet daemon` alike); automation knows nothing else of the server.
pub(crate) trait Host: Send + Sync {
    /// The project as last loaded, and the executor built for it.
    fn loaded(&self) -> (Project, Executor);

    /// How many times the project was loaded again.
    fn generation(&self) -> u64;

    /// When this process started.
    fn started(&self) -> DateTime<Utc>;

    /// The metadata store.
    fn store(&self) -> &Store;

    /// Now, by the process's clock.
    fn now(&self) -> DateTime<Utc>;

    /// Where alerts go.
    fn alerter(&self) -> &Alerter;

    /// Says that statuses may have changed (a source had new data).
    fn changed(&self);

    /// The assets being materialized by this process's runs now.
    fn running(&self) -> HashSet<AssetKey>;

    /// The assets this process's queued and running materialize runs cover, and whether one of
    /// them covers everything missing or stale.
    fn covered(&self) -> (HashSet<AssetKey>, bool);

    /// Queues a run materializing `request` (`selection` as the user wrote it), asked for by
    /// `triggered_by` (`automation`, `schedule NAME`, `sensor NAME`), and returns its id at
    /// once: the run goes on in its turn, never waited for.
    fn materialize<'a>(
        &'a self,
        request: PlanRequest,
        selection: &'a str,
        triggered_by: &'a str,
    ) -> BoxFuture<'a, freshet_core::Result<RunId>>;
}

/// Runs automation until `stop` turns true.
pub(crate) async fn run(shared: Arc<dyn Host>, mut stop: watch::Receiver<bool>) {
    shared.alerter().seed(shared.store()).await;
    // The hold on automation is renewed by a task of its own, so a long turn of the loop (a slow
    // sensor, a large object store) never lets it lapse while this process is still at work.
    let (owns_tx, owns) = watch::channel(false);
    let claimer = tokio::spawn(hold_automation(shared.clone(), owns_tx));
    let mut automation = Automation::new(shared, owns);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        automation.tick().await;
    }
    claimer.abort();
}

/// Claims (and keeps) the right to run automation on the store every [`OWNER_BEAT`], telling
/// the loop whether it has it.
async fn hold_automation(shared: Arc<dyn Host>, owns: watch::Sender<bool>) {
    let mut beats = tokio::time::interval(OWNER_BEAT);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beats.tick().await;
        let held = match shared
            .store()
            .claim_automation(shared.now(), OWNER_TIMEOUT)
            .await
        {
            Ok(None) => true,
            Ok(Some(other)) => {
                if *owns.borrow() || !WAITING_SAID.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        pid = other.pid,
                        host = %other.host,
                        "automation on this store runs in another process; this one waits"
                    );
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim automation on the store");
                false
            }
        };
        owns.send_if_modified(|o| std::mem::replace(o, held) != held);
    }
}

/// Whether this process said it waits for another to run automation (said once until it runs it).
static WAITING_SAID: AtomicBool = AtomicBool::new(false);

/// One evaluation at a time, as the loop makes them (for benchmarks and embedding): the server
/// state's `evaluator` makes one.
pub struct Evaluator(Automation);

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}

impl Evaluator {
    pub(crate) fn new(shared: Arc<dyn Host>) -> Self {
        // Asked to evaluate, it does, whichever process holds automation.
        let (_, owns) = watch::channel(true);
        Self(Automation::new(shared, owns))
    }

    /// Evaluates every condition once, requesting and recording as the daemon does.
    pub async fn evaluate(&mut self) -> freshet_core::Result<()> {
        self.0.evaluate().await
    }
}

/// A source the loop looks at, and when next.
struct Watched {
    key: AssetKey,
    /// On local disk (looked at every quarter second) rather than an object store.
    local: bool,
    interval: Duration,
    next: Instant,
    /// The last error, logged once until it changes.
    failing: Option<String>,
}

/// The lineage kept in memory, when it was last read (by this process's clock), and when it
/// was last read whole.
type KeptLineage = (freshet_core::Lineage, DateTime<Utc>, Instant);

struct Automation {
    shared: Arc<dyn Host>,
    /// The project this loop follows, its executor, and its generation.
    project: Project,
    executor: Executor,
    generation: u64,
    sources: Vec<Watched>,
    schedules: schedules::Schedules,
    sensors: sensors::Sensors,
    last_marker: Option<(i64, String, i64, i64)>,
    last_evaluation: Option<Instant>,
    last_recorded: Option<Instant>,
    next_at: Option<DateTime<Utc>>,
    /// Each asset's freshness at the last evaluation, for alerts (empty until the first).
    freshness: HashMap<AssetKey, FreshnessState>,
    evaluated_once: bool,
    /// The lineage as of the newest event in it, and when it was last read whole.
    lineage: Option<KeptLineage>,
    /// Each asset's latest decision and cursor: read once, then kept as this process records
    /// them (it is their one writer).
    state: Option<HashMap<AssetKey, DecisionRecord>>,
    /// Usual durations, and when they were read.
    durations: Option<(HashMap<AssetKey, Duration>, Instant)>,
    /// Whether this process runs automation on the store (from [`hold_automation`]), and
    /// whether it did at the last turn.
    owns: watch::Receiver<bool>,
    owned: bool,
    /// Decisions judged but not yet recorded (the store refused): recorded with the next ones.
    unrecorded: Vec<DecisionRecord>,
    /// Not before: after a failed evaluation, the loop waits a little before the next.
    retry_at: Option<Instant>,
}

impl Automation {
    fn new(shared: Arc<dyn Host>, owns: watch::Receiver<bool>) -> Self {
        let (project, executor) = shared.loaded();
        let sources = watched_sources(&project);
        let schedules = schedules::Schedules::new(&project, shared.started());
        let sensors = sensors::Sensors::new(&project);
        Self {
            generation: shared.generation(),
            project,
            executor,
            shared,
            sources,
            schedules,
            sensors,
            last_marker: None,
            last_evaluation: None,
            last_recorded: None,
            next_at: None,
            freshness: HashMap::new(),
            evaluated_once: false,
            lineage: None,
            state: None,
            durations: None,
            owns,
            owned: false,
            unrecorded: Vec::new(),
            retry_at: None,
        }
    }

    /// Takes up automation when this process gets it: what another process decided meanwhile
    /// is in the store, not in memory, so everything kept is read again.
    fn take_up(&mut self) {
        tracing::info!("this process runs automation on the store");
        WAITING_SAID.store(false, Ordering::Relaxed);
        self.state = None;
        self.lineage = None;
        self.unrecorded.clear();
        self.follow_project();
    }

    /// Takes up the project as it was loaded again, if it was.
    fn follow_reloads(&mut self) {
        let generation = self.shared.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        (self.project, self.executor) = self.shared.loaded();
        // Decisions and cursors stay (by asset); the next evaluation judges the new definitions.
        self.follow_project();
    }

    /// Looks at the project's sources, schedules and sensors afresh, and evaluates at once.
    fn follow_project(&mut self) {
        let project = &self.project;
        self.sources = watched_sources(project);
        self.schedules = schedules::Schedules::new(project, self.shared.started());
        self.sensors = sensors::Sensors::new(project);
        self.last_evaluation = None;
    }
}

/// The sources of `project` to look at, each due now.
fn watched_sources(project: &freshet_core::Project) -> Vec<Watched> {
    let triggers = project.triggers();
    let now = Instant::now();
    project
        .graph()
        .iter()
        .filter_map(|def| match project.computation(&def.key) {
            Some(Computation::Source(spec)) => {
                let local = !spec.location.contains("://") || spec.location.starts_with("file://");
                let interval = if local {
                    LOCAL_OBSERVE_INTERVAL
                } else {
                    triggers
                        .source_intervals
                        .get(&def.key)
                        .copied()
                        .unwrap_or(triggers.observe_interval)
                };
                Some(Watched {
                    key: def.key.clone(),
                    local,
                    interval,
                    next: now,
                    failing: None,
                })
            }
            _ => None,
        })
        .collect()
}

impl Automation {
    async fn tick(&mut self) {
        self.follow_reloads();
        let owns = *self.owns.borrow();
        if !owns {
            self.owned = false;
            return;
        }
        if !self.owned {
            self.owned = true;
            self.take_up();
        }
        let sensed = self.sense().await;
        self.schedules.tick(&self.shared, &self.project).await;
        self.sensors.tick(&self.shared, &self.project).await;
        let marker = self.shared.store().change_marker().await.ok();
        let now = self.shared.now();
        let due = sensed
            || marker != self.last_marker
            || self.next_at.is_some_and(|t| now >= t)
            || self
                .last_evaluation
                .is_none_or(|t| t.elapsed() >= RE_EVALUATE);
        if !due || self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.last_marker = marker;
        self.last_evaluation = Some(Instant::now());
        match self.evaluate().await {
            Ok(()) => self.retry_at = None,
            Err(e) => {
                tracing::warn!(error = %e, "automation evaluation failed; trying again in 5 s");
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }

    /// Looks at the sources that are due; whether any had new data (recorded).
    async fn sense(&mut self) -> bool {
        let now = Instant::now();
        let mut any = false;
        for watched in &mut self.sources {
            if watched.next > now {
                continue;
            }
            watched.next = now + watched.interval;
            match self
                .executor
                .observe_changes(std::slice::from_ref(&watched.key))
                .await
            {
                Ok(changed) => {
                    watched.failing = None;
                    for o in &changed {
                        tracing::info!(source = %o.asset, data_version = %o.data_version, "new source data");
                    }
                    any |= !changed.is_empty();
                }
                Err(e) => {
                    let text = e.to_string();
                    if watched.failing.as_deref() != Some(text.as_str()) {
                        tracing::warn!(source = %watched.key, error = %text, "cannot observe a source");
                        watched.failing = Some(text);
                    }
                }
            }
        }
        if any {
            self.shared.changed();
        }
        any
    }

    /// One evaluation of every condition; its requests become one run.
    async fn evaluate(&mut self) -> freshet_core::Result<()> {
        let started = Instant::now();
        let shared = self.shared.clone();
        let project = self.project.clone();
        let store = shared.store();
        let graph = project.graph();
        let now = shared.now();
        let kept = self.catch_up_lineage().await?;
        let lineage = &kept.0;
        let statuses = Statuses::compute(graph, lineage);
        let mut in_progress = store.assets_in_progress().await?;
        in_progress.extend(shared.running());
        // Merged into this server's runs that are queued or going: what they cover is not
        // requested again.
        let (covered, everything) = shared.covered();
        in_progress.extend(covered);
        if everything {
            in_progress.extend(graph.iter().map(|d| d.key.clone()));
        }
        let failures: HashMap<AssetKey, FailureFact> = store
            .failures()
            .await?
            .into_iter()
            .filter_map(|f| {
                let key = AssetKey::parse(&f.asset).ok()?;
                Some((
                    key,
                    FailureFact {
                        at: f.at,
                        run_id: f.run_id,
                        error: f.error,
                    },
                ))
            })
            .collect();
        let mut state = match self.state.take() {
            Some(state) => state,
            None => store.automation_state().await?,
        };
        let cursors: HashMap<AssetKey, Cursor> = state
            .iter()
            .map(|(k, d)| (k.clone(), d.cursor.clone()))
            .collect();
        let mut runs = HashMap::new();
        let ids: HashSet<&RunId> = cursors.values().filter_map(|c| c.run_id.as_ref()).collect();
        for id in ids {
            if let Some((status, error)) = store.run_status(id).await? {
                runs.insert(id.clone(), run_fact(status, error));
            }
        }
        let durations = self.durations().await?;
        let freshness_changes = self.alert_freshness(lineage, now);
        let facts = Facts {
            graph,
            lineage,
            statuses: &statuses,
            now,
            in_progress: &in_progress,
            failures: &failures,
            runs: &runs,
            durations: &durations,
        };
        let evaluation = automation::evaluate(&facts, &cursors);
        self.next_at = match (evaluation.next_at, freshness_changes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };

        let requested: Vec<&automation::Decision> = evaluation.requested().collect();
        let mut run_id = None;
        if !requested.is_empty() {
            let mut selection: BTreeSet<AssetKey> =
                requested.iter().map(|d| d.key.clone()).collect();
            selection.extend(evaluation.upstream.iter().cloned());
            let force = requested
                .iter()
                .filter(|d| d.request == Some(RequestKind::Always))
                .map(|d| d.key.clone())
                .collect();
            let text = selection
                .iter()
                .map(AssetKey::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            let request = PlanRequest {
                selection: Some(selection),
                stale_only: true,
                force,
                partitions: None,
            };
            if !*self.owns.borrow() {
                // Another process took automation over during this evaluation.
                return Ok(());
            }
            match shared.materialize(request, &text, "automation").await {
                Ok(id) => {
                    tracing::info!(run_id = %id, assets = %text, "automation requested a run");
                    run_id = Some(id);
                }
                // Not recorded as requested: the next evaluation asks again.
                Err(e) => return Err(e),
            }
        }

        let evaluation_id = EvaluationId::generate();
        let mut changed = Vec::new();
        for d in &evaluation.decisions {
            let mut cursor = d.cursor.clone();
            if d.requested() {
                cursor.run_id = run_id.clone();
            }
            let record = DecisionRecord {
                asset: d.key.clone(),
                condition: d.condition.clone(),
                evaluation_id: evaluation_id.clone(),
                decided_at: now,
                requested: d.requested(),
                reason: d.reason.clone(),
                run_id: if d.requested() { run_id.clone() } else { None },
                cursor,
            };
            let same = state.get(&d.key).is_some_and(|old| {
                old.requested == record.requested
                    && old.reason == record.reason
                    && old.cursor == record.cursor
                    && old.condition == record.condition
            });
            if !same {
                changed.push(record);
            }
        }
        // Decisions that could not be recorded last time go with these (the newer one of an
        // asset wins), and every decision is kept in memory at once: a run just requested must
        // not be requested again because the store refused a write.
        let mut pending: HashMap<AssetKey, DecisionRecord> = std::mem::take(&mut self.unrecorded)
            .into_iter()
            .map(|d| (d.asset.clone(), d))
            .collect();
        for d in changed {
            pending.insert(d.asset.clone(), d);
        }
        let changed: Vec<DecisionRecord> = pending.into_values().collect();
        for d in &changed {
            state.insert(d.asset.clone(), d.clone());
        }
        self.state = Some(state);
        self.lineage = Some(kept);
        let record_due = self
            .last_recorded
            .is_none_or(|t| t.elapsed() >= RECORD_EVERY);
        if !changed.is_empty() || record_due {
            let record = EvaluationRecord {
                id: evaluation_id,
                evaluated_at: now,
                duration: started.elapsed(),
                assets: evaluation.decisions.len() as u64,
                requested: requested.len() as u64,
                run_id,
                next_at: evaluation.next_at,
            };
            if let Err(e) = store.record_evaluation(&record, &changed).await {
                self.unrecorded = changed;
                return Err(e.into());
            }
            self.last_recorded = Some(Instant::now());
        }
        Ok(())
    }

    /// The lineage now: read whole the first time and every [`FULL_RELOAD`], otherwise caught
    /// up from the heads whose events came after the previous read (less
    /// [`CATCH_UP_MARGIN`]), so a steady evaluation reads only what moved lately.
    async fn catch_up_lineage(&mut self) -> freshet_core::Result<KeptLineage> {
        let store = self.shared.store();
        let now = self.shared.now();
        match self.lineage.take() {
            Some((mut lineage, read_at, whole_at)) if whole_at.elapsed() < FULL_RELOAD => {
                let moved = store
                    .load_heads_updated_since(read_at - CATCH_UP_MARGIN)
                    .await?;
                for m in moved.materializations() {
                    lineage.set_materialization(m.clone());
                }
                for o in moved.observations() {
                    lineage.set_observation(o.clone());
                }
                Ok((lineage, now, whole_at))
            }
            _ => Ok((store.load_lineage().await?, now, Instant::now())),
        }
    }

    /// The median of each asset's latest durations, read again every [`DURATIONS_FOR`].
    async fn durations(&mut self) -> freshet_core::Result<HashMap<AssetKey, Duration>> {
        if let Some((durations, read)) = &self.durations
            && read.elapsed() < DURATIONS_FOR
        {
            return Ok(durations.clone());
        }
        let durations: HashMap<AssetKey, Duration> = self
            .shared
            .store()
            .recent_durations(5)
            .await?
            .into_iter()
            .filter_map(|(k, mut d)| {
                d.sort();
                Some((k, *d.get(d.len() / 2)?))
            })
            .collect();
        self.durations = Some((durations.clone(), Instant::now()));
        Ok(durations)
    }

    /// Alerts on freshness turning `fail`, or leaving it, since the last evaluation; returns
    /// when any asset's freshness changes next by time alone, so the loop looks again then.
    fn alert_freshness(
        &mut self,
        lineage: &freshet_core::Lineage,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let project = self.project.clone();
        let graph = project.graph();
        let mut evaluator = FreshnessEvaluator::new();
        let mut states = HashMap::new();
        let mut next: Option<DateTime<Utc>> = None;
        for i in 0..graph.len() {
            let def = graph.def(i);
            if def.freshness.is_none() {
                continue;
            }
            let f = evaluator.evaluate(graph, lineage, i, now);
            if self.evaluated_once {
                let before = self.freshness.get(&def.key).copied();
                let failed_now = f.state == FreshnessState::Fail;
                let failed_before = before == Some(FreshnessState::Fail);
                if failed_now != failed_before && before.is_some() {
                    let policy = f.policy.clone().unwrap_or_default();
                    self.shared
                        .alerter()
                        .freshness_changed(&def.key, failed_now, &policy, now);
                }
            }
            if let Some(change) = f.next_change {
                next = Some(next.map_or(change.at, |t| t.min(change.at)));
            }
            states.insert(def.key.clone(), f.state);
        }
        self.freshness = states;
        self.evaluated_once = true;
        next
    }
}

/// How a run automation requested is doing, from its record.
fn run_fact(status: RunStatus, error: Option<String>) -> RunFact {
    match status {
        RunStatus::Queued | RunStatus::Running => RunFact::InProgress,
        RunStatus::Succeeded => RunFact::Succeeded,
        // Stopped with its process rather than by anyone: like a death, asked for again.
        RunStatus::Cancelled
            if error.as_deref() == Some(freshet_core::store::STOPPED_WITH_PROCESS) =>
        {
            RunFact::Died
        }
        RunStatus::Cancelled => RunFact::Cancelled,
        RunStatus::Failed if error.as_deref() == Some(freshet_core::store::PROCESS_DIED) => {
            RunFact::Died
        }
        RunStatus::Failed => RunFact::Failed(error.unwrap_or_default()),
    }
}

/// What automation decided lately, for `freshet automation` and `GET /api/automation`: the
/// latest decision of each asset with a condition (of `only`, when given), the latest
/// evaluation, and the schedules with their last and next ticks.
pub(crate) async fn report(
    project: &freshet_core::Project,
    store: &freshet_core::Store,
    only: Option<&BTreeSet<AssetKey>>,
    now: DateTime<Utc>,
) -> freshet_core::Result<crate::json::AutomationJson> {
    use crate::json::{AutomationJson, DecisionJson, EvaluationJson, ScheduleJson, SensorJson};
    let state = store.automation_state().await?;
    let assets = project
        .graph()
        .iter()
        .filter(|d| only.is_none_or(|keys| keys.contains(&d.key)))
        .filter_map(|d| {
            let condition = d.automation.as_ref()?.as_text();
            Some(DecisionJson::new(
                d.key.as_str(),
                condition,
                state.get(&d.key),
            ))
        })
        .collect();
    let ticks = store.schedule_ticks().await?;
    let schedules = project
        .triggers()
        .schedules
        .iter()
        .map(|s| {
            let next = automation::compile_cron(&s.cron, s.timezone.as_deref())
                .ok()
                .and_then(|(cron, tz)| automation::next_tick(&cron, &tz, now));
            let last = ticks
                .get(&s.name)
                .map(|t| (t.tick_at, t.run_id.as_ref().map(ToString::to_string)));
            ScheduleJson::new(s, last, next)
        })
        .collect();
    let evaluation = store
        .latest_evaluation()
        .await?
        .as_ref()
        .map(EvaluationJson::from);
    let watched = watched_sources(project);
    let heads = store
        .load_heads(&watched.iter().map(|w| w.key.clone()).collect::<Vec<_>>())
        .await?;
    let sensors = watched
        .iter()
        .filter(|w| only.is_none_or(|keys| keys.contains(&w.key)))
        .map(|w| {
            let seen = heads.observation(&w.key);
            SensorJson {
                interval_ms: u64::try_from(w.interval.as_millis()).unwrap_or(u64::MAX),
                last_change: seen.map(|o| crate::json::micros(o.observed_at)),
                last_checked: seen.map(|o| crate::json::micros(o.checked_at)),
                source: w.key.to_string(),
                watch: if w.local { "files" } else { "object store" },
            }
        })
        .collect();
    Ok(AutomationJson {
        assets,
        evaluation,
        schedules,
        sensors,
    })
}

/// One asset's automation for its page: condition, latest decision, and up to `limit` decisions
/// as they changed.
pub(crate) async fn asset_report(
    project: &freshet_core::Project,
    store: &freshet_core::Store,
    key: &AssetKey,
    limit: u32,
) -> freshet_core::Result<crate::json::AssetAutomationJson> {
    use crate::json::{AssetAutomationJson, DecisionJson};
    let condition = project
        .graph()
        .get(key)
        .and_then(|d| d.automation.as_ref())
        .map(|c| c.as_text());
    let latest = store.latest_decision(key).await?;
    let history = store.decision_history(key, limit).await?;
    let text = |d: &DecisionRecord| DecisionJson::new(key.as_str(), d.condition.clone(), Some(d));
    Ok(AssetAutomationJson {
        asset: key.to_string(),
        latest: match (&condition, &latest) {
            (Some(c), Some(d)) => Some(DecisionJson::new(key.as_str(), c.clone(), Some(d))),
            _ => None,
        },
        condition,
        history: history.iter().map(text).collect(),
    })
}
