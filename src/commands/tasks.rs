//! `tributary tasks`: task instances of a run, their logs, clear and mark,
//! and the task kinds with their settings and record schemas.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::runs::{find_run, report_action};
use crate::cli::{MarkState, TasksCommand};
use crate::output::{self, opt_ts, secs, ts};
use crate::settings::Settings;

/// `tasks …`.
pub async fn run(settings: &Settings, c: &TasksCommand) -> Result<ExitCode> {
    match c {
        TasksCommand::Clear {
            dag_id,
            run_id,
            task,
            downstream,
            upstream,
            failed_only,
        } => {
            clear(
                settings,
                dag_id,
                run_id,
                task.as_deref(),
                *downstream,
                *upstream,
                *failed_only,
            )
            .await
        }
        TasksCommand::Mark {
            dag_id,
            run_id,
            task_id,
            state,
        } => mark(settings, dag_id, run_id, task_id, *state).await,
        TasksCommand::Schema { record, format } => match record.as_str() {
            "random_user" => {
                if format == "arrow" {
                    let schema = tasks::random_user::user_record_arrow_schema();
                    let fields: Vec<Value> = schema
                        .fields()
                        .iter()
                        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
                        .collect();
                    output::json(&json!({"fields": fields}))?;
                } else {
                    output::json(&tasks::random_user::user_record_json_schema())?;
                }
                Ok(ExitCode::SUCCESS)
            }
            other => bail!("unknown record type {other:?} (known: random_user)"),
        },
        TasksCommand::Tries {
            dag_id,
            run_id,
            task_id,
        } => tries(settings, dag_id, run_id, task_id).await,
        TasksCommand::Kinds => kinds(settings),
        TasksCommand::List { dag_id, run_id } => list(settings, dag_id, run_id).await,
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
        } => logs(settings, dag_id, run_id, task_id, *try_number).await,
    }
}

async fn clear(
    settings: &Settings,
    dag_id: &str,
    run_id: &str,
    task: Option<&str>,
    downstream: bool,
    upstream: bool,
    failed_only: bool,
) -> Result<ExitCode> {
    let store = settings.store().await?;
    let bag = settings.synced_bag(store.as_ref()).await?;
    let dag = bag.get(dag_id)?;
    let run = find_run(store.as_ref(), dag_id, run_id).await?;
    let opts = scheduler::actions::ClearOptions {
        task: task.map(str::to_string),
        downstream,
        upstream,
        failed_only,
    };
    let r = scheduler::actions::clear(store.as_ref(), &dag, &run, &opts).await?;
    if r.changed.is_empty() && !settings.json() {
        println!("nothing to clear in run {run_id}");
        return Ok(ExitCode::SUCCESS);
    }
    report_action(
        settings,
        &format!("cleared {} task(s) of run {run_id}", r.changed.len()),
        &r,
    )
}

async fn mark(
    settings: &Settings,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    state: MarkState,
) -> Result<ExitCode> {
    let store = settings.store().await?;
    let bag = settings.synced_bag(store.as_ref()).await?;
    let dag = bag.get(dag_id)?;
    let run = find_run(store.as_ref(), dag_id, run_id).await?;
    let r = scheduler::actions::mark_task(
        store.as_ref(),
        &dag,
        &run,
        task_id,
        state == MarkState::Success,
    )
    .await?;
    report_action(
        settings,
        &format!("task {task_id} marked {}", state.word()),
        &r,
    )
}

fn kinds(settings: &Settings) -> Result<ExitCode> {
    if settings.json() {
        let v: Vec<Value> = settings
            .kinds
            .iter()
            .map(|k| json!({"kind": k.name(), "summary": k.summary(), "settings": k.settings_schema()}))
            .collect();
        output::json(&v)?;
    } else {
        for k in settings.kinds.iter() {
            println!("{:<8} {}", k.name(), k.summary());
            let schema = k.settings_schema();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, p) in props {
                    let desc = p.get("description").and_then(Value::as_str).unwrap_or("");
                    // Every line: the default and the examples come after the first.
                    let mut lines = desc.lines().filter(|l| !l.trim().is_empty());
                    println!("         {name:<16} {}", lines.next().unwrap_or(""));
                    for l in lines {
                        println!("         {:<16} {}", "", l.trim());
                    }
                    if let Some(d) = p.get("default").filter(|d| !d.is_null()) {
                        println!("         {:<16} default: {d}", "");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(settings: &Settings, dag_id: &str, run_id: &str) -> Result<ExitCode> {
    let store = settings.store().await?;
    let run = scheduler::runs::find_run(store.as_ref(), dag_id, run_id).await?;
    let tis = store.task_instances(&[run.id]).await?;
    if settings.json() {
        output::json(&tis)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = tis
        .iter()
        .map(|t| {
            vec![
                t.task_id.clone(),
                t.state.to_string(),
                format!("{}/{}", t.try_number, t.max_tries),
                opt_ts(t.start_date),
                opt_ts(t.end_date),
                secs(t.duration_ms),
                t.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    println!("run {} of {}: {}", run.run_id, run.dag_id, run.state);
    output::table(
        &["TASK", "STATE", "TRY", "START", "END", "DURATION", "ERROR"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn tries(settings: &Settings, dag_id: &str, run_id: &str, task_id: &str) -> Result<ExitCode> {
    let store = settings.store().await?;
    let (_, ti) =
        scheduler::runs::find_task_instance(store.as_ref(), dag_id, run_id, task_id).await?;
    let tries = store.tries(&[ti.id]).await?;
    if settings.json() {
        output::json(&tries)?;
        return Ok(ExitCode::SUCCESS);
    }
    if tries.is_empty() {
        println!("task {task_id} has not run yet (state {})", ti.state);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = tries
        .iter()
        .map(|t| {
            vec![
                t.try_number.to_string(),
                t.state.to_string(),
                ts(t.start_date),
                opt_ts(t.end_date),
                secs(t.duration_ms),
                t.hostname.clone().unwrap_or_default(),
                t.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    println!(
        "task {task_id} of run {run_id}: {} (try {}/{})",
        ti.state, ti.try_number, ti.max_tries
    );
    output::table(
        &["TRY", "STATE", "START", "END", "DURATION", "HOST", "ERROR"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn logs(
    settings: &Settings,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: Option<u32>,
) -> Result<ExitCode> {
    let store = settings.store().await?;
    let (_, ti) =
        scheduler::runs::find_task_instance(store.as_ref(), dag_id, run_id, task_id).await?;
    let t = try_number.unwrap_or(ti.try_number);
    if t == 0 {
        println!("task {task_id} has not run yet (state {})", ti.state);
        return Ok(ExitCode::SUCCESS);
    }
    if t > ti.try_number {
        bail!(
            "task {task_id} has had {} tr{} so far; there is no try {t}",
            ti.try_number,
            if ti.try_number == 1 { "y" } else { "ies" }
        );
    }
    let lines = store.read_logs(ti.id, t, 0).await?;
    if settings.json() {
        output::json(&lines)?;
    } else {
        for l in lines {
            println!("[{}] {}", l.ts.format("%Y-%m-%d %H:%M:%S%.3f"), l.line);
        }
    }
    Ok(ExitCode::SUCCESS)
}
