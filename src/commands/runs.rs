//! `tributary trigger` and `tributary runs`: start a run (and follow it),
//! list runs, force a run's outcome.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use scheduler::actions::ActionReport;
use scheduler::dag::Dag;
use scheduler::model::RunRecord;
use scheduler::state::RunState;
use scheduler::store::Store;
use scheduler::timetable::parse_datetime;
use serde_json::{Value, json};

use crate::cli::{MarkState, RunsCommand, TriggerArgs};
use crate::output::{self, opt_ts, secs, ts};
use crate::settings::Settings;

/// `runs …`.
pub async fn run(settings: &Settings, c: &RunsCommand) -> Result<ExitCode> {
    match c {
        RunsCommand::List { dag_id, limit } => list(settings, dag_id, *limit).await,
        RunsCommand::Mark {
            dag_id,
            run_id,
            state,
        } => {
            let store = settings.store().await?;
            let run = find_run(store.as_ref(), dag_id, run_id).await?;
            let r =
                scheduler::actions::mark_run(store.as_ref(), &run, *state == MarkState::Success)
                    .await?;
            report_action(
                settings,
                &format!("run {run_id} marked {}", state.word()),
                &r,
            )
        }
    }
}

/// `trigger`.
pub async fn trigger(settings: &Settings, a: &TriggerArgs) -> Result<ExitCode> {
    let store = settings.store().await?;
    let bag = settings.synced_bag(store.as_ref()).await?;
    let dag = bag.get(&a.dag_id)?;
    let conf: Value = match &a.conf {
        Some(text) => serde_json::from_str(text)
            .with_context(|| format!("--conf is not valid JSON: {text}"))?,
        None => Value::Null,
    };
    let logical_date = match &a.logical_date {
        Some(text) => Some(
            parse_datetime(text, dag.timetable.tz)
                .map_err(|e| anyhow::anyhow!("--logical-date {text:?}: {e}"))?,
        ),
        None => None,
    };
    let run = scheduler::runs::trigger(store.as_ref(), &dag, conf, logical_date).await?;
    if settings.json() && !a.wait {
        output::json(&run)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "triggered {} run {} (logical date {})",
        dag.dag_id,
        run.run_id,
        run.logical_date.to_rfc3339()
    );
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let limit = a.timeout.map(Duration::from_secs);
    wait_for_run(store.as_ref(), &dag, &run.run_id, limit).await
}

/// Follows a run until it ends, printing each task state change.
async fn wait_for_run(
    store: &dyn Store,
    dag: &Dag,
    run_id: &str,
    limit: Option<Duration>,
) -> Result<ExitCode> {
    let mut changes = store.changes(scheduler::store::Wake::OnAnyChange).await?;
    let mut seen: HashMap<String, (String, u32)> = HashMap::new();
    let started = std::time::Instant::now();
    let mut hinted = false;
    loop {
        let run = store
            .get_run(&dag.dag_id, run_id)
            .await?
            .with_context(|| format!("run {run_id} disappeared"))?;
        for ti in store.task_instances(&[run.id]).await? {
            let now = (ti.state.to_string(), ti.try_number);
            if seen.get(&ti.task_id) != Some(&now) {
                let try_txt = if ti.try_number > 0 {
                    format!(" (try {}/{})", ti.try_number, ti.max_tries)
                } else {
                    String::new()
                };
                let err = match (
                    &ti.error,
                    ti.state.is_finished() || ti.state == scheduler::state::TaskState::UpForRetry,
                ) {
                    (Some(e), true) if ti.state != scheduler::state::TaskState::Success => {
                        format!(": {e}")
                    }
                    _ => String::new(),
                };
                println!(
                    "{} {:<24} {}{try_txt}{err}",
                    Utc::now().format("%H:%M:%S%.3f"),
                    ti.task_id,
                    ti.state
                );
                seen.insert(ti.task_id.clone(), now);
            }
        }
        if run.state.is_finished() {
            let took = match (run.start_date, run.end_date) {
                (Some(s), Some(e)) => {
                    format!(" in {:.3}s", (e - s).num_milliseconds() as f64 / 1000.0)
                }
                _ => String::new(),
            };
            println!("run {} {}{took}", run.run_id, run.state);
            return Ok(if run.state == RunState::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        if limit.is_some_and(|l| started.elapsed() >= l) {
            eprintln!(
                "gave up waiting after {}s: run {run_id} is {}",
                started.elapsed().as_secs(),
                run.state
            );
            return Ok(ExitCode::from(2));
        }
        if !hinted && run.state == RunState::Queued && started.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "the run is still queued: is a scheduler running? (start one with `tributary scheduler`)"
            );
            hinted = true;
        }
        // Wake on a change, or re-check every second regardless.
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.next()).await;
    }
}

async fn list(settings: &Settings, dag_id: &str, limit: i64) -> Result<ExitCode> {
    let store = settings.store().await?;
    let runs = store.list_runs(dag_id, limit.max(1)).await?;
    if runs.is_empty() && store.get_dag(dag_id).await?.is_none() {
        settings.bag()?.get(dag_id)?;
    }
    if settings.json() {
        output::json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let dur = match (r.start_date, r.end_date) {
                (Some(s), Some(e)) => secs(Some((e - s).num_milliseconds())),
                _ => "-".into(),
            };
            vec![
                r.run_id.clone(),
                r.run_type.as_str().into(),
                r.state.to_string(),
                ts(r.logical_date),
                opt_ts(r.start_date),
                dur,
            ]
        })
        .collect();
    output::table(
        &[
            "RUN ID",
            "TYPE",
            "STATE",
            "LOGICAL DATE (UTC)",
            "STARTED",
            "DURATION",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// The run `run_id` of `dag_id`, or a "not found" error.
pub async fn find_run(store: &dyn Store, dag_id: &str, run_id: &str) -> Result<RunRecord> {
    Ok(scheduler::runs::find_run(store, dag_id, run_id).await?)
}

/// Prints what an operator action changed (or its JSON).
pub fn report_action(settings: &Settings, what: &str, r: &ActionReport) -> Result<ExitCode> {
    if settings.json() {
        output::json(&json!({"changed": r.changed, "busy": r.busy, "run_state": r.run_state}))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{what}");
    if !r.changed.is_empty() {
        println!("  changed: {}", r.changed.join(", "));
    }
    if !r.busy.is_empty() {
        println!("  left alone (executing): {}", r.busy.join(", "));
    }
    if let Some(s) = r.run_state {
        println!("  run is now {s}");
    }
    Ok(ExitCode::SUCCESS)
}
