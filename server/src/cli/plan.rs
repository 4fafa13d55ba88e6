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
    explain: bool,
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
    if explain && !json {
        explain_partitions(project, &executor, snapshot.lineage(), &plan).await?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// For each partitioned asset in `plan`: the mapping to each input it reads (and whether it is
/// the default), and the partitions due now (failed, stale, missing); a run decides again once
/// the inputs before it in the run are done.
async fn explain_partitions(
    project: &Project,
    executor: &freshet_core::Executor,
    lineage: &freshet_core::Lineage,
    plan: &Plan,
) -> anyhow::Result<()> {
    use freshet_core::partitions::PartitionStatus;
    let mut lines = Vec::new();
    for step in &plan.steps {
        let Some(def) = project.graph().get(&step.key) else {
            continue;
        };
        let Some(view) = executor.partition_view(&step.key, lineage).await? else {
            continue;
        };
        let due: u64 = [
            PartitionStatus::Failed,
            PartitionStatus::Stale,
            PartitionStatus::Missing,
        ]
        .into_iter()
        .map(|s| view.statuses.count(s))
        .sum();
        lines.push(format!(
            "  {} (by {}): {} due now ({}); more if its inputs in this run change",
            step.key,
            view.partitions.name,
            crate::words::count(due),
            view.statuses.summary()
        ));
        for input in &def.deps {
            let mapping = project.mapping(&step.key, input);
            let by = match project.partitions_of(input) {
                Some((name, _)) => format!("partitioned by {name}"),
                None => "not partitioned".to_owned(),
            };
            let given = if project.explicit_mapping(&step.key, input) {
                "from @inputs"
            } else {
                "the default"
            };
            lines.push(format!(
                "    reads {input} ({by}) by {mapping} ({given}): {}",
                mapping.describe()
            ));
        }
    }
    if !lines.is_empty() {
        outln!("partitions:");
        for line in lines {
            outln!("{line}");
        }
    }
    Ok(())
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
