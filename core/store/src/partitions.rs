//! Partition states: one row per partitioned asset, its [`PartitionState`] as compact bytes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use freshet_plan::model::AssetKey;
use freshet_plan::partitions::PartitionState;

use crate::{Error, Result, Store, get, micros, store_error};

/// An asset's partition state as stored, with the definition its ordinals count.
#[derive(Debug, Clone)]
pub struct StoredPartitions {
    /// The definition's name and fingerprint, as the caller saved it.
    pub definition: String,
    pub state: PartitionState,
}

impl Store {
    /// Every stored partition state, by asset. A state whose bytes do not decode is refused
    /// (the store is damaged), naming the asset.
    pub async fn partition_states(&self) -> Result<HashMap<AssetKey, StoredPartitions>> {
        let rows = sqlx::query("SELECT asset, definition, state FROM partition_states")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut states = HashMap::with_capacity(rows.len());
        for row in rows {
            let asset: String = get(&row, 0)?;
            let record = || format!("partition state of {asset}");
            let key = AssetKey::parse(&asset).map_err(|e| Error::corrupt(record(), e))?;
            let bytes: Vec<u8> = get(&row, 2)?;
            let state = PartitionState::decode(&bytes).map_err(|e| Error::corrupt(record(), e))?;
            let definition: String = get(&row, 1)?;
            states.insert(key, StoredPartitions { definition, state });
        }
        Ok(states)
    }

    /// Replaces `asset`'s partition state, numbered by `definition`.
    pub async fn save_partition_state(
        &self,
        asset: &AssetKey,
        definition: &str,
        state: &PartitionState,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO partition_states (asset, definition, state, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (asset) DO UPDATE SET definition = excluded.definition, \
             state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(asset.as_str())
        .bind(definition)
        .bind(state.encode())
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use freshet_plan::partitions::PartitionSet;

    use super::*;
    use crate::testing::conformance;

    conformance! {
    async fn a_partition_state_reads_back_and_a_damaged_one_is_refused(db) {
        let store = db.open().await;
        let key = AssetKey::parse("events/daily").unwrap();
        assert!(store.partition_states().await.unwrap().is_empty());
        let mut state = PartitionState::default();
        state.commit(45_000..46_000, 3, 2, 1, &PartitionSet::from_range(45_000..46_000));
        state.fail(46_000..46_002);
        store.save_partition_state(&key, "daily:1a2b", &state, Utc::now()).await.unwrap();
        state.commit(46_000..46_001, 4, 3, 1, &PartitionSet::new());
        store.save_partition_state(&key, "daily:1a2b", &state, Utc::now()).await.unwrap();
        let stored = store.partition_states().await.unwrap();
        let back = &stored[&key];
        assert_eq!(back.definition, "daily:1a2b");
        assert_eq!(back.state.materialized, state.materialized);
        assert_eq!(back.state.failed, state.failed);
        assert_eq!(back.state.cursor, state.cursor);

        sqlx::query("UPDATE partition_states SET state = $1")
            .bind(b"FPS\x01\x00".to_vec())
            .execute(&store.pool)
            .await
            .unwrap();
        let error = store.partition_states().await.unwrap_err().to_string();
        assert_eq!(
            error,
            "metadata database: partition state of events/daily: truncated partition state"
        );
    }
    }
}
