//! `tributary transform`: list the declared transforms and where each
//! stands, check their SQL, run one; and what `standalone` uses to run
//! them all.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use lake::metrics::Metrics;
use lake::sql::{Limits, SqlEngine};
use lake::transform::{RunSummary, TransformOptions, TransformSpec};
use scheduler::dagbag::DagBag;
use tokio_util::sync::CancellationToken;

use super::stream::{metrics_bind, serve_metrics};
use crate::cli::TransformCommand;
use crate::config::Project;
use crate::output;
use crate::settings::Settings;

/// How long one transform step may take (its query included): a first run
/// reads the whole source once.
const STEP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The engine transforms run their SQL on (one per process; they share its
/// memory pool).
pub fn engine(project: &Project) -> Result<SqlEngine> {
    let limits = Limits {
        timeout: STEP_TIMEOUT,
        ..Limits::default()
    };
    Ok(SqlEngine::new(project.catalog()?, limits)?)
}

/// The tables the DAGs' lake tasks write (`table` of `lake_sql` and the
/// other `lake_*` kinds): a transform may read them before they exist.
pub fn dag_tables(bag: &DagBag) -> Vec<String> {
    let mut tables: Vec<String> = bag
        .dags
        .values()
        .flat_map(|d| d.tasks.iter())
        .filter(|t| t.kind.starts_with("lake_"))
        .filter_map(|t| t.settings.get("table")?.as_str().map(str::to_string))
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

/// Checks every transform of the project against the lake and the DAGs
/// (`bag`, when the caller has loaded them already; else they are loaded).
pub async fn check(settings: &Settings, engine: &SqlEngine, bag: Option<&DagBag>) -> Result<()> {
    let tables = match bag {
        Some(b) => dag_tables(b),
        None => settings.bag().map(|b| dag_tables(&b)).unwrap_or_default(),
    };
    settings.project.check_transforms(engine, &tables).await
}

fn options(
    project: &Project,
    spec: Arc<TransformSpec>,
    engine: &SqlEngine,
    metrics: &Metrics,
    until_caught_up: bool,
) -> Result<TransformOptions> {
    // Only a sink talks to Kafka.
    let kafka = match &spec.sink {
        Some(_) => Some(project.kafka_source()?),
        None => None,
    };
    Ok(TransformOptions {
        metrics: metrics.transform(&spec.name),
        kafka,
        spec,
        engine: engine.clone(),
        until_caught_up,
    })
}

/// Checks every transform, then runs each until `stop` (used by
/// `standalone`). A transform restarts after an error with a growing
/// pause; it goes on from its output's checkpoint. When the check finds
/// problems none runs, and the error says why (standalone shows it and
/// runs the rest).
pub async fn spawn_all(
    settings: &Settings,
    bag: &DagBag,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let project = &settings.project;
    if project.transforms.is_empty() {
        return Ok(Vec::new());
    }
    let engine = engine(project)?;
    check(settings, &engine, Some(bag)).await?;
    let mut handles = Vec::new();
    for spec in &project.transforms {
        let opts = options(project, spec.clone(), &engine, metrics, false)?;
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            loop {
                match lake::transform::run(opts.clone(), stop.clone()).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::error!(transform = %opts.spec.name, error = %e, "transform failed; restarting from its checkpoint");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(Duration::from_secs(60));
                    }
                }
            }
        }));
    }
    Ok(handles)
}

/// `transform …`.
pub async fn run(settings: &Settings, c: &TransformCommand) -> Result<ExitCode> {
    let project = &settings.project;
    match c {
        TransformCommand::List => list(settings).await,
        TransformCommand::Check => {
            check(settings, &engine(project)?, None).await?;
            println!(
                "{} transform(s) OK in {}",
                project.transforms.len(),
                project.source()
            );
            Ok(ExitCode::SUCCESS)
        }
        TransformCommand::Run {
            name,
            until_caught_up,
            metrics_bind: flag,
        } => {
            let spec = project.transform(name)?;
            let engine = engine(project)?;
            check(settings, &engine, None).await?;
            let metrics = Arc::new(Metrics::default());
            let stop = crate::shutdown::on_signals();
            let bind = metrics_bind(flag.as_deref(), project);
            if bind != "off" {
                let addr = serve_metrics(&bind, metrics.clone(), stop.clone()).await?;
                eprintln!("metrics on http://{addr}/metrics");
            }
            eprintln!(
                "transform {}: {} → {} (every {}; {})",
                spec.name,
                spec.source,
                spec.table,
                humantime::format_duration(spec.trigger),
                if *until_caught_up {
                    "until caught up"
                } else {
                    "Ctrl-C stops"
                }
            );
            let opts = options(project, spec.clone(), &engine, &metrics, *until_caught_up)?;
            let summary = lake::transform::run(opts, stop.clone())
                .await
                .with_context(|| format!("transform {name}"))?;
            stop.cancel();
            if settings.json() {
                output::json(&summary)?;
            } else {
                println!("{}", summary_line(&spec, &summary));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn summary_line(spec: &TransformSpec, s: &RunSummary) -> String {
    format!(
        "transform {}: {} commits, {} source rows in, {} rows out, checkpoint {}, table version {}{}",
        spec.name,
        s.commits,
        s.rows_in,
        s.rows_out,
        s.checkpoint.map_or("-".into(), |c| c.to_string()),
        s.version.map_or("-".into(), |v| v.to_string()),
        spec.sink
            .as_ref()
            .map(|k| format!(", {} rows published to {}", s.rows_published, k.topic))
            .unwrap_or_default()
    )
}

async fn list(settings: &Settings) -> Result<ExitCode> {
    let project = &settings.project;
    let catalog = project.catalog()?;
    let mut statuses = Vec::new();
    for spec in &project.transforms {
        statuses.push(lake::transform::status(spec, &catalog).await?);
    }
    if settings.json() {
        return output::json(&statuses).map(|()| ExitCode::SUCCESS);
    }
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.source.clone(),
                s.table.clone(),
                opt(s.source_version),
                opt(s.checkpoint),
                opt(s.behind),
                output::opt_ts(s.last_commit),
            ]
        })
        .collect();
    output::table(
        &[
            "TRANSFORM",
            "SOURCE",
            "TABLE",
            "SOURCE VERSION",
            "CHECKPOINT",
            "BEHIND",
            "LAST COMMIT",
        ],
        &rows,
    );
    if rows.is_empty() {
        println!("(no [[transform]] in {})", project.source());
    }
    Ok(ExitCode::SUCCESS)
}
