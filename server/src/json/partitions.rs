//! Partitions as the command line and the API show them: an asset's in brief, as ranges in
//! order with their status and why, and as a health bar.

use std::collections::BTreeMap;
use std::ops::Range;

use freshet_core::partitions::{Ordinal, PartitionCause, PartitionStatus, StaleRange};
use freshet_core::{PartitionSummary, PartitionView};
use serde::Serialize;

/// A partitioned asset's partitions in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionsJson {
    /// The definition it is partitioned by.
    pub by: String,
    /// The worst partition's status: failed, stale, missing, blocked or fresh (`null` while it
    /// has no partitions).
    pub worst: Option<&'static str>,
    /// Partitions per status.
    pub counts: BTreeMap<&'static str, u64>,
    /// How many partitions exist.
    pub total: u64,
    /// `stale: 24 of 8,760`.
    pub summary: String,
}

impl From<&PartitionSummary> for PartitionsJson {
    fn from(s: &PartitionSummary) -> Self {
        Self {
            by: s.by.clone(),
            worst: s.worst.map(|w| w.as_str()),
            counts: s.counts.iter().map(|(k, n)| (k.as_str(), *n)).collect(),
            total: s.total,
            summary: s.summary.clone(),
        }
    }
}

/// Consecutive partitions with one status (and, when stale, one cause).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRangeJson {
    /// The first partition's key and the last's.
    pub first: String,
    pub last: String,
    pub count: u64,
    pub status: &'static str,
    /// Why they are stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// `view`'s ranges within `within` (only those with status `wanted` if given), in partition
/// order, stale ones split by cause; at most `most` of them, and whether there were more.
pub fn partition_ranges(
    view: &PartitionView<'_>,
    wanted: Option<PartitionStatus>,
    within: Range<Ordinal>,
    most: usize,
) -> (Vec<PartitionRangeJson>, bool) {
    let mut out: Vec<(Ordinal, PartitionRangeJson)> = Vec::new();
    let mut more = false;
    for status in PartitionStatus::ALL {
        if wanted.is_some_and(|w| w != status) {
            continue;
        }
        let set = view.statuses.get(status);
        let mut push = |range: Range<Ordinal>, why: Option<String>| {
            if out.len() >= most {
                more = true;
                return;
            }
            out.push((range.start, range_json(view, range, status, why)));
        };
        if status == PartitionStatus::Stale {
            for cause in &view.statuses.causes {
                let start = cause.range.start.max(within.start);
                let end = cause.range.end.min(within.end).max(start);
                for run in set.ranges_in(start..end) {
                    push(run, Some(why(view, cause)));
                }
            }
            continue;
        }
        for run in set.ranges_in(within.clone()) {
            push(run, None);
        }
    }
    out.sort_by_key(|(start, _)| *start);
    (out.into_iter().map(|(_, r)| r).collect(), more)
}

/// Partitions `range`, all with `status`, as JSON.
pub fn range_json(
    view: &PartitionView<'_>,
    range: Range<Ordinal>,
    status: PartitionStatus,
    why: Option<String>,
) -> PartitionRangeJson {
    let key = |o: Ordinal| view.partitions.key(o).unwrap_or_else(|| format!("#{o}"));
    PartitionRangeJson {
        first: key(range.start),
        last: key(range.end.saturating_sub(1).max(range.start)),
        count: u64::from(range.end - range.start),
        status: status.as_str(),
        why,
    }
}

/// Why the partitions of `cause` are stale, in words.
fn why(view: &PartitionView<'_>, cause: &StaleRange) -> String {
    match &cause.cause {
        PartitionCause::Code { recorded } => match view.code_versions.get(recorded) {
            Some(code) => format!(
                "made with code version {}, not the current one",
                crate::words::short(code)
            ),
            None => "made with another code version".to_owned(),
        },
        PartitionCause::Input { input, .. } => match view.inputs.get(*input) {
            Some(input) => format!("{input} changed since they read it"),
            None => "an input changed since they read it".to_owned(),
        },
    }
}

impl From<&PartitionView<'_>> for PartitionsJson {
    fn from(view: &PartitionView<'_>) -> Self {
        let statuses = &view.statuses;
        Self {
            by: view.partitions.name.to_owned(),
            worst: statuses.worst().map(PartitionStatus::as_str),
            counts: PartitionStatus::ALL
                .into_iter()
                .map(|s| (s.as_str(), statuses.count(s)))
                .collect(),
            total: statuses.valid.len(),
            summary: statuses.summary(),
        }
    }
}

/// `GET /api/assets/{key}/partitions`: an asset's partitions in brief, its health bar and its
/// ranges.
#[derive(Debug, Serialize)]
pub struct PartitionsDetailJson<'a> {
    pub asset: &'a str,
    #[serde(flatten)]
    pub brief: PartitionsJson,
    /// The health bar: at most `width` segments in partition order, each the worst status of
    /// the partitions it stands for.
    pub bar: Vec<PartitionRangeJson>,
    /// The partitions as ranges in order, stale ones with why.
    pub ranges: Vec<PartitionRangeJson>,
    /// Whether there were more ranges than listed.
    pub ranges_truncated: bool,
}
