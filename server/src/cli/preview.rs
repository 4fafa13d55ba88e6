//! `freshet preview KEY [--limit N]`.

use std::process::ExitCode;

use anyhow::Context as _;
use freshet_core::Project;

use super::open;

/// Prints the first `limit` rows of `key`'s current version as a table.
pub(super) async fn preview(
    project: &Project,
    key: &str,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let key = project.resolve_keys(&[key])?.pop();
    let (store, executor) = open(project).await?;
    let Some(key) = key else {
        return Ok(ExitCode::FAILURE);
    };
    let batches = executor.preview(&key, limit).await?;
    let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .context("cannot format the rows")?;
    println!("{table}");
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
