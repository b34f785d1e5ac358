//! [`SqlStore`]: connecting to PostgreSQL or SQLite, migrations, and the
//! one-scheduler lock of SQLite.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::model::RunRecord;
use crate::store::Backend;
use crate::{Error, Result};

use super::codec::{redact_url, run_from_row};
use super::migrations::{PG_MIGRATIONS, SQLITE_MIGRATIONS};

/// The metadata store on PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    pub(super) url: String,
    /// SQLite: the lock file that serializes migrations between processes.
    pub(super) migrate_lock: Option<std::path::PathBuf>,
    /// Try starts and ends waiting to be written together.
    pub(super) batcher: std::sync::Arc<super::try_queue::TryBatcher>,
    /// This store's name in its notifications, and its in-process signal.
    pub(super) origin: super::origin::Origin,
}

/// Whether `url` names a database the store can open: `postgres://` (or
/// `postgresql://`) with a well-formed host and port, or `sqlite://path`.
/// The message names the problem; the URL in it has its password hidden.
pub fn check_database_url(url: &str) -> std::result::Result<(), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return url::Url::parse(url).map(|_| ()).map_err(|e| {
            format!(
                "database URL {:?}: {e} (write postgres://user@host:port/database)",
                redact_url(url)
            )
        });
    }
    if url.starts_with("sqlite:") {
        return Ok(());
    }
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    let what = if scheme.is_empty() || scheme.contains('/') {
        "has no scheme".to_string()
    } else {
        format!("uses {scheme:?}, which is not supported")
    };
    Err(format!(
        "database URL {:?} {what}: use postgres://user@host/db or sqlite://path/to/file.db",
        redact_url(url)
    ))
}

/// The file of a `sqlite://path` (or `sqlite:path`) URL, without its
/// query; `None` for other URLs.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    path.split('?').next()
}

impl SqlStore {
    /// Connects to `url`: `postgres://…` or `sqlite://path` (the file and its
    /// folder are created). Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<SqlStore> {
        check_database_url(url).map_err(Error::Invalid)?;
        sqlx::any::install_default_drivers();
        let mut migrate_lock = None;
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else if let Some(path) = sqlite_path(url) {
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            migrate_lock = Some(std::path::PathBuf::from(format!("{path}.migrate-lock")));
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else {
            return Err(Error::Invalid(format!(
                "unsupported database URL {:?}: use postgres://user@host/db or sqlite://path/to/file.db",
                redact_url(url)
            )));
        };
        let opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let pool = match backend {
            Backend::Postgres => {
                opts.max_connections(16)
                    .min_connections(1)
                    .connect(&url)
                    .await?
            }
            Backend::Sqlite => {
                opts.max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                // Per-connection settings only: WAL is set once, in `migrate`,
                                // under the migration lock (see there).
                                "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
        };
        Ok(SqlStore {
            pool,
            backend,
            url,
            migrate_lock,
            batcher: std::sync::Arc::default(),
            origin: super::origin::Origin::new(),
        })
    }

    /// On SQLite, takes the lock that lets one scheduler at a time use this
    /// database (held while the returned file is open); on PostgreSQL, where
    /// any number of schedulers may run, returns `None`.
    pub fn exclusive_scheduler_lock(&self) -> Result<Option<std::fs::File>> {
        let Some(migrate_lock) = &self.migrate_lock else {
            return Ok(None);
        };
        let path = migrate_lock.with_extension("scheduler-lock");
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::{Seek, Write};
                file.set_len(0).map_err(io)?;
                file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
                write!(file, "{}", std::process::id()).map_err(io)?;
                Ok(Some(file))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(Error::Invalid(format!(
                    "another scheduler (pid {}) is already running on this SQLite database; SQLite supports \
                     one scheduler at a time: stop it, or use PostgreSQL (DATABASE_URL=postgres://…) to run several",
                    holder.trim()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// This store's name in the notifications it sends (`<origin> <kind>`
    /// payloads; see [`Wake`](super::Wake)).
    pub fn origin(&self) -> &str {
        self.origin.id()
    }

    /// The underlying pool (for tests and tools).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(super) async fn fetch_runs(&self, sql: &str, binds: &[&str]) -> Result<Vec<RunRecord>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }
}

pub(super) async fn migrate(store: &SqlStore) -> Result<()> {
    match store.backend {
        Backend::Postgres => PG_MIGRATIONS.run(&store.pool).await?,
        Backend::Sqlite => {
            // sqlx takes an advisory lock on PostgreSQL only; on SQLite two
            // processes starting together would both apply migration 1.
            let _guard = match &store.migrate_lock {
                Some(path) => {
                    let io = |source| Error::Io {
                        path: path.clone(),
                        source,
                    };
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(path)
                        .map_err(io)?;
                    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                        .await
                        .map_err(|e| Error::Invalid(format!("migration lock task failed: {e}")))?
                        .map_err(io)?;
                    Some(file)
                }
                None => None,
            };
            // WAL is persistent in the file. Switching needs an exclusive
            // lock, and SQLite answers BUSY at once (no busy wait) when two
            // fresh connections race for it, so it is done here, once,
            // while holding the lock above.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&store.pool)
                .await?;
            SQLITE_MIGRATIONS.run(&store.pool).await?;
        }
    }
    Ok(())
}
