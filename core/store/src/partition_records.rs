//! Recording partitions: a partition's version, its head and its asset's partition state moved
//! in one transaction, so a partition is either recorded whole or not at all.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use freshet_plan::model::{AssetKey, DataVersion, Materialization, Observation};
use freshet_plan::partitions::{Ordinal, PartitionSet, PartitionState};

use crate::lineage::{still_running, to_json, write_details};
use sqlx::AssertSqlSafe;

use crate::{Error, Result, Store, get, micros, store_error, to_i64};

/// What recording one partition's version moves besides its materialization.
#[derive(Debug, Clone, Copy)]
pub struct PartitionCommit<'a> {
    /// The partition's key, as its definition writes it.
    pub key: &'a str,
    /// Its ordinal in `definition`.
    pub ordinal: Ordinal,
    /// The definition's name and fingerprint (see [`crate::StoredPartitions`]): a stored state
    /// numbered by another is started afresh.
    pub definition: &'a str,
    /// The newest commit among the input partitions the version read (its cursor).
    pub cursor: u64,
}

impl Store {
    /// Records `m`, the version of one partition that a step of a running run made, makes it the
    /// partition's current version and commits it to the asset's partition state (its data
    /// changed unless it equals the previous version's: early cut-off), all in one transaction,
    /// only while the run is still running (its step lets the asset's lease go at its end).
    /// Returns the commit's number. Refused with [`Error::Transition`] like
    /// [`Store::record_run_output`].
    pub async fn record_partition_output(
        &self,
        m: &Materialization,
        commit: &PartitionCommit<'_>,
    ) -> Result<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let refused = || Error::Transition {
            run: m.run_id.to_string(),
            message: format!(
                "no longer holds {}: the run was ended by another process",
                m.asset
            ),
        };
        if !still_running(&mut tx, &m.run_id).await? {
            return Err(refused());
        }
        let asset = m.asset.as_str();
        let previous = sqlx::query(
            "SELECT m.data_version FROM asset_heads h JOIN materializations m \
             ON m.id = h.materialization_id WHERE h.asset = $1 AND h.partition_key = $2",
        )
        .bind(asset)
        .bind(commit.key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let previous: Option<String> = previous.map(|row| get(&row, 0)).transpose()?;
        let changed = previous.as_deref() != Some(m.data_version.as_str());

        let seq = next_seq(&mut tx, m.created_at).await?;
        let code = code_id(&mut tx, asset, m.code_version.as_str()).await?;

        let mut state = load_state(&mut tx, asset, commit.definition).await?;
        let o = commit.ordinal;
        let changed = if changed {
            PartitionSet::from_range(o..o + 1)
        } else {
            PartitionSet::new()
        };
        state.commit(o..o + 1, seq, commit.cursor, code, &changed);

        sqlx::query(
            "INSERT INTO materializations (id, asset, partition_key, run_id, code_version, \
             data_version, location, row_count, byte_size, duration_us, created_at, data_time, \
             details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(m.id.as_str())
        .bind(asset)
        .bind(commit.key)
        .bind(m.run_id.as_str())
        .bind(m.code_version.as_str())
        .bind(m.data_version.as_str())
        .bind(m.location.as_str())
        .bind(to_i64(m.row_count))
        .bind(to_i64(m.byte_size))
        .bind(to_i64(m.duration_us))
        .bind(micros(m.created_at))
        .bind(m.data_time.map(micros))
        .bind(write_details(&m.details)?)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        for input in &m.inputs {
            sqlx::query(
                "INSERT INTO materialization_inputs (materialization_id, input_asset, \
                 data_version) VALUES ($1, $2, $3)",
            )
            .bind(m.id.as_str())
            .bind(input.asset.as_str())
            .bind(input.data_version.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        sqlx::query(
            "INSERT INTO asset_heads (asset, partition_key, materialization_id, updated_at, record) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (asset, partition_key) DO UPDATE SET \
             materialization_id = excluded.materialization_id, observation_id = NULL, \
             updated_at = excluded.updated_at, record = excluded.record",
        )
        .bind(asset)
        .bind(commit.key)
        .bind(m.id.as_str())
        .bind(micros(m.created_at))
        .bind(to_json(m)?)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        save_state(&mut tx, asset, commit.definition, &state, m.created_at).await?;
        // The asset as a whole: its head points at its newest partition version, with a data
        // version that moves whenever some partition's data changes, for its unpartitioned
        // readers and for plans.
        let mut whole = m.clone();
        whole.data_version = DataVersion::new(state.whole_version());
        sqlx::query(
            "INSERT INTO asset_heads (asset, partition_key, materialization_id, updated_at, record) \
             VALUES ($1, '', $2, $3, $4) ON CONFLICT (asset, partition_key) DO UPDATE SET \
             materialization_id = excluded.materialization_id, observation_id = NULL, \
             updated_at = excluded.updated_at, record = excluded.record",
        )
        .bind(asset)
        .bind(m.id.as_str())
        .bind(micros(m.created_at))
        .bind(to_json(&whole)?)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(seq)
    }

    /// Records that the latest attempt at partitions `range` of `asset` failed.
    pub async fn record_partition_failure(
        &self,
        asset: &AssetKey,
        definition: &str,
        range: Range<Ordinal>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let mut state = load_state(&mut tx, asset.as_str(), definition).await?;
        state.fail(range);
        save_state(&mut tx, asset.as_str(), definition, &state, at).await?;
        tx.commit().await.map_err(store_error)
    }

    /// The current version of each recorded partition of `asset`, by key.
    pub async fn partition_heads(
        &self,
        asset: &AssetKey,
    ) -> Result<HashMap<String, Materialization>> {
        self.partition_records(asset, "materialization_id").await
    }

    /// The current observation of each partition of the partitioned source `asset`, by key.
    pub async fn partition_observations(
        &self,
        asset: &AssetKey,
    ) -> Result<HashMap<String, Observation>> {
        self.partition_records(asset, "observation_id").await
    }

    /// The JSON records of `asset`'s partition heads that point at `column`'s table, by key.
    async fn partition_records<T: serde::de::DeserializeOwned>(
        &self,
        asset: &AssetKey,
        column: &'static str,
    ) -> Result<HashMap<String, T>> {
        let sql = format!(
            "SELECT partition_key, record FROM asset_heads WHERE asset = $1 \
             AND partition_key <> '' AND {column} IS NOT NULL AND record IS NOT NULL"
        );
        // Safe: `column` is one of two names written above.
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(asset.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut heads = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = get(&row, 0)?;
            let record: String = get(&row, 1)?;
            let value = serde_json::from_str(&record).map_err(|e| {
                Error::corrupt(format!("asset_heads row for {asset} partition {key}"), e)
            })?;
            heads.insert(key, value);
        }
        Ok(heads)
    }

    /// Records what an observation of the partitioned source `asset` (its partitions numbered
    /// by `definition`) found: `present`, the partitions that have files, and `changed`, those
    /// whose files changed since their current observation (each with its ordinal and new
    /// observation), which become current and count as changed data at one new commit number.
    /// One transaction; nothing is written when nothing moved.
    pub async fn record_source_partitions(
        &self,
        asset: &AssetKey,
        definition: &str,
        present: &PartitionSet,
        changed: &[(String, Ordinal, Observation)],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let mut state = load_state(&mut tx, asset.as_str(), definition).await?;
        if changed.is_empty() && state.materialized == *present {
            return Ok(());
        }
        let seq = next_seq(&mut tx, at).await?;
        for (key, ordinal, o) in changed {
            let id = freshet_plan::model::MaterializationId::generate();
            sqlx::query(
                "INSERT INTO observations (id, asset, partition_key, data_version, file_count, \
                 byte_size, observed_at, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.as_str())
            .bind(asset.as_str())
            .bind(key.as_str())
            .bind(o.data_version.as_str())
            .bind(to_i64(o.file_count))
            .bind(to_i64(o.byte_size))
            .bind(micros(o.observed_at))
            .bind(micros(o.checked_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            sqlx::query(
                "INSERT INTO asset_heads (asset, partition_key, observation_id, updated_at, record) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (asset, partition_key) DO UPDATE SET \
                 observation_id = excluded.observation_id, materialization_id = NULL, \
                 updated_at = excluded.updated_at, record = excluded.record",
            )
            .bind(asset.as_str())
            .bind(key.as_str())
            .bind(id.as_str())
            .bind(micros(o.observed_at))
            .bind(to_json(o)?)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            // A source's partitions have no code: number 1 throughout.
            state.commit(
                *ordinal..*ordinal + 1,
                seq,
                0,
                1,
                &PartitionSet::from_range(*ordinal..*ordinal + 1),
            );
        }
        // Partitions whose files are gone are no longer there.
        let mut gone = state.materialized.clone();
        gone -= present;
        for range in gone.ranges().collect::<Vec<_>>() {
            state.materialized.remove_range(range);
        }
        save_state(&mut tx, asset.as_str(), definition, &state, at).await?;
        tx.commit().await.map_err(store_error)
    }

    /// The numbers partition states give `asset`'s code versions, by version.
    pub async fn partition_code_versions(&self, asset: &AssetKey) -> Result<HashMap<String, u32>> {
        let rows =
            sqlx::query("SELECT code_version, id FROM partition_code_versions WHERE asset = $1")
                .bind(asset.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let id: i64 = get(row, 1)?;
                Ok((get(row, 0)?, u32::try_from(id).unwrap_or(u32::MAX)))
            })
            .collect()
    }
}

/// The number of `asset`'s code version `code`, given the next one when first seen.
async fn code_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    asset: &str,
    code: &str,
) -> Result<u32> {
    let found = sqlx::query(
        "SELECT id FROM partition_code_versions WHERE asset = $1 AND code_version = $2",
    )
    .bind(asset)
    .bind(code)
    .fetch_optional(&mut **tx)
    .await
    .map_err(store_error)?;
    let id: i64 = match found {
        Some(row) => get(&row, 0)?,
        None => {
            let next = sqlx::query(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM partition_code_versions WHERE asset = $1",
            )
            .bind(asset)
            .fetch_one(&mut **tx)
            .await
            .map_err(store_error)?;
            let id: i64 = get(&next, 0)?;
            sqlx::query(
                "INSERT INTO partition_code_versions (asset, id, code_version) VALUES ($1, $2, $3)",
            )
            .bind(asset)
            .bind(id)
            .bind(code)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?;
            id
        }
    };
    u32::try_from(id).map_err(|_| {
        Error::corrupt(
            format!("partition_code_versions of {asset}"),
            format!("code version number {id} is out of range"),
        )
    })
}

/// `asset`'s stored partition state within `tx` if it is numbered by `definition`, else an
/// empty one (the definition's numbering changed: nothing recorded counts).
async fn load_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    asset: &str,
    definition: &str,
) -> Result<PartitionState> {
    let stored = sqlx::query("SELECT definition, state FROM partition_states WHERE asset = $1")
        .bind(asset)
        .fetch_optional(&mut **tx)
        .await
        .map_err(store_error)?;
    match stored {
        Some(row) if get::<String>(&row, 0)? == definition => {
            PartitionState::decode(&get::<Vec<u8>>(&row, 1)?)
                .map_err(|e| Error::corrupt(format!("partition state of {asset}"), e))
        }
        _ => Ok(PartitionState::default()),
    }
}

/// The next commit number: one more than the last, and at least `at` in microseconds.
async fn next_seq(tx: &mut sqlx::Transaction<'_, sqlx::Any>, at: DateTime<Utc>) -> Result<u64> {
    let row = sqlx::query(
        "UPDATE partition_sequence SET seq = CASE WHEN seq + 1 > $1 THEN seq + 1 ELSE $1 END \
         WHERE id = 1 RETURNING seq",
    )
    .bind(micros(at))
    .fetch_one(&mut **tx)
    .await
    .map_err(store_error)?;
    Ok(u64::try_from(get::<i64>(&row, 0)?).unwrap_or(0))
}

/// Replaces `asset`'s stored partition state within `tx`.
pub(crate) async fn save_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    asset: &str,
    definition: &str,
    state: &PartitionState,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO partition_states (asset, definition, state, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (asset) DO UPDATE SET definition = excluded.definition, \
         state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(asset)
    .bind(definition)
    .bind(state.encode())
    .bind(micros(at))
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    Ok(())
}
