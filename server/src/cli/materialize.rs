//! `freshet materialize [SELECTION] [--stale] [--json]`.

use std::io::Write as _;
use std::process::ExitCode;

use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::planner::{PartitionRequest, PlanError, PlanRequest};
use freshet_core::{Project, RunId, RunObserver, RunReport, Snapshot, StepOutcome, Store};

use super::{Chosen, JsonProgress, Progress, live, open, refuse_broken, shutdown_signal};
use crate::json::RunLineJson;
use crate::output;

/// Runs what the selection needs (everything behind when there is none), prints each step on
/// stderr as it goes and the statuses after (with `json`, one JSON object per event on stdout
/// instead): exit 1 when a step failed, 130 when interrupted.
pub(super) async fn materialize(
    project: &Project,
    selection: &[String],
    stale: bool,
    json: bool,
    partitions: Option<PartitionRequest>,
) -> anyhow::Result<ExitCode> {
    let graph = project.graph();
    let chosen = Chosen::parse(graph, selection)?;
    // Materializing nothing but sources is a mistake worth stopping before the store opens.
    if !stale && let Some(first) = chosen.as_ref().and_then(|c| c.only_sources(graph)) {
        return Err(PlanError::Source(first.clone()).into());
    }
    // An asset whose file does not load is refused before the store opens when the selection
    // says which assets it picks without facts, else once they are read.
    match chosen.as_ref().map(Chosen::definite) {
        None => refuse_broken(project, graph.iter().map(|d| &d.key))?,
        Some(Some(keys)) => refuse_broken(project, keys)?,
        Some(None) => {}
    }
    let (store, executor) = open(project).await?;
    let now = SystemClock.now();
    let request = PlanRequest {
        selection: match &chosen {
            Some(chosen) => {
                let keys = chosen.keys(project, &store, now).await?;
                if let Err(e) = refuse_broken(project, &keys) {
                    store.close().await;
                    return Err(e);
                }
                Some(keys)
            }
            None => None,
        },
        stale_only: stale || chosen.is_none(),
        partitions,
        ..PlanRequest::default()
    };
    let live = (!json && live::wanted()).then(live::Live::start);
    let observer: &dyn RunObserver = match &live {
        _ if json => &JsonProgress,
        Some(live) => live,
        None => &Progress,
    };
    let report = executor
        .materialize_until(&request, observer, shutdown_signal())
        .await;
    drop(live);
    let report = report?;
    if json {
        print_finished(&report);
    }
    if report.interrupted {
        eprintln!(
            "interrupted: run {} cancelled; the steps that were running were not recorded",
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
    if !json {
        print_statuses(project, &store, now).await?;
    }
    store.close().await;
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What `--partition K` or `--range A..B` asks for.
pub(super) fn partitions(
    partition: Option<&str>,
    range: Option<&str>,
) -> anyhow::Result<Option<PartitionRequest>> {
    Ok(match (partition, range) {
        (Some(key), _) => Some(PartitionRequest::Key(key.trim().to_owned())),
        (None, Some(text)) => match text.split_once("..") {
            Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
                Some(PartitionRequest::Range {
                    from: from.trim().to_owned(),
                    to: to.trim().to_owned(),
                })
            }
            _ => anyhow::bail!("--range {text}: expected FIRST..LAST, e.g. 2024-03-01..2024-03-31"),
        },
        (None, None) => None,
    })
}

/// The last line of `--json`: how the run ended.
fn print_finished(report: &RunReport) {
    let count = |f: fn(&StepOutcome) -> bool| report.steps.iter().filter(|(_, o)| f(o)).count();
    let status = match (&report.run_id, report.interrupted, report.failed()) {
        (None, _, _) => "fresh",
        (_, true, _) => "cancelled",
        (_, _, true) => "failed",
        _ => "succeeded",
    };
    let line = RunLineJson::Finished {
        run_id: report.run_id.as_ref().map(RunId::as_str),
        status,
        materialized: report.materialized(),
        skipped: count(|o| matches!(o, StepOutcome::Skipped(_))),
        failed: count(|o| matches!(o, StepOutcome::Failed { .. })),
    };
    if let Ok(text) = serde_json::to_string(&line) {
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }
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
    let failures = super::status::failures(project, store).await?;
    output::print_status(
        project,
        snapshot.lineage(),
        &reports,
        &failures,
        snapshot.gone_sources(),
        snapshot.all_partitions(),
        false,
    )
}
