//! Partitions: an asset as many slices (a day of events, a region) each materialized, versioned
//! and judged on its own.
//!
//! [`def`] says what an asset's partitions are: ordinals fixed for ever, keys and time windows.
//! [`set`] holds sets of them and per-partition values in ranges. [`status`] judges every
//! partition of an asset from what the store knows (its [`PartitionState`]) and its inputs' states
//! through their [`Mapping`]s, in time proportional to the number of ranges, not partitions.

mod codec;
pub mod def;
pub mod set;
pub mod status;

#[cfg(test)]
mod tests;

pub use def::{KeyList, MOST_CRON_TICKS, Ordinal, PartitionsDef, PartitionsSpec, TimeWindows};
pub use set::{Column, PartitionSet};
pub use status::{
    Input, Mapping, PartitionCause, PartitionState, PartitionStatus, PartitionStatuses,
    Partitioning, Segment, StaleRange, mapped_partitions, partition_statuses,
};
