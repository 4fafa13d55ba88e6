//! Reading a version back: the schema and first rows of an asset's current or given
//! materialization, or of a source's files as they are now.

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::ParquetReadOptions;

use super::engine::Executor;
use super::sources::register_source;
use crate::error::{execution_error, local_paths, one_line};
use crate::model::{AssetKey, Materialization};
use crate::project::Computation;
use crate::tables::{ensure_namespace, table_reference};
use crate::{Error, Result};

impl Executor {
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
            if let Some(at) = m.collected_at {
                return Err(Error::Execution {
                    asset: key.to_string(),
                    message: format!(
                        "version {} was removed by `freshet gc` at {}",
                        m.id,
                        at.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                    retryable: false,
                });
            }
            ctx.register_parquet(table.clone(), &m.location, ParquetReadOptions::default())
                .await
                .map_err(|e| Error::Execution {
                    asset: key.to_string(),
                    message: format!("cannot read: {}", local_paths(&one_line(&e))),
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
}
