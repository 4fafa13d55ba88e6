//! The metadata store: runs, materializations with their input versions, source observations, and
//! the current version of each asset. SQLite by default; the SQL is kept portable to PostgreSQL.
//!
//! **Invariant:** an asset's current version (its row in `asset_heads`) changes only in the same
//! transaction that records the event it points to, after the output was fully written. Every query
//! is parameterised; no value is ever spliced into SQL text.
//!
//! **Boundary:** knows SQL and the record types of [`crate::model`]; nothing of DataFusion,
//! object storage or the planner's rules.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::model::{
    AssetKey, CodeVersion, DataVersion, InputVersion, Materialization, MaterializationId,
    Observation, RunId,
};
use crate::planner::Lineage;
use crate::{Error, Result};

mod history;
mod runs;

pub use runs::{
    Failure, LogLevel, LogLine, RunKind, RunQuery, RunRecord, RunStatus, StepCounts, StepRecord,
    StepState,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A handle on the metadata database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    ///
    /// `sqlite://PATH` creates the file and its folder. Errors never include the URL's password.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let fail = |e: &dyn std::fmt::Display| Error::Store {
            message: format!("cannot open metadata database {shown}: {}", one_line(e)),
        };
        let mut connect_url = url.to_owned();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
            }
            if !url.contains('?') {
                connect_url.push_str("?mode=rwc");
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(&connect_url)
            .await
            .map_err(|e| fail(&e))?;
        if url.starts_with("sqlite:") {
            // WAL lets readers (status, the web view) proceed while a run writes.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(|e| fail(&e))?;
        }
        MIGRATOR.run(&pool).await.map_err(|e| fail(&e))?;
        let store = Self { pool };
        store.fill_head_records().await?;
        Ok(store)
    }

    /// Records a materialization and makes it its asset's current version, atomically.
    pub async fn record_materialization(&self, m: &Materialization) -> Result<()> {
        self.record_materializations(std::slice::from_ref(m)).await
    }

    /// Records materializations in one transaction (an import, a benchmark's history), each
    /// becoming its asset's current version in order.
    pub async fn record_materializations(&self, ms: &[Materialization]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for m in ms {
            insert_materialization(&mut tx, m).await?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// Records an observation of a source and makes it current, atomically.
    pub async fn record_observation(&self, o: &Observation) -> Result<()> {
        let id = MaterializationId::generate();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
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
        let mut tx = self.pool.begin().await.map_err(store_error)?;
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
            let Ok(asset) = AssetKey::parse(&get::<String>(&row, 0)?) else {
                continue;
            };
            let micros: i64 = get(&row, 1)?;
            out.entry(asset)
                .or_default()
                .push(std::time::Duration::from_micros(from_i64(micros)));
        }
        Ok(out)
    }

    /// Loads the current materialization and observation of every asset: one JSON record per
    /// asset, from its head.
    ///
    /// Records whose key is no longer a valid asset key are skipped: they can only come from
    /// another tool writing to the database.
    pub async fn load_lineage(&self) -> Result<Lineage> {
        let rows = sqlx::query(
            "SELECT CASE WHEN materialization_id IS NULL THEN 'o' ELSE 'm' END, record \
             FROM asset_heads WHERE record IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut lineage = Lineage::new();
        for row in rows {
            let kind: String = get(&row, 0)?;
            let record: String = get(&row, 1)?;
            if kind == "m" {
                if let Ok(m) = serde_json::from_str::<Materialization>(&record) {
                    lineage.set_materialization(m);
                }
            } else if let Ok(o) = serde_json::from_str::<Observation>(&record) {
                lineage.set_observation(o);
            }
        }
        Ok(lineage)
    }

    /// Writes the JSON record of heads recorded before heads carried one, from the event tables.
    async fn fill_head_records(&self) -> Result<()> {
        let missing: i64 = sqlx::query("SELECT COUNT(*) FROM asset_heads WHERE record IS NULL")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(store_error)?;
        if missing == 0 {
            return Ok(());
        }
        let lineage = self.load_lineage_from_events().await?;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
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
        let mut tx = self.pool.begin().await.map_err(store_error)?;

        let inputs = sqlx::query(
            "SELECT i.materialization_id, i.input_asset, i.data_version FROM asset_heads h \
             JOIN materialization_inputs i ON i.materialization_id = h.materialization_id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let mut inputs_by_id: std::collections::HashMap<String, Vec<InputVersion>> =
            Default::default();
        for row in inputs {
            let Ok(asset) = AssetKey::parse(&get::<String>(&row, 1)?) else {
                continue;
            };
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
             m.byte_size, m.duration_us, m.created_at, m.data_time FROM asset_heads h \
             JOIN materializations m ON m.id = h.materialization_id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        for row in rows {
            let id: String = get(&row, 0)?;
            let Ok(asset) = AssetKey::parse(&get::<String>(&row, 1)?) else {
                continue;
            };
            let mut inputs = inputs_by_id.remove(&id).unwrap_or_default();
            inputs.sort_by(|a, b| a.asset.cmp(&b.asset));
            lineage.set_materialization(Materialization {
                id: MaterializationId::new(id),
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
            });
        }

        let rows = sqlx::query(
            "SELECT o.asset, o.data_version, o.file_count, o.byte_size, o.observed_at, \
             COALESCE(o.checked_at, o.observed_at) FROM asset_heads h \
             JOIN observations o ON o.id = h.observation_id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        for row in rows {
            let Ok(asset) = AssetKey::parse(&get::<String>(&row, 0)?) else {
                continue;
            };
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

    /// Closes the connections, waiting for them to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_materialization(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    m: &Materialization,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO materializations (id, asset, run_id, code_version, data_version, location, \
             row_count, byte_size, duration_us, created_at, data_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
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
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    for input in &m.inputs {
        sqlx::query(
            "INSERT INTO materialization_inputs (materialization_id, input_asset, data_version) \
                 VALUES ($1, $2, $3)",
        )
        .bind(m.id.as_str())
        .bind(input.asset.as_str())
        .bind(input.data_version.as_str())
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
    }
    sqlx::query(
        "INSERT INTO asset_heads (asset, partition_key, materialization_id, updated_at, record) \
             VALUES ($1, '', $2, $3, $4) \
             ON CONFLICT (asset, partition_key) DO UPDATE SET \
             materialization_id = excluded.materialization_id, observation_id = NULL, \
             updated_at = excluded.updated_at, record = excluded.record",
    )
    .bind(m.asset.as_str())
    .bind(m.id.as_str())
    .bind(micros(m.created_at))
    .bind(to_json(m)?)
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Store {
        message: format!("cannot encode a lineage record: {e}"),
    })
}

fn get<'r, T>(row: &'r AnyRow, index: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(index).map_err(store_error)
}

fn store_error(e: sqlx::Error) -> Error {
    Error::Store {
        message: format!("metadata database: {}", one_line(&e)),
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_i64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            let secret = |k: &str| k.to_ascii_lowercase().contains("password");
            if parsed.query_pairs().any(|(k, _)| secret(&k)) {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) {
                            "***".to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.set_fragment(None);
            parsed.to_string()
        }
        // Not a URL we can read: show only the scheme, in case the rest holds a secret.
        Err(_) => format!("{}://…", url.split("://").next().unwrap_or("?")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InputVersion;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://freshet:s3cret@db.internal:5432/meta"),
            "postgres://freshet:***@db.internal:5432/meta"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=s3cret"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert!(!redact_url("postgres://u:pa#ss@h/db").contains("ss@"));
    }

    #[tokio::test]
    async fn round_trips_lineage_in_a_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/meta/freshet.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let run = RunId::generate();
        store
            .begin_run(&run, RunKind::Materialize, "", false, Utc::now())
            .await
            .unwrap();
        let obs = Observation {
            asset: "raw".parse().unwrap(),
            data_version: DataVersion::new("v1"),
            file_count: 2,
            byte_size: 10,
            observed_at: from_micros(1_700_000_000_000_000),
            checked_at: from_micros(1_700_000_000_000_000),
        };
        store.record_observation(&obs).await.unwrap();
        let mut m = Materialization {
            id: MaterializationId::generate(),
            asset: "clean".parse().unwrap(),
            run_id: run.clone(),
            code_version: CodeVersion::new("c1"),
            data_version: DataVersion::new("d1"),
            inputs: vec![InputVersion {
                asset: "raw".parse().unwrap(),
                data_version: DataVersion::new("v1"),
            }],
            location: "file:///x/1.parquet".into(),
            row_count: 3,
            byte_size: 100,
            duration_us: 5,
            created_at: from_micros(1_700_000_001_000_000),
            data_time: Some(from_micros(1_700_000_000_000_000)),
        };
        store.record_materialization(&m).await.unwrap();
        m.id = MaterializationId::generate();
        m.data_version = DataVersion::new("d2");
        store.record_materialization(&m).await.unwrap();
        // A later check of the unchanged source moves only its check time.
        let mut obs = obs;
        obs.checked_at = from_micros(1_700_000_002_000_000);
        store.record_check(&obs).await.unwrap();
        m.data_time = None;
        let mut m3 = m.clone();
        m3.id = MaterializationId::generate();
        store.record_materialization(&m3).await.unwrap();
        let m = m3;
        let durations = store.recent_durations(5).await.unwrap();
        assert_eq!(durations[&m.asset].len(), 3);

        store
            .finish_run(&run, RunStatus::Succeeded, Utc::now(), None)
            .await
            .unwrap();
        store.close().await;

        // Reopening applies no migration twice and sees the latest versions.
        let store = Store::open(&url).await.unwrap();
        let lineage = store.load_lineage().await.unwrap();
        assert_eq!(lineage.materialization(&m.asset), Some(&m));
        assert_eq!(lineage.observation(&obs.asset), Some(&obs));
        // Heads written before they carried records are filled in from the events on open.
        sqlx::query("UPDATE asset_heads SET record = NULL")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(
            store
                .load_lineage()
                .await
                .unwrap()
                .materialization(&m.asset)
                .is_none()
        );
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        let lineage = store.load_lineage().await.unwrap();
        assert_eq!(lineage.materialization(&m.asset), Some(&m));
        assert_eq!(lineage.observation(&obs.asset), Some(&obs));
        assert_eq!(
            store.run_status(&run).await.unwrap(),
            Some((RunStatus::Succeeded, None))
        );
    }

    #[tokio::test]
    async fn unreachable_database_is_one_clear_line() {
        let err = Store::open("postgres://u:hunter2@127.0.0.1:1/db")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot open metadata database postgres://u:***@127.0.0.1:1/db"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!err.contains('\n'));
    }
}
