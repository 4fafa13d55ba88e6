//! Freshet's pure half: the asset model, the graph, selections, freshness and the planner.
//!
//! Nothing here does IO or depends on an async runtime, a database or DataFusion: it judges the
//! facts it is given. Time comes in as a value, or through [`freshness::Clock`].
//!
//! Modules depend downward only: [`model`] <- [`graph`] <- [`freshness`], [`selection`] <-
//! [`planner`] <- [`automation`]; [`partitions`] depends on [`model`] only.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod automation;
pub mod freshness;
pub mod graph;
pub mod model;
pub mod partitions;
pub mod planner;
pub mod selection;

pub use graph::{AssetGraph, GraphError};
pub use model::{
    AssetDef, AssetKey, AssetKind, AutomationCondition, CodeVersion, DataVersion, FreshnessState,
    Lineage, Materialization, Observation, RunId, Status,
};
pub use planner::{AssetStatus, CauseCategory, PlanRequest, StaleCause};
