//! `freshet preview KEY [--limit N] [--version V]`.

use std::process::ExitCode;

use anyhow::Context as _;
use freshet_core::{AssetKind, Project};

use super::open_read;

/// Prints the first `limit` rows of `key`'s current version, or of its version `version` (a
/// materialization id, as `freshet history KEY` lists them), as a table.
pub(super) async fn preview(
    project: &Project,
    key: &str,
    limit: usize,
    version: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let key = project.resolve_keys(&[key])?.pop();
    if let (Some(key), Some(_)) = (&key, version)
        && project
            .graph()
            .get(key)
            .is_some_and(|d| d.kind == AssetKind::Source)
    {
        anyhow::bail!(
            "{key} is a source: it has no stored versions (preview it without --version)"
        );
    }
    let (store, executor) = open_read(project).await?;
    let Some(key) = key else {
        return Ok(ExitCode::FAILURE);
    };
    let chosen = match version {
        None => None,
        Some(id) => Some(
            store
                .materialization(id.trim())
                .await?
                .filter(|m| m.asset == key)
                .with_context(|| {
                    format!("{key} has no version {id:?} (`freshet history {key}` lists them)")
                })?,
        ),
    };
    let (_, batches) = executor
        .preview_version(&key, chosen.as_ref(), limit)
        .await?;
    let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .context("cannot format the rows")?;
    outln!("{table}");
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
