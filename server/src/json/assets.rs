//! The API's shapes for the project, its assets (list, page, history, preview) and the lineage.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::Field;
use freshet_core::model::{Column, MetadataValue, Origin};
use freshet_core::planner::AssetReport;
use freshet_core::store::Failure;
use freshet_core::{AssetDef, Lineage, Materialization, Observation};
use serde::Serialize;

use super::{CauseJson, EdgeJson, FreshnessJson, Precision, UpstreamJson, micros};

/// `GET /api/project`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectJson<'a> {
    /// How many assets.
    pub asset_count: usize,
    /// The groups, sorted, without repeats.
    pub groups: Vec<&'a str>,
    /// Why the project's files, as they are now, do not load: the project served is the one
    /// that last loaded. `null` when they load.
    pub load_error: Option<String>,
    /// The project's name.
    pub name: &'a str,
    /// Freshet's version.
    pub version: &'static str,
}

/// The `project` live event: the project was loaded again, or its files do not load.
#[derive(Debug, Serialize)]
pub struct ProjectEventJson<'a> {
    /// Why the project's files do not load; `null` when they loaded.
    pub load_error: Option<&'a str>,
}

/// An asset as `GET /api/assets` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetSummaryJson {
    /// The asset key.
    pub key: String,
    /// `source`, `sql` or `rust`.
    pub kind: &'static str,
    /// Its group.
    pub group: String,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// Its description.
    pub description: Option<String>,
    /// `fresh`, `stale` or `missing`.
    pub status: &'static str,
    /// `running`, `broken` (its file does not load), `failed` or `null`.
    pub run_state: Option<&'static str>,
    /// Why its file does not load (`sql/a.sql: invalid SQL: ...`); `null` when it loads.
    pub load_error: Option<String>,
    /// For a source whose files are gone (its `status` is then `missing`): why, and when they
    /// were last seen; `null` otherwise.
    pub files_gone: Option<FilesGoneJson>,
    /// `run_state` if any, else `status`.
    pub display_status: &'static str,
    /// The status in one line of words.
    pub summary: String,
    /// Why it is stale.
    pub causes: Vec<CauseJson>,
    /// Ancestors that are behind, most upstream first.
    pub upstream: Vec<UpstreamJson>,
    /// Whether `upstream` was cut short.
    pub upstream_truncated: bool,
    /// The freshness policy's verdict.
    pub freshness: FreshnessJson,
    /// The time of the oldest source data it reflects.
    pub data_time: Option<String>,
    /// When it last changed.
    pub last_updated: Option<String>,
    /// The current data version.
    pub data_version: Option<String>,
    /// For a partitioned asset, its partitions in brief (its `status` is its worst partition's
    /// as fresh, stale or missing); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<super::PartitionsJson>,
}

impl AssetSummaryJson {
    /// `def` as `report` judges it; `run_state` says whether a run is computing it or failed it.
    pub fn new(
        def: &AssetDef,
        report: &AssetReport,
        lineage: &Lineage,
        run_state: Option<&'static str>,
    ) -> Self {
        Self {
            key: def.key.to_string(),
            kind: def.kind.as_str(),
            group: def.group.clone(),
            tags: def.tags.iter().cloned().collect(),
            description: def.description.clone(),
            status: report.status.as_str(),
            run_state,
            load_error: None,
            files_gone: None,
            display_status: run_state.unwrap_or(report.status.as_str()),
            summary: report.summary(),
            causes: report
                .causes
                .iter()
                .map(|c| CauseJson::explained(def, c, lineage))
                .collect(),
            upstream: report.upstream.iter().map(UpstreamJson::from).collect(),
            upstream_truncated: report.upstream_truncated,
            freshness: FreshnessJson::new(&report.freshness, Precision::Micros),
            data_time: report.data_time.map(micros),
            last_updated: report.freshness.last_updated.map(micros).or_else(|| {
                lineage
                    .materialization(&def.key)
                    .map(|m| micros(m.created_at))
                    .or_else(|| lineage.observation(&def.key).map(|o| micros(o.observed_at)))
            }),
            data_version: lineage.data_version(&def.key).map(ToString::to_string),
            partitions: None,
        }
    }
}

/// A source whose files are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesGoneJson {
    /// What the listing found: `no files match /data/raw.csv`.
    pub reason: String,
    /// When its files were last seen (RFC 3339, UTC), if ever.
    pub last_seen: Option<String>,
}

impl FilesGoneJson {
    /// `gone`, its time to `precision`.
    pub fn new(gone: &freshet_core::Gone, precision: super::Precision) -> Self {
        Self {
            reason: gone.reason.clone(),
            last_seen: gone.last_observed_at.map(|t| precision.time(t)),
        }
    }
}

/// `GET /api/assets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetListJson {
    /// How many are listed.
    pub count: usize,
    /// The assets, upstream first.
    pub assets: Vec<AssetSummaryJson>,
}

/// `GET /api/assets/{key}`: the summary, then the details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetDetailJson<'a> {
    /// What the list says (here with every upstream entry).
    #[serde(flatten)]
    pub summary: AssetSummaryJson,
    /// Who is responsible.
    pub owners: &'a [String],
    /// What it reads.
    pub deps: Vec<&'a str>,
    /// What reads it.
    pub dependents: Vec<&'a str>,
    /// The code version of its definition (`null` for sources).
    pub code_version: Option<&'a str>,
    /// Where it is defined.
    pub origin: OriginJson<'a>,
    /// A SQL asset's query.
    pub sql: Option<&'a str>,
    /// A source's files.
    pub source: Option<SourceJson>,
    /// The current version.
    pub current: Option<VersionJson<'a>>,
    /// The columns of the current version (`null` for sources and when unreadable).
    pub schema: Option<Vec<SchemaColumnJson>>,
    /// The latest failed attempt after the current version.
    pub last_failure: Option<FailureJson<'a>>,
}

/// Where an asset is defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OriginJson<'a> {
    /// A file of the project.
    File {
        /// Relative to the project folder.
        path: &'a str,
    },
    /// Rust code compiled into the binary.
    Rust {
        /// File and line.
        location: &'a str,
    },
}

impl<'a> From<&'a Origin> for OriginJson<'a> {
    fn from(o: &'a Origin) -> Self {
        match o {
            Origin::File { path } => OriginJson::File { path },
            Origin::Rust { location } => OriginJson::Rust { location },
        }
    }
}

/// A source's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceJson {
    /// `csv`, `parquet` or `json`.
    pub format: String,
    /// A path (possibly a glob) or a URL without credentials.
    pub location: String,
}

/// One column of an asset's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaColumnJson {
    /// Its name.
    pub name: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
    /// Its Arrow type, e.g. `Int64`.
    #[serde(rename = "type")]
    pub data_type: String,
}

impl From<&Field> for SchemaColumnJson {
    fn from(f: &Field) -> Self {
        Self {
            name: f.name().clone(),
            nullable: f.is_nullable(),
            data_type: f.data_type().to_string(),
        }
    }
}

/// An asset's latest failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureJson<'a> {
    /// When it failed.
    pub at: String,
    /// The error, in one line.
    pub error: &'a str,
    /// The run it failed in.
    pub run_id: &'a str,
}

impl<'a> From<&'a Failure> for FailureJson<'a> {
    fn from(f: &'a Failure) -> Self {
        Self {
            at: micros(f.at),
            error: &f.error,
            run_id: f.run_id.as_str(),
        }
    }
}

/// A version: a materialization (assets) or an observation (sources), told apart by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum VersionJson<'a> {
    /// Of an asset.
    Materialization(MaterializationJson<'a>),
    /// Of a source.
    Observation(ObservationJson<'a>),
}

/// A materialization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaterializationJson<'a> {
    /// When it was written.
    pub at: String,
    /// Its Parquet files' size.
    pub byte_size: u64,
    /// The code version it was computed with.
    pub code_version: &'a str,
    /// When `freshet gc` removed its files (it can no longer be read); `null` while they exist.
    pub collected_at: Option<String>,
    /// The time of the oldest source data it reflects.
    pub data_time: Option<String>,
    /// Its data version.
    pub data_version: &'a str,
    /// How long it took, in milliseconds with a fraction.
    pub duration_ms: f64,
    /// How many Parquet files it is made of (1 for versions written before this was recorded).
    pub file_count: u64,
    /// Its id.
    pub id: &'a str,
    /// The version of each input it read.
    pub inputs: Vec<InputJson<'a>>,
    /// Always `materialization`.
    pub kind: &'static str,
    /// Its URL: a folder of Parquet files (ending in `/`), or one file for older versions.
    pub location: &'a str,
    /// Numbers and text the asset's code attached, by name.
    pub metadata: &'a BTreeMap<String, MetadataValue>,
    /// Rows written.
    pub row_count: u64,
    /// The run that wrote it.
    pub run_id: &'a str,
    /// Its columns as recorded when written; empty for versions written before.
    pub schema: &'a [Column],
}

impl<'a> From<&'a Materialization> for MaterializationJson<'a> {
    fn from(m: &'a Materialization) -> Self {
        Self {
            at: micros(m.created_at),
            byte_size: m.byte_size,
            code_version: m.code_version.as_str(),
            collected_at: m.collected_at.map(micros),
            data_time: m.data_time.map(micros),
            data_version: m.data_version.as_str(),
            duration_ms: m.duration_us as f64 / 1000.0,
            file_count: m.details.file_count.max(1),
            id: m.id.as_str(),
            inputs: m
                .inputs
                .iter()
                .map(|i| InputJson {
                    asset: i.asset.as_str(),
                    data_version: i.data_version.as_str(),
                })
                .collect(),
            kind: "materialization",
            location: &m.location,
            metadata: &m.details.metadata,
            row_count: m.row_count,
            run_id: m.run_id.as_str(),
            schema: &m.details.schema,
        }
    }
}

/// An input a materialization read, at the version it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputJson<'a> {
    /// The input.
    pub asset: &'a str,
    /// Its data version then.
    pub data_version: &'a str,
}

/// An observation of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservationJson<'a> {
    /// When this data version was first seen.
    pub at: String,
    /// The files' total size.
    pub byte_size: u64,
    /// When it was last checked.
    pub checked_at: String,
    /// Its data version.
    pub data_version: &'a str,
    /// How many files.
    pub file_count: u64,
    /// Its id; `null` for a source's current version.
    pub id: Option<&'a str>,
    /// Always `observation`.
    pub kind: &'static str,
}

impl<'a> ObservationJson<'a> {
    /// `o`, recorded as `id` when known.
    pub fn new(id: Option<&'a str>, o: &'a Observation) -> Self {
        Self {
            at: micros(o.observed_at),
            byte_size: o.byte_size,
            checked_at: micros(o.checked_at),
            data_version: o.data_version.as_str(),
            file_count: o.file_count,
            id,
            kind: "observation",
        }
    }
}

/// A page of a list, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageJson<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// The cursor of the next page; `null` on the last.
    pub next: Option<String>,
}

/// `GET /api/assets/{key}/preview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewJson<'a> {
    /// The columns.
    pub columns: Vec<PreviewColumnJson>,
    /// Cells as display strings, `null` for nulls, row by row.
    pub rows: Vec<Vec<Option<String>>>,
    /// The materialization asked for; `null` for the current version.
    pub version: Option<&'a str>,
}

/// One column of a preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewColumnJson {
    /// Its name.
    pub name: String,
    /// Its Arrow type.
    #[serde(rename = "type")]
    pub data_type: String,
}

impl From<&Field> for PreviewColumnJson {
    fn from(f: &Field) -> Self {
        Self {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        }
    }
}

// ---- lineage ----------------------------------------------------------------------------------

/// `GET /api/lineage`: the graph laid out left to right.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineageLayoutJson<'a> {
    /// The nodes, upstream first.
    pub nodes: Vec<NodeJson<'a>>,
    /// The edges between them.
    pub edges: Vec<EdgeJson<'a>>,
    /// The layout's size.
    pub width: f64,
    /// The layout's size.
    pub height: f64,
    /// Every node's size.
    pub node_width: f64,
    /// Every node's size.
    pub node_height: f64,
}

/// One node of the laid-out lineage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeJson<'a> {
    /// The asset key.
    pub key: &'a str,
    /// `source`, `sql` or `rust`.
    pub kind: &'static str,
    /// Its group.
    pub group: &'a str,
    /// Its layer, left to right from 0.
    pub layer: usize,
    /// Its top-left corner.
    pub x: f64,
    /// Its top-left corner.
    pub y: f64,
    /// `fresh`, `stale` or `missing`.
    pub status: &'static str,
    /// `running`, `failed` or `null`.
    pub run_state: Option<&'static str>,
    /// `run_state` if any, else `status`.
    pub display_status: &'static str,
    /// The freshness state.
    pub freshness: &'static str,
    /// For a partitioned asset, how many partitions have each status (the node's mini bar).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<std::collections::BTreeMap<&'static str, u64>>,
}
