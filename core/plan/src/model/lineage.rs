//! What the store records and the planner judges: each materialization and observation, and the
//! latest of each per asset.

use std::collections::HashMap;

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
    /// URL of the immutable Parquet object written.
    pub location: String,
    /// Rows written.
    pub row_count: u64,
    /// Size of the Parquet object in bytes.
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
