//! Freshet's integration tests: one binary (DataFusion links once) driving the `freshet` command on
//! temporary projects, with real SQLite files and real Parquet on disk.

mod api;
mod automation;
mod control_plane;
mod data_plane;
mod demo;
mod engine;
mod errors;
mod init;
mod partitions;
mod planning;
mod production;
mod runs;
mod s3;
mod sources;
mod staleness;
mod support;
mod trust;
mod web;
