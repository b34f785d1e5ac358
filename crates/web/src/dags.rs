//! DAGs as the server sees them: parsed from the source the scheduler
//! recorded in the store (cached by source hash), and the read models the
//! API and the pages share (summaries, grids, runs with their tasks).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use scheduler::dag::{Dag, parse_dag};
use scheduler::model::{DagRecord, RunRecord, TaskInstance};
use scheduler::operator::Kinds;
use scheduler::state::{RunState, TaskState};
use scheduler::store::Store;
use scheduler::timetable::format_in;
use serde::Serialize;

use crate::error::Failure;

/// Parsed DAGs by id, with the source hash they were parsed from.
pub(crate) struct DagCache {
    kinds: Kinds,
    parsed: Mutex<HashMap<String, (String, Arc<Dag>)>>,
}

impl DagCache {
    pub(crate) fn new(kinds: Kinds) -> DagCache {
        DagCache {
            kinds,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The DAG as recorded, parsed.
    pub(crate) fn parse(&self, rec: &DagRecord) -> Result<Arc<Dag>, Failure> {
        let mut cache = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((hash, dag)) = cache.get(&rec.dag_id)
            && *hash == rec.source_hash
        {
            return Ok(dag.clone());
        }
        let dag = parse_dag(Path::new(&rec.fileloc), &rec.source, &self.kinds).map_err(|d| {
            Failure::internal(
                "parsing a recorded DAG",
                &d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let dag = Arc::new(dag);
        cache.insert(rec.dag_id.clone(), (rec.source_hash.clone(), dag.clone()));
        Ok(dag)
    }

    /// One DAG by id for reading: its record and the parsed DAG, also when
    /// its file was removed from the DAGs folder (its runs stay reachable;
    /// `rec.is_active` says which).
    pub(crate) async fn read(
        &self,
        store: &dyn Store,
        dag_id: &str,
    ) -> Result<(DagRecord, Arc<Dag>), Failure> {
        let rec = record(store, dag_id).await?;
        let dag = self.parse(&rec)?;
        Ok((rec, dag))
    }

    /// One DAG by id for a change (trigger, clear, mark, pause, backfill):
    /// its record and the parsed DAG; refused when its file was removed.
    pub(crate) async fn get(
        &self,
        store: &dyn Store,
        dag_id: &str,
    ) -> Result<(DagRecord, Arc<Dag>), Failure> {
        let rec = record(store, dag_id).await?;
        if !rec.is_active {
            return Err(Failure::not_found(format!(
                "DAG {dag_id:?} is no longer in the DAGs folder (its file was removed or is broken): \
                 its runs can be read but not changed"
            )));
        }
        let dag = self.parse(&rec)?;
        Ok((rec, dag))
    }
}

/// A DAG's record, or "not found".
async fn record(store: &dyn Store, dag_id: &str) -> Result<DagRecord, Failure> {
    store.get_dag(dag_id).await?.ok_or_else(|| {
        Failure::not_found(format!(
            "DAG {dag_id:?} not found (is its file in the scheduler's DAGs folder?)"
        ))
    })
}

/// A run shown as a coloured mark.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct RunMark {
    pub run_id: String,
    pub state: RunState,
    pub logical_date: DateTime<Utc>,
}

/// One line of the DAG list.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct DagSummary {
    pub dag_id: String,
    pub description: String,
    pub schedule: String,
    pub timezone: String,
    pub tags: Vec<String>,
    pub is_paused: bool,
    pub fileloc: String,
    pub next_logical_date: Option<DateTime<Utc>>,
    /// When the scheduler creates that next run: the end of its data
    /// interval (what `dags next-runs` calls "created after").
    pub next_run_created_after: Option<DateTime<Utc>>,
    /// Newest last.
    pub recent_runs: Vec<RunMark>,
    /// Runs per state, every state listed (0 when none).
    pub run_counts: Vec<StateCount>,
    /// The next run's creation time in the DAG's zone, zone named (pages).
    #[serde(skip)]
    pub next_run_local: String,
}

/// How many runs are in one state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct StateCount {
    pub state: RunState,
    pub count: i64,
}

/// How many runs the DAG list shows per DAG.
pub(crate) const RECENT_RUNS: i64 = 10;

/// The active DAGs, optionally with a tag, with their next and last runs.
pub(crate) async fn summaries(
    store: &dyn Store,
    cache: &DagCache,
    tag: Option<&str>,
) -> Result<Vec<DagSummary>, Failure> {
    let now = Utc::now();
    let counts = store.run_counts().await?;
    let mut runs = store.runs_of_every_dag(RECENT_RUNS).await?;
    let mut out = Vec::new();
    for rec in store.list_dags().await? {
        if !rec.is_active || tag.is_some_and(|t| !rec.tags.iter().any(|x| x == t)) {
            continue;
        }
        let dag = cache.parse(&rec)?;
        let last = runs.last_scheduled.remove(&rec.dag_id);
        let next = if rec.is_paused {
            None
        } else {
            dag.timetable
                .next_dagrun(last.as_ref().map(|r| &r.data_interval), now)
        };
        let mut recent: Vec<RunMark> = runs
            .recent
            .remove(&rec.dag_id)
            .unwrap_or_default()
            .into_iter()
            .map(|r| RunMark {
                run_id: r.run_id,
                state: r.state,
                logical_date: r.logical_date,
            })
            .collect();
        recent.reverse();
        out.push(DagSummary {
            description: rec.description,
            schedule: rec.schedule,
            timezone: rec.timezone,
            tags: rec.tags,
            is_paused: rec.is_paused,
            fileloc: rec.fileloc,
            next_logical_date: next.map(|i| i.start),
            next_run_created_after: next.map(|i| i.end),
            recent_runs: recent,
            run_counts: RunState::ALL
                .iter()
                .map(|&state| StateCount {
                    state,
                    count: counts
                        .iter()
                        .find(|(d, s, _)| *d == rec.dag_id && *s == state)
                        .map_or(0, |c| c.2),
                })
                .collect(),
            next_run_local: next
                .map(|i| format_in(i.end, dag.timetable.tz))
                .unwrap_or_default(),
            dag_id: rec.dag_id,
        });
    }
    Ok(out)
}

/// Every tag of the active DAGs, sorted.
pub(crate) async fn all_tags(store: &dyn Store) -> Result<Vec<String>, Failure> {
    let mut tags: Vec<String> = store
        .list_dags()
        .await?
        .into_iter()
        .filter(|d| d.is_active)
        .flat_map(|d| d.tags)
        .collect();
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// A page of runs, newest first, and the cursor of the next page.
pub(crate) struct RunPage {
    pub runs: Vec<RunRecord>,
    pub next_before: Option<DateTime<Utc>>,
}

/// Runs of a DAG before a cursor (keyset pagination), at most `limit`.
pub(crate) async fn run_page(
    store: &dyn Store,
    dag_id: &str,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<RunPage, Failure> {
    // One more than asked tells whether another page exists.
    let mut runs = match before {
        Some(b) => store.runs_before(dag_id, b, limit + 1).await?,
        None => store.list_runs(dag_id, limit + 1).await?,
    };
    let more = runs.len() as i64 > limit;
    runs.truncate(usize::try_from(limit).unwrap_or(0));
    let next_before = more.then(|| runs.last().map(|r| r.logical_date)).flatten();
    Ok(RunPage { runs, next_before })
}

/// One run and its task instances, in the DAG's task order.
pub(crate) async fn run_with_tasks(
    store: &dyn Store,
    dag: &Dag,
    run_id: &str,
) -> Result<(RunRecord, Vec<TaskInstance>), Failure> {
    let run = scheduler::runs::find_run(store, &dag.dag_id, run_id).await?;
    let mut tis = store.task_instances(&[run.id]).await?;
    tis.sort_by_key(|t| dag.position(&t.task_id).unwrap_or(usize::MAX));
    Ok((run, tis))
}

/// Task states per run: `run pk → task id → state`.
pub(crate) async fn states_by_run(
    store: &dyn Store,
    runs: &[RunRecord],
) -> Result<HashMap<i64, HashMap<String, TaskState>>, Failure> {
    let pks: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let mut out: HashMap<i64, HashMap<String, TaskState>> = HashMap::new();
    if pks.is_empty() {
        return Ok(out);
    }
    for ti in store.task_instances(&pks).await? {
        out.entry(ti.dag_run_id)
            .or_default()
            .insert(ti.task_id, ti.state);
    }
    Ok(out)
}

/// Parses a cursor or a date given in a query string (RFC 3339).
pub(crate) fn parse_cursor(text: &str, what: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            Failure::bad_request(format!(
                "{what} {text:?} is not an RFC 3339 date-time (like 2026-11-21T00:00:00Z): {e}"
            ))
        })
}
