//! `freshet gc [--keep N] [--dry-run]`.

use std::process::ExitCode;

use freshet_core::Project;

use super::open;
use crate::words;

/// Removes the versions beyond the newest `keep` before each current one (default: the
/// project's `[gc] keep`) and unreferenced files, and says what it freed.
pub(super) async fn gc(
    project: &Project,
    keep: Option<u32>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let keep = keep.unwrap_or_else(|| project.gc_keep());
    let (store, executor) = open(project).await?;
    let report = executor.gc(keep, dry_run).await;
    store.close().await;
    let report = report?;
    let verb = if dry_run { "would remove" } else { "removed" };
    for v in &report.versions {
        println!(
            "{verb} {} version {} ({})",
            v.asset,
            v.id,
            words::bytes(v.bytes)
        );
    }
    for (path, bytes) in &report.orphans {
        println!("{verb} unreferenced file {path} ({})", words::bytes(*bytes));
    }
    let in_use = match report.in_use {
        0 => String::new(),
        n => format!("; kept {n} that running steps may read"),
    };
    eprintln!(
        "freshet: {verb} {} versions beyond the newest {keep} before each current one and {} \
         unreferenced files: {}{in_use}",
        report.versions.len(),
        report.orphans.len(),
        words::bytes(report.bytes()),
    );
    Ok(ExitCode::SUCCESS)
}
