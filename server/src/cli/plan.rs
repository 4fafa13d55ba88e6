//! `freshet plan [SELECTION] [--json]`.

use std::collections::HashMap;
use std::process::ExitCode;

use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::planner::{NotRunReason, Plan, PlanRequest};
use freshet_core::{AssetKey, Project, Snapshot};

use super::{Chosen, open_read, refuse_broken};
use crate::output;

/// Prints what `materialize --stale [SELECTION]` would run, against the sources as they are now.
pub(super) async fn plan(
    project: &Project,
    selection: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let graph = project.graph();
    let chosen = Chosen::parse(graph, selection)?;
    let (store, executor) = open_read(project).await?;
    let now = SystemClock.now();
    let mut lineage = store.load_lineage().await?;
    // What a run would see: sources as they are now (observed, not recorded).
    executor.peek_sources(&mut lineage).await?;
    let snapshot = Snapshot::new(project.clone(), lineage, now);
    let request = PlanRequest {
        selection: chosen.as_ref().map(|c| c.keys_in(&snapshot)).transpose()?,
        stale_only: true,
        ..PlanRequest::default()
    };
    let plan = snapshot.plan(&request)?;
    // What materialize would say.
    if let Err(e) = refuse_broken(project, plan.steps.iter().map(|s| &s.key)) {
        store.close().await;
        return Err(e);
    }
    let history = store.recent_durations(5).await?;
    let estimates = plan.estimate(graph, snapshot.lineage(), &history);
    let notes = if request.selection.is_some() {
        left_out_notes(&snapshot, &plan)
    } else {
        HashMap::new()
    };
    let reasons: Vec<Vec<String>> = plan
        .steps
        .iter()
        .map(|step| plan.reasons(graph, snapshot.statuses(), step))
        .collect();
    let everything = request.selection.is_none();
    output::print_plan(&plan, &reasons, &estimates, everything, &notes, json)?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A fresh asset left out may still be behind something upstream: the words that say so, by key.
fn left_out_notes(snapshot: &Snapshot, plan: &Plan) -> HashMap<AssetKey, String> {
    let mut notes = HashMap::new();
    for n in &plan.not_run {
        let Some(r) = snapshot.report(&n.key) else {
            continue;
        };
        if n.reason != NotRunReason::Fresh || r.upstream.is_empty() {
            continue;
        }
        notes.insert(
            n.key.clone(),
            format!("upstream {}; select it with +{}", r.upstream_words(), n.key),
        );
    }
    notes
}
