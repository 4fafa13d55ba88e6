//! The metadata store: runs, materializations with their input versions, source observations, and
//! the current version of each asset. SQLite by default, PostgreSQL by URL ([`Backend`]), with
//! one text of SQL for both.
//!
//! [`Store`] is the one boundary: everything else reads and writes metadata through its methods.
//! The backends differ only where a method matches on [`Backend`].
//!
//! **Invariant:** an asset's current version (its row in `asset_heads`) changes only in the same
//! transaction that records the event it points to, after the output was fully written. Every query
//! is parameterised; no value is ever spliced into SQL text. A run or step moves only along its
//! lifecycle ([`lifecycle`]): each transition is one conditional `UPDATE`, so a finished run
//! cannot be finished again. A stored value that does not decode is an error naming its record,
//! never skipped.
//!
//! **Boundary:** knows SQL and the record types of [`freshet_plan::model`]; nothing of
//! DataFusion, object storage or the planner's rules.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

mod automation;
mod claims;
mod gc;
mod history;
pub mod lifecycle;
mod lineage;
mod partition_records;
mod partitions;
mod progress;
mod runs;
mod schema;
mod sources;

pub use automation::{DecisionRecord, EvaluationRecord, ScheduleTick};
pub use claims::{
    AttemptRecord, DeadRun, Driving, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, Owner, PROCESS_DIED,
    STOPPED_WITH_PROCESS,
};
pub use gc::StoredVersion;
pub use history::Page;
pub use lifecycle::{LogLevel, RunKind, RunStatus, StepState};
pub use partition_records::PartitionCommit;
pub use partitions::StoredPartitions;
pub use progress::Progress;
pub use runs::{Failure, LogLine, NewRun, RunQuery, RunRecord, StepCounts, StepRecord};
pub use sources::SourceFile;

/// A metadata store failure: one line, never with a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be opened, or a query failed.
    #[error("{message}")]
    Database {
        /// What failed.
        message: String,
    },
    /// A stored value does not decode: written by another tool or a newer Freshet.
    #[error("metadata database: {record}: {message}")]
    Corrupt {
        /// The record, e.g. `asset_heads row for daily_revenue`.
        record: String,
        /// What is wrong with it.
        message: String,
    },
    /// A run or step was asked to move in a way its lifecycle does not allow (finishing a run
    /// that already finished, starting one that is not queued).
    #[error("run {run}: {message}")]
    Transition {
        /// The run.
        run: String,
        /// What was refused, in words.
        message: String,
    },
}

impl Error {
    /// Whether trying again may succeed: a database that failed may come back; a corrupt record
    /// or a refused transition will not change by itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Database { .. })
    }

    fn corrupt(record: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            record: record.into(),
            message: one_line(&message),
        }
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The schema of each backend, applied on open (embedded at compile time). The two folders hold
/// the same versions; a version differs between them only where the SQL must.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database a [`Store`] is on: the SQL is the same but for how a write transaction starts
/// and how the schema is inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (`sqlite://PATH`, or a bare path in `freshet.toml`).
    Sqlite,
    /// A PostgreSQL database (`postgres://` or `postgresql://`).
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if Freshet has one for it.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }

    /// The name used in messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn migrator(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// A handle on the metadata database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// This process, recorded as the owner of the runs it starts.
    owner: Owner,
    /// Taken by this process's writers that may overlap (a run's progress, its steps' leases
    /// and outputs), so that they queue here in order instead of in SQLite's busy handler,
    /// which sleeps a millisecond or more before it looks again.
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens the database at `url` and applies pending migrations.
    ///
    /// `sqlite://PATH` creates the file and its folder; `postgres://USER:PASSWORD@HOST/DB` needs
    /// the database to exist (it may be empty). A database that holds tables but no Freshet
    /// schema, or whose schema is newer than this binary's, is refused before anything is
    /// written. Errors never include the URL's password.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_beside(url, None).await
    }

    /// [`Store::open`], refusing an empty SQLite file (0 bytes: truncated, or made by `touch`)
    /// when `outputs` names where outputs of an earlier store already are: starting a new store
    /// there would leave them orphaned without a word.
    pub async fn open_beside(url: &str, outputs: Option<&str>) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let fail = open_failure(url);
        let Some(backend) = Backend::of_url(url) else {
            return Err(fail(
                &"unknown kind of database (use a SQLite file, sqlite://PATH or postgres://...)",
            ));
        };
        let mut connect_url = url.to_owned();
        let sqlite_path = url
            .strip_prefix("sqlite://")
            .map(|path| path.split('?').next().unwrap_or(path))
            .filter(|path| !path.is_empty() && *path != ":memory:");
        if let Some(path) = sqlite_path {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
            }
            if !url.contains('?') {
                connect_url.push_str("?mode=rwc");
            }
            check_sqlite_header(Path::new(path)).map_err(|e| fail(&e))?;
            let state = match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
                Ok(m) if m.len() == 0 => Some("is empty"),
                _ => None,
            };
            if let (Some(state), Some(outputs)) = (state, outputs) {
                return Err(fail(&format!(
                    "the file {state}, but {outputs} holds outputs an earlier store recorded; \
                     restore the database file, or to start over remove both"
                )));
            }
        }
        probe(backend, &connect_url).await.map_err(|e| fail(&e))?;
        let pool = pool(backend, &connect_url, false)
            .await
            .map_err(|e| fail(&e))?;
        let opened = Self::prepare(&pool, backend, sqlite_path).await;
        if let Err(e) = opened {
            pool.close().await;
            return Err(fail(&e));
        }
        let store = Self {
            pool,
            backend,
            owner: Owner::this_process(),
            writes: Arc::default(),
        };
        store.fill_head_records().await?;
        Ok(store)
    }

    /// Opens the store at `url` to read only, for commands that only read (`status`, `plan`,
    /// `preview`, `history`): the database is never written (not even SQLite's journal mode)
    /// and no file is created beside it (no lock file; no `-wal` or `-shm`), so they work on a
    /// database this process may not write, and never wait for a writer. A store
    /// that does not exist yet or whose schema is behind this binary's is opened as
    /// [`Store::open_beside`] opens it (creating or migrating it), and so is a SQLite URL with
    /// options of its own. Refuses what `open_beside` refuses.
    pub async fn open_read_only(url: &str, outputs: Option<&str>) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let fail = open_failure(url);
        let Some(backend) = Backend::of_url(url) else {
            return Self::open_beside(url, outputs).await;
        };
        let pool = match backend {
            Backend::Sqlite => {
                let Some(path) = url
                    .strip_prefix("sqlite://")
                    .filter(|p| !p.is_empty() && !p.contains('?') && *p != ":memory:")
                else {
                    return Self::open_beside(url, outputs).await;
                };
                if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
                    return Self::open_beside(url, outputs).await;
                }
                check_sqlite_header(Path::new(path)).map_err(|e| fail(&e))?;
                // With neither a `-wal` nor a `-shm` beside it, no connection is open and every
                // commit is in the file itself: it is read as it is (`immutable`), which creates
                // no file and takes no lock, so it works in a folder this user cannot write and
                // leaves nothing behind in one it can. (A writer that starts during the read
                // could change the file under it: the read may then fail; it never writes.)
                // Otherwise a writer is about, and its WAL is read with SQLite's read-only locks.
                let quiet = !beside(path, "-wal").exists() && !beside(path, "-shm").exists();
                let options = if quiet {
                    "mode=ro&immutable=true"
                } else {
                    "mode=ro"
                };
                let mut pool = pool(backend, &format!("{url}?{options}"), true)
                    .await
                    .map_err(|e| fail(&e))?;
                let mut checked = check_integrity(&pool, Some(path)).await;
                if checked.is_err() && quiet {
                    // A writer may have started and changed the file under the immutable read:
                    // look again with SQLite's locks before calling the file damaged.
                    pool.close().await;
                    pool = self::pool(backend, &format!("{url}?mode=ro"), true)
                        .await
                        .map_err(|e| fail(&e))?;
                    checked = check_integrity(&pool, Some(path)).await;
                }
                if let Err(e) = checked {
                    pool.close().await;
                    return Err(fail(&e));
                }
                pool
            }
            Backend::Postgres => {
                probe(backend, url).await.map_err(|e| fail(&e))?;
                pool(backend, url, true).await.map_err(|e| fail(&e))?
            }
        };
        let current = async {
            schema::check(&pool, backend, backend.migrator()).await?;
            schema::is_current(&pool, backend, backend.migrator()).await
        };
        match current.await {
            Ok(true) => Ok(Self {
                pool,
                backend,
                owner: Owner::this_process(),
                writes: Arc::default(),
            }),
            Ok(false) => {
                pool.close().await;
                Self::open_beside(url, outputs).await
            }
            Err(e) => {
                pool.close().await;
                Err(fail(&e))
            }
        }
    }

    /// Checks that the database is Freshet's (or empty) and not newer than this binary, then
    /// brings its schema up to date. The error is the reason alone, without the URL.
    async fn prepare(
        pool: &AnyPool,
        backend: Backend,
        sqlite_path: Option<&str>,
    ) -> Result<(), String> {
        let migrator = backend.migrator();
        // Migrations once, under a lock: processes opening a new store together take turns, and
        // each after the first finds them applied. (sqlx locks PostgreSQL itself.)
        let lock = match sqlite_path {
            Some(path) => Some(lock_file(path).await.map_err(|e| one_line(&e))?),
            None => None,
        };
        // Before anything writes (even the journal mode, which is in a SQLite file's header).
        if backend == Backend::Sqlite {
            check_integrity(pool, sqlite_path).await?;
        }
        schema::check(pool, backend, migrator).await?;
        if backend == Backend::Sqlite {
            // WAL lets readers (status, the web view) proceed while a run writes.
            busy_retry(|| async { sqlx::query("PRAGMA journal_mode = WAL").execute(pool).await })
                .await
                .map_err(|e| one_line(&e))?;
        }
        busy_retry(|| migrator.run(pool))
            .await
            .map_err(|e| one_line(&e))?;
        drop(lock);
        Ok(())
    }

    /// The database this store is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), waiting for another process's writer if need be, so it never fails half-way
    /// with "database is locked" when it turns from reading to writing.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(store_error)
    }

    /// Begins a transaction whose reads all see one commit (SQLite's transactions always do;
    /// PostgreSQL's default, read committed, would not).
    async fn begin_snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin().await,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
        }
        .map_err(store_error)
    }

    /// This process's turn to write (see [`Store::writes`]).
    async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Closes the connections, waiting for them to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// How opening `url` fails: "cannot open metadata database URL: why", without its password.
fn open_failure(url: &str) -> impl Fn(&dyn std::fmt::Display) -> Error {
    let shown = redact_url(url);
    let path = url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p).to_owned());
    move |e| {
        let mut message = one_line(e);
        // SQLite's own words for a damaged file, wherever in the opening it was found.
        if is_damage(&message) && !message.starts_with("the database is damaged") {
            message = damaged(path.as_deref().unwrap_or("the database file"), &message);
        }
        Error::Database {
            message: format!("cannot open metadata database {shown}: {message}"),
        }
    }
}

/// The file beside a SQLite database `path` with `suffix` (`-wal`, `-shm`).
fn beside(path: &str, suffix: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{path}{suffix}"))
}

/// Connects once, as the pool's connections will (on SQLite, up to the setting its connections
/// make first): the pool would retry a refused connection until its timeout and then say only
/// that it timed out; this says why, at once.
async fn probe(backend: Backend, url: &str) -> std::result::Result<(), String> {
    use sqlx::Connection;
    let mut probe = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sqlx::AnyConnection::connect(url),
    )
    .await
    .map_err(|_| "no answer within 10 s".to_owned())?
    .map_err(|e| one_line(&e))?;
    if backend == Backend::Sqlite {
        let set = sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut probe)
            .await;
        if let Err(e) = set {
            let _ = probe.close().await;
            let message = one_line(&e);
            // SQLITE_CANTOPEN (14) or SQLITE_READONLY (8): this user may not write it.
            let read_only = message.contains("(code: 14)") || message.contains("(code: 8)");
            return Err(if read_only {
                format!(
                    "{message}; if the file or its folder is read-only, only status, plan, \
                     preview and history can use it (and only while its schema is this \
                     freshet's)"
                )
            } else {
                message
            });
        }
    }
    let _ = probe.close().await;
    Ok(())
}

/// The connection pool on `url`; with `read_only`, every connection refuses to write.
async fn pool(backend: Backend, url: &str, read_only: bool) -> sqlx::Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => 4,
            // Every step's lease and output, the run's progress and the server's reads go at
            // once; PostgreSQL serves them in parallel.
            Backend::Postgres => 8,
        })
        .acquire_timeout(std::time::Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                    if !read_only {
                        // With WAL, NORMAL syncs at checkpoints rather than at every commit: a
                        // killed process loses nothing, and the database stays consistent
                        // whatever happens; a power cut may only roll back the last commits.
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    // Writers of other processes wait their turn (write transactions begin
                    // IMMEDIATE, so waiting is all a lock ever asks of them).
                    sqlx::query("PRAGMA busy_timeout = 60000")
                        .execute(&mut *conn)
                        .await?;
                } else if read_only {
                    sqlx::query("SET default_transaction_read_only = on")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// Runs `attempt` again while SQLite answers that the database is busy (another process holds a
/// lock it does not wait for itself, as when changing the journal mode or creating the
/// migrations' table), for at most 10 s.
async fn busy_retry<T, E, F, Fut>(mut attempt: F) -> std::result::Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match attempt().await {
            Err(e)
                if e.to_string().contains("database is locked")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// SQLite's own check of a database file's structure (`PRAGMA quick_check`: every page and
/// record well formed, in a time linear in the file's size), so that a damaged file is refused
/// before anything reads from it or writes on top of it, with how to recover.
async fn check_integrity(pool: &AnyPool, path: Option<&str>) -> std::result::Result<(), String> {
    let checked: std::result::Result<Vec<String>, _> = sqlx::query_scalar("PRAGMA quick_check(3)")
        .fetch_all(pool)
        .await;
    let problems = match checked {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => return Ok(()),
        Ok(lines) => lines.join("; "),
        // Only SQLite's words for damage are damage; a busy or unreadable file is said as is.
        Err(e) if is_damage(&one_line(&e)) => one_line(&e),
        Err(e) => return Err(one_line(&e)),
    };
    Err(damaged(path.unwrap_or("the database"), &problems))
}

/// What is said of a damaged SQLite database, with how to recover.
fn damaged(path: &str, problems: &str) -> String {
    format!(
        "the database is damaged ({}); it was left as it is: restore it from a backup, or recover \
         what is readable with `sqlite3 {path} .recover | sqlite3 NEW.db` and use --database \
         NEW.db",
        problems.chars().take(200).collect::<String>()
    )
}

/// Whether an error is SQLite's answer about a damaged file: "database disk image is malformed"
/// (SQLITE_CORRUPT, code 11) or "file is not a database" (SQLITE_NOTADB, code 26).
fn is_damage(message: &str) -> bool {
    message.contains("(code: 11) database disk image is malformed")
        || message.contains("(code: 26) file is not a database")
}

/// Refuses a file that exists, is not empty and does not start as a SQLite database does, before
/// SQLite is given it (it would answer every connection with an error the pool keeps retrying).
fn check_sqlite_header(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut header = [0_u8; 16];
    let read = match std::fs::File::open(path) {
        Ok(mut file) => file.read(&mut header).map_err(|e| one_line(&e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(one_line(&e)),
    };
    if read == 0 || header == *b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(
            "the file is not a database (it is not a SQLite file); point --database at a \
             new file to start a new store"
                .to_owned(),
        )
    }
}

/// An exclusive advisory lock (`flock`) on the database file, held until the file is dropped.
/// SQLite's own locks are of another kind (`fcntl`), so this one never blocks a query.
async fn lock_file(path: &str) -> std::io::Result<std::fs::File> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().read(true).open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

fn get<'r, T>(row: &'r AnyRow, index: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(index).map_err(store_error)
}

fn store_error(e: sqlx::Error) -> Error {
    let message = one_line(&e);
    if is_damage(&message) {
        return Error::Database {
            message: format!(
                "metadata database: {}",
                damaged("the database file", &message)
            ),
        };
    }
    Error::Database {
        message: format!("metadata database: {message}"),
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
mod conformance;
#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::conformance;

    fn test_run(kind: RunKind) -> NewRun<'static> {
        NewRun {
            kind,
            selection: "",
            stale_only: false,
            triggered_by: "cli",
        }
    }
    use freshet_plan::model::{
        AssetKey, CodeVersion, DataVersion, InputVersion, Materialization, MaterializationId,
        Observation, RunId,
    };

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
    async fn every_sqlite_connection_is_wal_with_normal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/freshet.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        // Hold every connection the pool may hand out, so each one is checked.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut conn = store.pool.acquire().await.unwrap();
            let sync: i64 = sqlx::query("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
                .get(0);
            let journal: String = sqlx::query("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
                .get(0);
            assert_eq!((sync, journal.as_str()), (1, "wal"), "1 is NORMAL");
            held.push(conn);
        }
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

    conformance! {
    async fn a_run_found_dead_records_nothing_more_and_is_told_to_stop(db) {
        // The run's owner is a process on another host, judged by its heartbeat.
        let here = db.open().await;
        let mut store = db.open().await;
        store.owner = Owner {
            host: "elsewhere".to_owned(),
            pid: 1,
            started: None,
        };
        let run = RunId::generate();
        let started = Utc::now();
        store
            .begin_run(&run, &test_run(RunKind::Materialize), started)
            .await
            .unwrap();
        let asset: AssetKey = "clean".parse().unwrap();
        let taken = store
            .claim_asset(&asset, &run, started)
            .await
            .unwrap();
        assert_eq!(taken, None);
        let m = Materialization {
            id: MaterializationId::generate(),
            asset: asset.clone(),
            run_id: run.clone(),
            code_version: CodeVersion::new("c1"),
            data_version: DataVersion::new("d1"),
            inputs: Vec::new(),
            location: "file:///x/1.parquet".into(),
            row_count: 1,
            byte_size: 1,
            duration_us: 1,
            created_at: started,
            data_time: None,
            details: Default::default(),
            collected_at: None,
        };
        store.record_run_output(&m).await.unwrap();

        // Two minutes later without a beat, another process finds the run dead...
        let later = started + chrono::Duration::seconds(120);
        let dead = here
            .fail_dead_runs(later, HEARTBEAT_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        // ...so its owner, beating late, is told to stop, and what it makes is refused.
        let stop = store
            .heartbeat(std::slice::from_ref(&run), later)
            .await
            .unwrap();
        assert_eq!(stop, vec![run.clone()]);
        let late = Materialization {
            id: MaterializationId::generate(),
            data_version: DataVersion::new("d2"),
            ..m.clone()
        };
        let refused = store.record_run_output(&late).await.unwrap_err();
        assert!(
            refused.to_string().contains("no longer holds clean"),
            "{refused}"
        );
        let heads = store
            .load_heads(std::slice::from_ref(&asset))
            .await
            .unwrap();
        assert_eq!(
            heads
                .materialization(&asset)
                .map(|h| h.data_version.clone()),
            Some(DataVersion::new("d1"))
        );

        // A run with a fresh heartbeat is not failed.
        let alive = RunId::generate();
        store
            .begin_run(&alive, &test_run(RunKind::Materialize), later)
            .await
            .unwrap();
        let dead = here
            .fail_dead_runs(later, HEARTBEAT_TIMEOUT)
            .await
            .unwrap();
        assert!(dead.is_empty(), "{dead:?}");
    }

    async fn round_trips_lineage(db) {
        let url = db.url();
        let store = Store::open(url).await.unwrap();
        let run = RunId::generate();
        store
            .begin_run(&run, &test_run(RunKind::Materialize), Utc::now())
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
            details: Default::default(),
            collected_at: None,
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
        let store = Store::open(url).await.unwrap();
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
        let store = Store::open(url).await.unwrap();
        let lineage = store.load_lineage().await.unwrap();
        assert_eq!(lineage.materialization(&m.asset), Some(&m));
        assert_eq!(lineage.observation(&obs.asset), Some(&obs));
        assert_eq!(
            store.run_status(&run).await.unwrap(),
            Some((RunStatus::Succeeded, None))
        );
    }

    async fn runs_and_steps_move_only_as_their_lifecycle_allows(db) {
        let store = db.open().await;
        let run = RunId::generate();
        let now = Utc::now();
        store
            .queue_run(&run, &test_run(RunKind::Materialize), now)
            .await
            .unwrap();
        // A queued run cannot succeed without having started.
        let err = store
            .finish_run(&run, RunStatus::Succeeded, now, None)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("run {run}: cannot become succeeded from queued")
        );
        store.start_run(&run, now).await.unwrap();
        assert!(store.start_run(&run, now).await.is_err());

        let asset: freshet_plan::AssetKey = "a".parse().unwrap();
        store
            .plan_steps(&run, std::slice::from_ref(&asset))
            .await
            .unwrap();
        let end = |state| StepRecord {
            asset: asset.to_string(),
            state,
            started_at: None,
            finished_at: Some(now),
            message: None,
            row_count: None,
            byte_size: None,
        };
        let refusals = |records: &[Progress]| {
            let store = store.clone();
            let run = run.clone();
            let records = records.to_vec();
            async move { store.record_progress(&run, &records).await.unwrap().len() }
        };
        // A pending step cannot be materialized without having started; the records around a
        // refused one are recorded all the same.
        let started = Progress::StepStarted {
            position: 0,
            at: now,
        };
        let materialized = Progress::StepFinished {
            position: 0,
            end: end(StepState::Materialized),
        };
        assert_eq!(refusals(&[materialized]).await, 1);
        assert_eq!(
            refusals(&[
                started,
                Progress::StepFinished {
                    position: 0,
                    end: end(StepState::Failed),
                },
                Progress::StepFinished {
                    position: 0,
                    end: end(StepState::Skipped),
                },
            ])
            .await,
            1
        );
        assert_eq!(
            store.run_steps(&run).await.unwrap()[0].state,
            StepState::Failed
        );

        store
            .finish_run(&run, RunStatus::Cancelled, now, Some("cancelled"))
            .await
            .unwrap();
        // Finished is final: a late writer cannot overwrite how it ended.
        let err = store
            .finish_run(&run, RunStatus::Failed, now, Some("late"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("run {run}: cannot become failed from cancelled")
        );
        assert_eq!(
            store.run_status(&run).await.unwrap(),
            Some((RunStatus::Cancelled, Some("cancelled".to_owned())))
        );
        let missing = RunId::generate();
        assert_eq!(
            store
                .finish_run(&missing, RunStatus::Failed, now, None)
                .await
                .unwrap_err()
                .to_string(),
            format!("run {missing}: no such run")
        );
    }

    async fn a_stored_value_that_does_not_decode_is_an_error_naming_its_record(db) {
        let store = db.open().await;
        let now = Utc::now();
        store
            .record_observation(&Observation {
                asset: "raw".parse().unwrap(),
                data_version: DataVersion::new("v1"),
                file_count: 1,
                byte_size: 1,
                observed_at: now,
                checked_at: now,
            })
            .await
            .unwrap();
        sqlx::query("UPDATE asset_heads SET record = '{\"asset\": 7}'")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.load_lineage().await.unwrap_err().to_string();
        assert!(
            err.starts_with("metadata database: asset_heads row for raw: "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");

        let run = RunId::generate();
        store
            .begin_run(&run, &test_run(RunKind::Observe), now)
            .await
            .unwrap();
        sqlx::query("UPDATE runs SET status = 'paused'")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.run(&run).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("metadata database: runs row {run}: unknown status \"paused\"")
        );
    }
    }
}
