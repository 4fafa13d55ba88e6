//! `freshet status [KEY | SELECTION] [--json]`.

use std::process::ExitCode;

use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::planner::{self, AssetReport, Statuses};
use freshet_core::{AssetKey, Error, Project, Store};

use super::{Chosen, open, single_key};
use crate::output;

/// Lists the statuses of the selected assets (all when none), or, given one key, explains it.
pub(super) async fn status(
    project: &Project,
    selection: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let chosen = Chosen::parse(project.graph(), selection)?;
    let (store, _executor) = open(project).await?;
    let now = SystemClock.now();
    match single_key(selection) {
        Some(key) => explain(project, &store, &key, now, json).await?,
        None => list(project, &store, chosen.as_ref(), now, json).await?,
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `status KEY`: one asset in words, with every upstream issue.
async fn explain(
    project: &Project,
    store: &Store,
    key: &AssetKey,
    now: chrono::DateTime<chrono::Utc>,
    json: bool,
) -> anyhow::Result<()> {
    let graph = project.graph();
    let lineage = store.load_lineage().await?;
    let statuses = Statuses::compute(graph, &lineage);
    let report = planner::report_one(graph, &lineage, &statuses, key, now)
        .ok_or_else(|| Error::UnknownAsset(key.to_string()))?;
    output::print_explanation(project, &lineage, &report, now, json)
}

/// `status [SELECTION]`: a table (or JSON list) of the selected assets, upstream first.
async fn list(
    project: &Project,
    store: &Store,
    chosen: Option<&Chosen>,
    now: chrono::DateTime<chrono::Utc>,
    json: bool,
) -> anyhow::Result<()> {
    let graph = project.graph();
    let lineage = store.load_lineage().await?;
    let statuses = Statuses::compute(graph, &lineage);
    let chosen = chosen
        .map(|c| c.keys_given(graph, &lineage, &statuses, now))
        .transpose()?;
    let reports = planner::report_all(graph, &lineage, &statuses, now);
    let shown: Vec<&AssetReport> = reports
        .iter()
        .filter(|r| chosen.as_ref().is_none_or(|c| c.contains(&r.key)))
        .collect();
    output::print_status(project, &lineage, &shown, json)
}
