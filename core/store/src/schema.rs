//! What a database holds before Freshet migrates it: refusing one that is not Freshet's, or whose
//! schema is newer than this binary's, while nothing has been written to it yet.

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

use crate::{Backend, one_line};

/// Where sqlx records the applied migrations.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// `Ok` when migrating is safe: the database is empty, or holds Freshet's schema at a version
/// this binary knows. The error is one line saying why not.
pub(crate) async fn check(
    pool: &AnyPool,
    backend: Backend,
    migrator: &Migrator,
) -> Result<(), String> {
    let tables = tables(pool, backend).await?;
    if !tables.iter().any(|t| t == MIGRATIONS_TABLE) {
        return match tables.first() {
            None => Ok(()),
            Some(table) => Err(format!(
                "it is not a Freshet metadata database (it holds other tables, such as `{table}`); \
                 use a new SQLite file or an empty database"
            )),
        };
    }
    let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(|e| one_line(&e))?;
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match applied {
        Some(applied) if applied > known => Err(format!(
            "its schema (version {applied}) is newer than this freshet's (version {known}); \
             it was written by a newer Freshet: upgrade freshet to use it"
        )),
        _ => Ok(()),
    }
}

/// Whether every migration this binary knows is applied and the heads carry their records: a
/// database [`check`] accepted that needs no writing before it is read.
pub(crate) async fn is_current(
    pool: &AnyPool,
    backend: Backend,
    migrator: &Migrator,
) -> Result<bool, String> {
    if !tables(pool, backend)
        .await?
        .iter()
        .any(|t| t == MIGRATIONS_TABLE)
    {
        // An empty database, to be migrated.
        return Ok(false);
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(pool)
            .await
            .map_err(|e| one_line(&e))?;
    if migrator.iter().any(|m| !applied.contains(&m.version)) {
        return Ok(false);
    }
    let unfilled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM asset_heads WHERE record IS NULL")
        .fetch_one(pool)
        .await
        .map_err(|e| one_line(&e))?;
    Ok(unfilled == 0)
}

/// The database's own tables, by name, sorted.
async fn tables(pool: &AnyPool, backend: Backend) -> Result<Vec<String>, String> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1"
        }
    };
    sqlx::query_scalar(sql)
        .fetch_all(pool)
        .await
        .map_err(|e| one_line(&e))
}
