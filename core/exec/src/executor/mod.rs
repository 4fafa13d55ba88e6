//! The executor: observes sources and materializes assets with DataFusion, writing Parquet through
//! object_store and recording lineage in the store.
//!
//! **Invariant:** every materialization writes a new object at its own location
//! (`<storage>/<key>/<materialization id>.parquet`) and never overwrites one. The object becomes the
//! asset's current version only when the store records it, after the write completed; an asset
//! reads its inputs at exactly the locations recorded as their current versions, and records those
//! versions as what it consumed. A failed or killed run therefore leaves at most an orphan object,
//! never a half-written current version.
//!
//! **Boundary:** the planner decides what to run; the executor decides nothing about staleness
//! except re-judging, just before a step, whether its inputs still call for it.
//!
//! The modules follow a run: [`sources`] observes, [`schedule`] walks the plan, [`step`]
//! computes one asset, [`output`] writes its Parquet, [`run_log`] records the run as it goes;
//! [`preview`] reads versions back. Every time the executor records comes from its [`Clock`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::prelude::{SessionConfig, SessionContext};
use tracing::{Instrument, info_span, warn};
use url::Url;

use crate::freshness::{Clock, SystemClock};
use crate::model::Lineage;
use crate::model::{AssetKey, Observation, RunId};
use crate::planner::{self, PlanRequest, PlannedStep, Statuses};
use crate::project::{Computation, Project};
use crate::store::{LogLevel, RunKind, RunStatus, Store};
use crate::{Error, Result};

mod events;
mod output;
mod preview;
mod run_log;
mod schedule;
mod sources;
mod step;

pub use events::{RunEvent, RunObserver, RunReport, SkipReason, StepOutcome};
use output::object_store_for;
use run_log::RunLog;
use sources::Record;

/// Runs a project's assets against a store and an output location.
pub struct Executor {
    project: Project,
    store: Store,
    output: Arc<dyn ObjectStore>,
    output_base: ObjectPath,
    /// Object stores other than local disk (the output's, sources'), built once, registered in
    /// every session.
    remote_stores: Vec<(Url, Arc<dyn ObjectStore>)>,
    /// Where every time the executor records comes from.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("project", &self.project)
            .field("output", &self.output_base)
            .finish()
    }
}

impl Executor {
    /// An executor writing under the project's storage URL.
    pub fn new(project: Project, store: Store) -> Result<Self> {
        let url = project.storage_url();
        let (output, output_base) = object_store_for(url, project.object_store_options())?;
        let mut remote_stores = Vec::new();
        if url.scheme() != "file" {
            remote_stores.push((url.clone(), output.clone()));
        }
        for def in project.graph().iter() {
            if let Some(Computation::Source(spec)) = project.computation(&def.key)
                && let Ok(source_url) = Url::parse(&spec.location)
                && source_url.scheme() != "file"
            {
                let (store, _) = object_store_for(&source_url, project.object_store_options())?;
                remote_stores.push((source_url, store));
            }
        }
        Ok(Self {
            project,
            store,
            output,
            output_base,
            remote_stores,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same executor reading the time from `clock` (a test's manual clock) for every time
    /// it records: run and step starts and ends, log lines, materializations, observations.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new DataFusion session that can reach the output storage and every source's store.
    pub(super) fn session(&self) -> SessionContext {
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_information_schema(false));
        for (url, store) in &self.remote_stores {
            ctx.register_object_store(url, store.clone());
        }
        ctx
    }

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

    /// [`Executor::materialize`], stopping early when `stop` completes (a Ctrl-C, a SIGTERM): the
    /// running step is abandoned unrecorded, the rest are skipped, and the run is recorded as
    /// failed with the error `interrupted`.
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
                RunKind::Materialize,
                &selection,
                request.stale_only,
                self.clock.now(),
            )
            .await?;
        let mut log = RunLog::new(&self.store, self.clock.as_ref(), &run_id, observer);
        let report = self
            .execute(&mut log, &steps, &mut lineage, std::pin::pin!(stop))
            .await;
        let (status, error) = run_outcome(&report, RunStatus::Failed, "interrupted");
        log.finish(status, error.as_deref(), &report).await?;
        Ok(report)
    }

    /// Runs `request` as the run `run_id`, already queued in the store (by a server that returned
    /// its id): starts it, plans, materializes, and records how it ended, including when there
    /// was nothing to do or the request turned out bad. `stop` cancels it.
    pub async fn run_queued(
        &self,
        run_id: &RunId,
        request: &PlanRequest,
        observer: &dyn RunObserver,
        stop: impl Future<Output = ()>,
    ) -> Result<RunReport> {
        self.store.start_run(run_id, self.clock.now()).await?;
        let mut log = RunLog::new(&self.store, self.clock.as_ref(), run_id, observer);
        let (mut lineage, observed, steps) = match self.prepare(request, observer).await {
            Ok(prepared) => prepared,
            Err(e) => {
                let error = run_error(&e);
                log.write(LogLevel::Error, None, error.clone()).await;
                log.finish(RunStatus::Failed, Some(&error), &RunReport::default())
                    .await?;
                return Err(e);
            }
        };
        for (observation, changed) in &observed {
            log.observed(observation, *changed).await;
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
            )
            .await;
        } else {
            report = self
                .execute(&mut log, &steps, &mut lineage, std::pin::pin!(stop))
                .await;
        }
        let (status, error) = run_outcome(&report, RunStatus::Cancelled, "cancelled");
        log.finish(status, error.as_deref(), &report).await?;
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
        let mut log = RunLog::new(&self.store, self.clock.as_ref(), run_id, observer);
        match self.observe(keys, observer).await {
            Ok(observed) => {
                for (observation, changed) in &observed {
                    log.observed(observation, *changed).await;
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
                )
                .await;
                self.store
                    .finish_run(run_id, RunStatus::Succeeded, self.clock.now(), None)
                    .await?;
                Ok(observed)
            }
            Err(e) => {
                let error = run_error(&e);
                log.write(LogLevel::Error, None, error.clone()).await;
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
        let plan_now = |lineage: &Lineage| {
            planner::plan(graph, lineage, &Statuses::compute(graph, lineage), request)
        };
        // Check the request before observing anything, so it changes nothing if bad.
        let mut lineage = self.store.load_lineage().await?;
        plan_now(&lineage)?;
        let observed = self
            .observe_into(&[], &mut lineage, observer, Record::Yes)
            .await?;
        let steps = plan_now(&lineage)?.steps;
        Ok((lineage, observed, steps))
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
        )
        .await;
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
