//! Freshet's core: the asset model, the graph, the planner, the metadata store and the executor.
//!
//! The pure part ([`model`], [`graph`], [`planner`]) is synchronous and does no IO. [`store`],
//! [`project`] and [`executor`] are the edges that touch files, databases and object storage.
//! Nothing here knows HTTP or the command line.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod executor;
pub mod fingerprint;
pub mod freshness;
pub mod graph;
pub mod model;
pub mod planner;
pub mod project;
pub mod rust_asset;
pub mod selection;
pub mod sql;
pub mod store;

pub use error::{Error, Result};
pub use executor::{Executor, RunEvent, RunObserver, RunReport, StepOutcome};
pub use graph::{AssetGraph, GraphError};
pub use model::{
    AssetDef, AssetKey, AssetKind, CodeVersion, DataVersion, Materialization, Observation, RunId,
};
pub use planner::{AssetStatus, CauseCategory, Lineage, PlanRequest, StaleCause, Status};
pub use project::{Overrides, Project};
pub use rust_asset::{AssetContext, AssetOutput, BoxError, Catalogue, Catalogues, RustAsset};
pub use store::Store;
