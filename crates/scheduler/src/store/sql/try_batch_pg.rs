//! PostgreSQL: a batch of try transitions as one set-based statement.
//!
//! One row per transition in a `VALUES` list `v` (the task instance, the
//! states, the lease condition, each patch field as a "touch" flag and a
//! value, the history row); one `UPDATE … FROM v` applies every change
//! that still holds, one `INSERT` writes the history rows and one the log
//! lines of the transitions that applied (or are kept when refused), and
//! one `pg_notify` wakes the other processes at commit. The text depends
//! only on the batch's size and log count, and the work is three writes
//! whatever the size: a batch of 128 costs about what one transition does.

use std::collections::HashSet;

use sqlx::{AnyConnection, Row};

use crate::Result;
use crate::model::{TiPatch, TryTransition};

use super::changes::CHANNEL;
use super::codec::{Sql, to_micros};
use super::task_instances::patch_fields;
use super::tries::{TRY_COLS, TRY_UPSERT};

/// Writes `ts` (at most one per task instance) in one statement, with a
/// notification carrying `payload`; returns whether each applied.
pub(super) async fn write_batch(
    conn: &mut AnyConnection,
    ts: &[&TryTransition],
    payload: &str,
) -> Result<Vec<bool>> {
    // The columns are the same for every transition; any patch names them.
    let columns = patch_fields(&TiPatch::default()).map(|f| f.column);
    let mut q = Sql::new("WITH v (i, id, from_state, to_state, owner, keep");
    for c in columns {
        q.push(&format!(", t_{c}, v_{c}"));
    }
    q.push(", h_try, h_state, h_start, h_end, h_duration, h_host, h_pid, h_error) AS (VALUES ");
    for (i, t) in ts.iter().enumerate() {
        let first = i == 0;
        let cast = |ty: &'static str| if first { ty } else { "" };
        q.push(if first { "(" } else { ", (" });
        q.bind(i64::try_from(i).unwrap_or(i64::MAX))
            .push(cast("::bigint"))
            .push(", ");
        q.bind(t.ti_id).push(cast("::bigint")).push(", ");
        q.bind(t.from.as_str()).push(cast("::text")).push(", ");
        q.bind(t.to.as_str()).push(cast("::text")).push(", ");
        q.bind(t.patch.only_if_owner.clone())
            .push(cast("::text"))
            .push(", ");
        q.bind(i64::from(t.keep_history_if_refused))
            .push(cast("::bigint"));
        for f in patch_fields(&t.patch) {
            q.push(", ")
                .bind(i64::from(f.set))
                .push(cast("::bigint"))
                .push(", ");
            let ty = f.value.pg_type();
            f.value.bind(&mut q);
            if first {
                q.push("::").push(ty);
            }
        }
        let r = &t.record;
        q.push(", ")
            .bind(i64::from(r.try_number))
            .push(cast("::bigint"));
        q.push(", ").bind(r.state.as_str()).push(cast("::text"));
        q.push(", ")
            .bind(to_micros(r.start_date))
            .push(cast("::bigint"));
        q.push(", ")
            .bind(r.end_date.map(to_micros))
            .push(cast("::bigint"));
        q.push(", ").bind(r.duration_ms).push(cast("::bigint"));
        q.push(", ").bind(r.hostname.clone()).push(cast("::text"));
        q.push(", ").bind(r.pid).push(cast("::bigint"));
        q.push(", ")
            .bind(r.error.clone())
            .push(cast("::text"))
            .push(")");
    }
    q.push("), c AS (UPDATE task_instances AS ti SET state = v.to_state");
    for c in columns {
        q.push(&format!(
            ", {c} = CASE WHEN v.t_{c} = 1 THEN v.v_{c} ELSE ti.{c} END"
        ));
    }
    q.push(
        " FROM v WHERE ti.id = v.id AND ti.state = v.from_state \
         AND (v.owner IS NULL OR ti.lease_owner = v.owner) RETURNING v.i), \
         written AS (SELECT * FROM v WHERE v.keep = 1 OR v.i IN (SELECT i FROM c)), \
         h AS (INSERT INTO ",
    )
    .push(TRY_COLS)
    .push(
        " SELECT id, h_try, h_state, h_start, h_end, h_duration, h_host, h_pid, h_error \
         FROM written WHERE TRUE",
    )
    .push(TRY_UPSERT)
    .push(" RETURNING 1)");
    let logs: usize = ts.iter().map(|t| t.logs.len()).sum();
    if logs > 0 {
        q.push(", l AS (INSERT INTO task_logs (ti_id, try_number, ts, line) SELECT w.id, w.h_try, lv.ts, lv.line FROM (VALUES ");
        let mut first = true;
        for (i, t) in ts.iter().enumerate() {
            for (n, (ts, line)) in t.logs.iter().enumerate() {
                let cast = |ty: &'static str| if first { ty } else { "" };
                q.push(if first { "(" } else { ", (" });
                q.bind(i64::try_from(i).unwrap_or(i64::MAX))
                    .push(cast("::bigint"))
                    .push(", ");
                q.bind(i64::try_from(n).unwrap_or(i64::MAX))
                    .push(cast("::bigint"))
                    .push(", ");
                q.bind(to_micros(*ts)).push(cast("::bigint")).push(", ");
                q.bind(line.clone()).push(cast("::text")).push(")");
                first = false;
            }
        }
        q.push(") AS lv (i, n, ts, line) JOIN written AS w ON w.i = lv.i ORDER BY lv.i, lv.n RETURNING 1)");
    }
    q.push(" SELECT i FROM c UNION ALL SELECT -1 FROM (SELECT pg_notify(")
        .bind(CHANNEL)
        .push(", ")
        .bind(payload.to_string())
        .push(")) AS n");
    let applied: HashSet<i64> = q
        .query()
        .persistent(false)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("i"))
        .collect::<std::result::Result<_, _>>()?;
    Ok((0..ts.len())
        .map(|i| applied.contains(&i64::try_from(i).unwrap_or(i64::MAX)))
        .collect())
}
