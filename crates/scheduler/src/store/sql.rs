//! [`SqlStore`]: the [`Store`] on PostgreSQL or SQLite through sqlx's `Any`
//! driver. The SQL is shared; only migrations (identity columns), connection
//! set-up and change notification differ per backend.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyArguments;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::postgres::PgListener;
use sqlx::{AnyPool, Arguments, Executor, Row};

use super::{
    Backend, Claim, DagRecord, ImportError, LogLine, NewRun, PoolRecord, RunRecord, RunType,
    SlotUsage, Store, TaskInstance, TaskSeed, TiPatch, admit,
};
use crate::backfill::{
    BackfillDate, BackfillRecord, BackfillState, DateAction, DateState, NewBackfill,
};
use crate::state::{RunState, TaskState};
use crate::timetable::DataInterval;
use crate::{Error, Result};

static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Advisory lock key serializing claims between schedulers on PostgreSQL.
const CLAIM_LOCK: i64 = 0x7472_6962_7574_6172; // "tributar"

/// The channel PostgreSQL NOTIFY uses to wake schedulers and watchers.
pub const CHANNEL: &str = "tributary_changes";

/// Microseconds since the epoch, as stored.
pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored timestamp back as UTC.
pub(crate) fn from_micros(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

fn opt_time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

fn state<T: FromStr<Err = String>>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    T::from_str(&s).map_err(|e| Error::Database(sqlx::Error::Decode(e.into())))
}

/// A statement built at run time with `$N` parameters, which both
/// PostgreSQL and SQLite accept (sqlx's `QueryBuilder<Any>` writes `?`,
/// which PostgreSQL does not).
struct Sql {
    text: String,
    args: AnyArguments<'static>,
    n: usize,
}

impl Sql {
    fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
        }
    }

    fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    fn bind<T>(&mut self, value: T) -> &mut Sql
    where
        T: 'static + Send + sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.n += 1;
        self.text.push('$');
        self.text.push_str(&self.n.to_string());
        // Encoding into Any's argument buffer only fails for unsupported types,
        // which the type bound already rules out.
        let _ = self.args.add(value);
        self
    }

    /// Binds each value, separated by commas.
    fn bind_list<T, I>(&mut self, values: I) -> &mut Sql
    where
        I: IntoIterator<Item = T>,
        T: 'static + Send + sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    /// The query, borrowing the text (arguments are moved out: use it once).
    fn query(&mut self) -> sqlx::query::Query<'_, sqlx::Any, AnyArguments<'_>> {
        sqlx::query_with(&self.text, std::mem::take(&mut self.args))
    }
}

/// The metadata store on PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// SQLite: the lock file that serializes migrations between processes.
    migrate_lock: Option<std::path::PathBuf>,
}

impl SqlStore {
    /// Connects to `url`: `postgres://…` or `sqlite://path` (the file and its
    /// folder are created). Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let mut migrate_lock = None;
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
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

    /// The underlying pool (for tests and tools).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn fetch_runs(&self, sql: &str, binds: &[&str]) -> Result<Vec<RunRecord>> {
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

/// A database URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

const RUN_COLS: &str = "id, dag_id, run_id, run_type, logical_date, data_interval_start, data_interval_end, \
                        state, conf, created_at, start_date, end_date, backfill_id";

fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let run_type: String = row.try_get("run_type")?;
    let conf: String = row.try_get("conf")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        run_type: RunType::parse(&run_type).unwrap_or(RunType::Manual),
        logical_date: from_micros(row.try_get("logical_date")?),
        data_interval: DataInterval {
            start: from_micros(row.try_get("data_interval_start")?),
            end: from_micros(row.try_get("data_interval_end")?),
        },
        state: state(row, "state")?,
        conf: serde_json::from_str(&conf).unwrap_or(serde_json::Value::Null),
        created_at: from_micros(row.try_get("created_at")?),
        start_date: opt_time(row, "start_date")?,
        end_date: opt_time(row, "end_date")?,
        backfill_id: row.try_get("backfill_id")?,
    })
}

/// Task instances holding a slot, per pool and DAG (used by `slot_usage` and `claim`).
const SLOT_USAGE_SQL: &str = "SELECT pool, dag_id, COUNT(*) AS n FROM task_instances \
     WHERE state IN ('queued', 'running') GROUP BY pool, dag_id";

fn slot_usage_from(rows: &[AnyRow]) -> Result<SlotUsage> {
    let mut u = SlotUsage::default();
    for r in rows {
        let n: i64 = r.try_get("n")?;
        *u.by_pool.entry(r.try_get("pool")?).or_insert(0) += n;
        *u.by_dag.entry(r.try_get("dag_id")?).or_insert(0) += n;
    }
    Ok(u)
}

const BACKFILL_COLS: &str = "id, dag_id, from_date, to_date, reprocess, max_active_runs, reverse, conf, state, created_at, completed_at";

fn backfill_from_row(row: &AnyRow) -> Result<BackfillRecord> {
    let conf: String = row.try_get("conf")?;
    Ok(BackfillRecord {
        id: row.try_get("id")?,
        dag_id: row.try_get("dag_id")?,
        from_date: from_micros(row.try_get("from_date")?),
        to_date: from_micros(row.try_get("to_date")?),
        reprocess: state(row, "reprocess")?,
        max_active_runs: row.try_get("max_active_runs")?,
        reverse: row.try_get::<i64, _>("reverse")? != 0,
        conf: serde_json::from_str(&conf).unwrap_or(serde_json::Value::Null),
        state: state(row, "state")?,
        created_at: from_micros(row.try_get("created_at")?),
        completed_at: opt_time(row, "completed_at")?,
    })
}

const TI_COLS: &str = "ti.id, ti.dag_run_id, ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.try_number, \
    ti.max_tries, ti.pool, ti.priority, ti.queued_at, ti.start_date, ti.end_date, ti.duration_ms, ti.hostname, \
    ti.pid, ti.next_retry_at, ti.heartbeat_at, ti.lease_owner, ti.error";

fn ti_from_row(row: &AnyRow) -> Result<TaskInstance> {
    Ok(TaskInstance {
        id: row.try_get("id")?,
        dag_run_id: row.try_get("dag_run_id")?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        state: state(row, "state")?,
        try_number: u32::try_from(row.try_get::<i64, _>("try_number")?).unwrap_or(0),
        max_tries: u32::try_from(row.try_get::<i64, _>("max_tries")?).unwrap_or(1),
        pool: row.try_get("pool")?,
        priority: i32::try_from(row.try_get::<i64, _>("priority")?).unwrap_or(1),
        queued_at: opt_time(row, "queued_at")?,
        start_date: opt_time(row, "start_date")?,
        end_date: opt_time(row, "end_date")?,
        duration_ms: row.try_get("duration_ms")?,
        hostname: row.try_get("hostname")?,
        pid: row.try_get("pid")?,
        next_retry_at: opt_time(row, "next_retry_at")?,
        heartbeat_at: opt_time(row, "heartbeat_at")?,
        lease_owner: row.try_get("lease_owner")?,
        error: row.try_get("error")?,
    })
}

fn dag_from_row(row: &AnyRow) -> Result<DagRecord> {
    let tags: String = row.try_get("tags")?;
    Ok(DagRecord {
        dag_id: row.try_get("dag_id")?,
        fileloc: row.try_get("fileloc")?,
        source_hash: row.try_get("source_hash")?,
        source: row.try_get("source")?,
        description: row.try_get("description")?,
        schedule: row.try_get("schedule")?,
        timezone: row.try_get("timezone")?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        max_active_runs: row.try_get("max_active_runs")?,
        max_active_tasks: row.try_get("max_active_tasks")?,
        is_paused: row.try_get::<i64, _>("is_paused")? != 0,
        is_active: row.try_get::<i64, _>("is_active")? != 0,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code()
                .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Postgres => PG_MIGRATIONS.run(&self.pool).await?,
            Backend::Sqlite => {
                // sqlx takes an advisory lock on PostgreSQL only; on SQLite two
                // processes starting together would both apply migration 1.
                let _guard = match &self.migrate_lock {
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
                            .map_err(|e| {
                                Error::Invalid(format!("migration lock task failed: {e}"))
                            })?
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
                    .execute(&self.pool)
                    .await?;
                SQLITE_MIGRATIONS.run(&self.pool).await?;
            }
        }
        Ok(())
    }

    async fn sync_dags(&self, dags: &[DagRecord], errors: &[ImportError]) -> Result<()> {
        let now = to_micros(Utc::now());
        let mut tx = self.pool.begin().await?;
        for d in dags {
            sqlx::query(
                "INSERT INTO dags (dag_id, fileloc, source_hash, source, description, schedule, timezone, tags, \
                 max_active_runs, max_active_tasks, is_paused, is_active, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12) \
                 ON CONFLICT (dag_id) DO UPDATE SET fileloc = excluded.fileloc, source_hash = excluded.source_hash, \
                 source = excluded.source, description = excluded.description, schedule = excluded.schedule, \
                 timezone = excluded.timezone, tags = excluded.tags, max_active_runs = excluded.max_active_runs, \
                 max_active_tasks = excluded.max_active_tasks, is_active = 1, updated_at = excluded.updated_at \
                 WHERE dags.source_hash <> excluded.source_hash OR dags.is_active = 0 OR dags.fileloc <> excluded.fileloc",
            )
            .bind(&d.dag_id)
            .bind(&d.fileloc)
            .bind(&d.source_hash)
            .bind(&d.source)
            .bind(&d.description)
            .bind(&d.schedule)
            .bind(&d.timezone)
            .bind(serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into()))
            .bind(d.max_active_runs)
            .bind(d.max_active_tasks)
            .bind(i64::from(d.is_paused))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // Everything not seen this time is inactive (file removed or broken).
        let mut q = Sql::new("UPDATE dags SET is_active = 0, updated_at = ");
        q.bind(now).push(" WHERE is_active = 1");
        if !dags.is_empty() {
            q.push(" AND dag_id NOT IN (")
                .bind_list(dags.iter().map(|d| d.dag_id.clone()))
                .push(")");
        }
        q.query().execute(&mut *tx).await?;
        sqlx::query("DELETE FROM import_errors")
            .execute(&mut *tx)
            .await?;
        for e in errors {
            sqlx::query(
                "INSERT INTO import_errors (fileloc, message, created_at) VALUES ($1, $2, $3)",
            )
            .bind(&e.fileloc)
            .bind(&e.message)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_dags(&self) -> Result<Vec<DagRecord>> {
        sqlx::query("SELECT * FROM dags ORDER BY dag_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(dag_from_row)
            .collect()
    }

    async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRecord>> {
        sqlx::query("SELECT * FROM dags WHERE dag_id = $1")
            .bind(dag_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(dag_from_row)
            .transpose()
    }

    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<bool> {
        let r = sqlx::query("UPDATE dags SET is_paused = $1 WHERE dag_id = $2")
            .bind(i64::from(paused))
            .bind(dag_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn import_errors(&self) -> Result<Vec<ImportError>> {
        let rows = sqlx::query("SELECT fileloc, message FROM import_errors ORDER BY fileloc")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ImportError {
                    fileloc: r.try_get("fileloc")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    async fn create_run(&self, run: &NewRun, tasks: &[TaskSeed]) -> Result<RunRecord> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, data_interval_start, data_interval_end, \
             state, conf, created_at, backfill_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {RUN_COLS}"
        ))
        .bind(&run.dag_id)
        .bind(&run.run_id)
        .bind(run.run_type.as_str())
        .bind(to_micros(run.logical_date))
        .bind(to_micros(run.data_interval.start))
        .bind(to_micros(run.data_interval.end))
        .bind(run.state.as_str())
        .bind(run.conf.to_string())
        .bind(to_micros(now))
        .bind(run.backfill_id)
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => {
                let what = if e.to_string().contains("run_id")
                    || e.to_string().contains("dag_runs_dag_id_run_id")
                {
                    format!("with run id {:?}", run.run_id)
                } else {
                    format!("at logical date {}", run.logical_date.to_rfc3339())
                };
                return Err(Error::RunExists {
                    dag_id: run.dag_id.clone(),
                    what,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let record = run_from_row(&row)?;
        insert_tis(&mut tx, &record, tasks).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn add_task_instances(&self, run: &RunRecord, tasks: &[TaskSeed]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_tis(&mut tx, run, tasks).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRecord>> {
        let sql = format!("SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND run_id = $2");
        Ok(self.fetch_runs(&sql, &[dag_id, run_id]).await?.pop())
    }

    async fn list_runs(&self, dag_id: &str, limit: i64) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 ORDER BY logical_date DESC LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(dag_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }

    async fn runs_before(
        &self,
        dag_id: &str,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date < $2 \
             ORDER BY logical_date DESC LIMIT $3"
        );
        sqlx::query(&sql)
            .bind(dag_id)
            .bind(to_micros(before))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }

    async fn active_runs(&self) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE state IN ('queued', 'running') ORDER BY logical_date, id"
        );
        self.fetch_runs(&sql, &[]).await
    }

    async fn last_scheduled_run(&self, dag_id: &str) -> Result<Option<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND run_type = 'scheduled' \
             ORDER BY logical_date DESC LIMIT 1"
        );
        Ok(self.fetch_runs(&sql, &[dag_id]).await?.pop())
    }

    async fn set_run_state(
        &self,
        run_pk: i64,
        from: RunState,
        to: RunState,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let at = to_micros(at);
        let (start, end): (Option<i64>, Option<i64>) = match to {
            RunState::Running => (Some(at), None),
            RunState::Success | RunState::Failed => (None, Some(at)),
            RunState::Queued => (None, None),
        };
        let r = sqlx::query(
            "UPDATE dag_runs SET state = $1, start_date = COALESCE(start_date, $2), \
             end_date = $3 WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(start)
        .bind(end)
        .bind(run_pk)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn task_instances(&self, run_pks: &[i64]) -> Result<Vec<TaskInstance>> {
        if run_pks.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new(format!(
            "SELECT {TI_COLS} FROM task_instances ti WHERE ti.dag_run_id IN ("
        ));
        q.bind_list(run_pks.iter().copied())
            .push(") ORDER BY ti.dag_run_id, ti.id");
        q.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(ti_from_row)
            .collect()
    }

    async fn get_task_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Option<TaskInstance>> {
        sqlx::query(&format!(
            "SELECT {TI_COLS} FROM task_instances ti WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = $3"
        ))
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(ti_from_row)
        .transpose()
    }

    async fn update_ti(
        &self,
        ti_id: i64,
        from: TaskState,
        to: TaskState,
        patch: &TiPatch,
    ) -> Result<bool> {
        let mut q = Sql::new("UPDATE task_instances SET state = ");
        q.bind(to.as_str());
        let t = |v: Option<DateTime<Utc>>| v.map(to_micros);
        if let Some(v) = patch.try_number {
            q.push(", try_number = ").bind(i64::from(v));
        }
        if let Some(v) = patch.max_tries {
            q.push(", max_tries = ").bind(i64::from(v));
        }
        if let Some(v) = patch.queued_at {
            q.push(", queued_at = ").bind(t(v));
        }
        if let Some(v) = patch.start_date {
            q.push(", start_date = ").bind(t(v));
        }
        if let Some(v) = patch.end_date {
            q.push(", end_date = ").bind(t(v));
        }
        if let Some(v) = patch.duration_ms {
            q.push(", duration_ms = ").bind(v);
        }
        if let Some(v) = &patch.hostname {
            q.push(", hostname = ").bind(v.clone());
        }
        if let Some(v) = patch.pid {
            q.push(", pid = ").bind(v);
        }
        if let Some(v) = patch.next_retry_at {
            q.push(", next_retry_at = ").bind(t(v));
        }
        if let Some(v) = patch.heartbeat_at {
            q.push(", heartbeat_at = ").bind(t(v));
        }
        if let Some(v) = &patch.lease_owner {
            q.push(", lease_owner = ").bind(v.clone());
        }
        if let Some(v) = &patch.error {
            q.push(", error = ").bind(v.clone());
        }
        q.push(" WHERE id = ")
            .bind(ti_id)
            .push(" AND state = ")
            .bind(from.as_str());
        if let Some(owner) = &patch.only_if_owner {
            q.push(" AND lease_owner = ").bind(owner.clone());
        }
        Ok(q.query().execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn scheduled_tis(&self, limit: i64) -> Result<Vec<TaskInstance>> {
        sqlx::query(&format!(
            "SELECT {TI_COLS} FROM task_instances ti JOIN dag_runs r ON r.id = ti.dag_run_id \
             WHERE ti.state = 'scheduled' AND r.state = 'running' \
             ORDER BY ti.priority DESC, r.logical_date, ti.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ti_from_row)
        .collect()
    }

    async fn claim(&self, owner: &str, now: DateTime<Utc>, max: usize) -> Result<Claim> {
        let mut claim = Claim::default();
        if max == 0 {
            return Ok(claim);
        }
        // SQLite: take the write lock up front; a deferred transaction that
        // reads and then writes fails (SQLITE_BUSY_SNAPSHOT) if another
        // connection wrote in between, and busy_timeout cannot help it.
        let mut tx = match self.backend {
            Backend::Postgres => self.pool.begin().await?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        };
        let lock_rows = if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CLAIM_LOCK)
                .execute(&mut *tx)
                .await?;
            " FOR UPDATE OF ti SKIP LOCKED"
        } else {
            ""
        };
        let limit = i64::try_from(max.saturating_mul(4).saturating_add(16)).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "SELECT {TI_COLS}, COALESCE(d.max_active_tasks, 16) AS dag_max_active_tasks \
             FROM task_instances ti JOIN dag_runs r ON r.id = ti.dag_run_id LEFT JOIN dags d ON d.dag_id = ti.dag_id \
             WHERE ti.state = 'scheduled' AND r.state = 'running' \
             ORDER BY ti.priority DESC, r.logical_date, ti.id LIMIT $1{lock_rows}"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(claim);
        }
        let mut candidates = Vec::with_capacity(rows.len());
        for r in &rows {
            candidates.push((
                ti_from_row(r)?,
                r.try_get::<i64, _>("dag_max_active_tasks")?,
            ));
        }
        let usage = slot_usage_from(&sqlx::query(SLOT_USAGE_SQL).fetch_all(&mut *tx).await?)?;
        let mut pools = std::collections::HashMap::new();
        for r in sqlx::query("SELECT name, slots FROM pools")
            .fetch_all(&mut *tx)
            .await?
        {
            pools.insert(
                r.try_get::<String, _>("name")?,
                r.try_get::<i64, _>("slots")?,
            );
        }
        let (ok, missing) = admit(&candidates, &usage, &pools, max);
        let t = to_micros(now);
        for i in ok {
            let ti = &candidates[i].0;
            let r = sqlx::query(
                "UPDATE task_instances SET state = 'queued', queued_at = $1, heartbeat_at = $1, lease_owner = $2 \
                 WHERE id = $3 AND state = 'scheduled'",
            )
            .bind(t)
            .bind(owner)
            .bind(ti.id)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 1 {
                let mut ti = ti.clone();
                ti.state = TaskState::Queued;
                ti.queued_at = Some(now);
                ti.lease_owner = Some(owner.to_string());
                claim.claimed.push(ti);
            }
        }
        for i in missing {
            let ti = &candidates[i].0;
            let msg = format!(
                "pool {:?} does not exist; create it with `tributary pools set {} --slots N`",
                ti.pool, ti.pool
            );
            let r = sqlx::query(
                "UPDATE task_instances SET state = 'failed', end_date = $1, error = $2 WHERE id = $3 AND state = 'scheduled'",
            )
            .bind(t)
            .bind(&msg)
            .bind(ti.id)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 1 {
                let mut ti = ti.clone();
                ti.state = TaskState::Failed;
                ti.error = Some(msg);
                claim.missing_pool.push(ti);
            }
        }
        tx.commit().await?;
        Ok(claim)
    }

    async fn due_retries(&self, now: DateTime<Utc>) -> Result<Vec<TaskInstance>> {
        sqlx::query(&format!(
            "SELECT {TI_COLS} FROM task_instances ti WHERE ti.state = 'up_for_retry' AND ti.next_retry_at <= $1 \
             ORDER BY ti.next_retry_at"
        ))
        .bind(to_micros(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ti_from_row)
        .collect()
    }

    async fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(next_retry_at) AS t FROM task_instances WHERE state = 'up_for_retry'",
        )
        .fetch_one(&self.pool)
        .await?;
        opt_time(&row, "t")
    }

    async fn slot_usage(&self) -> Result<SlotUsage> {
        slot_usage_from(&sqlx::query(SLOT_USAGE_SQL).fetch_all(&self.pool).await?)
    }

    async fn expired_leases(&self, cutoff: DateTime<Utc>) -> Result<Vec<TaskInstance>> {
        sqlx::query(&format!(
            "SELECT {TI_COLS} FROM task_instances ti WHERE ti.state IN ('queued', 'running') \
             AND COALESCE(ti.heartbeat_at, ti.queued_at, 0) < $1 ORDER BY ti.id"
        ))
        .bind(to_micros(cutoff))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ti_from_row)
        .collect()
    }

    async fn heartbeat(&self, owner: &str, at: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE task_instances SET heartbeat_at = $1 WHERE lease_owner = $2 AND state IN ('queued', 'running')",
        )
        .bind(to_micros(at))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn append_logs(
        &self,
        ti_id: i64,
        try_number: u32,
        lines: &[(DateTime<Utc>, String)],
    ) -> Result<()> {
        // Bounded statements: 4 binds per line, far below both backends' limits.
        for chunk in lines.chunks(500) {
            let mut q = Sql::new("INSERT INTO task_logs (ti_id, try_number, ts, line) VALUES ");
            for (i, (ts, line)) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                q.bind(ti_id)
                    .push(", ")
                    .bind(i64::from(try_number))
                    .push(", ")
                    .bind(to_micros(*ts));
                q.push(", ").bind(line.clone()).push(")");
            }
            q.query().execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn read_logs(&self, ti_id: i64, try_number: u32, after: i64) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT id, try_number, ts, line FROM task_logs WHERE ti_id = $1 AND try_number = $2 AND id > $3 ORDER BY id",
        )
        .bind(ti_id)
        .bind(i64::from(try_number))
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogLine {
                    id: r.try_get("id")?,
                    try_number: u32::try_from(r.try_get::<i64, _>("try_number")?).unwrap_or(0),
                    ts: from_micros(r.try_get("ts")?),
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }

    async fn list_pools(&self) -> Result<Vec<PoolRecord>> {
        let rows = sqlx::query("SELECT name, slots, description FROM pools ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PoolRecord {
                    name: r.try_get("name")?,
                    slots: r.try_get("slots")?,
                    description: r.try_get("description")?,
                })
            })
            .collect()
    }

    async fn set_pool(&self, pool: &PoolRecord) -> Result<()> {
        if pool.slots < 0 {
            return Err(Error::Invalid(format!(
                "pool {:?}: slots must be 0 or more, got {}",
                pool.name, pool.slots
            )));
        }
        sqlx::query(
            "INSERT INTO pools (name, slots, description) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description",
        )
        .bind(&pool.name)
        .bind(pool.slots)
        .bind(&pool.description)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        if name == crate::dag::parse::DEFAULT_POOL {
            return Err(Error::Invalid(
                "the default_pool cannot be deleted (set its slots instead)".into(),
            ));
        }
        let r = sqlx::query("DELETE FROM pools WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn runs_between(
        &self,
        dag_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RunRecord>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date >= $2 AND logical_date <= $3 \
             ORDER BY logical_date"
        ))
        .bind(dag_id)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    async fn run_at(&self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<RunRecord>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date = $2"
        ))
        .bind(dag_id)
        .bind(to_micros(logical_date))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn run_by_pk(&self, run_pk: i64) -> Result<Option<RunRecord>> {
        sqlx::query(&format!("SELECT {RUN_COLS} FROM dag_runs WHERE id = $1"))
            .bind(run_pk)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(run_from_row)
            .transpose()
    }

    async fn set_run_backfill(&self, run_pk: i64, backfill_id: i64) -> Result<()> {
        sqlx::query("UPDATE dag_runs SET backfill_id = $1 WHERE id = $2")
            .bind(backfill_id)
            .bind(run_pk)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_backfill(
        &self,
        nb: &NewBackfill,
        dates: &[(DataInterval, DateAction)],
    ) -> Result<BackfillRecord> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO backfills (dag_id, from_date, to_date, reprocess, max_active_runs, reverse, conf, state, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {BACKFILL_COLS}"
        ))
        .bind(&nb.dag_id)
        .bind(to_micros(nb.from_date))
        .bind(to_micros(nb.to_date))
        .bind(nb.reprocess.as_str())
        .bind(nb.max_active_runs)
        .bind(i64::from(nb.reverse))
        .bind(nb.conf.to_string())
        .bind(BackfillState::Running.as_str())
        .bind(to_micros(Utc::now()))
        .fetch_one(&mut *tx)
        .await?;
        let rec = backfill_from_row(&row)?;
        for chunk in dates.chunks(200) {
            let mut q = Sql::new(
                "INSERT INTO backfill_dates (backfill_id, logical_date, data_interval_end, action, state) VALUES ",
            );
            for (i, (interval, action)) in chunk.iter().enumerate() {
                let state = if *action == DateAction::Skip {
                    DateState::Done
                } else {
                    DateState::Pending
                };
                q.push(if i == 0 { "(" } else { ", (" });
                q.bind(rec.id)
                    .push(", ")
                    .bind(to_micros(interval.start))
                    .push(", ")
                    .bind(to_micros(interval.end));
                q.push(", ")
                    .bind(action.as_str())
                    .push(", ")
                    .bind(state.as_str())
                    .push(")");
            }
            q.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(rec)
    }

    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRecord>> {
        sqlx::query(&format!(
            "SELECT {BACKFILL_COLS} FROM backfills WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(backfill_from_row)
        .transpose()
    }

    async fn list_backfills(
        &self,
        dag_id: Option<&str>,
        state: Option<BackfillState>,
        limit: i64,
    ) -> Result<Vec<BackfillRecord>> {
        let mut q = Sql::new(format!("SELECT {BACKFILL_COLS} FROM backfills WHERE 1 = 1"));
        if let Some(d) = dag_id {
            q.push(" AND dag_id = ").bind(d.to_string());
        }
        if let Some(s) = state {
            q.push(" AND state = ").bind(s.as_str());
        }
        q.push(" ORDER BY id DESC LIMIT ").bind(limit);
        q.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(backfill_from_row)
            .collect()
    }

    async fn set_backfill_state(
        &self,
        id: i64,
        from: BackfillState,
        to: BackfillState,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = (to != BackfillState::Running).then(|| to_micros(at));
        let r = sqlx::query(
            "UPDATE backfills SET state = $1, completed_at = $2 WHERE id = $3 AND state = $4",
        )
        .bind(to.as_str())
        .bind(done)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn backfill_dates(
        &self,
        id: i64,
        only: Option<DateState>,
        limit: Option<i64>,
        reverse: bool,
    ) -> Result<Vec<BackfillDate>> {
        let mut q = Sql::new(
            "SELECT d.logical_date, d.data_interval_end, d.action, d.state, d.dag_run_id, r.state AS run_state \
             FROM backfill_dates d LEFT JOIN dag_runs r ON r.id = d.dag_run_id WHERE d.backfill_id = ",
        );
        q.bind(id);
        if let Some(s) = only {
            q.push(" AND d.state = ").bind(s.as_str());
        }
        q.push(if reverse {
            " ORDER BY d.logical_date DESC"
        } else {
            " ORDER BY d.logical_date"
        });
        if let Some(l) = limit {
            q.push(" LIMIT ").bind(l);
        }
        let rows = q.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let run_state: Option<String> = r.try_get("run_state")?;
                Ok(BackfillDate {
                    logical_date: from_micros(r.try_get("logical_date")?),
                    data_interval_end: from_micros(r.try_get("data_interval_end")?),
                    action: state(r, "action")?,
                    state: state(r, "state")?,
                    dag_run_id: r.try_get("dag_run_id")?,
                    run_state: run_state.and_then(|s| s.parse().ok()),
                })
            })
            .collect()
    }

    async fn set_backfill_date(
        &self,
        id: i64,
        logical_date: DateTime<Utc>,
        state: DateState,
        run_pk: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE backfill_dates SET state = $1, dag_run_id = COALESCE($2, dag_run_id) \
             WHERE backfill_id = $3 AND logical_date = $4",
        )
        .bind(state.as_str())
        .bind(run_pk)
        .bind(id)
        .bind(to_micros(logical_date))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notify(&self) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn changes(&self) -> Result<Changes> {
        match self.backend {
            Backend::Postgres => {
                let mut l = PgListener::connect(&self.url).await?;
                l.listen(CHANNEL).await?;
                Ok(Changes::Postgres(Box::new(l)))
            }
            Backend::Sqlite => {
                let conn = self.pool.acquire().await?;
                let mut c = Changes::Sqlite { conn, last: 0 };
                if let Changes::Sqlite { conn, last } = &mut c {
                    *last = data_version(conn).await?;
                }
                Ok(c)
            }
        }
    }
}

async fn insert_tis(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunRecord,
    tasks: &[TaskSeed],
) -> Result<()> {
    for chunk in tasks.chunks(200) {
        let mut q = Sql::new(
            "INSERT INTO task_instances (dag_run_id, dag_id, run_id, task_id, state, max_tries, pool, priority) VALUES ",
        );
        for (i, t) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.bind(run.id)
                .push(", ")
                .bind(run.dag_id.clone())
                .push(", ")
                .bind(run.run_id.clone())
                .push(", ");
            q.bind(t.task_id.clone())
                .push(", ")
                .bind(TaskState::Pending.as_str())
                .push(", ");
            q.bind(i64::from(t.max_tries))
                .push(", ")
                .bind(t.pool.clone())
                .push(", ")
                .bind(i64::from(t.priority));
            q.push(")");
        }
        q.push(" ON CONFLICT (dag_run_id, task_id) DO NOTHING");
        q.query().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn data_version(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) -> Result<i64> {
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
