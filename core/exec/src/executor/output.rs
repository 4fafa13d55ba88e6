//! Parquet output: streaming a step's batches into a new object while fingerprinting its rows.

use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;

use super::engine::Executor;
use crate::Result;
use crate::error::execution_error;
use crate::fingerprint::RowFingerprint;
use crate::model::{AssetKey, DataVersion, MaterializationId};

impl Executor {
    pub(super) async fn write_parquet(
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

    pub(super) fn location_of(&self, key: &AssetKey, id: &MaterializationId) -> String {
        let base = self.project.storage_url();
        match base.join(&format!("{key}/{id}.parquet")) {
            Ok(url) => url.to_string(),
            Err(_) => format!("{base}{key}/{id}.parquet"),
        }
    }
}
