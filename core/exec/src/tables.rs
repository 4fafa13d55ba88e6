//! How assets appear as tables in DataFusion: `a` is table `a`, `a/b` is `a.b`, `a/b/c` is
//! `a.b.c`. Shared by the executor (registering inputs) and Rust assets (reading them).

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;

use crate::model::AssetKey;
use crate::{Error, Result};

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
pub(crate) fn ensure_namespace(ctx: &SessionContext, table: &TableReference) {
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
