//! `freshet materialize [SELECTION] [--stale]`.

use std::process::ExitCode;

use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::planner::{PlanError, PlanRequest};
use freshet_core::{Project, RunReport, Snapshot, Store};

use super::{Chosen, Progress, open, shutdown_signal};
use crate::output;

/// Runs what the selection needs (everything behind when there is none), prints each step on
/// stderr as it goes and the statuses after: exit 1 when a step failed, 130 when interrupted.
pub(super) async fn materialize(
    project: &Project,
    selection: &[String],
    stale: bool,
) -> anyhow::Result<ExitCode> {
    let graph = project.graph();
    let chosen = Chosen::parse(graph, selection)?;
    // Materializing nothing but sources is a mistake worth stopping before the store opens.
    if !stale && let Some(first) = chosen.as_ref().and_then(|c| c.only_sources(graph)) {
        return Err(PlanError::Source(first.clone()).into());
    }
    let (store, executor) = open(project).await?;
    let now = SystemClock.now();
    let request = PlanRequest {
        selection: match &chosen {
            Some(chosen) => Some(chosen.keys(project, &store, now).await?),
            None => None,
        },
        stale_only: stale || chosen.is_none(),
    };
    let report = executor
        .materialize_until(&request, &Progress, shutdown_signal())
        .await?;
    if report.interrupted {
        eprintln!(
            "interrupted: run {} stopped; the step that was running was not recorded",
            run_id(&report)
        );
        store.close().await;
        return Ok(ExitCode::from(130));
    }
    if report.run_id.is_none() {
        eprintln!("nothing to materialize: every selected asset is fresh");
    } else {
        eprintln!("{}", output::run_summary(&report));
    }
    print_statuses(project, &store, now).await?;
    store.close().await;
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_id(report: &RunReport) -> String {
    report
        .run_id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Every asset's status after the run, as `freshet status` prints it.
async fn print_statuses(
    project: &Project,
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let snapshot = Snapshot::load(project, store, now).await?;
    let reports: Vec<_> = snapshot.reports().iter().collect();
    output::print_status(project, snapshot.lineage(), &reports, false)
}
