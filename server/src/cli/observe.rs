//! `freshet observe [SELECTION]`.

use std::process::ExitCode;

use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::planner::PlanError;
use freshet_core::{AssetKey, AssetKind, Project};

use super::{Chosen, Progress, open, single_key};

/// Observes the selected sources (all when none) and records the versions that moved.
pub(super) async fn observe(project: &Project, selection: &[String]) -> anyhow::Result<ExitCode> {
    let graph = project.graph();
    let chosen = Chosen::parse(graph, selection)?;
    // `observe KEY` names one asset: it must be a source.
    if let Some(key) = single_key(selection)
        && graph.get(&key).is_some_and(|d| d.kind != AssetKind::Source)
    {
        return Err(PlanError::NotSource(key).into());
    }
    let (store, executor) = open(project).await?;
    let keys: Vec<AssetKey> = match &chosen {
        None => Vec::new(),
        Some(chosen) => {
            let sources: Vec<AssetKey> = chosen
                .keys(project, &store, SystemClock.now())
                .await?
                .into_iter()
                .filter(|k| graph.get(k).is_some_and(|d| d.kind == AssetKind::Source))
                .collect();
            if sources.is_empty() {
                eprintln!("no sources selected");
                store.close().await;
                return Ok(ExitCode::SUCCESS);
            }
            sources
        }
    };
    executor.observe(&keys, &Progress).await?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
