//! The executor: observes sources and materializes assets with DataFusion, writing Parquet through
//! object_store and recording lineage in the store.
//!
//! **Invariant:** every materialization writes a new object at its own location
//! (`<storage>/<key>/<materialization id>.parquet`) and never overwrites one. The object becomes the
//! asset's current version only when the store records it, after the write completed; an asset
//! reads its inputs at exactly the locations recorded as their current versions, and records those
//! versions as what it consumed. A failed or killed run therefore leaves at most an orphan object,
//! never a half-written current version.
//!
//! **Boundary:** the planner decides what to run; the executor decides nothing about staleness
//! except re-judging, just before a step, whether its inputs still call for it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::TableReference;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use futures::{StreamExt, TryStreamExt};
use tracing::{Instrument, info, info_span, warn};
use url::Url;

use crate::fingerprint::{Hasher, RowFingerprint};
use crate::freshness::DataTimes;
use crate::model::{
    AssetDef, AssetKey, DataVersion, InputVersion, Materialization, MaterializationId, Observation,
    RunId,
};
use crate::planner::{self, Lineage, PlanRequest, PlannedStep, Status, Statuses};
use crate::project::{Computation, Project, SourceFormat, SourceSpec};
use crate::rust_asset::{AssetContext, AssetOutput};
use crate::store::{LogLevel, LogLine, RunKind, RunStatus, StepRecord, StepState, Store};
use crate::{Error, Result};

/// Whether observing records what it saw in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Yes,
    No,
}

/// Receives progress as a run goes. Called from the run's task; keep it quick.
pub trait RunObserver: Send + Sync {
    /// One event.
    fn event(&self, event: &RunEvent<'_>);
}

/// Ignores every event.
impl RunObserver for () {
    fn event(&self, _: &RunEvent<'_>) {}
}

/// Progress of `observe` and `materialize`.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunEvent<'a> {
    /// A source was observed; `changed` when its data version moved (or it was new).
    Observed {
        /// The observation.
        observation: &'a Observation,
        /// Whether it was recorded as a new version.
        changed: bool,
    },
    /// A run starts with these steps.
    Planned {
        /// The run.
        run_id: &'a RunId,
        /// Its steps, upstream first.
        steps: &'a [PlannedStep],
    },
    /// A step starts computing.
    StepStarted {
        /// The asset.
        key: &'a AssetKey,
        /// 1-based position in the plan.
        index: usize,
        /// Number of steps.
        total: usize,
    },
    /// A step ended.
    StepFinished {
        /// The asset.
        key: &'a AssetKey,
        /// 1-based position in the plan.
        index: usize,
        /// Number of steps.
        total: usize,
        /// How it ended.
        outcome: &'a StepOutcome,
    },
    /// A line was added to the run's log (also recorded in the store).
    Log {
        /// The run.
        run_id: &'a RunId,
        /// The line.
        line: &'a LogLine,
    },
}

/// How one step of a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Written and recorded.
    Materialized(Materialization),
    /// Not run, with the reason in words.
    Skipped(String),
    /// Failed, with the error in one line.
    Failed {
        /// What went wrong.
        error: String,
        /// Whether trying again may succeed.
        retryable: bool,
    },
}

/// The result of `materialize`.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// `None` when there was nothing to do and no run was recorded.
    pub run_id: Option<RunId>,
    /// Each planned step and how it ended, upstream first.
    pub steps: Vec<(AssetKey, StepOutcome)>,
    /// Whether the run was stopped before it ended.
    pub interrupted: bool,
}

impl RunReport {
    /// Whether any step failed.
    pub fn failed(&self) -> bool {
        self.steps
            .iter()
            .any(|(_, o)| matches!(o, StepOutcome::Failed { .. }))
    }

    /// Number of steps materialized.
    pub fn materialized(&self) -> usize {
        self.steps
            .iter()
            .filter(|(_, o)| matches!(o, StepOutcome::Materialized(_)))
            .count()
    }
}

/// Runs a project's assets against a store and an output location.
pub struct Executor {
    project: Project,
    store: Store,
    output: Arc<dyn ObjectStore>,
    output_base: ObjectPath,
    /// Object stores other than local disk (the output's, sources'), built once, registered in
    /// every session.
    remote_stores: Vec<(Url, Arc<dyn ObjectStore>)>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("project", &self.project)
            .field("output", &self.output_base)
            .finish()
    }
}

impl Executor {
    /// An executor writing under the project's storage URL.
    pub fn new(project: Project, store: Store) -> Result<Self> {
        let url = project.storage_url();
        let (output, output_base) = object_store_for(url, project.object_store_options())?;
        let mut remote_stores = Vec::new();
        if url.scheme() != "file" {
            remote_stores.push((url.clone(), output.clone()));
        }
        for def in project.graph().iter() {
            if let Some(Computation::Source(spec)) = project.computation(&def.key)
                && let Ok(source_url) = Url::parse(&spec.location)
                && source_url.scheme() != "file"
            {
                let (store, _) = object_store_for(&source_url, project.object_store_options())?;
                remote_stores.push((source_url, store));
            }
        }
        Ok(Self {
            project,
            store,
            output,
            output_base,
            remote_stores,
        })
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Observes sources (all when `keys` is empty) and records the ones whose version moved.
    pub async fn observe(
        &self,
        keys: &[AssetKey],
        observer: &dyn RunObserver,
    ) -> Result<Vec<(Observation, bool)>> {
        for key in keys {
            if !matches!(self.project.computation(key), Some(Computation::Source(_))) {
                return Err(planner::PlanError::NotSource(key.clone()).into());
            }
        }
        let mut lineage = self.store.load_lineage().await?;
        self.observe_into(keys, &mut lineage, observer, Record::Yes)
            .await
    }

    /// Observes every source without recording anything, and puts what it saw into `lineage`:
    /// what a run would see, for plans.
    pub async fn peek_sources(&self, lineage: &mut Lineage) -> Result<()> {
        self.observe_into(&[], lineage, &(), Record::No).await?;
        Ok(())
    }

    /// Observes sources (all when `keys` is empty) and updates `lineage` with what it saw: a new
    /// observation for a source whose version moved, a later check time for one that did not.
    async fn observe_into(
        &self,
        keys: &[AssetKey],
        lineage: &mut Lineage,
        observer: &dyn RunObserver,
        record: Record,
    ) -> Result<Vec<(Observation, bool)>> {
        let mut out = Vec::new();
        for def in self.project.graph().iter() {
            let Some(Computation::Source(spec)) = self.project.computation(&def.key) else {
                continue;
            };
            if !keys.is_empty() && !keys.contains(&def.key) {
                continue;
            }
            let observation = self.observe_source(&def.key, spec).await?;
            let current = lineage.observation(&def.key);
            let changed = current.map(|o| &o.data_version) != Some(&observation.data_version);
            let seen = match current {
                Some(current) if !changed => Observation {
                    checked_at: observation.checked_at,
                    ..current.clone()
                },
                _ => observation.clone(),
            };
            if record == Record::Yes {
                if changed {
                    self.store.record_observation(&seen).await?;
                } else {
                    self.store.record_check(&seen).await?;
                }
            }
            lineage.set_observation(seen);
            observer.event(&RunEvent::Observed {
                observation: &observation,
                changed,
            });
            out.push((observation, changed));
        }
        Ok(out)
    }

    /// Materializes what `request` plans, upstream first.
    ///
    /// Sources are observed first, so the plan sees current external data. A step that fails
    /// skips its downstream; independent steps still run. Returns an error only when nothing could
    /// start (a bad request, an unreachable store); step failures are in the report.
    pub async fn materialize(
        &self,
        request: &PlanRequest,
        observer: &dyn RunObserver,
    ) -> Result<RunReport> {
        self.materialize_until(request, observer, std::future::pending())
            .await
    }

    /// [`Executor::materialize`], stopping early when `stop` completes (a Ctrl-C, a SIGTERM): the
    /// running step is abandoned unrecorded, the rest are skipped, and the run is recorded as
    /// failed with the error `interrupted`.
    pub async fn materialize_until(
        &self,
        request: &PlanRequest,
        observer: &dyn RunObserver,
        stop: impl Future<Output = ()>,
    ) -> Result<RunReport> {
        let (mut lineage, _, steps) = self.prepare(request, observer).await?;
        if steps.is_empty() {
            return Ok(RunReport::default());
        }
        let run_id = RunId::generate();
        let selection = match &request.selection {
            None => String::new(),
            Some(keys) => keys
                .iter()
                .map(AssetKey::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        };
        self.store
            .begin_run(
                &run_id,
                RunKind::Materialize,
                &selection,
                request.stale_only,
                Utc::now(),
            )
            .await?;
        let mut log = RunLog::new(&self.store, &run_id, observer);
        let report = self
            .execute(&mut log, &steps, &mut lineage, std::pin::pin!(stop))
            .await;
        let (status, error) = run_outcome(&report, RunStatus::Failed, "interrupted");
        log.finish(status, error.as_deref(), &report).await?;
        Ok(report)
    }

    /// Runs `request` as the run `run_id`, already queued in the store (by a server that returned
    /// its id): starts it, plans, materializes, and records how it ended, including when there
    /// was nothing to do or the request turned out bad. `stop` cancels it.
    pub async fn run_queued(
        &self,
        run_id: &RunId,
        request: &PlanRequest,
        observer: &dyn RunObserver,
        stop: impl Future<Output = ()>,
    ) -> Result<RunReport> {
        self.store.start_run(run_id, Utc::now()).await?;
        let mut log = RunLog::new(&self.store, run_id, observer);
        let (mut lineage, observed, steps) = match self.prepare(request, observer).await {
            Ok(prepared) => prepared,
            Err(e) => {
                let error = run_error(&e);
                log.write(LogLevel::Error, None, error.clone()).await;
                log.finish(RunStatus::Failed, Some(&error), &RunReport::default())
                    .await?;
                return Err(e);
            }
        };
        for (observation, changed) in &observed {
            log.observed(observation, *changed).await;
        }
        let mut report = RunReport {
            run_id: Some(run_id.clone()),
            ..RunReport::default()
        };
        if steps.is_empty() {
            log.write(
                LogLevel::Info,
                None,
                "nothing to materialize: every selected asset is fresh".to_owned(),
            )
            .await;
        } else {
            report = self
                .execute(&mut log, &steps, &mut lineage, std::pin::pin!(stop))
                .await;
        }
        let (status, error) = run_outcome(&report, RunStatus::Cancelled, "cancelled");
        log.finish(status, error.as_deref(), &report).await?;
        Ok(report)
    }

    /// Observes sources (all when `keys` is empty) as the run `run_id`, already queued in the
    /// store, logging what each showed.
    pub async fn observe_queued(
        &self,
        run_id: &RunId,
        keys: &[AssetKey],
        observer: &dyn RunObserver,
    ) -> Result<Vec<(Observation, bool)>> {
        self.store.start_run(run_id, Utc::now()).await?;
        let mut log = RunLog::new(&self.store, run_id, observer);
        match self.observe(keys, observer).await {
            Ok(observed) => {
                for (observation, changed) in &observed {
                    log.observed(observation, *changed).await;
                }
                let changed = observed.iter().filter(|(_, c)| *c).count();
                log.write(
                    LogLevel::Info,
                    None,
                    format!(
                        "observed {} source{}, {changed} with new data",
                        observed.len(),
                        if observed.len() == 1 { "" } else { "s" }
                    ),
                )
                .await;
                self.store
                    .finish_run(run_id, RunStatus::Succeeded, Utc::now(), None)
                    .await?;
                Ok(observed)
            }
            Err(e) => {
                let error = run_error(&e);
                log.write(LogLevel::Error, None, error.clone()).await;
                self.store
                    .finish_run(run_id, RunStatus::Failed, Utc::now(), Some(&error))
                    .await?;
                Err(e)
            }
        }
    }

    /// Checks `request`, observes every source (recording what moved), and plans: what a run
    /// does before its first step. Changes nothing when the request is bad.
    async fn prepare(
        &self,
        request: &PlanRequest,
        observer: &dyn RunObserver,
    ) -> Result<(Lineage, Vec<(Observation, bool)>, Vec<PlannedStep>)> {
        let graph = self.project.graph();
        let plan_now = |lineage: &Lineage| {
            planner::plan(graph, lineage, &Statuses::compute(graph, lineage), request)
        };
        // Check the request before observing anything, so it changes nothing if bad.
        let mut lineage = self.store.load_lineage().await?;
        plan_now(&lineage)?;
        let observed = self
            .observe_into(&[], &mut lineage, observer, Record::Yes)
            .await?;
        let steps = plan_now(&lineage)?.steps;
        Ok((lineage, observed, steps))
    }

    /// Records the plan, runs its steps and returns how each ended.
    async fn execute(
        &self,
        log: &mut RunLog<'_>,
        steps: &[PlannedStep],
        lineage: &mut Lineage,
        mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> RunReport {
        let run_id = log.run_id;
        let keys: Vec<AssetKey> = steps.iter().map(|s| s.key.clone()).collect();
        if let Err(e) = self.store.plan_steps(run_id, &keys).await {
            warn!(error = %e, "cannot record the run's steps");
        }
        log.observer.event(&RunEvent::Planned { run_id, steps });
        log.write(
            LogLevel::Info,
            None,
            format!(
                "planned {} step{}",
                steps.len(),
                if steps.len() == 1 { "" } else { "s" }
            ),
        )
        .await;
        let span = info_span!("run", run_id = %run_id);
        self.run_steps(log, steps, lineage, &mut stop)
            .instrument(span)
            .await
    }

    async fn run_steps(
        &self,
        log: &mut RunLog<'_>,
        steps: &[PlannedStep],
        lineage: &mut Lineage,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> RunReport {
        let run_id = log.run_id;
        let observer = log.observer;
        let graph = self.project.graph();
        let total = steps.len();
        // Data times of the inputs, shared by the steps: upstream first, an asset materialized in
        // this run is only read by later steps, so only its own entry goes out of date.
        let mut data_times = DataTimes::new(graph.len());
        let mut report = RunReport {
            run_id: Some(run_id.clone()),
            steps: Vec::with_capacity(total),
            interrupted: false,
        };
        let mut broken: Vec<AssetKey> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let index = i + 1;
            let Some(def) = graph.get(&step.key) else {
                continue;
            };
            let mut started_at = None;
            let outcome = if report.interrupted {
                StepOutcome::Skipped("the run was stopped".to_owned())
            } else if let Some(dep) = def.deps.iter().find(|d| broken.contains(d)) {
                broken.push(def.key.clone());
                StepOutcome::Skipped(format!("upstream {dep} failed"))
            } else if step.kind != planner::StepKind::Requested
                && planner::status_of(def, lineage).status == Status::Fresh
            {
                StepOutcome::Skipped("inputs unchanged".to_owned())
            } else {
                let now = Utc::now();
                started_at = Some(now);
                if let Err(e) = self.store.step_started(run_id, i, now).await {
                    warn!(error = %e, "cannot record a step's start");
                }
                observer.event(&RunEvent::StepStarted {
                    key: &def.key,
                    index,
                    total,
                });
                log.write(
                    LogLevel::Info,
                    Some(&def.key),
                    format!("materializing {} ({index}/{total})", def.key),
                )
                .await;
                let span = info_span!("materialize", asset = %def.key);
                let result = tokio::select! {
                    result = self
                        .materialize_one(run_id, def, lineage, data_times.of_inputs(graph, lineage, def))
                        .instrument(span) => Some(result),
                    () = &mut *stop => None,
                };
                match result {
                    None => {
                        // Not the asset's failure: its previous version stays current.
                        warn!(asset = %def.key, "interrupted");
                        report.interrupted = true;
                        StepOutcome::Skipped("the run was stopped while this step ran".to_owned())
                    }
                    Some(Ok(m)) => {
                        lineage.set_materialization(m.clone());
                        if let Some(i) = graph.index_of(&def.key) {
                            data_times.forget(i);
                        }
                        StepOutcome::Materialized(m)
                    }
                    Some(Err(e)) => {
                        warn!(asset = %def.key, error = %e, "materialization failed");
                        broken.push(def.key.clone());
                        StepOutcome::Failed {
                            retryable: e.is_retryable(),
                            error: e.to_string(),
                        }
                    }
                }
            };
            log.step_finished(i, &def.key, started_at, &outcome).await;
            observer.event(&RunEvent::StepFinished {
                key: &def.key,
                index,
                total,
                outcome: &outcome,
            });
            report.steps.push((def.key.clone(), outcome));
        }
        report
    }

    async fn materialize_one(
        &self,
        run_id: &RunId,
        def: &AssetDef,
        lineage: &Lineage,
        data_time: Option<chrono::DateTime<Utc>>,
    ) -> Result<Materialization> {
        let started = Instant::now();
        let key = &def.key;
        let exec_error = |e: DataFusionError| execution_error(key, e);
        let ctx = self.session();
        let mut inputs = Vec::with_capacity(def.deps.len());
        for dep in &def.deps {
            let data_version = self.register_input(&ctx, dep, lineage).await?;
            inputs.push(InputVersion {
                asset: dep.clone(),
                data_version,
            });
        }
        let output = match self.project.computation(key) {
            Some(Computation::Sql { query }) => {
                AssetOutput::DataFrame(ctx.sql(query).await.map_err(exec_error)?)
            }
            Some(Computation::Rust(compute)) => {
                let context = AssetContext::new(key.clone(), def.deps.clone(), ctx.clone());
                compute(context).await.map_err(|e| Error::Execution {
                    asset: key.to_string(),
                    message: one_line(&e),
                    retryable: false,
                })?
            }
            Some(Computation::Source(_)) | None => {
                return Err(Error::Execution {
                    asset: key.to_string(),
                    message: "sources are observed, not materialized".to_owned(),
                    retryable: false,
                });
            }
        };
        let stream: SendableRecordBatchStream = match output {
            AssetOutput::DataFrame(df) => df.execute_stream().await.map_err(exec_error)?,
            AssetOutput::Batches { schema, batches } => Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)),
            )),
        };

        let id = MaterializationId::generate();
        let mut path = self.output_base.clone();
        for segment in key.segments() {
            path = path.clone().join(segment);
        }
        let path = path.join(format!("{id}.parquet"));
        let written = self.write_parquet(key, &path, stream).await;
        let (data_version, row_count) = match written {
            Ok(v) => v,
            Err(e) => {
                // Best effort: the object is not recorded, so it is not current either way.
                let _ = self.output.delete(&path).await;
                return Err(e);
            }
        };
        let byte_size = self
            .output
            .head(&path)
            .await
            .map_err(|e| storage_error(key, &e))?
            .size;
        let location = self.location_of(key, &id);
        let now = Utc::now();
        let m = Materialization {
            id,
            asset: key.clone(),
            run_id: run_id.clone(),
            code_version: def
                .code_version
                .clone()
                .unwrap_or_else(|| crate::CodeVersion::new("")),
            data_version,
            inputs,
            location,
            row_count,
            byte_size,
            duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            created_at: now,
            data_time: data_time.or(def.deps.is_empty().then_some(now)),
        };
        self.store.record_materialization(&m).await?;
        info!(rows = m.row_count, bytes = m.byte_size, data_version = %m.data_version, "materialized");
        Ok(m)
    }

    async fn write_parquet(
        &self,
        key: &AssetKey,
        path: &ObjectPath,
        mut stream: SendableRecordBatchStream,
    ) -> Result<(DataVersion, u64)> {
        let schema = stream.schema();
        let arrow_error = |e: datafusion::arrow::error::ArrowError| execution_error(key, e.into());
        let parquet_error =
            |e: datafusion::parquet::errors::ParquetError| execution_error(key, e.into());
        let mut fingerprint = RowFingerprint::new(schema.clone()).map_err(arrow_error)?;
        let level = ZstdLevel::try_new(3).map_err(parquet_error)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .build();
        let writer =
            datafusion::object_store::buffered::BufWriter::new(self.output.clone(), path.clone());
        let mut writer =
            AsyncArrowWriter::try_new(writer, schema, Some(props)).map_err(parquet_error)?;
        while let Some(batch) = stream.next().await {
            let batch: RecordBatch = batch.map_err(|e| execution_error(key, e))?;
            fingerprint.update(&batch).map_err(arrow_error)?;
            writer.write(&batch).await.map_err(parquet_error)?;
        }
        writer.close().await.map_err(parquet_error)?;
        Ok((fingerprint.finish(), fingerprint.rows()))
    }

    fn location_of(&self, key: &AssetKey, id: &MaterializationId) -> String {
        let base = self.project.storage_url();
        match base.join(&format!("{key}/{id}.parquet")) {
            Ok(url) => url.to_string(),
            Err(_) => format!("{base}{key}/{id}.parquet"),
        }
    }

    /// Registers `key`'s current version as a table in `ctx` and returns its data version.
    async fn register_input(
        &self,
        ctx: &SessionContext,
        key: &AssetKey,
        lineage: &Lineage,
    ) -> Result<DataVersion> {
        let table = table_reference(key)?;
        ensure_namespace(ctx, &table);
        let register_error = |e: DataFusionError| Error::Execution {
            asset: key.to_string(),
            message: format!("cannot read: {}", one_line(&e)),
            retryable: matches!(
                e,
                DataFusionError::ObjectStore(_) | DataFusionError::IoError(_)
            ),
        };
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
            if self.observe_source(key, spec).await?.data_version != version {
                return Err(Error::Execution {
                    asset: key.to_string(),
                    message: "changed after this run observed it; run materialize again".to_owned(),
                    retryable: true,
                });
            }
            register_source(ctx, table, spec)
                .await
                .map_err(register_error)?;
            return Ok(version);
        }
        let m = lineage
            .materialization(key)
            .ok_or_else(|| Error::Execution {
                asset: key.to_string(),
                message: "has never been materialized".to_owned(),
                retryable: false,
            })?;
        ctx.register_parquet(table, &m.location, ParquetReadOptions::default())
            .await
            .map_err(register_error)?;
        Ok(m.data_version.clone())
    }

    /// The first `limit` rows of an asset's current version (or a source's current files).
    pub async fn preview(&self, key: &AssetKey, limit: usize) -> Result<Vec<RecordBatch>> {
        Ok(self.preview_version(key, None, limit).await?.1)
    }

    /// The schema and first `limit` rows of one of an asset's materializations (`version`), of
    /// its current version when `None`, or of a source's files as they are now.
    pub async fn preview_version(
        &self,
        key: &AssetKey,
        version: Option<&Materialization>,
        limit: usize,
    ) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
        let ctx = self.session();
        let table = table_reference(key)?;
        ensure_namespace(&ctx, &table);
        if let Some(Computation::Source(spec)) = self.project.computation(key) {
            // A source previews its files as they are now, observed or not.
            register_source(&ctx, table.clone(), spec)
                .await
                .map_err(|e| execution_error(key, e))?;
        } else {
            let current;
            let m = match version {
                Some(m) => m,
                None => {
                    current = self.store.load_lineage().await?;
                    current
                        .materialization(key)
                        .ok_or_else(|| Error::Execution {
                            asset: key.to_string(),
                            message: "has never been materialized; run `freshet materialize` first"
                                .to_owned(),
                            retryable: false,
                        })?
                }
            };
            ctx.register_parquet(table.clone(), &m.location, ParquetReadOptions::default())
                .await
                .map_err(|e| Error::Execution {
                    asset: key.to_string(),
                    message: format!("cannot read: {}", one_line(&e)),
                    retryable: true,
                })?;
        }
        let df = ctx
            .table(table)
            .await
            .map_err(|e| execution_error(key, e))?;
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        let batches = df
            .limit(0, Some(limit))
            .map_err(|e| execution_error(key, e))?
            .collect()
            .await
            .map_err(|e| execution_error(key, e))?;
        Ok((schema, batches))
    }

    /// A new DataFusion session that can reach the output storage and every source's store.
    fn session(&self) -> SessionContext {
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_information_schema(false));
        for (url, store) in &self.remote_stores {
            ctx.register_object_store(url, store.clone());
        }
        ctx
    }

    /// Lists a source's objects and fingerprints their paths, sizes and e-tags (or modification
    /// times). Touching or rewriting a file therefore counts as new data.
    async fn observe_source(&self, key: &AssetKey, spec: &SourceSpec) -> Result<Observation> {
        let now = Utc::now();
        let fail = |message: String, retryable| Error::Storage {
            message: format!("source {key}: {message}"),
            retryable,
        };
        let ctx = self.session();
        let url = ListingTableUrl::parse(&spec.location).map_err(|e| {
            fail(
                format!("invalid location {}: {}", spec.location, one_line(&e)),
                false,
            )
        })?;
        let store = ctx
            .runtime_env()
            .object_store(url.object_store())
            .map_err(|e| fail(one_line(&e), false))?;
        let state = ctx.state();
        let listing = url.list_all_files(&state, store.as_ref(), "").await;
        let mut files: Vec<_> = match listing {
            Ok(stream) => stream.try_collect().await,
            Err(e) => Err(e),
        }
        .map_err(|e| match e {
            DataFusionError::ObjectStore(ref inner)
                if matches!(**inner, datafusion::object_store::Error::NotFound { .. }) =>
            {
                fail(format!("no files match {}", spec.location), false)
            }
            e => fail(
                format!("cannot list {}: {}", spec.location, one_line(&e)),
                true,
            ),
        })?;
        if files.is_empty() {
            return Err(fail(format!("no files match {}", spec.location), false));
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        let mut h = Hasher::default();
        for f in &files {
            h.field(f.location.as_ref().as_bytes())
                .field(&f.size.to_le_bytes());
            match &f.e_tag {
                Some(tag) => h.field(tag.as_bytes()),
                None => h.field(&f.last_modified.timestamp_micros().to_le_bytes()),
            };
        }
        Ok(Observation {
            asset: key.clone(),
            data_version: DataVersion::new(h.finish_hex()),
            file_count: files.len() as u64,
            byte_size: files.iter().map(|f| f.size).sum(),
            observed_at: now,
            checked_at: now,
        })
    }
}

/// A run's error as recorded where anyone who can see runs reads it: the metadata store's own
/// errors are logged, not recorded.
fn run_error(e: &Error) -> String {
    match e {
        Error::Store { .. } => {
            warn!(error = %e, "run failed on the metadata store");
            "internal error in the metadata store (see the log)".to_owned()
        }
        other => other.to_string(),
    }
}

/// How a run ended, from its steps: `stopped` is the status when `stop` ended it early.
fn run_outcome(
    report: &RunReport,
    stopped: RunStatus,
    stop_error: &str,
) -> (RunStatus, Option<String>) {
    if report.interrupted {
        (stopped, Some(stop_error.to_owned()))
    } else if report.failed() {
        let failed: Vec<&str> = report
            .steps
            .iter()
            .filter(|(_, o)| matches!(o, StepOutcome::Failed { .. }))
            .map(|(k, _)| k.as_str())
            .collect();
        (
            RunStatus::Failed,
            Some(format!("failed: {}", failed.join(", "))),
        )
    } else {
        (RunStatus::Succeeded, None)
    }
}

/// Writes a run's record as it goes: its log lines and step ends to the store, and each line to
/// the observer. Recording is best effort: a store that cannot take a log line does not stop the
/// run (a materialization still cannot become current without the store).
struct RunLog<'a> {
    store: &'a Store,
    run_id: &'a RunId,
    observer: &'a dyn RunObserver,
    seq: u64,
    started: Instant,
}

impl<'a> RunLog<'a> {
    fn new(store: &'a Store, run_id: &'a RunId, observer: &'a dyn RunObserver) -> Self {
        Self {
            store,
            run_id,
            observer,
            seq: 0,
            started: Instant::now(),
        }
    }

    async fn write(&mut self, level: LogLevel, asset: Option<&AssetKey>, message: String) {
        self.seq += 1;
        let line = LogLine {
            seq: self.seq,
            at: Utc::now(),
            level,
            asset: asset.map(ToString::to_string),
            message,
        };
        if let Err(e) = self.store.append_log(self.run_id, &line).await {
            warn!(error = %e, "cannot record a log line");
        }
        self.observer.event(&RunEvent::Log {
            run_id: self.run_id,
            line: &line,
        });
    }

    async fn observed(&mut self, observation: &Observation, changed: bool) {
        let what = if changed {
            format!(
                "new data version {} ({} file{}, {} bytes)",
                short(observation.data_version.as_str()),
                observation.file_count,
                if observation.file_count == 1 { "" } else { "s" },
                observation.byte_size
            )
        } else {
            "unchanged".to_owned()
        };
        self.write(
            LogLevel::Info,
            Some(&observation.asset),
            format!("observed {}: {what}", observation.asset),
        )
        .await;
    }

    async fn step_finished(
        &mut self,
        position: usize,
        key: &AssetKey,
        started_at: Option<chrono::DateTime<Utc>>,
        outcome: &StepOutcome,
    ) {
        let (state, message, level, line) = match outcome {
            StepOutcome::Materialized(m) => (
                StepState::Materialized,
                None,
                LogLevel::Info,
                format!(
                    "materialized {key}: {} rows, {} bytes in {} ms",
                    m.row_count,
                    m.byte_size,
                    m.duration_us / 1000
                ),
            ),
            StepOutcome::Skipped(why) => (
                StepState::Skipped,
                Some(why.clone()),
                if why == "inputs unchanged" {
                    LogLevel::Info
                } else {
                    LogLevel::Warn
                },
                format!("skipped {key}: {why}"),
            ),
            StepOutcome::Failed { error, .. } => (
                StepState::Failed,
                Some(error.clone()),
                LogLevel::Error,
                format!("failed {key}: {error}"),
            ),
        };
        let (row_count, byte_size) = match outcome {
            StepOutcome::Materialized(m) => (Some(m.row_count), Some(m.byte_size)),
            _ => (None, None),
        };
        let end = StepRecord {
            asset: key.to_string(),
            state,
            started_at,
            finished_at: Some(Utc::now()),
            message,
            row_count,
            byte_size,
        };
        if let Err(e) = self.store.step_finished(self.run_id, position, &end).await {
            warn!(error = %e, "cannot record a step's end");
        }
        self.write(level, Some(key), line).await;
    }

    /// Logs the run's end and records its status.
    async fn finish(
        &mut self,
        status: RunStatus,
        error: Option<&str>,
        report: &RunReport,
    ) -> Result<()> {
        let skipped = report
            .steps
            .iter()
            .filter(|(_, o)| matches!(o, StepOutcome::Skipped(_)))
            .count();
        let mut line = format!(
            "run {}: {} materialized, {skipped} skipped in {} ms",
            status.as_str(),
            report.materialized(),
            self.started.elapsed().as_millis()
        );
        if let Some(error) = error {
            line.push_str(&format!(" ({error})"));
        }
        let level = match status {
            RunStatus::Succeeded => LogLevel::Info,
            RunStatus::Cancelled => LogLevel::Warn,
            _ => LogLevel::Error,
        };
        self.write(level, None, line).await;
        self.store
            .finish_run(self.run_id, status, Utc::now(), error)
            .await
    }
}

fn short(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}

/// The object store for `url`, configured with `options` (credentials, endpoint, region).
fn object_store_for(
    url: &Url,
    options: &[(String, String)],
) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let (store, path) = datafusion::object_store::parse_url_opts(url, options.iter().cloned())
        .map_err(|e| Error::Storage {
            message: format!("object store {url}: {}", one_line(&e)),
            retryable: false,
        })?;
    Ok((Arc::from(store), path))
}

/// The table reference an asset key is registered under: `a` -> `a`, `a/b` -> `a.b`, `a/b/c` -> `a.b.c`.
pub(crate) fn table_reference(key: &AssetKey) -> Result<TableReference> {
    let segments: Vec<&str> = key.segments().collect();
    match segments[..] {
        [table] => Ok(TableReference::bare(table)),
        [schema, table] => Ok(TableReference::partial(schema, table)),
        [catalog, schema, table] => Ok(TableReference::full(catalog, schema, table)),
        _ => Err(Error::Execution {
            asset: key.to_string(),
            message: "keys of more than three segments cannot be read as tables".to_owned(),
            retryable: false,
        }),
    }
}

/// Creates the catalog and schema a multi-segment key's table lives in, if missing.
fn ensure_namespace(ctx: &SessionContext, table: &TableReference) {
    let default_catalog = ctx
        .copied_config()
        .options()
        .catalog
        .default_catalog
        .clone();
    let (catalog_name, schema_name) = match table {
        TableReference::Bare { .. } => return,
        TableReference::Partial { schema, .. } => (default_catalog, schema.to_string()),
        TableReference::Full {
            catalog, schema, ..
        } => (catalog.to_string(), schema.to_string()),
    };
    let catalog = ctx.catalog(&catalog_name).unwrap_or_else(|| {
        let catalog: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
        ctx.register_catalog(&catalog_name, catalog.clone());
        catalog
    });
    if catalog.schema(&schema_name).is_none() {
        let _ = catalog.register_schema(&schema_name, Arc::new(MemorySchemaProvider::new()));
    }
}

async fn register_source(
    ctx: &SessionContext,
    table: TableReference,
    spec: &SourceSpec,
) -> datafusion::error::Result<()> {
    // An empty extension: the location (a file or a glob) already says which files to read.
    match spec.format {
        SourceFormat::Csv => {
            ctx.register_csv(
                table,
                &spec.location,
                CsvReadOptions::new().file_extension(""),
            )
            .await
        }
        SourceFormat::Parquet => {
            ctx.register_parquet(
                table,
                &spec.location,
                ParquetReadOptions::default().file_extension(""),
            )
            .await
        }
        SourceFormat::Json => {
            ctx.register_json(
                table,
                &spec.location,
                JsonReadOptions::default().file_extension(""),
            )
            .await
        }
    }
}

fn execution_error(key: &AssetKey, e: DataFusionError) -> Error {
    let retryable = matches!(
        e,
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_)
    );
    Error::Execution {
        asset: key.to_string(),
        message: one_line(&e),
        retryable,
    }
}

fn storage_error(key: &AssetKey, e: &datafusion::object_store::Error) -> Error {
    Error::Storage {
        message: format!("{key}: {}", one_line(e)),
        retryable: true,
    }
}

fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
