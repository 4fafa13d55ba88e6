//! Walking a plan: each step in order, skipped when upstream failed, when its inputs came out
//! unchanged (early cut-off) or when the run was stopped, otherwise computed.

use std::future::Future;

use tracing::{Instrument, info_span, warn};

use super::{Executor, RunEvent, RunLog, RunReport, SkipReason, StepOutcome};
use crate::freshness::DataTimes;
use crate::model::{AssetKey, Lineage, Status};
use crate::planner::{self, PlannedStep};
use crate::store::LogLevel;

impl Executor {
    pub(super) async fn run_steps(
        &self,
        log: &mut RunLog<'_>,
        steps: &[PlannedStep],
        lineage: &mut Lineage,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> RunReport {
        let run_id = log.run_id;
        let observer = log.observer;
        let graph = self.project.graph();
        let total = steps.len();
        // Data times of the inputs, shared by the steps: upstream first, an asset materialized in
        // this run is only read by later steps, so only its own entry goes out of date.
        let mut data_times = DataTimes::new(graph.len());
        let mut report = RunReport {
            run_id: Some(run_id.clone()),
            steps: Vec::with_capacity(total),
            interrupted: false,
        };
        let mut broken: Vec<AssetKey> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let index = i + 1;
            let Some(def) = graph.get(&step.key) else {
                continue;
            };
            let mut started_at = None;
            let outcome = if report.interrupted {
                StepOutcome::Skipped(SkipReason::Stopped)
            } else if let Some(dep) = def.deps.iter().find(|d| broken.contains(d)) {
                broken.push(def.key.clone());
                StepOutcome::Skipped(SkipReason::UpstreamFailed(dep.clone()))
            } else if step.kind != planner::StepKind::Requested
                && planner::status_of(def, lineage).status == Status::Fresh
            {
                StepOutcome::Skipped(SkipReason::InputsUnchanged)
            } else {
                let now = self.clock.now();
                started_at = Some(now);
                if let Err(e) = self.store.step_started(run_id, i, now).await {
                    warn!(error = %e, "cannot record a step's start");
                }
                observer.event(&RunEvent::StepStarted {
                    key: &def.key,
                    index,
                    total,
                });
                log.write(
                    LogLevel::Info,
                    Some(&def.key),
                    format!("materializing {} ({index}/{total})", def.key),
                )
                .await;
                let span = info_span!("materialize", asset = %def.key);
                let result = tokio::select! {
                    result = self
                        .materialize_one(run_id, def, lineage, data_times.of_inputs(graph, lineage, def))
                        .instrument(span) => Some(result),
                    () = &mut *stop => None,
                };
                match result {
                    None => {
                        // Not the asset's failure: its previous version stays current.
                        warn!(asset = %def.key, "interrupted");
                        report.interrupted = true;
                        StepOutcome::Skipped(SkipReason::StoppedWhileRunning)
                    }
                    Some(Ok(m)) => {
                        lineage.set_materialization(m.clone());
                        if let Some(i) = graph.index_of(&def.key) {
                            data_times.forget(i);
                        }
                        StepOutcome::Materialized(m)
                    }
                    Some(Err(e)) => {
                        warn!(asset = %def.key, error = %e, "materialization failed");
                        broken.push(def.key.clone());
                        StepOutcome::Failed {
                            retryable: e.is_retryable(),
                            error: e.to_string(),
                        }
                    }
                }
            };
            log.step_finished(i, &def.key, started_at, &outcome).await;
            observer.event(&RunEvent::StepFinished {
                key: &def.key,
                index,
                total,
                outcome: &outcome,
            });
            report.steps.push((def.key.clone(), outcome));
        }
        report
    }
}
