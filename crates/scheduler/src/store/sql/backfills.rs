//! Backfills and their per-date plan.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Result;
use crate::model::{
    BackfillDate, BackfillRecord, BackfillState, DateAction, DateState, NewBackfill,
};
use crate::timetable::DataInterval;

use super::codec::{BACKFILL_COLS, Sql, backfill_from_row, from_micros, state, to_micros};
use super::connection::SqlStore;

pub(super) async fn create_backfill(
    store: &SqlStore,
    nb: &NewBackfill,
    dates: &[(DataInterval, DateAction)],
) -> Result<BackfillRecord> {
    let mut tx = store.pool.begin().await?;
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

pub(super) async fn get_backfill(store: &SqlStore, id: i64) -> Result<Option<BackfillRecord>> {
    sqlx::query(&format!(
        "SELECT {BACKFILL_COLS} FROM backfills WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&store.pool)
    .await?
    .as_ref()
    .map(backfill_from_row)
    .transpose()
}

pub(super) async fn list_backfills(
    store: &SqlStore,
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
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(backfill_from_row)
        .collect()
}

pub(super) async fn set_backfill_state(
    store: &SqlStore,
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
    .execute(&store.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn backfill_dates(
    store: &SqlStore,
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
    let rows = q.query().fetch_all(&store.pool).await?;
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

pub(super) async fn set_backfill_date(
    store: &SqlStore,
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
    .execute(&store.pool)
    .await?;
    Ok(())
}
