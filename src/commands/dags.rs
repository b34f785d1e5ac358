//! `tributary dags`: list, show, validate, pause DAGs and preview their
//! schedules.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::Utc;
use scheduler::dag::Dag;
use scheduler::dagbag::DagBag;
use scheduler::state::RunState;
use scheduler::store::Store;
use scheduler::timetable::format_in;
use serde_json::json;

use crate::cli::DagsCommand;
use crate::output::{self, ts};
use crate::settings::Settings;

/// `dags …`.
pub async fn run(settings: &Settings, c: &DagsCommand) -> Result<ExitCode> {
    match c {
        DagsCommand::Validate { paths } => validate(settings, paths).await,
        DagsCommand::Schema => {
            output::json(&scheduler::dag::file::json_schema(&settings.kinds))?;
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::NextRuns { dag_id, count } => {
            let bag = settings.bag()?;
            let dag = bag.get(dag_id)?;
            next_runs(settings, &dag, *count)
        }
        DagsCommand::Show { dag_id } => {
            let bag = settings.bag()?;
            show(settings, &*bag.get(dag_id)?)
        }
        DagsCommand::List { tag } => dags_list(settings, tag).await,
        DagsCommand::Pause { dag_id } | DagsCommand::Unpause { dag_id } => {
            let pause = matches!(c, DagsCommand::Pause { .. });
            let store = settings.store().await?;
            let bag = settings.synced_bag(store.as_ref()).await?;
            if !store.set_paused(dag_id, pause).await? {
                bag.get(dag_id)?;
                bail!("DAG {dag_id:?} not found");
            }
            println!("DAG {dag_id} {}", if pause { "paused" } else { "unpaused" });
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn validate(settings: &Settings, paths: &[PathBuf]) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![settings.dags_folder.clone()]
    } else {
        paths.to_vec()
    };
    for p in &paths {
        if !p.exists() {
            bail!("{} does not exist", p.display());
        }
    }
    let bag = DagBag::load(&paths, &settings.kinds)?;
    let diags = bag.diagnostics();
    let mut warnings: Vec<String> = bag
        .dags
        .values()
        .flat_map(|d| d.warnings.iter().map(ToString::to_string))
        .collect();
    warnings.extend(unknown_pools(settings, &bag).await);
    if settings.json() {
        output::json(&json!({
            "valid": diags.is_empty(),
            "dags": bag.dags.values().map(|d| json!({"dag_id": d.dag_id, "fileloc": d.fileloc})).collect::<Vec<_>>(),
            "errors": diags,
            "warnings": warnings,
        }))?;
    } else {
        for d in &diags {
            println!("{d}");
        }
        for w in &warnings {
            println!("{w}");
        }
        let files = bag.dags.len() + bag.errors.len();
        let warned = if warnings.is_empty() {
            String::new()
        } else {
            format!(", {} warning(s)", warnings.len())
        };
        if diags.is_empty() {
            println!(
                "{files} file(s) checked: {} DAG(s), all valid{warned}",
                bag.dags.len()
            );
        } else {
            println!(
                "{files} file(s) checked: {} valid DAG(s), {} problem(s) in {} file(s){warned}",
                bag.dags.len(),
                diags.len(),
                bag.errors.len()
            );
        }
    }
    Ok(if diags.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Tasks naming a pool the metadata database does not have (they would fail
/// when queued), when there is a database to ask: validation never creates one.
async fn unknown_pools(settings: &Settings, bag: &DagBag) -> Vec<String> {
    if !settings.database_exists() {
        return Vec::new();
    }
    let Ok(store) = settings.sql_store().await else {
        return Vec::new();
    };
    let Ok(pools) = store.list_pools().await else {
        return Vec::new();
    };
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    let mut out = Vec::new();
    for dag in bag.dags.values() {
        for t in dag
            .tasks
            .iter()
            .filter(|t| !names.contains(&t.pool.as_str()))
        {
            let hint = diag::suggest(&t.pool, &names)
                .map(|s| format!("did you mean {s:?}? "))
                .unwrap_or_default();
            out.push(format!(
                "{}: warning: task {:?} of DAG {:?} uses pool {:?}, which does not exist \
                 ({hint}create it with `tributary pools set {} --slots N`; until then the task fails when queued)",
                dag.fileloc.display(),
                t.id,
                dag.dag_id,
                t.pool,
                t.pool
            ));
        }
    }
    out
}

fn next_runs(settings: &Settings, dag: &Dag, n: usize) -> Result<ExitCode> {
    let tt = &dag.timetable;
    let runs = tt.upcoming(Utc::now(), n);
    if settings.json() {
        output::json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!(
            "DAG {} has no upcoming scheduled runs (schedule: {})",
            dag.dag_id,
            tt.schedule.as_text()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let local = |t: chrono::DateTime<Utc>| format_in(t, tt.tz);
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|i| {
            vec![
                local(i.start),
                ts(i.start),
                format!("{} → {}", ts(i.start), ts(i.end)),
                local(i.end),
            ]
        })
        .collect();
    println!(
        "DAG {} — schedule {:?} in {}",
        dag.dag_id,
        tt.schedule.as_text(),
        tt.tz.name()
    );
    output::table(
        &[
            "LOGICAL DATE",
            "LOGICAL DATE (UTC)",
            "DATA INTERVAL (UTC)",
            "CREATED AFTER",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn show(settings: &Settings, dag: &Dag) -> Result<ExitCode> {
    if settings.json() {
        output::json(&dag.to_json())?;
        return Ok(ExitCode::SUCCESS);
    }
    let tt = &dag.timetable;
    println!("DAG          {}", dag.dag_id);
    if !dag.description.is_empty() {
        println!("description  {}", dag.description);
    }
    println!("file         {}", dag.fileloc.display());
    println!("schedule     {} ({})", tt.schedule.as_text(), tt.tz.name());
    // In the DAG's zone, as its file gives them (`2026-11-01` in Europe/Paris
    // is 2026-11-01 00:00:00 CET, not 2026-10-31 23:00:00).
    let local =
        |t: Option<chrono::DateTime<Utc>>| t.map_or_else(|| "-".into(), |t| format_in(t, tt.tz));
    println!("start_date   {}", local(tt.start));
    println!("end_date     {}", local(tt.end));
    println!("catchup      {}", tt.catchup);
    println!(
        "max active   {} runs, {} tasks",
        dag.max_active_runs, dag.max_active_tasks
    );
    if !dag.tags.is_empty() {
        println!("tags         {}", dag.tags.join(", "));
    }
    if !dag.params.0.is_empty() {
        println!("\nPARAMS");
        let rows: Vec<Vec<String>> = dag
            .params
            .0
            .iter()
            .map(|(n, p)| {
                vec![
                    n.clone(),
                    p.kind.as_str().into(),
                    p.default
                        .as_ref()
                        .map_or("(required)".into(), ToString::to_string),
                    p.description.clone(),
                ]
            })
            .collect();
        output::table(&["NAME", "TYPE", "DEFAULT", "DESCRIPTION"], &rows);
    }
    println!("\nTASKS");
    let layers = dag.layers();
    let rows: Vec<Vec<String>> = dag
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            vec![
                t.id.clone(),
                t.kind.clone(),
                layers[i].to_string(),
                if t.depends_on.is_empty() {
                    "-".into()
                } else {
                    t.depends_on.join(", ")
                },
                t.trigger_rule.as_str().into(),
                t.retry.retries.to_string(),
                t.execution_timeout
                    .map_or("-".into(), |d| humantime::format_duration(d).to_string()),
                t.pool.clone(),
                t.priority.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "TASK",
            "KIND",
            "LAYER",
            "DEPENDS ON",
            "TRIGGER RULE",
            "RETRIES",
            "TIMEOUT",
            "POOL",
            "PRIORITY",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn dags_list(settings: &Settings, tags: &[String]) -> Result<ExitCode> {
    let store = settings.store().await?;
    let bag = settings.synced_bag(store.as_ref()).await?;
    let records: HashMap<String, _> = store
        .list_dags()
        .await?
        .into_iter()
        .map(|d| (d.dag_id.clone(), d))
        .collect();
    let now = Utc::now();
    let mut runs = store.runs_of_every_dag(5).await?;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for dag in bag.dags.values() {
        if !tags.is_empty() && !dag.tags.iter().any(|t| tags.contains(t)) {
            continue;
        }
        let paused = records.get(&dag.dag_id).is_some_and(|r| r.is_paused);
        let last = runs.last_scheduled.remove(&dag.dag_id);
        let next = dag
            .timetable
            .next_dagrun(last.as_ref().map(|r| &r.data_interval), now);
        let recent = runs.recent.remove(&dag.dag_id).unwrap_or_default();
        let marks: String = recent
            .iter()
            .rev()
            .map(|r| match r.state {
                RunState::Success => '✓',
                RunState::Failed => '✗',
                RunState::Running => '▶',
                RunState::Queued => '·',
            })
            .collect();
        rows.push(vec![
            dag.dag_id.clone(),
            dag.timetable.schedule.as_text().to_string(),
            if paused {
                "paused".into()
            } else {
                "active".into()
            },
            next.map_or("-".into(), |i| ts(i.start)),
            if marks.is_empty() { "-".into() } else { marks },
            dag.tags.join(","),
            dag.description.clone(),
        ]);
        items.push(json!({
            "dag_id": dag.dag_id,
            "description": dag.description,
            "schedule": dag.timetable.schedule.as_text(),
            "timezone": dag.timetable.tz.name(),
            "is_paused": paused,
            "next_logical_date": next.map(|i| i.start),
            "next_data_interval": next,
            "tags": dag.tags,
            "fileloc": dag.fileloc,
            "recent_runs": recent.iter().map(|r| json!({"run_id": r.run_id, "state": r.state})).collect::<Vec<_>>(),
        }));
    }
    let errors = store.import_errors().await?;
    if settings.json() {
        output::json(&json!({"dags": items, "import_errors": errors}))?;
        return Ok(ExitCode::SUCCESS);
    }
    output::table(
        &[
            "DAG",
            "SCHEDULE",
            "STATE",
            "NEXT RUN (UTC)",
            "LAST RUNS",
            "TAGS",
            "DESCRIPTION",
        ],
        &rows,
    );
    if !errors.is_empty() {
        println!("\n{} DAG file(s) failed to load:", errors.len());
        for e in &errors {
            for line in e.message.lines() {
                println!("  {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
