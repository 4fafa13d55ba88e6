//! `freshet status [KEY | SELECTION] [--json]`.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::planner::AssetReport;
use freshet_core::{AssetKey, Error, Project, Snapshot, Store};

use super::{Chosen, open_read, single_key};
use crate::output;

/// Lists the statuses of the selected assets (all when none), or, given one key, explains it.
pub(super) async fn status(
    project: &Project,
    selection: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let chosen = Chosen::parse(project.graph(), selection)?;
    let (store, executor) = open_read(project).await?;
    let now = SystemClock.now();
    // Sources' files are looked at, so a source whose files are gone is not shown fresh.
    let snapshot = Snapshot::load_looking(project, &store, &executor, now).await?;
    match single_key(selection) {
        Some(key) => explain(project, &store, &snapshot, &key, now, json).await?,
        None => list(project, &store, &snapshot, chosen.as_ref(), json).await?,
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `status KEY`: one asset in words, with every upstream issue.
async fn explain(
    project: &Project,
    store: &Store,
    snapshot: &Snapshot,
    key: &AssetKey,
    now: DateTime<Utc>,
    json: bool,
) -> anyhow::Result<()> {
    let report = snapshot
        .explain(key)
        .ok_or_else(|| Error::UnknownAsset(key.to_string()))?;
    let failures = failures(project, store).await?;
    let failure = failures.get(key.as_str());
    let gone = snapshot.gone(key);
    output::print_explanation(
        project,
        snapshot.lineage(),
        &report,
        failure,
        gone,
        now,
        json,
    )
}

/// `status [SELECTION]`: a table (or JSON list) of the selected assets, upstream first.
async fn list(
    project: &Project,
    store: &Store,
    snapshot: &Snapshot,
    chosen: Option<&Chosen>,
    json: bool,
) -> anyhow::Result<()> {
    let chosen = chosen.map(|c| c.keys_in(snapshot)).transpose()?;
    let shown: Vec<&AssetReport> = snapshot
        .reports()
        .iter()
        .filter(|r| chosen.as_ref().is_none_or(|c| c.contains(&r.key)))
        .collect();
    output::print_status(
        project,
        snapshot.lineage(),
        &shown,
        &failures(project, store).await?,
        snapshot.gone_sources(),
        snapshot.all_partitions(),
        json,
    )
}

/// Each asset's latest failed attempt after its current version, counting as failed the steps
/// of runs whose process is gone though no command has recorded it yet (this one reads only).
pub(super) async fn failures(project: &Project, store: &Store) -> anyhow::Result<output::Failures> {
    let timeout = project.execution().heartbeat_timeout;
    let dead = store.dead_steps(SystemClock.now(), timeout).await?;
    Ok(store
        .failures()
        .await?
        .into_iter()
        .chain(dead)
        .map(|f| (f.asset.clone(), f))
        .collect())
}
