//! One step: a new DataFusion session with the asset's inputs registered at their current
//! versions, the asset's query or function run, its output written and recorded.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::physical_plan::execute_stream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use tracing::info;

use super::cpu::{Ended, on_cpu};
use super::engine::Executor;
use super::output::{OutputOptions, Written};
use super::partitioned::{Scope, Version, typed_params};
use super::sources::{Record, register_source};
use crate::error::{execution_error, local_paths, one_line};
use crate::model::{
    AssetDef, AssetKey, DataVersion, InputVersion, Lineage, Materialization, MaterializationId,
    OutputDetails, RunId,
};
use crate::project::Computation;
use crate::rust_asset::{AssetContext, AssetOutput, is_retryable};
use crate::store::PartitionCommit;
use crate::tables::{ensure_namespace, table_reference};
use crate::{Error, Result};

impl Executor {
    /// Computes step `def` and records its output. The inputs are checked here (a source that
    /// moved since the run observed it fails the step); the query or function runs and its
    /// output is written on the CPU runtime (`cpu.rs`), and the record is made here again.
    pub(super) async fn materialize_one(
        &self,
        run_id: &RunId,
        def: &AssetDef,
        lineage: &Lineage,
        data_time: Option<chrono::DateTime<Utc>>,
        partitions: Option<Vec<std::ops::Range<crate::partitions::Ordinal>>>,
    ) -> Result<Materialization> {
        if self.project.partitions_of(&def.key).is_some() {
            let ranges = partitions.unwrap_or_default();
            return self
                .materialize_partitions(run_id, def, lineage, data_time, &ranges)
                .await;
        }
        let mut inputs = Vec::with_capacity(def.deps.len());
        let mut partitioned = std::collections::HashMap::new();
        for dep in &def.deps {
            let data_version = match self.project.partitions_of(dep) {
                Some(_)
                    if !matches!(self.project.computation(dep), Some(Computation::Source(_))) =>
                {
                    let (version, read) = self.all_partitions(dep).await?;
                    partitioned.insert(dep.clone(), read);
                    version
                }
                _ => self.check_input(dep, lineage).await?,
            };
            inputs.push(InputVersion {
                asset: dep.clone(),
                data_version,
            });
        }
        let scope = (!partitioned.is_empty()).then(|| {
            Arc::new(Scope {
                params: datafusion::common::ParamValues::Map(Default::default()),
                local_dates: None,
                inputs: partitioned,
                context: None,
            })
        });
        let id = MaterializationId::generate();
        let version = Version {
            folder: self.folder_of(&def.key, &id),
            location: self.location_of(&def.key, &id),
            id,
            inputs,
            data_time,
        };
        self.make_version(run_id, def, lineage, version, scope, None)
            .await
    }

    /// Computes `version` of `def` (of one partition, with `scope`) and records it: as the
    /// asset's current version, or with `partition` as that partition's.
    pub(super) async fn make_version(
        &self,
        run_id: &RunId,
        def: &AssetDef,
        lineage: &Lineage,
        version: Version,
        scope: Option<Arc<Scope>>,
        partition: Option<&PartitionCommit<'_>>,
    ) -> Result<Materialization> {
        let started = Instant::now();
        let key = &def.key;
        let Version {
            id,
            folder,
            location,
            inputs,
            data_time,
        } = version;
        // Until it is recorded, the folder goes with the step: if the step is stopped (a
        // cancel, a timeout, SIGTERM) the guard removes what was written.
        let mut unrecorded = Unrecorded {
            local: self.project.storage_url().scheme() == "file",
            abandoned: self.abandoned.clone(),
            unconfirmed: self.unconfirmed.clone(),
            run: run_id.clone(),
            id: id.clone(),
            folder: folder.clone(),
            phase: Stage::Writing,
            computing: None,
        };
        let compute = {
            let executor = self.clone();
            let (def, lineage, folder) = (def.clone(), lineage.clone(), folder.clone());
            async move {
                executor
                    .compute(&def, &lineage, &folder, scope.as_deref())
                    .await
            }
        };
        // Dropping this future (the step stopped) aborts the computation; the guard then waits
        // for it to have really ended before its folder is removed for good.
        let computing = on_cpu(compute)?;
        unrecorded.computing = Some(computing.ended());
        let (written, metadata) = match computing.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(e),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                return Err(Error::Execution {
                    asset: key.to_string(),
                    message: format!("its computation ended: {}", one_line(&e)),
                    retryable: false,
                });
            }
        };
        let now = self.clock.now();
        let m = Materialization {
            id,
            asset: key.clone(),
            run_id: run_id.clone(),
            code_version: def
                .code_version
                .clone()
                .unwrap_or_else(|| crate::CodeVersion::new("")),
            data_version: written.data_version,
            inputs,
            location,
            row_count: written.rows,
            byte_size: written.bytes,
            duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            created_at: now,
            data_time: data_time.or(def.deps.is_empty().then_some(now)),
            details: OutputDetails {
                file_count: written.files,
                schema: written.schema,
                metadata,
            },
            collected_at: None,
        };
        // From here the folder may be current (a commit may land even if this task is stopped
        // waiting for its answer): only a definite refusal removes it now; without an answer,
        // the run looks once it has ended.
        unrecorded.phase = Stage::Recording;
        let recorded = match partition {
            None => self.store.record_run_output(&m).await,
            Some(commit) => self
                .store
                .record_partition_output(&m, commit)
                .await
                .map(drop),
        };
        if let Err(e) = recorded {
            if matches!(e, crate::store::Error::Transition { .. }) {
                unrecorded.phase = Stage::Settled;
                self.remove_folder(&folder).await;
            }
            return Err(e.into());
        }
        unrecorded.phase = Stage::Settled;
        info!(rows = m.row_count, bytes = m.byte_size, data_version = %m.data_version, "materialized");
        Ok(m)
    }

    /// On the CPU runtime: a new session with `def`'s inputs registered at their versions in
    /// `lineage`, the query or function, and its output written into `folder`. What was written
    /// is removed when the write fails.
    async fn compute(
        &self,
        def: &AssetDef,
        lineage: &Lineage,
        folder: &ObjectPath,
        scope: Option<&Scope>,
    ) -> Result<(
        Written,
        std::collections::BTreeMap<String, crate::model::MetadataValue>,
    )> {
        let key = &def.key;
        let exec_error = |e: DataFusionError| execution_error(key, e);
        let input_bytes = def
            .deps
            .iter()
            .map(|d| {
                lineage.materialization(d).map_or_else(
                    || lineage.observation(d).map_or(0, |o| o.byte_size),
                    |m| m.byte_size,
                )
            })
            .sum();
        let ctx = self.session_for(input_bytes);
        for dep in &def.deps {
            match scope.and_then(|s| s.inputs.get(dep)) {
                Some(partitions) => self.register_partitions(&ctx, dep, partitions).await?,
                None => self.register_input(&ctx, dep, lineage).await?,
            }
        }
        let mut metadata = None;
        let output = match self.project.computation(key) {
            Some(Computation::Sql { query }) => {
                let df = ctx.sql(query).await.map_err(exec_error)?;
                match scope.filter(|s| s.context.is_some()) {
                    // Values, not text: the plan compares columns with typed literals, which
                    // prune row groups by their statistics.
                    Some(scope) => {
                        let types = df
                            .logical_plan()
                            .get_parameter_types()
                            .map_err(exec_error)?;
                        let params = typed_params(scope, &types).map_err(exec_error)?;
                        AssetOutput::DataFrame(df.with_param_values(params).map_err(exec_error)?)
                    }
                    None => AssetOutput::DataFrame(df),
                }
            }
            Some(Computation::Rust(compute)) => {
                let mut context = AssetContext::new(key.clone(), def.deps.clone(), ctx.clone());
                if let Some(partition) = scope.and_then(|s| s.context.clone()) {
                    context = context.with_partition(partition);
                }
                metadata = Some(context.clone());
                compute(context).await.map_err(|e| Error::Execution {
                    asset: key.to_string(),
                    message: one_line(&e),
                    retryable: is_retryable(&e),
                })?
            }
            Some(Computation::Broken { error }) => {
                return Err(Error::Execution {
                    asset: key.to_string(),
                    message: error.clone(),
                    retryable: false,
                });
            }
            Some(Computation::Source(_)) | None => {
                return Err(Error::Execution {
                    asset: key.to_string(),
                    message: "sources are observed, not materialized".to_owned(),
                    retryable: false,
                });
            }
        };
        let mut options = OutputOptions {
            compression: self.project.policy(key).compression,
            ordered: false,
        };
        let stream: SendableRecordBatchStream = match output {
            AssetOutput::DataFrame(df) => {
                let task = Arc::new(df.task_ctx());
                let plan = df.create_physical_plan().await.map_err(exec_error)?;
                // A sorted single stream keeps its order: one writer, one file at a time.
                let properties = plan.properties();
                options.ordered = properties.output_partitioning().partition_count() == 1
                    && properties.output_ordering().is_some();
                execute_stream(plan, task).map_err(exec_error)?
            }
            AssetOutput::Stream(stream) => stream,
            AssetOutput::Batches { schema, batches } => Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)),
            )),
        };
        match self.write_output(key, folder, stream, options).await {
            Ok(written) => Ok((written, metadata.map(|c| c.metadata()).unwrap_or_default())),
            Err(e) => {
                // Best effort: the folder is not recorded, so it is not current either way.
                self.remove_folder(folder).await;
                Err(e)
            }
        }
    }

    /// The data version of input `key` the step reads: its current version in `lineage`. A
    /// source is listed again first, and must not have moved since the run observed it.
    pub(super) async fn check_input(
        &self,
        key: &AssetKey,
        lineage: &Lineage,
    ) -> Result<DataVersion> {
        if let Some(Computation::Source(spec)) = self.project.computation(key) {
            let version = lineage
                .observation(key)
                .map(|o| o.data_version.clone())
                .ok_or_else(|| Error::Execution {
                    asset: key.to_string(),
                    message: "source has not been observed".to_owned(),
                    retryable: false,
                })?;
            // What is read must be what is recorded: a source that moved since the run observed
            // it fails the step (retryable) rather than record a version it did not read.
            if self
                .observe_source(key, spec, Record::Yes)
                .await?
                .data_version
                != version
            {
                return Err(Error::Execution {
                    asset: key.to_string(),
                    message: "changed after this run observed it; run materialize again".to_owned(),
                    retryable: true,
                });
            }
            return Ok(version);
        }
        lineage
            .materialization(key)
            .map(|m| m.data_version.clone())
            .ok_or_else(|| Error::Execution {
                asset: key.to_string(),
                message: "has never been materialized".to_owned(),
                retryable: false,
            })
    }

    /// Registers `key`'s version in `lineage` as a table in `ctx` (checked by `check_input`).
    async fn register_input(
        &self,
        ctx: &SessionContext,
        key: &AssetKey,
        lineage: &Lineage,
    ) -> Result<()> {
        let table = table_reference(key)?;
        ensure_namespace(ctx, &table);
        let register_error = |e: DataFusionError| Error::Execution {
            asset: key.to_string(),
            message: format!("cannot read: {}", local_paths(&one_line(&e))),
            retryable: matches!(
                e,
                DataFusionError::ObjectStore(_) | DataFusionError::IoError(_)
            ),
        };
        if let Some(Computation::Source(spec)) = self.project.computation(key) {
            return register_source(ctx, table, spec)
                .await
                .map_err(register_error);
        }
        let Some(m) = lineage.materialization(key) else {
            return Err(Error::Execution {
                asset: key.to_string(),
                message: "has never been materialized".to_owned(),
                retryable: false,
            });
        };
        ctx.register_parquet(table, &m.location, ParquetReadOptions::default())
            .await
            .map_err(register_error)
    }
}

/// A version's folder from its first byte to its record. Dropped while still `Writing` (the
/// step was stopped: a cancel, its time limit, SIGTERM), it removes the folder at once on local
/// disk (staging files included) and hands it to [`Executor::sweep_abandoned`], which the run
/// calls once its end is recorded: a writer task or a blocking write in flight may still finish a
/// file after the first removal, and an object store's objects need an async delete. Dropped
/// while `Recording` (no answer came), it hands the folder to
/// [`Executor::sweep_unconfirmed`]. What a killed process leaves, `gc` removes.
struct Unrecorded {
    /// Whether the output is on local disk, where an object's path is its file's from `/`.
    local: bool,
    abandoned: Arc<std::sync::Mutex<Vec<super::engine::Abandoned>>>,
    unconfirmed: Arc<std::sync::Mutex<Vec<super::engine::Unconfirmed>>>,
    run: RunId,
    id: MaterializationId,
    folder: ObjectPath,
    phase: Stage,
    /// The computation writing the folder, on the CPU runtime.
    computing: Option<Ended>,
}

/// Where a version's write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Its files are being written: not recorded.
    Writing,
    /// Its record was asked for: it may be current.
    Recording,
    /// Recorded, or refused and removed.
    Settled,
}

impl Drop for Unrecorded {
    fn drop(&mut self) {
        let folder = std::mem::replace(&mut self.folder, ObjectPath::from(""));
        match self.phase {
            Stage::Writing => {
                if self.local {
                    let _ =
                        std::fs::remove_dir_all(std::path::Path::new("/").join(folder.as_ref()));
                }
                lock(&self.abandoned).push((folder, self.computing.take()));
            }
            Stage::Recording => {
                lock(&self.unconfirmed).push((self.run.clone(), self.id.clone(), folder));
            }
            Stage::Settled => {}
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Executor {
    /// Removes the folders of steps stopped before their output was recorded, once their
    /// writers have had a moment to end. Best effort: what is left is unreferenced, and `gc`
    /// removes it.
    pub(super) async fn sweep_abandoned(&self) {
        let folders: Vec<super::engine::Abandoned> = std::mem::take(&mut *lock(&self.abandoned));
        if folders.is_empty() {
            return;
        }
        // An aborted computation ends when it next gives its worker back, and its writers with
        // it; a blocking write in flight within a few ms more. Waited for at most 2 s in all
        // (an operator that never yields, such as an aggregate over an in-memory cross join,
        // may compute longer); called once the run's end is recorded, so the wait delays only
        // the process's exit, never the run's end.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        for (_, computing) in &folders {
            if let Some(computing) = computing {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                computing.wait(left).await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for (folder, _) in folders {
            self.remove_version_folder(&folder).await;
        }
    }

    /// Removes the folders of versions whose record got no answer and that the store did not
    /// record: called once the run's end is recorded, after which the store refuses any output
    /// of it, so what is not recorded now never will be. Best effort, as above.
    pub(super) async fn sweep_unconfirmed(&self, run: &RunId) {
        let versions: Vec<_> = {
            let mut all = lock(&self.unconfirmed);
            let (ours, others) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|(r, _, _)| r == run);
            *all = others;
            ours
        };
        for (_, id, folder) in versions {
            if let Ok(None) = self.store.materialization(id.as_str()).await {
                self.remove_version_folder(&folder).await;
            }
        }
    }

    /// Removes a version's folder: on local disk the whole folder (staging files, which
    /// listings do not show, included), elsewhere every object under it.
    async fn remove_version_folder(&self, folder: &ObjectPath) {
        if self.project.storage_url().scheme() == "file" {
            let path = std::path::Path::new("/").join(folder.as_ref());
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
        } else {
            self.remove_folder(folder).await;
        }
    }
}
