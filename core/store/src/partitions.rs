//! Partition states (one row per partitioned asset, its [`PartitionState`] as compact bytes) and
//! the keys of dynamic partitions definitions.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use freshet_plan::model::AssetKey;
use freshet_plan::partitions::{KeyList, PartitionState};
use sqlx::AssertSqlSafe;

use crate::lineage::rows;
use crate::partition_records::save_state;
use crate::{Backend, Error, Result, Store, get, micros, store_error};

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
        save_state(&mut tx, asset.as_str(), definition, state, at).await?;
        tx.commit().await.map_err(store_error)
    }
}

impl Store {
    /// The keys of the dynamic definition `definition`, each at its ordinal (removed keys keep
    /// theirs, absent from the list).
    pub async fn partition_keys(&self, definition: &str) -> Result<KeyList> {
        let rows = sqlx::query(
            "SELECT ordinal, key, removed_at FROM partition_keys WHERE definition = $1 \
             ORDER BY ordinal",
        )
        .bind(definition)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut keys = KeyList::default();
        for (expected, row) in (0i64..).zip(&rows) {
            let ordinal: i64 = get(row, 0)?;
            let key: String = get(row, 1)?;
            let removed: Option<i64> = get(row, 2)?;
            let record = || format!("partition key {key:?} of {definition}");
            if ordinal != expected {
                return Err(Error::corrupt(
                    record(),
                    format!("its ordinal is {ordinal}, where {expected} was expected"),
                ));
            }
            keys.add(&key).map_err(|e| Error::corrupt(record(), e))?;
            if removed.is_some() {
                keys.remove(&key);
            }
        }
        Ok(keys)
    }

    /// Adds `keys` to the dynamic definition `definition` in one transaction: each new key
    /// gets the next ordinal, a removed one is current again at its own, a current one is left
    /// as it is. Returns how many keys were new. The keys must be valid
    /// ([`freshet_plan::partitions::def::check_key`]).
    pub async fn add_partition_keys(
        &self,
        definition: &str,
        keys: &[String],
        at: DateTime<Utc>,
    ) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Two adders must not both take the next ordinal: one waits for the other.
            sqlx::query("LOCK TABLE partition_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        let known = sqlx::query("SELECT key, removed_at FROM partition_keys WHERE definition = $1")
            .bind(definition)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let mut removed = HashSet::new();
        let mut seen = HashSet::new();
        for row in &known {
            let key: String = get(row, 0)?;
            let gone: Option<i64> = get(row, 1)?;
            if gone.is_some() {
                removed.insert(key.clone());
            }
            seen.insert(key);
        }
        let next = i64::try_from(known.len()).unwrap_or(i64::MAX);
        let mut new: Vec<&str> = Vec::new();
        let mut back: Vec<&str> = Vec::new();
        for key in keys {
            if seen.insert(key.clone()) {
                new.push(key);
            } else if removed.remove(key) {
                // Taken out of `removed`, so a key given twice comes back once.
                back.push(key);
            }
        }
        /// Rows per statement: 4 parameters each, under both backends' limits.
        const ROWS: usize = 1000;
        for (i, chunk) in new.chunks(ROWS).enumerate() {
            let sql = format!(
                "INSERT INTO partition_keys (definition, ordinal, key, added_at) VALUES {}",
                rows(self.backend, chunk.len(), 4, "")
            );
            // Safe: the only text added is numbered placeholders.
            let mut query = sqlx::query(AssertSqlSafe(sql));
            let first = next + (i * ROWS) as i64;
            for (j, key) in chunk.iter().enumerate() {
                query = query
                    .bind(definition)
                    .bind(first + j as i64)
                    .bind(*key)
                    .bind(micros(at));
            }
            query.execute(&mut *tx).await.map_err(store_error)?;
        }
        for key in back {
            sqlx::query(
                "UPDATE partition_keys SET removed_at = NULL WHERE definition = $1 AND key = $2",
            )
            .bind(definition)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(new.len())
    }

    /// Removes `keys` from the dynamic definition `definition`: they keep their ordinals,
    /// which no other key is given. Returns how many were current.
    pub async fn remove_partition_keys(
        &self,
        definition: &str,
        keys: &[String],
        at: DateTime<Utc>,
    ) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for key in keys {
            let done = sqlx::query(
                "UPDATE partition_keys SET removed_at = $1 \
                 WHERE definition = $2 AND key = $3 AND removed_at IS NULL",
            )
            .bind(micros(at))
            .bind(definition)
            .bind(key.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            removed += done.rows_affected() as usize;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(removed)
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

    async fn dynamic_keys_keep_their_ordinals_and_two_adders_never_share_one(db) {
        let store = db.open().await;
        let keys = |list: &[&str]| list.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert!(store.partition_keys("customer").await.unwrap().is_empty());
        let added = store
            .add_partition_keys("customer", &keys(&["acme", "globex", "acme"]), Utc::now())
            .await
            .unwrap();
        assert_eq!(added, 2);
        let added = store
            .add_partition_keys("customer", &keys(&["globex", "initech"]), Utc::now())
            .await
            .unwrap();
        assert_eq!(added, 1);
        let list = store.partition_keys("customer").await.unwrap();
        assert_eq!(list.ordinal("acme"), Some(0));
        assert_eq!(list.ordinal("initech"), Some(2));
        // A removed key is gone from the list, keeps its ordinal, and comes back at it.
        let removed = store
            .remove_partition_keys("customer", &keys(&["globex", "nobody"]), Utc::now())
            .await
            .unwrap();
        assert_eq!(removed, 1);
        let list = store.partition_keys("customer").await.unwrap();
        assert_eq!((list.ordinal("globex"), list.len()), (None, 2));
        store.add_partition_keys("customer", &keys(&["hooli", "globex"]), Utc::now()).await.unwrap();
        let list = store.partition_keys("customer").await.unwrap();
        assert_eq!((list.ordinal("globex"), list.ordinal("hooli")), (Some(1), Some(3)));
        // Another definition counts from 0.
        store.add_partition_keys("region", &keys(&["eu"]), Utc::now()).await.unwrap();
        assert_eq!(store.partition_keys("region").await.unwrap().ordinal("eu"), Some(0));

        // Two stores adding at once: every key once, ordinals 0..n without a gap.
        let (a, b) = (db.open().await, db.open().await);
        let batch = |prefix: &str| (0..300).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
        let (one, two) = (batch("a"), batch("b"));
        let (x, y) = tokio::join!(
            a.add_partition_keys("many", &one, Utc::now()),
            b.add_partition_keys("many", &two, Utc::now())
        );
        assert_eq!((x.unwrap(), y.unwrap()), (300, 300));
        let list = store.partition_keys("many").await.unwrap();
        assert_eq!(list.len(), 600);
        assert_eq!(list.ordinals().collect::<Vec<_>>(), (0..600).collect::<Vec<u32>>());
    }
    }
}
