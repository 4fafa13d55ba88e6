//! Walking a plan: a step starts as soon as its inputs in the run are done, at most
//! `concurrency` at once and at most a pool's limit of the pool's assets. Each step is skipped
//! when upstream failed, when its inputs came out unchanged (early cut-off), when another run
//! just made it fresh, or when the run was stopped; otherwise it is computed in a task of its
//! own (a panic fails that step only), under its time limit, and retried after a growing delay
//! when it fails in a way that may pass.
//!
//! **Single flight:** a step first takes its asset's lease in the store. When another live run
//! holds it, the step waits, then reads the asset's current version again and is skipped if that
//! run made it fresh.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use super::engine::Executor;
use super::events::{RunEvent, RunReport, SkipReason, StepOutcome};
use super::run_log::RunLog;
use crate::error::one_line;
use crate::freshness::DataTimes;
use crate::model::{AssetDef, AssetKey, Lineage, Materialization, RunId, Status};
use crate::planner::{self, PlannedStep};
use crate::policy::{StepPolicy, duration_words};
use crate::store::{LogLevel, Progress};
use crate::{Error, Result};

/// How long a stopped run waits for its running steps' tasks to end.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How often a step waiting for another run's lease looks again.
const LEASE_POLL: Duration = Duration::from_millis(200);

/// Where one step of the walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Some of its inputs in the run are not done.
    Blocked,
    /// May start (or start its next attempt) once `at` has passed.
    Ready,
    /// Computing.
    Running,
    /// Ended.
    Done,
}

/// One step's bookkeeping.
struct Slot<'p> {
    step: &'p PlannedStep,
    def: &'p AssetDef,
    policy: StepPolicy,
    phase: Phase,
    /// Inputs in the run not yet done.
    blocked_by: usize,
    /// Steps that read this one.
    readers: Vec<usize>,
    /// Its inputs in the run.
    inputs: Vec<usize>,
    /// The attempt to make next (1-based).
    attempt: u32,
    /// Not before (a retry's delay, a lease poll).
    not_before: Option<Instant>,
    started_at: Option<DateTime<Utc>>,
    holds_lease: bool,
    waited_for: Option<RunId>,
    outcome: Option<StepOutcome>,
    /// For a partitioned asset, the partitions it runs: as planned, or once its lease is taken
    /// those failed, stale or missing then.
    partitions: Option<Vec<std::ops::Range<crate::partitions::Ordinal>>>,
}

/// What a finished task reports: the step, the attempt, and its result (or how the task died).
type Finished = (
    usize,
    u32,
    std::result::Result<Result<Materialization>, tokio::task::JoinError>,
);

/// The walk of one run's plan.
struct Walk<'a, 'p> {
    executor: &'a Executor,
    run_id: RunId,
    slots: Vec<Slot<'p>>,
    running: FuturesUnordered<BoxFuture<'static, Finished>>,
    aborts: HashMap<usize, AbortHandle>,
    /// Steps computing now, in all and per pool.
    in_flight: usize,
    pools: HashMap<String, usize>,
    data_times: DataTimes,
    interrupted: bool,
}

impl Executor {
    pub(super) async fn run_steps(
        &self,
        log: &mut RunLog<'_>,
        steps: &[PlannedStep],
        lineage: &mut Lineage,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> RunReport {
        let graph = self.project.graph();
        let position: HashMap<&AssetKey, usize> =
            steps.iter().enumerate().map(|(i, s)| (&s.key, i)).collect();
        let mut slots: Vec<Slot<'_>> = Vec::with_capacity(steps.len());
        for step in steps {
            let Some(def) = graph.get(&step.key) else {
                continue;
            };
            let inputs: Vec<usize> = def
                .deps
                .iter()
                .filter_map(|d| position.get(d).copied())
                .collect();
            slots.push(Slot {
                step,
                def,
                policy: self.project.policy(&def.key),
                phase: if inputs.is_empty() {
                    Phase::Ready
                } else {
                    Phase::Blocked
                },
                blocked_by: inputs.len(),
                readers: Vec::new(),
                inputs,
                attempt: 1,
                not_before: None,
                started_at: None,
                holds_lease: false,
                waited_for: None,
                outcome: None,
                partitions: step.partitions.clone(),
            });
        }
        for i in 0..slots.len() {
            for j in slots[i].inputs.clone() {
                slots[j].readers.push(i);
            }
        }
        let mut walk = Walk {
            executor: self,
            run_id: log.run_id.clone(),
            slots,
            running: FuturesUnordered::new(),
            aborts: HashMap::new(),
            in_flight: 0,
            pools: HashMap::new(),
            data_times: DataTimes::new(graph.len()),
            interrupted: false,
        };
        walk.go(log, lineage, stop).await;
        RunReport {
            run_id: Some(walk.run_id.clone()),
            steps: walk
                .slots
                .iter_mut()
                .map(|s| {
                    let outcome = s
                        .outcome
                        .take()
                        .unwrap_or(StepOutcome::Skipped(SkipReason::Stopped));
                    (s.def.key.clone(), outcome)
                })
                .collect(),
            interrupted: walk.interrupted,
        }
    }
}

impl<'p> Walk<'_, 'p> {
    async fn go(
        &mut self,
        log: &mut RunLog<'_>,
        lineage: &mut Lineage,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) {
        loop {
            self.start_ready(log, lineage).await;
            if self.slots.iter().all(|s| s.phase == Phase::Done) {
                return;
            }
            let wake = self.next_wake();
            tokio::select! {
                () = &mut *stop, if !self.interrupted => {
                    self.interrupted = true;
                    self.stop_all(log, lineage).await;
                }
                Some((i, attempt, result)) = self.running.next(), if !self.running.is_empty() => {
                    self.finished(log, lineage, i, attempt, result).await;
                }
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    /// When to look at the ready steps again: the earliest retry or lease poll to come, or now
    /// for one that fell due while `start_ready` passed over it and has room. (One due without
    /// room waits for a running step's end, which wakes the walk anyway.)
    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        (0..self.slots.len())
            .filter(|&i| self.slots[i].phase == Phase::Ready)
            .filter_map(|i| self.slots[i].not_before.map(|t| (i, t)))
            .filter(|&(i, t)| t > now || self.has_room(i))
            .map(|(_, t)| t)
            .min()
    }

    /// Starts, or skips, every ready step there is room for, in plan order.
    async fn start_ready(&mut self, log: &mut RunLog<'_>, lineage: &mut Lineage) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            let waiting = slot.not_before.is_some_and(|t| t > now);
            if slot.phase != Phase::Ready || (waiting && !self.interrupted) {
                continue;
            }
            if let Some(reason) = self.skip_reason(i, lineage) {
                self.end(log, i, StepOutcome::Skipped(reason)).await;
                continue;
            }
            if !self.has_room(i) {
                continue;
            }
            if !self.slots[i].holds_lease && !self.claim(log, lineage, i).await {
                continue;
            }
            if self.slots[i].phase == Phase::Done {
                continue;
            }
            self.launch(log, lineage, i);
        }
    }

    /// Why step `i` is not to be computed, if it is not.
    fn skip_reason(&self, i: usize, lineage: &Lineage) -> Option<SkipReason> {
        let slot = &self.slots[i];
        if self.interrupted {
            return Some(SkipReason::Stopped);
        }
        if slot.attempt > 1 {
            return None;
        }
        let broken = slot.inputs.iter().find(|&&j| {
            matches!(
                self.slots[j].outcome,
                Some(StepOutcome::Failed { .. })
                    | Some(StepOutcome::Skipped(SkipReason::UpstreamFailed(_)))
                    | Some(StepOutcome::Skipped(SkipReason::Stopped))
                    | Some(StepOutcome::Cancelled)
            )
        });
        if let Some(&j) = broken {
            return Some(SkipReason::UpstreamFailed(self.slots[j].def.key.clone()));
        }
        // A partitioned asset decides once its lease is taken, from its partitions.
        if slot.step.kind != planner::StepKind::Requested
            && slot.def.partitions.is_none()
            && planner::status_of(slot.def, lineage).status == Status::Fresh
        {
            return Some(SkipReason::InputsUnchanged);
        }
        None
    }

    fn has_room(&self, i: usize) -> bool {
        let execution = self.executor.project.execution();
        if self.in_flight >= execution.concurrency {
            return false;
        }
        match &self.slots[i].policy.pool {
            Some(pool) => {
                let limit = execution.pools.get(pool).copied().unwrap_or(usize::MAX);
                self.pools.get(pool).copied().unwrap_or(0) < limit
            }
            None => true,
        }
    }

    /// Takes step `i`'s lease. `false` when another live run holds it (the step waits and looks
    /// again) or the store failed (the step failed). Once taken, the asset and its inputs are
    /// read again from the store, and the step is skipped if another run made it fresh.
    async fn claim(&mut self, log: &mut RunLog<'_>, lineage: &mut Lineage, i: usize) -> bool {
        let executor = self.executor;
        let store = &executor.store;
        let now = executor.clock.now();
        let key = self.slots[i].def.key.clone();
        match store.claim_asset(&key, &self.run_id, now).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                if self.slots[i].waited_for.as_ref() != Some(&holder) {
                    log.write(
                        LogLevel::Info,
                        Some(&key),
                        format!("waiting for run {holder}, which is materializing {key}"),
                    );
                    self.slots[i].waited_for = Some(holder);
                }
                // A holder whose process died lets go as soon as it is found dead.
                let timeout = executor.project.execution().heartbeat_timeout;
                if let Err(e) = store.fail_dead_runs(now, timeout).await {
                    warn!(error = %e, "cannot look for dead runs");
                }
                self.slots[i].not_before = Some(Instant::now() + LEASE_POLL);
                return false;
            }
            Err(e) => {
                let outcome = failed(&Error::Store(e));
                self.end(log, i, outcome).await;
                return false;
            }
        }
        self.slots[i].holds_lease = true;
        let planned = lineage.materialization(&key).map(|m| m.id.clone());
        let mut keys = vec![key.clone()];
        keys.extend(self.slots[i].def.deps.iter().cloned());
        match store.load_heads(&keys).await {
            Ok(heads) => {
                let graph = executor.project.graph();
                for m in heads.materializations() {
                    if let Some(index) = graph.index_of(&m.asset) {
                        self.data_times.forget(index);
                    }
                    lineage.set_materialization(m.clone());
                }
                for o in heads.observations() {
                    lineage.set_observation(o.clone());
                }
            }
            Err(e) => {
                let outcome = failed(&Error::Store(e));
                self.end(log, i, outcome).await;
                return false;
            }
        }
        // A partitioned asset runs the partitions behind now that its inputs in the run are done.
        if executor.project.partitions_of(&key).is_some() {
            if self.slots[i].partitions.is_none() {
                match executor.partitions_to_run(&key, lineage).await {
                    Ok(ranges) if ranges.is_empty() => {
                        self.end(log, i, StepOutcome::Skipped(SkipReason::InputsUnchanged))
                            .await;
                    }
                    Ok(ranges) => self.slots[i].partitions = Some(ranges),
                    Err(e) => {
                        self.end(log, i, failed(&e)).await;
                        return false;
                    }
                }
            }
            return true;
        }
        // Materialized by another run since this one planned.
        let by_other = lineage
            .materialization(&key)
            .filter(|m| m.run_id != self.run_id && Some(&m.id) != planned.as_ref())
            .map(|m| m.run_id.clone());
        let fresh = planner::status_of(self.slots[i].def, lineage).status == Status::Fresh;
        match by_other {
            Some(other) if fresh => {
                self.end(
                    log,
                    i,
                    StepOutcome::Skipped(SkipReason::DoneElsewhere(other)),
                )
                .await;
            }
            _ if fresh && self.slots[i].step.kind != planner::StepKind::Requested => {
                self.end(log, i, StepOutcome::Skipped(SkipReason::InputsUnchanged))
                    .await;
            }
            _ => {}
        }
        true
    }

    /// Starts attempt `slot.attempt` of step `i` in a task of its own.
    fn launch(&mut self, log: &mut RunLog<'_>, lineage: &Lineage, i: usize) {
        let executor = self.executor;
        let graph = executor.project.graph();
        let total = self.slots.len();
        let now = executor.clock.now();
        let slot = &mut self.slots[i];
        let (def, attempt) = (slot.def, slot.attempt);
        slot.phase = Phase::Running;
        slot.not_before = None;
        self.in_flight += 1;
        if let Some(pool) = &slot.policy.pool {
            *self.pools.entry(pool.clone()).or_default() += 1;
        }
        let tries = slot.policy.retry.retries.saturating_add(1);
        let timeout = slot.policy.timeout;
        if attempt == 1 {
            slot.started_at = Some(now);
            log.record(Progress::StepStarted {
                position: i,
                at: now,
            });
            log.observer.event(&RunEvent::StepStarted {
                key: &def.key,
                index: i + 1,
                total,
            });
            log.write(
                LogLevel::Info,
                Some(&def.key),
                format!("materializing {} ({}/{total})", def.key, i + 1),
            );
        } else {
            log.write(
                LogLevel::Info,
                Some(&def.key),
                format!(
                    "materializing {} again (attempt {attempt} of {tries})",
                    def.key
                ),
            );
        }
        log.record(Progress::AttemptStarted {
            position: i,
            attempt,
            at: now,
        });
        // The step reads only its inputs' current versions: hand it those, not the lineage.
        let mut inputs = Lineage::new();
        for dep in &def.deps {
            if let Some(m) = lineage.materialization(dep) {
                inputs.set_materialization(m.clone());
            }
            if let Some(o) = lineage.observation(dep) {
                inputs.set_observation(o.clone());
            }
        }
        let data_time = self.data_times.of_inputs(graph, lineage, def);
        let partitions = slot.partitions.clone();
        let task_executor = executor.clone();
        let run_id = self.run_id.clone();
        let task_def = def.clone();
        let span = info_span!("materialize", asset = %def.key, attempt);
        let work = async move {
            let step =
                task_executor.materialize_one(&run_id, &task_def, &inputs, data_time, partitions);
            match timeout {
                None => step.await,
                Some(limit) => tokio::time::timeout(limit, step)
                    .await
                    .unwrap_or_else(|_| Err(timed_out(&task_def.key, limit))),
            }
        };
        let handle = tokio::spawn(work.instrument(span));
        self.aborts.insert(i, handle.abort_handle());
        self.running
            .push(Box::pin(async move { (i, attempt, handle.await) }));
    }

    /// Takes in how attempt `attempt` of step `i` ended.
    async fn finished(
        &mut self,
        log: &mut RunLog<'_>,
        lineage: &mut Lineage,
        i: usize,
        attempt: u32,
        result: std::result::Result<Result<Materialization>, tokio::task::JoinError>,
    ) {
        self.aborts.remove(&i);
        if self.slots[i].phase != Phase::Running {
            // Stopped already (and recorded as such).
            return;
        }
        self.in_flight -= 1;
        if let Some(pool) = &self.slots[i].policy.pool
            && let Some(n) = self.pools.get_mut(pool)
        {
            *n -= 1;
        }
        let result = match result {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(Error::Execution {
                asset: self.slots[i].def.key.to_string(),
                message: format!("panicked: {}", panic_message(e)),
                retryable: false,
            }),
            Err(e) => Err(Error::Execution {
                asset: self.slots[i].def.key.to_string(),
                message: format!("its task ended: {}", one_line(&e)),
                retryable: false,
            }),
        };
        let now = self.executor.clock.now();
        log.record(Progress::AttemptFinished {
            position: i,
            attempt,
            at: now,
            error: result.as_ref().err().map(ToString::to_string),
        });
        match result {
            Ok(m) if self.executor.project.partitions_of(&m.asset).is_some() => {
                // Partitions are recorded one by one, not as the asset's version: the lease
                // goes when the step ends.
                self.end(log, i, StepOutcome::Materialized(Box::new(m)))
                    .await;
            }
            Ok(m) => {
                // Recording the output let go of the lease.
                self.slots[i].holds_lease = false;
                lineage.set_materialization(m.clone());
                let graph = self.executor.project.graph();
                if let Some(index) = graph.index_of(&m.asset) {
                    self.data_times.forget(index);
                }
                self.end(log, i, StepOutcome::Materialized(Box::new(m)))
                    .await;
            }
            Err(e) => {
                let retry = self.slots[i].policy.retry;
                let key = self.slots[i].def.key.clone();
                if e.is_retryable() && attempt <= retry.retries && !self.interrupted {
                    let delay = retry.delay_before(attempt, (&self.run_id, i));
                    warn!(asset = %key, error = %e, attempt, "attempt failed; retrying");
                    log.write(
                        LogLevel::Warn,
                        Some(&key),
                        format!(
                            "attempt {attempt} of {} at {key} failed: {e}; retrying in {}",
                            retry.retries.saturating_add(1),
                            duration_words(delay)
                        ),
                    );
                    log.observer.event(&RunEvent::StepRetrying {
                        key: &key,
                        attempt,
                        delay,
                        error: &e.to_string(),
                    });
                    let slot = &mut self.slots[i];
                    slot.phase = Phase::Ready;
                    slot.attempt = attempt.saturating_add(1);
                    slot.not_before = Some(Instant::now() + delay);
                } else {
                    // Info, not a warning: whoever runs the run reports its failed steps (the
                    // command line on its progress, a server or daemon in its log).
                    info!(asset = %key, error = %e, "materialization failed");
                    self.end(log, i, failed(&e)).await;
                }
            }
        }
    }

    /// Stops every running step and skips the rest. A step whose task ended with its output
    /// recorded before the stop reached it counts as materialized; of the others nothing is
    /// current (a task that does not end within [`STOP_GRACE`] is left behind, and the store
    /// refuses its output once the run has ended).
    async fn stop_all(&mut self, log: &mut RunLog<'_>, lineage: &mut Lineage) {
        for (_, abort) in self.aborts.drain() {
            abort.abort();
        }
        let grace = Instant::now() + STOP_GRACE;
        while !self.running.is_empty() {
            let Ok(Some((i, attempt, result))) =
                tokio::time::timeout_at(grace, self.running.next()).await
            else {
                break;
            };
            if matches!(result, Ok(Ok(_))) {
                self.finished(log, lineage, i, attempt, result).await;
            }
        }
        self.running = FuturesUnordered::new();
        let now = self.executor.clock.now();
        for i in 0..self.slots.len() {
            if self.slots[i].phase != Phase::Running {
                continue;
            }
            warn!(asset = %self.slots[i].def.key, "interrupted");
            log.record(Progress::AttemptFinished {
                position: i,
                attempt: self.slots[i].attempt,
                at: now,
                error: Some("stopped".to_owned()),
            });
            self.in_flight -= 1;
            if let Some(pool) = &self.slots[i].policy.pool
                && let Some(n) = self.pools.get_mut(pool)
            {
                *n -= 1;
            }
            self.end(log, i, StepOutcome::Cancelled).await;
        }
    }

    /// Records how step `i` ended, lets go of its lease, and unblocks its readers.
    async fn end(&mut self, log: &mut RunLog<'_>, i: usize, outcome: StepOutcome) {
        let total = self.slots.len();
        let slot = &mut self.slots[i];
        slot.phase = Phase::Done;
        let key = slot.def.key.clone();
        if slot.holds_lease {
            slot.holds_lease = false;
            if let Err(e) = self.executor.store.release_asset(&key, &self.run_id).await {
                warn!(error = %e, "cannot release a lease");
            }
        }
        let started_at = slot.started_at;
        log.step_finished(i, &key, started_at, &outcome);
        log.observer.event(&RunEvent::StepFinished {
            key: &key,
            index: i + 1,
            total,
            outcome: &outcome,
        });
        self.slots[i].outcome = Some(outcome);
        for reader in self.slots[i].readers.clone() {
            let slot = &mut self.slots[reader];
            slot.blocked_by -= 1;
            if slot.blocked_by == 0 && slot.phase == Phase::Blocked {
                slot.phase = Phase::Ready;
            }
        }
    }
}

/// A failed step's outcome.
fn failed(e: &Error) -> StepOutcome {
    StepOutcome::Failed {
        retryable: e.is_retryable(),
        error: e.to_string(),
    }
}

fn timed_out(key: &AssetKey, limit: Duration) -> Error {
    Error::Execution {
        asset: key.to_string(),
        message: format!("timed out after {}", duration_words(limit)),
        retryable: true,
    }
}

/// What a panicking task said, if it said it in words.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "(no message)".to_owned(), |s| one_line(&s)),
        Err(e) => one_line(&e),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
