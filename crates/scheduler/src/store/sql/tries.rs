//! Try history: one row per try of a task instance, upserted when the try
//! starts and when it ends.

use sqlx::{AnyConnection, Row};

use crate::Result;
use crate::model::TryRecord;

use super::codec::{Sql, from_micros, opt_time, state, to_micros};
use super::connection::SqlStore;

/// The history row's columns, and what a new row replaces in an old one.
pub(super) const TRY_COLS: &str = "task_tries (ti_id, try_number, state, start_date, end_date, duration_ms, hostname, pid, error)";
// `ON CONFLICT … DO UPDATE` is the same on PostgreSQL and SQLite ≥ 3.24.
pub(super) const TRY_UPSERT: &str = " ON CONFLICT (ti_id, try_number) DO UPDATE SET state = excluded.state, \
     start_date = excluded.start_date, end_date = excluded.end_date, \
     duration_ms = excluded.duration_ms, hostname = excluded.hostname, \
     pid = excluded.pid, error = excluded.error";

pub(super) async fn record_try(conn: &mut AnyConnection, t: &TryRecord) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {TRY_COLS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9){TRY_UPSERT}"
    ))
    .bind(t.ti_id)
    .bind(i64::from(t.try_number))
    .bind(t.state.as_str())
    .bind(to_micros(t.start_date))
    .bind(t.end_date.map(to_micros))
    .bind(t.duration_ms)
    .bind(t.hostname.clone())
    .bind(t.pid)
    .bind(t.error.clone())
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn tries(store: &SqlStore, ti_ids: &[i64]) -> Result<Vec<TryRecord>> {
    if ti_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Sql::new(
        "SELECT ti_id, try_number, state, start_date, end_date, duration_ms, hostname, pid, error \
         FROM task_tries WHERE ti_id IN (",
    );
    q.bind_list(ti_ids.iter().copied())
        .push(") ORDER BY ti_id, try_number");
    q.query()
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TryRecord {
                ti_id: r.try_get("ti_id")?,
                try_number: u32::try_from(r.try_get::<i64, _>("try_number")?).unwrap_or(0),
                state: state(r, "state")?,
                start_date: from_micros(r.try_get("start_date")?),
                end_date: opt_time(r, "end_date")?,
                duration_ms: r.try_get("duration_ms")?,
                hostname: r.try_get("hostname")?,
                pid: r.try_get("pid")?,
                error: r.try_get("error")?,
            })
        })
        .collect()
}
