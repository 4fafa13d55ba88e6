//! Freshet as a library: a project loaded from its files, and the executor that materializes it.
//!
//! This crate is the edge that touches files, DataFusion and object storage. The pure half (the
//! model, the graph, selections, freshness and the planner) is `freshet-plan`, and the metadata
//! store is `freshet-store`; both are re-exported here under the module names they have always
//! had (`freshet_core::planner`, `freshet_core::store`, ...) so that one dependency is enough
//! to embed Freshet. Nothing here knows HTTP or the command line.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod executor;
pub mod fingerprint;
pub mod policy;
pub mod project;
pub mod rust_asset;
pub mod sensor;
pub mod snapshot;
pub mod sql;
mod tables;
pub mod triggers;

pub use freshet_plan::{automation, freshness, graph, model, partitions, planner, selection};
pub use freshet_store as store;

pub use error::{Error, Result};
pub use executor::{
    AssetPartitions, CollectedVersion, Executor, GcReport, PartitionView, RunEvent, RunObserver,
    RunReport, SkipReason, StepOutcome,
};
pub use graph::{AssetGraph, GraphError};
pub use model::{
    AssetDef, AssetKey, AssetKind, AutomationCondition, CodeVersion, DataVersion, Lineage,
    Materialization, Observation, RunId, Status,
};
pub use planner::{AssetStatus, CauseCategory, PlanRequest, StaleCause};
pub use project::{Overrides, Project};
pub use rust_asset::{
    AssetContext, AssetOutput, BoxError, Catalogue, Catalogues, Retryable, RustAsset,
};
pub use snapshot::{Gone, PartitionSummary, Snapshot};
pub use store::Store;
