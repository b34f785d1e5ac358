//! The change feed: PostgreSQL `LISTEN/NOTIFY`, SQLite `PRAGMA data_version` polling.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgListener;

use crate::Result;
use crate::store::Backend;

use super::connection::SqlStore;

/// The channel PostgreSQL NOTIFY uses to wake schedulers and watchers.
pub const CHANNEL: &str = "tributary_changes";

pub(super) async fn data_version(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) -> Result<i64> {
    let row = sqlx::query("PRAGMA data_version")
        .fetch_one(&mut **conn)
        .await?;
    Ok(row.try_get(0)?)
}

/// Wakes up when another process changes the metadata database: PostgreSQL
/// LISTEN on [`CHANNEL`]; on SQLite, `PRAGMA data_version` (which changes when
/// another connection commits) checked every 20 ms on a dedicated connection.
pub enum Changes {
    /// LISTEN connection.
    Postgres(Box<PgListener>),
    /// Dedicated SQLite connection and the last data version seen.
    Sqlite {
        /// The connection (data_version is per connection).
        conn: sqlx::pool::PoolConnection<sqlx::Any>,
        /// Last version seen.
        last: i64,
    },
}

impl Changes {
    /// Consumes the changes already received, without waiting: a tick that
    /// starts now covers them all, so they must not each wake another one.
    pub fn drain(&mut self) {
        if let Changes::Postgres(l) = self {
            while l.next_buffered().is_some() {}
        }
    }

    /// Returns when something changed (or on a connection error, so callers
    /// re-check the database rather than hang).
    pub async fn next(&mut self) -> Result<()> {
        match self {
            Changes::Postgres(l) => {
                l.recv().await?;
                Ok(())
            }
            Changes::Sqlite { conn, last } => loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let v = data_version(conn).await?;
                if v != *last {
                    *last = v;
                    return Ok(());
                }
            },
        }
    }
}

pub(super) async fn notify(store: &SqlStore) -> Result<()> {
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&store.pool)
            .await?;
    }
    Ok(())
}

pub(super) async fn changes(store: &SqlStore) -> Result<Changes> {
    match store.backend {
        Backend::Postgres => {
            let mut l = PgListener::connect(&store.url).await?;
            l.listen(CHANNEL).await?;
            Ok(Changes::Postgres(Box::new(l)))
        }
        Backend::Sqlite => {
            let conn = store.pool.acquire().await?;
            let mut c = Changes::Sqlite { conn, last: 0 };
            if let Changes::Sqlite { conn, last } = &mut c {
                *last = data_version(conn).await?;
            }
            Ok(c)
        }
    }
}
