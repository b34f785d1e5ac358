//! Task logs: one row per line per try, appended in batches and tailed by id.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use crate::Result;
use crate::model::LogLine;

use super::codec::{Sql, from_micros, to_micros};
use super::connection::SqlStore;

pub(super) async fn append_logs(
    conn: &mut AnyConnection,
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
        q.query().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn read_logs(
    store: &SqlStore,
    ti_id: i64,
    try_number: u32,
    after: i64,
) -> Result<Vec<LogLine>> {
    let rows = sqlx::query(
        "SELECT id, try_number, ts, line FROM task_logs WHERE ti_id = $1 AND try_number = $2 AND id > $3 ORDER BY id",
    )
    .bind(ti_id)
    .bind(i64::from(try_number))
    .bind(after)
    .fetch_all(&store.pool)
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
