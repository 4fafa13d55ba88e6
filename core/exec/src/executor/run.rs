//! A run from start to end: check the request, observe sources, plan, record the run, walk its
//! steps, record how it ended.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::watch;
use tracing::{Instrument, info_span, warn};

use super::engine::Executor;
use super::events::{RunEvent, RunObserver, RunReport, StepOutcome};
use super::run_log::RunLog;
use super::sources::Record;
use crate::model::{AssetKey, Lineage, Observation, RunId};
use crate::planner::{self, PlanError, PlanRequest, PlannedStep, Statuses};
use crate::store::{Driving, HEARTBEAT_INTERVAL, LogLevel, NewRun, RunKind, RunStatus};
use crate::{Error, Result};

impl Executor {
    /// Materializes what `request` plans, upstream first.
    ///
    /// Sources are observed first, so the plan sees current external data. A step that fails
    /// skips its downstream; independent steps still run. Returns an error only when nothing could
    /// start (a bad request, an unreachable store); step failures are in the report.
    pub async fn materialize(
        &self,
        request: &PlanRequest,
        observer: &dyn RunObserver,
    ) -> Result<RunReport> {
        self.materialize_until(request, observer, std::future::pending())
            .await
    }

    /// [`Executor::materialize`], stopping early when `stop` completes (a Ctrl-C, a SIGTERM) or
    /// any process asks the store to cancel the run: the running steps are abandoned unrecorded,
    /// the rest are skipped, and the run is recorded as cancelled (`interrupted`, or `cancelled`
    /// when asked to).
    pub async fn materialize_until(
        &self,
        request: &PlanRequest,
        observer: &dyn RunObserver,
        stop: impl Future<Output = ()>,
    ) -> Result<RunReport> {
        let (mut lineage, _, steps) = self.prepare(request, observer).await?;
        if steps.is_empty() {
            return Ok(RunReport::default());
        }
        let run_id = RunId::generate();
        let selection = match &request.selection {
            None => String::new(),
            Some(keys) => keys
                .iter()
                .map(AssetKey::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        };
        self.store
            .begin_run(
                &run_id,
                &NewRun {
                    kind: RunKind::Materialize,
                    selection: &selection,
                    stale_only: request.stale_only,
                    triggered_by: "cli",
                },
                self.clock.now(),
            )
            .await?;
        let heartbeat = Heartbeat::start(self, &run_id);
        let mut log = RunLog::new(&self.store, self.clock.as_ref(), &run_id, observer);
        let stop = heartbeat.or_cancelled(stop);
        let report = self
            .execute(&mut log, &steps, &mut lineage, std::pin::pin!(stop))
            .await;
        let why = if heartbeat.cancel_requested() {
            "cancelled"
        } else {
            "interrupted"
        };
        let (status, error) = run_outcome(&report, RunStatus::Cancelled, why);
        let finished = log.finish(status, error.as_deref(), &report).await;
        // Once the run has ended (here or elsewhere), the store refuses its outputs for good:
        // what its stopped steps wrote goes once their computations have ended.
        self.sweep_abandoned().await;
        self.sweep_unconfirmed(&run_id).await;
        finished?;
        Ok(report)
    }

    /// Runs `request` as the run `run_id`, already queued in the store (by a server that returned
    /// its id): starts it, plans, materializes, and records how it ended, including when there
    /// was nothing to do or the request turned out bad. `stop` cancels it; `why_stopped` says
    /// then what is recorded as its error (`cancelled`, or that its process shut down).
    pub async fn run_queued(
        &self,
        run_id: &RunId,
        request: &PlanRequest,
        observer: &dyn RunObserver,
        stop: impl Future<Output = ()>,
        why_stopped: impl Fn() -> &'static str,
    ) -> Result<RunReport> {
        self.store.start_run(run_id, self.clock.now()).await?;
        let heartbeat = Heartbeat::start(self, run_id);
        let stop = heartbeat.or_cancelled(stop);
        let mut log = RunLog::new(&self.store, self.clock.as_ref(), run_id, observer);
        let (mut lineage, observed, steps) = match self.prepare(request, observer).await {
            Ok(prepared) => prepared,
            Err(e) => {
                let error = run_error(&e);
                log.write(LogLevel::Error, None, error.clone());
                log.finish(RunStatus::Failed, Some(&error), &RunReport::default())
                    .await?;
                return Err(e);
            }
        };
        for (observation, changed) in &observed {
            log.observed(observation, *changed);
        }
        let mut report = RunReport {
            run_id: Some(run_id.clone()),
            ..RunReport::default()
        };
        if steps.is_empty() {
            log.write(
                LogLevel::Info,
                None,
                "nothing to materialize: every selected asset is fresh".to_owned(),
            );
        } else {
            report = self
                .execute(&mut log, &steps, &mut lineage, std::pin::pin!(stop))
                .await;
        }
        let (status, error) = run_outcome(&report, RunStatus::Cancelled, why_stopped());
        let finished = log.finish(status, error.as_deref(), &report).await;
        // Once the run has ended (here or elsewhere), the store refuses its outputs for good:
        // what its stopped steps wrote goes once their computations have ended.
        self.sweep_abandoned().await;
        self.sweep_unconfirmed(run_id).await;
        finished?;
        Ok(report)
    }

    /// Observes sources (all when `keys` is empty) as the run `run_id`, already queued in the
    /// store, logging what each showed.
    pub async fn observe_queued(
        &self,
        run_id: &RunId,
        keys: &[AssetKey],
        observer: &dyn RunObserver,
    ) -> Result<Vec<(Observation, bool)>> {
        self.store.start_run(run_id, self.clock.now()).await?;
        let _heartbeat = Heartbeat::start(self, run_id);
        let mut log = RunLog::new(&self.store, self.clock.as_ref(), run_id, observer);
        match self.observe(keys, observer).await {
            Ok(observed) => {
                for (observation, changed) in &observed {
                    log.observed(observation, *changed);
                }
                let changed = observed.iter().filter(|(_, c)| *c).count();
                log.write(
                    LogLevel::Info,
                    None,
                    format!(
                        "observed {} source{}, {changed} with new data",
                        observed.len(),
                        if observed.len() == 1 { "" } else { "s" }
                    ),
                );
                log.flush().await;
                self.store
                    .finish_run(run_id, RunStatus::Succeeded, self.clock.now(), None)
                    .await?;
                Ok(observed)
            }
            Err(e) => {
                let error = run_error(&e);
                log.write(LogLevel::Error, None, error.clone());
                log.flush().await;
                self.store
                    .finish_run(run_id, RunStatus::Failed, self.clock.now(), Some(&error))
                    .await?;
                Err(e)
            }
        }
    }

    /// Checks `request`, observes every source (recording what moved), and plans: what a run
    /// does before its first step. Changes nothing when the request is bad.
    async fn prepare(
        &self,
        request: &PlanRequest,
        observer: &dyn RunObserver,
    ) -> Result<(Lineage, Vec<(Observation, bool)>, Vec<PlannedStep>)> {
        let graph = self.project.graph();
        // Check the request before observing anything, so it changes nothing if bad.
        let mut lineage = self.store.load_lineage().await?;
        let planned = planner::plan(graph, &lineage, &self.statuses(&lineage).await?, request)?;
        let mut ranges = HashMap::new();
        if let Some(partitions) = &request.partitions {
            if request.selection.is_none() {
                return Err(PlanError::Partitions(
                    "--partition and --range need the partitioned assets to run named".into(),
                )
                .into());
            }
            for step in &planned.steps {
                ranges.insert(
                    step.key.clone(),
                    self.requested_partitions(&step.key, partitions).await?,
                );
            }
        }
        let observed = self
            .observe_into(&[], &mut lineage, observer, Record::Yes)
            .await?;
        let mut steps =
            planner::plan(graph, &lineage, &self.statuses(&lineage).await?, request)?.steps;
        for step in &mut steps {
            if let Some(range) = ranges.get(&step.key) {
                step.partitions = Some(vec![range.clone()]);
            }
        }
        Ok((lineage, observed, steps))
    }

    /// Every asset's status against `lineage`, a partitioned asset's from its partitions: stale
    /// while some are failed, stale or missing (and their inputs there), else fresh.
    async fn statuses(&self, lineage: &Lineage) -> Result<Statuses> {
        let graph = self.project.graph();
        let mut statuses = Statuses::compute(graph, lineage);
        if graph.iter().all(|d| d.partitions.is_none()) {
            return Ok(statuses);
        }
        // Every state read once for all the partitioned assets.
        let states = self.store.partition_states().await?;
        let now = self.clock.now();
        for def in graph.iter() {
            let Some(i) = graph.index_of(&def.key) else {
                continue;
            };
            if def.partitions.is_none() || def.kind == crate::model::AssetKind::Source {
                continue;
            }
            let view =
                super::partition_view(&self.project, &self.store, &def.key, lineage, &states, now)
                    .await?;
            let due = view.is_some_and(|v| !v.due().is_empty());
            statuses.set(
                i,
                planner::AssetStatus {
                    key: def.key.clone(),
                    status: if due {
                        crate::model::Status::Stale
                    } else {
                        crate::model::Status::Fresh
                    },
                    causes: Vec::new(),
                },
            );
        }
        Ok(statuses)
    }

    /// Records the plan, runs its steps and returns how each ended.
    async fn execute(
        &self,
        log: &mut RunLog<'_>,
        steps: &[PlannedStep],
        lineage: &mut Lineage,
        mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> RunReport {
        let run_id = log.run_id;
        let keys: Vec<AssetKey> = steps.iter().map(|s| s.key.clone()).collect();
        if let Err(e) = self.store.plan_steps(run_id, &keys).await {
            warn!(error = %e, "cannot record the run's steps");
        }
        log.observer.event(&RunEvent::Planned { run_id, steps });
        log.write(
            LogLevel::Info,
            None,
            format!(
                "planned {} step{}",
                steps.len(),
                if steps.len() == 1 { "" } else { "s" }
            ),
        );
        let span = info_span!("run", run_id = %run_id);
        self.run_steps(log, steps, lineage, &mut stop)
            .instrument(span)
            .await
    }
}

/// A run's error as recorded where anyone who can see runs reads it: the metadata store's own
/// errors are logged, not recorded.
fn run_error(e: &Error) -> String {
    match e {
        Error::Store(_) => {
            warn!(error = %e, "run failed on the metadata store");
            "internal error in the metadata store (see the log)".to_owned()
        }
        other => other.to_string(),
    }
}

/// How a run ended, from its steps: `stopped` is the status when `stop` ended it early.
fn run_outcome(
    report: &RunReport,
    stopped: RunStatus,
    stop_error: &str,
) -> (RunStatus, Option<String>) {
    if report.interrupted {
        (stopped, Some(stop_error.to_owned()))
    } else if report.failed() {
        let failed: Vec<&str> = report
            .steps
            .iter()
            .filter(|(_, o)| matches!(o, StepOutcome::Failed { .. }))
            .map(|(k, _)| k.as_str())
            .collect();
        (
            RunStatus::Failed,
            Some(format!("failed: {}", failed.join(", "))),
        )
    } else {
        (RunStatus::Succeeded, None)
    }
}

/// A run's heartbeat: a task, on the IO runtime, that records every [`HEARTBEAT_INTERVAL`] that
/// this process is alive and still running the run, and reads four times as often whether any
/// process asked to cancel it, so a cancel stops the run within a quarter of a second of being
/// read. Stops when dropped.
struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    cancelled: watch::Receiver<bool>,
    /// While it lasts, this process never takes the run for dead itself.
    _driving: Driving,
}

impl Heartbeat {
    fn start(executor: &Executor, run_id: &RunId) -> Self {
        let (tell, cancelled) = watch::channel(false);
        let driving = Driving::start(run_id);
        let store = executor.store.clone();
        let clock = executor.clock.clone();
        let run_id = run_id.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL / 4);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for tick in 0u64.. {
                ticks.tick().await;
                let stop = if tick % 4 == 0 {
                    store
                        .heartbeat(std::slice::from_ref(&run_id), clock.now())
                        .await
                        .map(|stop| !stop.is_empty())
                } else {
                    store.cancel_requested(&run_id).await
                };
                match stop {
                    Ok(true) => {
                        tell.send_replace(true);
                    }
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "cannot record the run's heartbeat"),
                }
            }
        });
        Self {
            task,
            cancelled,
            _driving: driving,
        }
    }

    /// Completes when `stop` does or when the run is asked to cancel.
    fn or_cancelled(&self, stop: impl Future<Output = ()>) -> impl Future<Output = ()> {
        let mut cancelled = self.cancelled.clone();
        async move {
            let requested = async {
                if cancelled.wait_for(|c| *c).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = stop => {}
                () = requested => {}
            }
        }
    }

    /// Whether a cancel request came (from any process).
    fn cancel_requested(&self) -> bool {
        *self.cancelled.borrow()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
