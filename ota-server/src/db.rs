//! The database: SQLite (the default, created on first start) or PostgreSQL, through sqlx's
//! `Any` driver with runtime queries, and the embedded migrations.
//!
//! Every query is written once, in SQL both databases take (`$1` placeholders, `TEXT` and
//! `BIGINT` columns, JSON documents as text).

use std::borrow::Cow;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, Executor, SqlSafeStr};

/// A transaction on the pool.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The migrations, embedded in the binary, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "leases", include_str!("../migrations/0002_leases.sql")),
    (
        3,
        "snapshots",
        include_str!("../migrations/0003_snapshots.sql"),
    ),
    (
        4,
        "attempts",
        include_str!("../migrations/0004_attempts.sql"),
    ),
];

/// The migrator of [`MIGRATIONS`].
pub fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path`.
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
}

impl Backend {
    /// The backend of a URL, if it is one.
    pub fn of(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Opens the database (creating a SQLite file on first start) and runs the migrations.
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    let pool = pool(url).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Runs the migrations the database lacks.
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    migrator().run(pool).await?;
    Ok(())
}

/// Opens the database (creating a SQLite file on first start), without migrating it.
pub async fn pool(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of(url).ok_or_else(|| {
        sqlx::Error::Configuration(
            format!("--database: expected sqlite://PATH or postgres://..., found {url:?}").into(),
        )
    })?;
    let (url, max) = match backend {
        Backend::Sqlite if !url.contains("mode=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            (format!("{url}{sep}mode=rwc"), 8)
        }
        Backend::Sqlite => (url.to_string(), 8),
        Backend::Postgres => (url.to_string(), 16),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn: &mut AnyConnection, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // A writer waits for another rather than failing; WAL lets readers run
                    // beside it; FULL syncs the WAL at every commit, so what was acknowledged
                    // survives a power loss too, not only a process crash (the group commits
                    // of the engine and of RPC deliveries share each sync among many
                    // requests).
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    if backend == Backend::Sqlite {
        pool.execute("PRAGMA journal_mode = WAL").await?;
    }
    Ok(pool)
}

/// A `u64` as the database stores it.
pub fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored `BIGINT` as a `u64`.
pub fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
