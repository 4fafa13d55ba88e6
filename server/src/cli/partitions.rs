//! `freshet partitions KEY [--status S] [--range A..B] [--json]` and
//! `freshet partitions add DEF KEY... [--from-file F]`.

use std::process::ExitCode;

use anyhow::bail;
use freshet_core::Project;
use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::partitions::def::check_key;
use freshet_core::partitions::{Ordinal, PartitionStatus, PartitionsDef};
use serde::Serialize;

use super::{open, open_read};
use crate::json::{PartitionRangeJson, partition_ranges};
use crate::output::{print_json, print_table};
use crate::words;

/// Lists `key`'s partitions as ranges in order, each with its status and, for stale ones, why.
pub(super) async fn list(
    project: &Project,
    key: &str,
    status: Option<&str>,
    range: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(key) = project.resolve_keys(&[key])?.pop() else {
        return Ok(ExitCode::FAILURE);
    };
    if project.partitions_of(&key).is_none() {
        bail!(
            "{key} is not partitioned: give it `-- @partitions: NAME` or `.partitions(\"NAME\")`"
        );
    }
    let wanted = match status {
        None => None,
        Some(word) => Some(PartitionStatus::parse(word).ok_or_else(|| {
            anyhow::anyhow!("--status {word}: expected failed, stale, missing, blocked or fresh")
        })?),
    };
    let (store, executor) = open_read(project).await?;
    let lineage = store.load_lineage().await?;
    let view = executor.partition_view(&key, &lineage).await?;
    store.close().await;
    let Some(view) = view else {
        bail!("{key} is not partitioned");
    };
    let within = match range {
        None => 0..Ordinal::MAX,
        Some(text) => {
            let Some((from, to)) = text.split_once("..") else {
                bail!("--range {text}: expected FIRST..LAST, e.g. 2024-03-01..2024-03-31");
            };
            let ordinal = |k: &str| {
                view.partitions
                    .ordinal(k.trim())
                    .ok_or_else(|| anyhow::anyhow!("{k:?} is not a partition key of {key}"))
            };
            let (a, b) = (ordinal(from)?, ordinal(to)?);
            if a > b {
                bail!("--range {text}: {from} comes after {to}");
            }
            a..b + 1
        }
    };
    let (rows, _) = partition_ranges(&view, wanted, within, usize::MAX);
    if json {
        let counts = PartitionStatus::ALL
            .into_iter()
            .map(|s| (s.as_str(), view.statuses.count(s)))
            .collect();
        return print_json(&PartitionsJson {
            asset: key.as_str(),
            partitioned_by: view.partitions.name,
            summary: view.statuses.summary(),
            counts,
            ranges: rows,
        })
        .map(|()| ExitCode::SUCCESS);
    }
    outln!(
        "{key}: {} (partitioned by {})",
        view.statuses.summary(),
        view.partitions.name
    );
    let mut table = vec![
        ["PARTITIONS", "COUNT", "STATUS", "WHY"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for row in &rows {
        let span = if row.first == row.last {
            row.first.clone()
        } else {
            format!("{}..{}", row.first, row.last)
        };
        table.push(vec![
            span,
            words::count(row.count),
            row.status.to_owned(),
            row.why.clone().unwrap_or_default(),
        ]);
    }
    print_table(&table)?;
    Ok(ExitCode::SUCCESS)
}

/// `freshet partitions --json`.
#[derive(Debug, Serialize)]
struct PartitionsJson<'a> {
    asset: &'a str,
    partitioned_by: &'a str,
    /// `stale: 24 of 8,760`.
    summary: String,
    /// Partitions per status.
    counts: std::collections::BTreeMap<&'static str, u64>,
    /// Ranges in partition order.
    ranges: Vec<PartitionRangeJson>,
}

/// Adds keys to the dynamic partitions definition `name`: those given and those in `from_file`
/// (one per line). Says how many were new; a key that is not valid is refused before any is
/// added.
pub(super) async fn add(
    project: &Project,
    name: &str,
    keys: &[String],
    from_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    match project.partitions().get(name) {
        Some(PartitionsDef::Dynamic) => {}
        Some(_) => bail!("partitions.{name} is not dynamic: only dynamic definitions take keys"),
        None => {
            let known: Vec<&str> = project.partitions().keys().map(String::as_str).collect();
            bail!(
                "unknown partitions {name:?} (defined: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    let mut all: Vec<String> = keys.to_vec();
    if let Some(path) = from_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        all.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    if all.is_empty() {
        bail!("no keys given: name them, or pass --from-file with one per line");
    }
    for key in &all {
        check_key(key).map_err(|e| anyhow::anyhow!("partition key {key:?}: {e}"))?;
    }
    let (store, _executor) = open(project).await?;
    let added = store
        .add_partition_keys(name, &all, SystemClock.now())
        .await;
    store.close().await;
    let added = added?;
    outln!(
        "added {} key{} to {name} ({} already there)",
        words::count(added as u64),
        if added == 1 { "" } else { "s" },
        words::count(all.len().saturating_sub(added) as u64)
    );
    Ok(ExitCode::SUCCESS)
}
