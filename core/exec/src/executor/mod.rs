//! The executor: observes sources and materializes assets with DataFusion, writing Parquet through
//! object_store and recording lineage in the store.
//!
//! **Invariant:** every materialization writes new objects in a folder of its own
//! (`<storage>/<key>/<materialization id>/part-*.parquet`) and never overwrites one. The folder
//! becomes the asset's current version only when the store records it, after every write
//! completed; an asset reads its inputs at exactly the locations recorded as their current
//! versions, and records those versions as what it consumed. A failed or killed run therefore
//! leaves at most orphan objects (which `gc` removes), never a half-written current version.
//!
//! **Boundary:** the planner decides what to run; the executor decides nothing about staleness
//! except re-judging, just before a step, whether its inputs still call for it.
//!
//! The modules follow a run: [`engine`] holds what every run reaches, [`run`] drives one from
//! start to end, [`sources`] observes, [`schedule`] walks the plan, [`step`]
//! computes one asset, [`output`] writes its Parquet, [`run_log`] records the run as it goes;
//! [`preview`] reads versions back; [`gc`] removes old versions and orphans. Every time the executor records comes from its [`Clock`](crate::freshness::Clock).

mod cpu;
mod engine;
mod events;
mod gc;
mod output;
mod partitioned;
mod preview;
mod run;
mod run_log;
mod schedule;
mod sources;
mod step;

pub use engine::{Executor, outputs_exist};
pub use events::{RunEvent, RunObserver, RunReport, SkipReason, StepOutcome};
pub use gc::{CollectedVersion, GcReport};
pub(crate) use partitioned::partition_view;
pub use partitioned::{AssetPartitions, PartitionView};
pub use run_log::partitions_made;
