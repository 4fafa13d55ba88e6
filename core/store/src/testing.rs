//! The conformance suite's fixture: every test written with [`conformance!`] runs once on a SQLite
//! file in a temporary folder and once on a new database of a real PostgreSQL server.
//!
//! The server is the one `tests/run.sh` starts (a throwaway cluster on a loopback port) and names
//! in `FRESHET_TEST_POSTGRES`. Without it the PostgreSQL half is skipped with a line on stderr,
//! except under `CI`, where it fails: CI always runs both.

use crate::{Backend, Store};

/// A database for one test, empty until opened; a SQLite one is removed when dropped.
#[derive(Debug)]
pub(crate) struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self {
            url: format!("sqlite://{}/freshet.db", dir.path().display()),
            _dir: Some(dir),
        }
    }

    /// A new database on the test server, or `None` (after saying so) when there is none.
    pub(crate) async fn postgres() -> Option<Self> {
        let Some(url) = postgres_server() else {
            eprintln!(
                "FRESHET_TEST_POSTGRES is not set: skipping the PostgreSQL half (tests/run.sh sets it)"
            );
            return None;
        };
        Some(Self {
            url: new_postgres_database(&url).await,
            _dir: None,
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn backend(&self) -> Backend {
        Backend::of_url(&self.url).expect("a known backend")
    }

    /// Opens the store (as a process would: each call is a pool of its own).
    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open the test store")
    }
}

/// The URL of the test server's maintenance database, if there is a server.
pub(crate) fn postgres_server() -> Option<String> {
    match std::env::var("FRESHET_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "FRESHET_TEST_POSTGRES must be set under CI: run tests/run.sh"
            );
            None
        }
    }
}

/// Creates a database named after a fresh UUID on the server at `server` and returns its URL.
pub(crate) async fn new_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", uuid_like());
    let mut conn = sqlx::AnyConnection::connect(server)
        .await
        .expect("connect to the test PostgreSQL server");
    // A name cannot be a parameter; this one is made of hex digits and `_` only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    conn.close().await.ok();
    let mut url = url::Url::parse(server).expect("FRESHET_TEST_POSTGRES is a URL");
    url.set_path(&name);
    url.to_string()
}

fn uuid_like() -> String {
    freshet_plan::model::RunId::generate()
        .to_string()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Declares tests that run on both backends: each `async fn NAME(db) { .. }` becomes
/// `NAME::sqlite` and `NAME::postgres`, its body given a [`TestDb`] of that backend.
macro_rules! conformance {
    ($(#[doc = $doc:literal])* async fn $name:ident($db:ident) $body:block $($rest:tt)*) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($db: $crate::testing::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::testing::TestDb::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::testing::TestDb::postgres().await {
                    run(db).await
                }
            }
        }
        $crate::testing::conformance!($($rest)*);
    };
    () => {};
}
pub(crate) use conformance;
