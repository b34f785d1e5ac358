//! The change feed: PostgreSQL `LISTEN/NOTIFY`, SQLite `PRAGMA data_version` polling.
//!
//! A PostgreSQL notification's payload is `<origin> <kind>`: the store that
//! sent it (one per process, [`Origin`]) and whether it can give a scheduler
//! work (`change`) or only reports progress (`progress`: tries starting, a
//! state a run follower prints but no scheduler acts on). A scheduler's feed
//! ([`Wake::OnWork`]) skips progress, and skips its own process's
//! notifications: those it hears in-process, sooner — the executor wakes it
//! when a try ends, and [`notify`] signals this process's feeds directly.
//! Without that, every handoff cost a second and third tick that found
//! nothing to do (the echo of the try's start and of its end).

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::Result;
use crate::store::Backend;

use super::connection::SqlStore;
use super::origin::{KIND_CHANGE, Origin};

/// The channel PostgreSQL NOTIFY uses to wake schedulers and watchers.
pub const CHANNEL: &str = "tributary_changes";

/// What a change feed wakes up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Every change any process announces, progress included (a follower
    /// printing each task's state as it changes).
    OnAnyChange,
    /// Changes that can give a scheduler work, announced by other processes
    /// or by [`Store::notify`](crate::store::Store::notify) in this one.
    OnWork,
}

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
    Postgres {
        /// The connection.
        listener: Box<PgListener>,
        /// For [`Wake::OnWork`]: the store whose notifications are skipped,
        /// and its in-process signal.
        own: Option<(Origin, watch::Receiver<()>)>,
    },
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
        if let Changes::Postgres { listener, own } = self {
            while listener.next_buffered().is_some() {}
            if let Some((_, local)) = own {
                local.borrow_and_update();
            }
        }
    }

    /// Returns when something changed, and what told (or on a connection
    /// error, so callers re-check the database rather than hang).
    pub async fn next(&mut self) -> Result<Woken> {
        match self {
            Changes::Postgres {
                listener,
                own: None,
            } => Ok(Woken::Notification(listener.recv().await?.payload().into())),
            Changes::Postgres {
                listener,
                own: Some((origin, local)),
            } => loop {
                tokio::select! {
                    n = listener.recv() => {
                        let n = n?;
                        if origin.wakes_scheduler(n.payload()) {
                            return Ok(Woken::Notification(n.payload().into()));
                        }
                    }
                    // An error means the store is gone: nothing more comes.
                    Ok(()) = local.changed() => return Ok(Woken::InProcess),
                }
            },
            Changes::Sqlite { conn, last } => loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let v = data_version(conn).await?;
                if v != *last {
                    *last = v;
                    return Ok(Woken::DataVersion);
                }
            },
        }
    }
}

/// What woke a change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Woken {
    /// A PostgreSQL notification with this payload (`<origin> <kind>`).
    Notification(String),
    /// [`Store::notify`](crate::store::Store::notify) in this process.
    InProcess,
    /// SQLite: another connection committed.
    DataVersion,
}

pub(super) async fn notify(store: &SqlStore) -> Result<()> {
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(store.origin.payload(KIND_CHANGE))
            .execute(&store.pool)
            .await?;
        store.origin.signal();
    }
    Ok(())
}

pub(super) async fn changes(store: &SqlStore, wake: Wake) -> Result<Changes> {
    match store.backend {
        Backend::Postgres => {
            let mut l = PgListener::connect(&store.url).await?;
            l.listen(CHANNEL).await?;
            let own =
                (wake == Wake::OnWork).then(|| (store.origin.clone(), store.origin.subscribe()));
            Ok(Changes::Postgres {
                listener: Box::new(l),
                own,
            })
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
