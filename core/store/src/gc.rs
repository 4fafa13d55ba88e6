//! What `freshet gc` reads and records: the versions beyond a retention, every location still
//! referenced, the assets live runs are computing, and which versions were collected.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use freshet_plan::model::{AssetKey, MaterializationId};

use crate::lifecycle::RunStatus;
use crate::lineage::parse_key;
use crate::{Result, Store, from_i64, from_micros, get, micros, store_error};

/// A stored version that a retention no longer keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// Its id.
    pub id: MaterializationId,
    /// Its asset.
    pub asset: AssetKey,
    /// Where its files are.
    pub location: String,
    /// Their size as recorded.
    pub byte_size: u64,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Every asset's versions (each partition's, for a partitioned asset) that are neither its
    /// current one nor among the `keep` newest before it, and whose files were not collected
    /// yet; oldest first.
    pub async fn versions_beyond(&self, keep: u32) -> Result<Vec<StoredVersion>> {
        let rows = sqlx::query(
            "SELECT id, asset, location, byte_size, created_at FROM ( \
                 SELECT m.id, m.asset, m.location, m.byte_size, m.created_at, m.collected_at, \
                 ROW_NUMBER() OVER (PARTITION BY m.asset, m.partition_key \
                     ORDER BY m.created_at DESC, m.id DESC) AS newest \
                 FROM materializations m) v \
             WHERE v.newest > $1 AND v.collected_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM asset_heads h WHERE h.materialization_id = v.id) \
             ORDER BY v.created_at, v.id",
        )
        .bind(i64::from(keep) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(StoredVersion {
                    id: MaterializationId::new(get::<String>(row, 0)?),
                    asset: parse_key(&get::<String>(row, 1)?, "materializations")?,
                    location: get(row, 2)?,
                    byte_size: from_i64(get(row, 3)?),
                    created_at: from_micros(get(row, 4)?),
                })
            })
            .collect()
    }

    /// The location of every version whose files were not collected: what is not an orphan.
    pub async fn referenced_locations(&self) -> Result<BTreeSet<String>> {
        let rows = sqlx::query("SELECT location FROM materializations WHERE collected_at IS NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    /// The assets that running runs hold a lease on: being computed now, so their inputs are
    /// being read and their files written.
    pub async fn leased_assets(&self) -> Result<BTreeSet<AssetKey>> {
        let rows = sqlx::query(
            "SELECT l.asset FROM asset_leases l JOIN runs r ON r.id = l.run_id \
             WHERE r.status = $1",
        )
        .bind(RunStatus::Running.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| parse_key(&get::<String>(row, 0)?, "asset_leases"))
            .collect()
    }

    /// Records that the files of `ids` were removed at `at`. A current version is never marked.
    pub async fn mark_collected(&self, ids: &[MaterializationId], at: DateTime<Utc>) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        for id in ids {
            sqlx::query(
                "UPDATE materializations SET collected_at = $1 WHERE id = $2 \
                 AND NOT EXISTS (SELECT 1 FROM asset_heads h WHERE h.materialization_id = $2)",
            )
            .bind(micros(at))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// Removes the log lines of runs that ended before `before` (their steps, attempts and
    /// outcome stay), or with `dry_run` only counts them: how many lines, of how many runs.
    pub async fn prune_run_logs(&self, before: DateTime<Utc>, dry_run: bool) -> Result<(u64, u64)> {
        let counted = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT run_id) FROM run_logs WHERE run_id IN \
             (SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < $1)",
        )
        .bind(micros(before))
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        let (lines, runs) = (from_i64(get(&counted, 0)?), from_i64(get(&counted, 1)?));
        if !dry_run && lines > 0 {
            let _turn = self.write_turn().await;
            sqlx::query(
                "DELETE FROM run_logs WHERE run_id IN \
                 (SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < $1)",
            )
            .bind(micros(before))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        }
        Ok((lines, runs))
    }
}
