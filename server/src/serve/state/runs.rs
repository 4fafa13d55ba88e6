//! A run of the server's queue, from its start to its end, and the observer that turns its
//! progress into live updates and metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use freshet_core::executor::{RunEvent, RunObserver, StepOutcome};
use freshet_core::store::STOPPED_WITH_PROCESS;
use freshet_core::{AssetKey, PlanRequest, RunId};
use tokio::sync::watch;

use super::{Shared, lock};
use crate::json::{LogJson, StepEventJson};
use crate::serve::metrics::StepEnd;

/// Runs `work` as the run `run_id`; `cancelled` stops it.
pub(super) async fn run(
    shared: Arc<Shared>,
    run_id: RunId,
    work: Work,
    mut cancelled: watch::Receiver<bool>,
) {
    let observer = ServerObserver {
        shared: shared.clone(),
        run_id: run_id.clone(),
        started: Mutex::default(),
    };
    let stop = async move {
        // Completes when cancelled; never when the switch is dropped unflipped.
        if cancelled.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    // The project as it is when the run starts; a reload during the run changes nothing of it.
    let executor = shared.loaded().executor.clone();
    let stopping = shared.stopping.subscribe();
    let why_stopped = move || {
        if *stopping.borrow() {
            STOPPED_WITH_PROCESS
        } else {
            "cancelled"
        }
    };
    let result = match &work {
        Work::Materialize(request) => executor
            .run_queued(&run_id, request, &observer, stop, why_stopped)
            .await
            .map(drop),
        Work::Observe(keys) => executor
            .observe_queued(&run_id, keys, &observer)
            .await
            .map(drop),
    };
    if let Err(e) = result {
        tracing::warn!(run_id = %run_id, error = %e, "run failed");
    }
}

/// What a requested run does.
#[derive(Debug)]
pub(crate) enum Work {
    Materialize(PlanRequest),
    Observe(Vec<AssetKey>),
}

/// Turns a run's progress into live updates.
struct ServerObserver {
    shared: Arc<Shared>,
    run_id: RunId,
    /// When each of its steps started, for the step duration metric.
    started: Mutex<HashMap<AssetKey, std::time::Instant>>,
}

impl RunObserver for ServerObserver {
    fn event(&self, event: &RunEvent<'_>) {
        let step = |key: &AssetKey, state: &str, message: Option<&str>| {
            self.shared.send(
                "step",
                &StepEventJson {
                    asset: key.as_str(),
                    message,
                    run_id: self.run_id.as_str(),
                    state,
                },
            );
        };
        match event {
            RunEvent::StepStarted { key, .. } => {
                lock(&self.started).insert((*key).clone(), std::time::Instant::now());
                lock(&self.shared.running).insert((*key).clone(), self.run_id.clone());
                step(key, "running", None);
                self.shared.changed();
            }
            RunEvent::StepFinished { key, outcome, .. } => {
                lock(&self.shared.running).remove(*key);
                let (state, message, end) = match outcome {
                    StepOutcome::Materialized(_) => ("materialized", None, StepEnd::Materialized),
                    StepOutcome::Skipped(why) => {
                        ("skipped", Some(why.to_string()), StepEnd::Skipped)
                    }
                    StepOutcome::Cancelled => ("cancelled", None, StepEnd::Cancelled),
                    StepOutcome::Failed { error, .. } => {
                        tracing::warn!(run_id = %self.run_id, asset = %key, error = %error, "step failed");
                        ("failed", Some(error.clone()), StepEnd::Failed)
                    }
                };
                let took = lock(&self.started)
                    .remove(*key)
                    .map(|at| at.elapsed())
                    .unwrap_or_default();
                self.shared.metrics.step_finished(end, took);
                step(key, state, message.as_deref());
                self.shared.changed();
            }
            RunEvent::Log { line, .. } => {
                self.shared
                    .send("log", &LogJson::new(Some(&self.run_id), line));
            }
            RunEvent::Observed { changed: true, .. } => self.shared.changed(),
            _ => {}
        }
    }
}
