//! One step: a new DataFusion session with the asset's inputs registered at their current
//! versions, the asset's query or function run, its output written and recorded.

use std::time::Instant;

use chrono::Utc;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::ObjectStoreExt;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use tracing::info;

use super::engine::Executor;
use super::sources::{Record, register_source};
use crate::error::{execution_error, one_line, storage_error};
use crate::model::{
    AssetDef, AssetKey, DataVersion, InputVersion, Lineage, Materialization, MaterializationId,
    RunId,
};
use crate::project::Computation;
use crate::rust_asset::{AssetContext, AssetOutput, is_retryable};
use crate::tables::{ensure_namespace, table_reference};
use crate::{Error, Result};

impl Executor {
    pub(super) async fn materialize_one(
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
                    retryable: is_retryable(&e),
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
        let now = self.clock.now();
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
        self.store.record_run_output(&m).await?;
        info!(rows = m.row_count, bytes = m.byte_size, data_version = %m.data_version, "materialized");
        Ok(m)
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
}
