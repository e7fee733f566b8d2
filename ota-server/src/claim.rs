//! The one-server claim on a database.
//!
//! A server without leases (SQLite always; PostgreSQL with `--lease-ms 0`) keeps its rollouts
//! and every device's assignment in memory and trusts that memory as complete: a second such
//! server on the same database would answer from caches the first one's writes never reach
//! (devices told nothing, rollouts "stored but not restored", packages refused). So a server
//! claims its database before it serves, and refuses to start when another holds it:
//! - SQLite: an exclusive lock on `DATABASE.lock`, beside the database file;
//! - PostgreSQL: a session advisory lock, exclusive without leases and shared with them, so
//!   replicas with leases run together but never beside a server without.
//!
//! The claim is held until [`Claim`] is dropped ([`crate::Running::stop`]), or the process
//! ends. On PostgreSQL it lives as long as its session: a database restart, an
//! `idle_session_timeout` or a pooler in transaction mode (pgbouncer) ends it unnoticed, and
//! the claim with it (run the server on a direct session, without an idle timeout). A server restarted at once may find its predecessor's claim not yet let go (a
//! PostgreSQL backend notices a closed connection a moment later): it waits a few seconds for
//! it before it gives up.

use std::time::Duration;

use sqlx::{AnyConnection, AnyPool, Connection as _};

use crate::db::Backend;

/// The advisory lock key of the one-server claim (`ota` in ASCII, and 1).
const KEY: i64 = 0x6f74_6101;

/// How long a server waits for another's claim to be let go before it refuses to start.
const WAIT: Duration = Duration::from_secs(5);

/// A held claim; dropping it lets it go.
pub enum Claim {
    /// The locked `DATABASE.lock` file (SQLite).
    File(std::fs::File),
    /// The connection that holds the advisory lock (PostgreSQL).
    Postgres(Box<AnyConnection>),
}

/// Claims the database of `url` for this server (`shared` for replicas with leases).
pub async fn take(url: &str, db: &AnyPool, shared: bool) -> Result<Option<Claim>, String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match try_take(url, db, shared).await? {
            Some(claim) => return Ok(claim),
            None if tokio::time::Instant::now() >= deadline => {
                let other = if shared {
                    "an ota-server without leases"
                } else {
                    "another ota-server"
                };
                return Err(format!(
                    "--database: {other} runs on this database; run one server per database, \
                     or run every replica with leases (--lease-ms)"
                ));
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One try: `Some(claim)` when taken (`Some(None)`: nothing to claim, an in-memory
/// database), `None` when another holds it.
async fn try_take(url: &str, db: &AnyPool, shared: bool) -> Result<Option<Option<Claim>>, String> {
    let err = |e: sqlx::Error| format!("--database: {e}");
    match Backend::of(url) {
        Some(Backend::Sqlite) => {
            let (file,): (String,) =
                sqlx::query_as("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(db)
                    .await
                    .map_err(err)?;
            if file.is_empty() {
                return Ok(Some(None));
            }
            let path = format!("{file}.lock");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| format!("--database: {path}: {e}"))?;
            match f.try_lock() {
                Ok(()) => Ok(Some(Some(Claim::File(f)))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => Err(format!("--database: {path}: {e}")),
            }
        }
        Some(Backend::Postgres) => {
            let mut conn = db.acquire().await.map_err(err)?.detach();
            let sql = if shared {
                "SELECT pg_try_advisory_lock_shared($1)"
            } else {
                "SELECT pg_try_advisory_lock($1)"
            };
            let (taken,): (bool,) = sqlx::query_as(sql)
                .bind(KEY)
                .fetch_one(&mut conn)
                .await
                .map_err(err)?;
            if taken {
                Ok(Some(Some(Claim::Postgres(Box::new(conn)))))
            } else {
                let _ = conn.close().await;
                Ok(None)
            }
        }
        None => Ok(Some(None)),
    }
}
