//! Backfills: fill (or refill) a DAG's history over a date range.
//!
//! `tributary backfill` plans every logical date of the range and records the
//! plan in the database ([`create`]); schedulers then create or clear the
//! runs a few at a time ([`advance`], called from every tick), so a backfill
//! survives the CLI exiting and any scheduler restart. Backfill runs have
//! their own `max_active_runs` and start after the DAG's regular runs, so
//! they never starve the schedule.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::actions::{ClearOptions, clear};
use crate::dag::Dag;
use crate::model::{
    BackfillDate, BackfillRecord, BackfillState, DateAction, DateState, NewBackfill, Reprocess,
    RunType,
};
use crate::state::RunState;
use crate::store::Store;
use crate::timetable::{DataInterval, Schedule};
use crate::{Error, Result};

/// Backfill runs queued or running at once unless told otherwise (the CLI
/// flag, the API field and the UI form share it).
pub const DEFAULT_MAX_ACTIVE_RUNS: i64 = 4;

/// Counts for progress displays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Progress {
    /// Dates in the range.
    pub total: usize,
    /// Dates left alone (they already had a run).
    pub skipped: usize,
    /// Not started.
    pub pending: usize,
    /// Run queued.
    pub queued: usize,
    /// Run running.
    pub running: usize,
    /// Run succeeded.
    pub success: usize,
    /// Run failed.
    pub failed: usize,
    /// Not started because the backfill was cancelled.
    pub cancelled: usize,
}

impl Progress {
    /// Counts the dates of a backfill.
    pub fn of(dates: &[BackfillDate]) -> Progress {
        let mut p = Progress {
            total: dates.len(),
            ..Progress::default()
        };
        for d in dates {
            match (d.action, d.state, d.run_state) {
                (DateAction::Skip, _, _) => p.skipped += 1,
                (_, DateState::Pending, _) => p.pending += 1,
                (_, DateState::Cancelled, _) => p.cancelled += 1,
                (_, _, Some(RunState::Queued)) => p.queued += 1,
                (_, _, Some(RunState::Running)) => p.running += 1,
                (_, _, Some(RunState::Success)) => p.success += 1,
                (_, _, Some(RunState::Failed)) => p.failed += 1,
                (_, _, None) => p.pending += 1,
            }
        }
        p
    }

    /// Dates that will not change any more.
    pub fn finished(&self) -> usize {
        self.skipped + self.success + self.failed + self.cancelled
    }
}

/// Decides what to do with each interval given the runs that already exist
/// (by logical date). Active runs are never touched.
pub fn plan(
    intervals: &[DataInterval],
    existing: &HashMap<DateTime<Utc>, RunState>,
    reprocess: Reprocess,
) -> Vec<(DataInterval, DateAction)> {
    intervals
        .iter()
        .map(|i| {
            let action = match (existing.get(&i.start), reprocess) {
                (None, _) => DateAction::Create,
                (Some(RunState::Queued | RunState::Running), _) => DateAction::Skip,
                (Some(_), Reprocess::Missing) => DateAction::Skip,
                (Some(RunState::Failed), Reprocess::Failed) => DateAction::Clear,
                (Some(_), Reprocess::Failed) => DateAction::Skip,
                (Some(_), Reprocess::All) => DateAction::Clear,
            };
            (*i, action)
        })
        .collect()
}

/// Checks a range against the DAG and plans it (no writes): the intervals
/// whose logical dates lie in `[from, to]` and what to do with each.
pub async fn prepare(
    store: &dyn Store,
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    reprocess: Reprocess,
    reverse: bool,
) -> Result<Vec<(DataInterval, DateAction)>> {
    let tt = &dag.timetable;
    // Dates as the user gave them: in the DAG's zone, zone named.
    let local = |t: DateTime<Utc>| crate::timetable::format_in(t, tt.tz);
    if matches!(tt.schedule, Schedule::None) {
        return Err(Error::Invalid(format!(
            "DAG {:?} has no schedule, so it has no logical dates to backfill; trigger runs with `tributary trigger` instead",
            dag.dag_id
        )));
    }
    if to < from {
        return Err(Error::Invalid(format!(
            "--to ({}) is before --from ({})",
            local(to),
            local(from)
        )));
    }
    if let Some(s) = tt.start.filter(|s| from < *s) {
        return Err(Error::Invalid(format!(
            "--from ({}) is before the DAG's start_date ({})",
            local(from),
            local(s)
        )));
    }
    if let Some(e) = tt.end.filter(|e| to > *e) {
        return Err(Error::Invalid(format!(
            "--to ({}) is after the DAG's end_date ({})",
            local(to),
            local(e)
        )));
    }
    let intervals = tt.intervals_between(from, to);
    if intervals.is_empty() {
        return Err(Error::Invalid(format!(
            "no logical date of schedule {:?} lies between {} and {}",
            tt.schedule.as_text(),
            local(from),
            local(to)
        )));
    }
    let existing: HashMap<DateTime<Utc>, RunState> = store
        .runs_between(&dag.dag_id, from, to)
        .await?
        .into_iter()
        .map(|r| (r.logical_date, r.state))
        .collect();
    let mut p = plan(&intervals, &existing, reprocess);
    if reverse {
        p.reverse();
    }
    Ok(p)
}

/// Checks a backfill's conf against the DAG's params and plans its range,
/// writing nothing: what `--dry-run` shows and what [`create`] records.
pub async fn dry_run(
    store: &dyn Store,
    dag: &Dag,
    nb: &NewBackfill,
) -> Result<Vec<(DataInterval, DateAction)>> {
    dag.params
        .resolve(&nb.conf)
        .map_err(|problems| Error::InvalidConf {
            dag_id: dag.dag_id.clone(),
            problems,
        })?;
    prepare(
        store,
        dag,
        nb.from_date,
        nb.to_date,
        nb.reprocess,
        nb.reverse,
    )
    .await
}

/// Records a backfill; schedulers execute it.
pub async fn create(
    store: &dyn Store,
    dag: &Dag,
    nb: &NewBackfill,
) -> Result<(BackfillRecord, Vec<(DataInterval, DateAction)>)> {
    if nb.max_active_runs < 1 {
        return Err(Error::Invalid(
            "--max-active-runs must be at least 1".into(),
        ));
    }
    let planned = dry_run(store, dag, nb).await?;
    let rec = store.create_backfill(nb, &planned).await?;
    store.notify().await?;
    Ok((rec, planned))
}

/// Cancels a backfill: no new runs; its queued runs are marked failed;
/// running ones finish on their own.
pub async fn cancel(store: &dyn Store, id: i64) -> Result<BackfillRecord> {
    let bf = store
        .get_backfill(id)
        .await?
        .ok_or_else(|| Error::Invalid(format!("backfill {id} not found")))?;
    if bf.state != BackfillState::Running {
        return Err(Error::Invalid(format!(
            "backfill {id} is already {}",
            bf.state
        )));
    }
    store
        .set_backfill_state(
            id,
            BackfillState::Running,
            BackfillState::Cancelled,
            Utc::now(),
        )
        .await?;
    for d in store.backfill_dates(id, None, None, false).await? {
        match d.state {
            DateState::Pending => {
                store
                    .set_backfill_date(id, d.logical_date, DateState::Cancelled, None)
                    .await?;
            }
            DateState::Started if d.run_state == Some(RunState::Queued) => {
                if let Some(run) = store.run_by_pk(d.dag_run_id.unwrap_or_default()).await? {
                    crate::actions::mark_run(store, &run, false).await?;
                }
            }
            _ => {}
        }
    }
    store.notify().await?;
    store
        .get_backfill(id)
        .await?
        .ok_or_else(|| Error::Invalid(format!("backfill {id} vanished")))
}

/// One scheduler step for every running backfill: marks dates whose run
/// ended, creates or clears runs up to the backfill's `max_active_runs`, and
/// completes backfills with nothing left. Returns how many runs it started.
pub async fn advance(
    store: &dyn Store,
    dags: &std::collections::BTreeMap<String, std::sync::Arc<Dag>>,
) -> Result<usize> {
    let mut started = 0;
    for bf in store
        .list_backfills(None, Some(BackfillState::Running), 1000)
        .await?
    {
        let Some(dag) = dags.get(&bf.dag_id) else {
            continue;
        };
        let mut active = 0;
        for d in store
            .backfill_dates(bf.id, Some(DateState::Started), None, false)
            .await?
        {
            match d.run_state {
                Some(RunState::Success | RunState::Failed) | None => {
                    store
                        .set_backfill_date(bf.id, d.logical_date, DateState::Done, d.dag_run_id)
                        .await?;
                }
                Some(_) => active += 1,
            }
        }
        let room = bf.max_active_runs - active;
        let pending = if room > 0 {
            store
                .backfill_dates(bf.id, Some(DateState::Pending), Some(room), bf.reverse)
                .await?
        } else {
            Vec::new()
        };
        for d in &pending {
            let interval = DataInterval {
                start: d.logical_date,
                end: d.data_interval_end,
            };
            let run_pk = match d.action {
                DateAction::Create => {
                    match crate::runs::create_run(
                        store,
                        dag,
                        RunType::Backfill,
                        interval,
                        bf.conf.clone(),
                        Some(bf.id),
                    )
                    .await
                    {
                        Ok(run) => Some(run.id),
                        // The date already has a run: ours, created by a scheduler that
                        // died before recording it here, or one the schedule created
                        // meanwhile. Adopt it, so the backfill waits for its outcome.
                        Err(Error::RunExists { .. }) => store
                            .run_at(&bf.dag_id, d.logical_date)
                            .await?
                            .map(|r| r.id),
                        Err(e) => return Err(e),
                    }
                }
                DateAction::Clear => match store.run_at(&bf.dag_id, d.logical_date).await? {
                    Some(run) if run.state.is_finished() => {
                        clear(store, dag, &run, &ClearOptions::default()).await?;
                        store.set_run_backfill(run.id, bf.id).await?;
                        Some(run.id)
                    }
                    _ => None,
                },
                DateAction::Skip => None,
            };
            let state = if run_pk.is_some() {
                DateState::Started
            } else {
                DateState::Done
            };
            store
                .set_backfill_date(bf.id, d.logical_date, state, run_pk)
                .await?;
            if run_pk.is_some() {
                started += 1;
                active += 1;
            }
        }
        if active == 0 && pending.is_empty() && room > 0 {
            store
                .set_backfill_state(
                    bf.id,
                    BackfillState::Running,
                    BackfillState::Completed,
                    Utc::now(),
                )
                .await?;
            store.notify().await?;
        }
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()
    }

    #[test]
    fn plans_each_reprocess_mode() {
        let intervals: Vec<DataInterval> = (1..=5)
            .map(|i| DataInterval {
                start: d(i),
                end: d(i + 1),
            })
            .collect();
        let existing: HashMap<_, _> = [
            (d(1), RunState::Success),
            (d(2), RunState::Failed),
            (d(3), RunState::Running),
            (d(4), RunState::Queued),
        ]
        .into();
        let actions = |r| {
            plan(&intervals, &existing, r)
                .into_iter()
                .map(|(_, a)| a)
                .collect::<Vec<_>>()
        };
        use DateAction::*;
        assert_eq!(
            actions(Reprocess::Missing),
            vec![Skip, Skip, Skip, Skip, Create]
        );
        assert_eq!(
            actions(Reprocess::Failed),
            vec![Skip, Clear, Skip, Skip, Create]
        );
        assert_eq!(
            actions(Reprocess::All),
            vec![Clear, Clear, Skip, Skip, Create]
        );
    }

    #[test]
    fn progress_counts() {
        let mk = |action, state, run_state| BackfillDate {
            logical_date: d(1),
            data_interval_end: d(2),
            action,
            state,
            dag_run_id: None,
            run_state,
        };
        let p = Progress::of(&[
            mk(DateAction::Skip, DateState::Done, Some(RunState::Success)),
            mk(DateAction::Create, DateState::Pending, None),
            mk(
                DateAction::Create,
                DateState::Started,
                Some(RunState::Running),
            ),
            mk(DateAction::Clear, DateState::Done, Some(RunState::Failed)),
            mk(DateAction::Create, DateState::Done, Some(RunState::Success)),
            mk(DateAction::Create, DateState::Cancelled, None),
        ]);
        assert_eq!(
            (
                p.total,
                p.skipped,
                p.pending,
                p.running,
                p.failed,
                p.success,
                p.cancelled
            ),
            (6, 1, 1, 1, 1, 1, 1)
        );
        assert_eq!(p.finished(), 4);
    }
}
