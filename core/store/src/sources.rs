//! What is known of source files: each file's content fingerprint with the metadata it was read
//! at, so that observing a source reads a file again only when its metadata moved.

use std::collections::HashMap;

use crate::{Result, Store, get, store_error};

/// A source file's content fingerprint, and the metadata it was computed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its URL or path.
    pub location: String,
    /// Fingerprint of its size and e-tag (or modification time).
    pub meta: String,
    /// Fingerprint of its bytes.
    pub content_hash: String,
}

impl Store {
    /// The remembered fingerprints of `locations` (those known), by location.
    pub async fn source_files(&self, locations: &[String]) -> Result<HashMap<String, SourceFile>> {
        let mut known = HashMap::new();
        for location in locations {
            let row =
                sqlx::query("SELECT meta, content_hash FROM source_files WHERE location = $1")
                    .bind(location.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
            if let Some(row) = row {
                known.insert(
                    location.clone(),
                    SourceFile {
                        location: location.clone(),
                        meta: get(&row, 0)?,
                        content_hash: get(&row, 1)?,
                    },
                );
            }
        }
        Ok(known)
    }

    /// Remembers `files`' fingerprints, replacing what was known of them.
    pub async fn remember_source_files(&self, files: &[SourceFile]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for f in files {
            sqlx::query(
                "INSERT INTO source_files (location, meta, content_hash) VALUES ($1, $2, $3) \
                 ON CONFLICT (location) DO UPDATE SET meta = excluded.meta, \
                 content_hash = excluded.content_hash",
            )
            .bind(f.location.as_str())
            .bind(f.meta.as_str())
            .bind(f.content_hash.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }
}
