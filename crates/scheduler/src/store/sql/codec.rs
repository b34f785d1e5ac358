//! Row decoding and statement building shared by every table group:
//! timestamps as microseconds, stored enums as text, column lists, and `Sql`,
//! a statement with `$N` parameters both backends accept.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::any::AnyArguments;
use sqlx::any::AnyRow;
use sqlx::{Arguments, Row};

use crate::model::{BackfillRecord, DagRecord, RunRecord, RunType, SlotUsage, TaskInstance};
use crate::timetable::DataInterval;
use crate::{Error, Result};

/// Microseconds since the epoch, as stored.
pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored timestamp back as UTC.
pub(crate) fn from_micros(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

pub(super) fn opt_time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

pub(super) fn state<T: FromStr<Err = String>>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    T::from_str(&s).map_err(|e| Error::Database(sqlx::Error::Decode(e.into())))
}

/// A statement built at run time with `$N` parameters, which both
/// PostgreSQL and SQLite accept (sqlx's `QueryBuilder<Any>` writes `?`,
/// which PostgreSQL does not).
pub(super) struct Sql {
    text: String,
    args: AnyArguments<'static>,
    n: usize,
}

impl Sql {
    pub(super) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
        }
    }

    pub(super) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    pub(super) fn bind<T>(&mut self, value: T) -> &mut Sql
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
    pub(super) fn bind_list<T, I>(&mut self, values: I) -> &mut Sql
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
    pub(super) fn query(&mut self) -> sqlx::query::Query<'_, sqlx::Any, AnyArguments<'_>> {
        sqlx::query_with(&self.text, std::mem::take(&mut self.args))
    }
}

/// A database URL with any password replaced by `***`, for messages. A
/// text that is not a URL but has `user…@` in it loses everything between
/// the scheme and the `@`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
            _ => url.to_string(),
        },
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code()
                .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

pub(super) const RUN_COLS: &str = "id, dag_id, run_id, run_type, logical_date, data_interval_start, data_interval_end, \
                        state, conf, created_at, start_date, end_date, backfill_id";

pub(super) fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let run_type: String = row.try_get("run_type")?;
    let conf: String = row.try_get("conf")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        run_type: run_type.parse().unwrap_or(RunType::Manual),
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
pub(super) const SLOT_USAGE_SQL: &str = "SELECT pool, dag_id, COUNT(*) AS n FROM task_instances \
     WHERE state IN ('queued', 'running') GROUP BY pool, dag_id";

pub(super) fn slot_usage_from(rows: &[AnyRow]) -> Result<SlotUsage> {
    let mut u = SlotUsage::default();
    for r in rows {
        let n: i64 = r.try_get("n")?;
        *u.by_pool.entry(r.try_get("pool")?).or_insert(0) += n;
        *u.by_dag.entry(r.try_get("dag_id")?).or_insert(0) += n;
    }
    Ok(u)
}

pub(super) const BACKFILL_COLS: &str = "id, dag_id, from_date, to_date, reprocess, max_active_runs, reverse, conf, state, created_at, completed_at";

pub(super) fn backfill_from_row(row: &AnyRow) -> Result<BackfillRecord> {
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

pub(super) const TI_COLS: &str = "ti.id, ti.dag_run_id, ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.try_number, \
    ti.max_tries, ti.pool, ti.priority, ti.queued_at, ti.start_date, ti.end_date, ti.duration_ms, ti.hostname, \
    ti.pid, ti.next_retry_at, ti.heartbeat_at, ti.lease_owner, ti.error";

pub(super) fn ti_from_row(row: &AnyRow) -> Result<TaskInstance> {
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

pub(super) fn dag_from_row(row: &AnyRow) -> Result<DagRecord> {
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
