//! Lineage records: materializations with their inputs, source observations, and each asset's
//! head (its current version, carried as a JSON record so a status reads one value per asset).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use freshet_plan::model::{
    AssetKey, CodeVersion, DataVersion, InputVersion, Lineage, Materialization, MaterializationId,
    Observation, OutputDetails, RunId,
};
use sqlx::{AssertSqlSafe, Row};

use crate::lifecycle::RunStatus;
use crate::runs::placeholders;
use crate::{
    Backend, Error, Result, Store, from_i64, from_micros, get, micros, store_error, to_i64,
};

/// Rows bound in one statement at most: far below SQLite's and PostgreSQL's limits on bound
/// values even at three per row.
const CHUNK: usize = 500;

/// Heads read per statement by [`Store::load_lineage`].
const HEADS_PAGE: i64 = 5000;

impl Store {
    /// Records a materialization and makes it its asset's current version, atomically.
    pub async fn record_materialization(&self, m: &Materialization) -> Result<()> {
        self.record_materializations(std::slice::from_ref(m)).await
    }

    /// Records what a step of a run made and makes it its asset's current version, atomically,
    /// with the asset's lease let go, only while the run is still running and holds that lease:
    /// a run that another process found dead (and whose asset another run may be computing)
    /// records nothing. Refused with [`Error::Transition`] otherwise.
    pub async fn record_run_output(&self, m: &Materialization) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let refused = || Error::Transition {
            run: m.run_id.to_string(),
            message: format!(
                "no longer holds {}: the run was ended by another process",
                m.asset
            ),
        };
        // First the run's own row, only while it runs: on PostgreSQL this locks it, so a process
        // ending the run as dead either committed before (and this finds it ended) or waits
        // until this commit (and then finds the output recorded). SQLite's writers take turns
        // whole. Refused, the transaction rolls back when dropped.
        if !still_running(&mut tx, &m.run_id).await? {
            return Err(refused());
        }
        insert_materialization(&mut tx, self.backend, m).await?;
        // Made: the lease goes with the same commit, and only a running run's lease goes.
        let released = sqlx::query(
            "DELETE FROM asset_leases WHERE asset = $1 AND run_id = $2 \
             AND EXISTS (SELECT 1 FROM runs r WHERE r.id = $2 AND r.status = $3)",
        )
        .bind(m.asset.as_str())
        .bind(m.run_id.as_str())
        .bind(RunStatus::Running.as_str())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if released.rows_affected() != 1 {
            return Err(refused());
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// Records materializations in one transaction (an import, a benchmark's history), each
    /// becoming its asset's current version in order.
    pub async fn record_materializations(&self, ms: &[Materialization]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_materializations(&mut tx, self.backend, ms).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// Records an observation of a source and makes it current, atomically.
    pub async fn record_observation(&self, o: &Observation) -> Result<()> {
        let id = MaterializationId::generate();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO observations (id, asset, data_version, file_count, byte_size, observed_at, \
             checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(o.asset.as_str())
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
             VALUES ($1, '', $2, $3, $4) \
             ON CONFLICT (asset, partition_key) DO UPDATE SET \
             observation_id = excluded.observation_id, materialization_id = NULL, \
             updated_at = excluded.updated_at, record = excluded.record",
        )
        .bind(o.asset.as_str())
        .bind(id.as_str())
        .bind(micros(o.observed_at))
        .bind(to_json(o)?)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// Records that a source was seen again with its current version unchanged: `o` is its current
    /// observation with `checked_at` moved.
    pub async fn record_check(&self, o: &Observation) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE observations SET checked_at = $1 WHERE id = \
             (SELECT observation_id FROM asset_heads WHERE asset = $2 AND partition_key = '')",
        )
        .bind(micros(o.checked_at))
        .bind(o.asset.as_str())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "UPDATE asset_heads SET record = $1 \
             WHERE asset = $2 AND partition_key = '' AND observation_id IS NOT NULL",
        )
        .bind(to_json(o)?)
        .bind(o.asset.as_str())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// The durations of each asset's latest `per_asset` materializations, newest first: what plans
    /// estimate from.
    pub async fn recent_durations(
        &self,
        per_asset: u32,
    ) -> Result<HashMap<AssetKey, Vec<std::time::Duration>>> {
        let rows = sqlx::query(
            "SELECT asset, duration_us FROM (SELECT asset, duration_us, ROW_NUMBER() OVER \
             (PARTITION BY asset ORDER BY created_at DESC) AS n FROM materializations) recent \
             WHERE n <= $1 ORDER BY asset, n",
        )
        .bind(i64::from(per_asset))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut out: HashMap<AssetKey, Vec<std::time::Duration>> = HashMap::new();
        for row in rows {
            let asset = parse_key(&get::<String>(&row, 0)?, "materializations")?;
            let micros: i64 = get(&row, 1)?;
            out.entry(asset)
                .or_default()
                .push(std::time::Duration::from_micros(from_i64(micros)));
        }
        Ok(out)
    }

    /// Loads the current materialization and observation of every asset: one JSON record per
    /// asset, from its head. A record that does not decode is an error naming its asset.
    ///
    /// On SQLite the heads come in pages of [`HEADS_PAGE`], each page as one value (the records
    /// joined by newlines, which a JSON record never holds unescaped), all pages in one
    /// snapshot: a row per head cost a hand-over between SQLite's thread and the caller's each,
    /// which was half the time (45 ms for 10,000 assets, now 23 ms). PostgreSQL sends rows in
    /// bulk, and aggregating made it slower (30 ms, then 52 ms), so it reads a row per head.
    pub async fn load_lineage(&self) -> Result<Lineage> {
        if self.backend == Backend::Postgres {
            let rows = sqlx::query(
                "SELECT asset, CASE WHEN materialization_id IS NULL THEN 'o' ELSE 'm' END, \
                 record FROM asset_heads WHERE partition_key = '' AND record IS NOT NULL",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            return heads_lineage(rows);
        }
        let mut lineage = Lineage::new();
        let mut tx = self.begin_snapshot().await?;
        let mut after = String::new();
        loop {
            let row = sqlx::query(
                "SELECT string_agg(kind || asset || $1 || record, $2), MAX(asset), COUNT(*) FROM \
                 (SELECT CASE WHEN materialization_id IS NULL THEN 'o' ELSE 'm' END AS kind, \
                  asset, record FROM asset_heads \
                  WHERE partition_key = '' AND record IS NOT NULL AND asset > $3 \
                  ORDER BY asset LIMIT $4) page",
            )
            .bind("\t")
            .bind("\n")
            .bind(after.as_str())
            .bind(HEADS_PAGE)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
            let count: i64 = get(&row, 2)?;
            if count == 0 {
                break;
            }
            let text: String = get(&row, 0)?;
            for line in text.split('\n') {
                let (kind, rest) = line.split_at_checked(1).unwrap_or(("?", line));
                let (asset, record) = rest.split_once('\t').unwrap_or((rest, ""));
                head_record(&mut lineage, asset, kind == "m", record)?;
            }
            after = get(&row, 1)?;
            if count < HEADS_PAGE {
                break;
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(lineage)
    }

    /// The heads that moved at or after `since` (their event's time), as a lineage: what a
    /// process that keeps the lineage in memory reads to catch up.
    pub async fn load_heads_updated_since(&self, since: DateTime<Utc>) -> Result<Lineage> {
        let rows = sqlx::query(
            "SELECT asset, CASE WHEN materialization_id IS NULL THEN 'o' ELSE 'm' END, record \
             FROM asset_heads WHERE updated_at >= $1 AND partition_key = '' AND record IS NOT NULL",
        )
        .bind(micros(since))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        heads_lineage(rows)
    }

    /// The current versions of `keys` only (those that have one), as a lineage: what a step
    /// reads again after waiting for another run.
    pub async fn load_heads(&self, keys: &[AssetKey]) -> Result<Lineage> {
        let mut rows = Vec::with_capacity(keys.len());
        for keys in keys.chunks(CHUNK) {
            let sql = format!(
                "SELECT asset, CASE WHEN materialization_id IS NULL THEN 'o' ELSE 'm' END, \
                 record FROM asset_heads \
                 WHERE partition_key = '' AND record IS NOT NULL AND asset IN ({})",
                placeholders(1, keys.len())
            );
            // Safe: the only text added is numbered placeholders.
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for key in keys {
                query = query.bind(key.as_str());
            }
            rows.extend(query.fetch_all(&self.pool).await.map_err(store_error)?);
        }
        heads_lineage(rows)
    }

    /// Writes the JSON record of heads recorded before heads carried one, from the event tables.
    pub(crate) async fn fill_head_records(&self) -> Result<()> {
        let missing: i64 = sqlx::query("SELECT COUNT(*) FROM asset_heads WHERE record IS NULL")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(store_error)?;
        if missing == 0 {
            return Ok(());
        }
        let lineage = self.load_lineage_from_events().await?;
        let mut tx = self.begin_write().await?;
        let records = lineage
            .materializations()
            .map(|m| (&m.asset, to_json(m)))
            .chain(lineage.observations().map(|o| (&o.asset, to_json(o))));
        for (asset, record) in records {
            sqlx::query(
                "UPDATE asset_heads SET record = $1 \
                 WHERE asset = $2 AND partition_key = '' AND record IS NULL",
            )
            .bind(record?)
            .bind(asset.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    /// Loads the current version of every asset by joining the heads with the event tables.
    async fn load_lineage_from_events(&self) -> Result<Lineage> {
        let mut lineage = Lineage::new();
        // One transaction, so the three reads see the same commit.
        let mut tx = self.begin_snapshot().await?;

        let inputs = sqlx::query(
            "SELECT i.materialization_id, i.input_asset, i.data_version FROM asset_heads h \
             JOIN materialization_inputs i ON i.materialization_id = h.materialization_id \
             WHERE h.partition_key = ''",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let mut inputs_by_id: HashMap<String, Vec<InputVersion>> = Default::default();
        for row in inputs {
            let asset = parse_key(&get::<String>(&row, 1)?, "materialization_inputs")?;
            inputs_by_id
                .entry(get(&row, 0)?)
                .or_default()
                .push(InputVersion {
                    asset,
                    data_version: DataVersion::new(get::<String>(&row, 2)?),
                });
        }

        let rows = sqlx::query(
            "SELECT m.id, m.asset, m.run_id, m.code_version, m.data_version, m.location, m.row_count, \
             m.byte_size, m.duration_us, m.created_at, m.data_time, m.details FROM asset_heads h \
             JOIN materializations m ON m.id = h.materialization_id WHERE h.partition_key = ''",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        for row in rows {
            let id: String = get(&row, 0)?;
            let asset = parse_key(&get::<String>(&row, 1)?, "materializations")?;
            let mut inputs = inputs_by_id.remove(&id).unwrap_or_default();
            inputs.sort_by(|a, b| a.asset.cmp(&b.asset));
            lineage.set_materialization(Materialization {
                asset,
                run_id: RunId::new(get::<String>(&row, 2)?),
                code_version: CodeVersion::new(get::<String>(&row, 3)?),
                data_version: DataVersion::new(get::<String>(&row, 4)?),
                inputs,
                location: get(&row, 5)?,
                row_count: from_i64(get(&row, 6)?),
                byte_size: from_i64(get(&row, 7)?),
                duration_us: from_i64(get(&row, 8)?),
                created_at: from_micros(get(&row, 9)?),
                data_time: get::<Option<i64>>(&row, 10)?.map(from_micros),
                details: details(get(&row, 11)?, &id)?,
                collected_at: None,
                id: MaterializationId::new(id),
            });
        }

        let rows = sqlx::query(
            "SELECT o.asset, o.data_version, o.file_count, o.byte_size, o.observed_at, \
             COALESCE(o.checked_at, o.observed_at) FROM asset_heads h \
             JOIN observations o ON o.id = h.observation_id WHERE h.partition_key = ''",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        for row in rows {
            let asset = parse_key(&get::<String>(&row, 0)?, "observations")?;
            lineage.set_observation(Observation {
                asset,
                data_version: DataVersion::new(get::<String>(&row, 1)?),
                file_count: from_i64(get(&row, 2)?),
                byte_size: from_i64(get(&row, 3)?),
                observed_at: from_micros(get(&row, 4)?),
                checked_at: from_micros(get(&row, 5)?),
            });
        }
        tx.commit().await.map_err(store_error)?;
        Ok(lineage)
    }
}

async fn insert_materialization(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    m: &Materialization,
) -> Result<()> {
    insert_materializations(tx, backend, std::slice::from_ref(m)).await
}

/// Inserts `ms` with their inputs and moves their assets' heads, a few statements for the lot
/// (rows of many records each): one statement per record cost a round trip each, which made an
/// import of 100,000 records take 25 s on SQLite. An asset recorded twice ends at its last one,
/// as if recorded in order.
async fn insert_materializations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    ms: &[Materialization],
) -> Result<()> {
    /// Rows per statement: well under both backends' limits on parameters (SQLite 32,766,
    /// PostgreSQL 65,535) whatever the table.
    const ROWS: usize = 400;
    for chunk in ms.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO materializations (id, asset, run_id, code_version, data_version, \
             location, row_count, byte_size, duration_us, created_at, data_time, details) VALUES {}",
            rows(backend, chunk.len(), 12, "")
        );
        // Safe: the only text added is numbered placeholders.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for m in chunk {
            query = query
                .bind(m.id.as_str())
                .bind(m.asset.as_str())
                .bind(m.run_id.as_str())
                .bind(m.code_version.as_str())
                .bind(m.data_version.as_str())
                .bind(m.location.as_str())
                .bind(to_i64(m.row_count))
                .bind(to_i64(m.byte_size))
                .bind(to_i64(m.duration_us))
                .bind(micros(m.created_at))
                .bind(m.data_time.map(micros))
                .bind(write_details(&m.details)?);
        }
        query.execute(&mut **tx).await.map_err(store_error)?;
    }
    let inputs: Vec<(&Materialization, &InputVersion)> = ms
        .iter()
        .flat_map(|m| m.inputs.iter().map(move |input| (m, input)))
        .collect();
    for chunk in inputs.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO materialization_inputs (materialization_id, input_asset, data_version) \
             VALUES {}",
            rows(backend, chunk.len(), 3, "")
        );
        // Safe: the only text added is numbered placeholders.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (m, input) in chunk {
            query = query
                .bind(m.id.as_str())
                .bind(input.asset.as_str())
                .bind(input.data_version.as_str());
        }
        query.execute(&mut **tx).await.map_err(store_error)?;
    }
    // One head per asset (PostgreSQL refuses a statement that updates a row twice): its last.
    let mut last: HashMap<&AssetKey, &Materialization> = HashMap::new();
    for m in ms {
        last.insert(&m.asset, m);
    }
    let mut heads: Vec<&Materialization> = last.into_values().collect();
    heads.sort_by(|a, b| a.asset.cmp(&b.asset));
    for chunk in heads.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO asset_heads (partition_key, asset, materialization_id, updated_at, record) \
             VALUES {} ON CONFLICT (asset, partition_key) DO UPDATE SET \
             materialization_id = excluded.materialization_id, observation_id = NULL, \
             updated_at = excluded.updated_at, record = excluded.record",
            rows(backend, chunk.len(), 4, "''")
        );
        // Safe: the only text added is numbered placeholders.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for m in chunk {
            query = query
                .bind(m.asset.as_str())
                .bind(m.id.as_str())
                .bind(micros(m.created_at))
                .bind(to_json(m)?);
        }
        query.execute(&mut **tx).await.map_err(store_error)?;
    }
    Ok(())
}

/// Whether `run` is still running, taking its row within `tx` (on PostgreSQL this locks it, so
/// a process ending the run as dead either committed before or waits for `tx`).
pub(crate) async fn still_running(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &freshet_plan::model::RunId,
) -> Result<bool> {
    let running =
        sqlx::query("UPDATE runs SET heartbeat_at = heartbeat_at WHERE id = $1 AND status = $2")
            .bind(run.as_str())
            .bind(RunStatus::Running.as_str())
            .execute(&mut **tx)
            .await
            .map_err(store_error)?;
    Ok(running.rows_affected() == 1)
}

/// `n` rows of `width` placeholders, each row after a `first` literal if given: `($1, $2), ($3,
/// $4)` on PostgreSQL; `(?, ?), (?, ?)` on SQLite, whose numbered parameters are looked up by
/// name one by one (a statement of thousands of them spent most of its time there).
pub(crate) fn rows(backend: Backend, n: usize, width: usize, first: &str) -> String {
    let lead = if first.is_empty() {
        String::new()
    } else {
        format!("{first}, ")
    };
    (0..n)
        .map(|i| {
            let values = match backend {
                Backend::Sqlite => vec!["?"; width].join(", "),
                Backend::Postgres => placeholders(i * width + 1, width),
            };
            format!("({lead}{values})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Database {
        message: format!("cannot encode a lineage record: {e}"),
    })
}

/// What a materialization's details column holds: NULL when there are none.
pub(crate) fn write_details(details: &OutputDetails) -> Result<Option<String>> {
    if details.is_empty() {
        Ok(None)
    } else {
        to_json(details).map(Some)
    }
}

/// A materialization's details column: empty when NULL (written before details were recorded).
pub(crate) fn details(text: Option<String>, id: &str) -> Result<OutputDetails> {
    match text {
        None => Ok(OutputDetails::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| Error::corrupt(format!("materializations row {id}"), e)),
    }
}

/// An asset key read from `table`: invalid only if another tool wrote it.
pub(crate) fn parse_key(text: &str, table: &str) -> Result<AssetKey> {
    AssetKey::parse(text).map_err(|e| Error::corrupt(format!("{table} row for {text:?}"), e))
}

/// Heads' JSON records (asset, `m` or `o`, record) as a lineage.
fn heads_lineage(rows: Vec<sqlx::any::AnyRow>) -> Result<Lineage> {
    let mut lineage = Lineage::new();
    for row in rows {
        let asset: String = get(&row, 0)?;
        let kind: String = get(&row, 1)?;
        let record: String = get(&row, 2)?;
        head_record(&mut lineage, &asset, kind == "m", &record)?;
    }
    Ok(lineage)
}

/// Adds a head's JSON record (a materialization's, else an observation's) to `lineage`.
fn head_record(lineage: &mut Lineage, asset: &str, materialized: bool, record: &str) -> Result<()> {
    let corrupt = |e: serde_json::Error| Error::corrupt(format!("asset_heads row for {asset}"), e);
    if materialized {
        lineage.set_materialization(serde_json::from_str(record).map_err(corrupt)?);
    } else {
        lineage.set_observation(serde_json::from_str(record).map_err(corrupt)?);
    }
    Ok(())
}
