//! `freshet gc [--keep N] [--dry-run]`: old versions, unreferenced files and old run logs.

use std::process::ExitCode;

use freshet_core::Project;

use super::open;
use crate::words;

/// Removes the versions beyond the newest `keep` before each current one (default: the
/// project's `[gc] keep`), unreferenced files, and the log lines of runs that ended longer ago
/// than `[gc] run_logs`, and says what it freed.
pub(super) async fn gc(
    project: &Project,
    keep: Option<u32>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let keep = keep.unwrap_or_else(|| project.gc_keep());
    let (store, executor) = open(project).await?;
    let retention = project.gc_run_logs();
    let logs_before =
        chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or_default();
    let collected = async {
        let report = executor.gc(keep, dry_run).await?;
        let logs = store.prune_run_logs(logs_before, dry_run).await?;
        anyhow::Ok((report, logs))
    }
    .await;
    store.close().await;
    let (report, (log_lines, log_runs)) = collected?;
    let verb = if dry_run { "would remove" } else { "removed" };
    for v in &report.versions {
        outln!(
            "{verb} {} version {} ({})",
            v.asset,
            v.id,
            words::bytes(v.bytes)
        );
    }
    for (path, bytes) in &report.orphans {
        outln!("{verb} unreferenced file {path} ({})", words::bytes(*bytes));
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
    eprintln!(
        "freshet: {verb} {log_lines} log lines of {log_runs} runs that ended more than {} ago",
        words::ago(chrono::Duration::from_std(retention).unwrap_or_default())
    );
    Ok(ExitCode::SUCCESS)
}
