//! What the store records and the planner judges: each materialization and observation, and the
//! latest of each per asset.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::{AssetKey, CodeVersion, DataVersion, MaterializationId, RunId};

/// One recorded materialization: the lineage Freshet keeps for every output it writes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Materialization {
    /// Unique, time-ordered.
    pub id: MaterializationId,
    /// The asset materialized.
    pub asset: AssetKey,
    /// The run that wrote it.
    pub run_id: RunId,
    /// The asset's code version when it ran.
    pub code_version: CodeVersion,
    /// The fingerprint of the rows written.
    pub data_version: DataVersion,
    /// The data version of every input read, sorted by asset key.
    pub inputs: Vec<InputVersion>,
    /// URL of what was written: a folder of Parquet files (ending in `/`), or one Parquet file
    /// for versions written before outputs were folders. Either is read as one table.
    pub location: String,
    /// Rows written.
    pub row_count: u64,
    /// Size of the Parquet files in bytes.
    pub byte_size: u64,
    /// Wall time of the computation and write, in microseconds.
    pub duration_us: u64,
    /// When it was recorded.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub created_at: DateTime<Utc>,
    /// The time of the oldest source data it incorporates, as of when it was written (see
    /// [`crate::freshness`]); `None` when an input's was unknown.
    #[serde(with = "chrono::serde::ts_microseconds_option")]
    pub data_time: Option<DateTime<Utc>>,
    /// What else was recorded about the output: files, schema, the asset's own metadata.
    #[serde(default, skip_serializing_if = "OutputDetails::is_empty")]
    pub details: OutputDetails,
    /// When `freshet gc` removed its files (it stays in the history, but cannot be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(with = "chrono::serde::ts_microseconds_option")]
    pub collected_at: Option<DateTime<Utc>>,
}

/// What a materialization recorded about its output besides rows and bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputDetails {
    /// How many Parquet files it is made of (0 when not recorded: versions written as one file
    /// before this was recorded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub file_count: u64,
    /// Its columns, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<Column>,
    /// Numbers and text the asset's code attached, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, MetadataValue>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl OutputDetails {
    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.file_count == 0 && self.schema.is_empty() && self.metadata.is_empty()
    }
}

/// One column of an output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its Arrow type, as Arrow prints it (`Int64`, `Utf8`, `Timestamp(Microsecond, None)`).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

/// A value attached to a materialization: a number (plotted over time) or text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum MetadataValue {
    /// A number; integers are exact up to 2^53.
    Number(f64),
    /// Text.
    Text(String),
}

/// Equal when the same text, or the same number bit for bit (so `NaN` equals itself and the
/// relation is total).
impl PartialEq for MetadataValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.to_bits() == b.to_bits(),
            (Self::Text(a), Self::Text(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for MetadataValue {}

macro_rules! metadata_number {
    ($($t:ty),*) => {$(
        impl From<$t> for MetadataValue {
            fn from(n: $t) -> Self {
                Self::Number(n as f64)
            }
        }
    )*};
}
metadata_number!(f64, f32, i64, i32, u64, u32, usize);

impl From<String> for MetadataValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for MetadataValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

/// The version of one input a materialization read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputVersion {
    /// The upstream asset.
    pub asset: AssetKey,
    /// Its data version at the time it was read.
    pub data_version: DataVersion,
}

/// One observation of a source: the version of the external data at a moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Observation {
    /// The source observed.
    pub asset: AssetKey,
    /// Fingerprint of the observed objects (their paths, sizes and e-tags).
    pub data_version: DataVersion,
    /// Number of objects that matched the source's location.
    pub file_count: u64,
    /// Their total size in bytes.
    pub byte_size: u64,
    /// When this version was first seen: the source's last change, as far as Freshet knows.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub observed_at: DateTime<Utc>,
    /// When this version was last seen unchanged.
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub checked_at: DateTime<Utc>,
}

/// The latest recorded event of every asset: what the planner judges against.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    materializations: HashMap<AssetKey, Materialization>,
    observations: HashMap<AssetKey, Observation>,
}

impl Lineage {
    /// An empty lineage: nothing materialized or observed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `m` as its asset's latest materialization.
    pub fn set_materialization(&mut self, m: Materialization) {
        self.materializations.insert(m.asset.clone(), m);
    }

    /// Records `o` as its source's latest observation.
    pub fn set_observation(&mut self, o: Observation) {
        self.observations.insert(o.asset.clone(), o);
    }

    /// The latest materialization of `key`.
    pub fn materialization(&self, key: &AssetKey) -> Option<&Materialization> {
        self.materializations.get(key)
    }

    /// The latest observation of `key`.
    pub fn observation(&self, key: &AssetKey) -> Option<&Observation> {
        self.observations.get(key)
    }

    /// Every asset's latest materialization.
    pub fn materializations(&self) -> impl Iterator<Item = &Materialization> {
        self.materializations.values()
    }

    /// Every source's latest observation.
    pub fn observations(&self) -> impl Iterator<Item = &Observation> {
        self.observations.values()
    }

    /// The current data version of `key`: its latest materialization's, or for a source its latest
    /// observation's.
    pub fn data_version(&self, key: &AssetKey) -> Option<&DataVersion> {
        self.materializations
            .get(key)
            .map(|m| &m.data_version)
            .or_else(|| self.observations.get(key).map(|o| &o.data_version))
    }
}
