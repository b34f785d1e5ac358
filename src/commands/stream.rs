//! `tributary stream`: list the declared streams and run one stream's
//! writer; and the pieces `standalone` uses to run every writer and serve
//! their metrics.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use lake::config::StreamSpec;
use lake::metrics::Metrics;
use lake::writer::{RunSummary, WriterOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::StreamCommand;
use crate::config::Project;
use crate::output;
use crate::settings::Settings;
use crate::shutdown::SHUTDOWN_GRACE;

/// The default Prometheus endpoint of `stream run`.
pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9464";

/// Writer options for a stream of the project.
pub fn writer_options(
    project: &Project,
    spec: Arc<StreamSpec>,
    metrics: &Metrics,
    until_caught_up: bool,
) -> Result<WriterOptions> {
    Ok(WriterOptions {
        location: project.location(spec.lake.as_deref())?,
        kafka: project.kafka_source()?,
        until_caught_up,
        metrics: metrics.stream(&spec.name),
        spec,
    })
}

/// Serves `GET /metrics` (Prometheus text format) until `stop`.
pub async fn serve_metrics(
    bind: &str,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<SocketAddr> {
    let addr = parse_metrics_bind(bind)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(local)
}

/// The metrics address, checked (a port above 65535, a missing port …).
pub fn parse_metrics_bind(bind: &str) -> Result<SocketAddr> {
    crate::config::parse_addr(bind, "metrics bind", "127.0.0.1:9464, or off")
}

/// Where the Prometheus endpoint listens: the flag, else `[metrics] bind`,
/// else [`DEFAULT_METRICS_BIND`]; `off` disables it.
pub fn metrics_bind(flag: Option<&str>, project: &Project) -> String {
    flag.or(project.metrics.bind.as_deref())
        .unwrap_or(DEFAULT_METRICS_BIND)
        .to_string()
}

/// Runs every stream of the project until `stop` (used by `standalone`).
/// Each writer restarts after an error, with a growing pause.
pub fn spawn_all(
    project: &Project,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut handles = Vec::new();
    for spec in &project.streams {
        let opts = writer_options(project, spec.clone(), metrics, false)?;
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut pause = Duration::from_secs(1);
            loop {
                match lake::writer::run(opts.clone(), stop.clone()).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::error!(stream = %opts.spec.name, error = %e, "stream writer failed; restarting from the table log");
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

fn summary_line(name: &str, s: &RunSummary) -> String {
    format!(
        "stream {name}: {} records in, {} rows written, {} rejected, {} commits, table version {}",
        s.records_in, s.rows_written, s.rejected, s.commits, s.version
    )
}

/// `stream …`.
pub async fn run(settings: &Settings, c: &StreamCommand) -> Result<ExitCode> {
    match c {
        StreamCommand::List => list(settings).await,
        StreamCommand::Run {
            name,
            until_caught_up,
            metrics_bind: metrics_flag,
        } => run_writer(settings, name, *until_caught_up, metrics_flag.as_deref()).await,
        StreamCommand::ResetOffsets { name } => {
            let spec = settings.project.stream(name)?;
            let kafka = settings.project.kafka_source()?;
            let Some(report) = reset_offsets(&settings.project, &spec, &kafka).await? else {
                println!(
                    "nothing to reset: table {} holds no offsets of stream {name}",
                    spec.table
                );
                return Ok(ExitCode::SUCCESS);
            };
            if settings.json() {
                output::json(&report)?;
            } else {
                for p in &report.partitions {
                    println!(
                        "{}/{}: held up to {}, continues from {}",
                        p.topic,
                        p.partition,
                        p.was.map_or("nothing".into(), |w| w.to_string()),
                        p.from
                    );
                }
                println!(
                    "table {}: Kafka log lifetime {} begins at version {} (rows of earlier lifetimes stay)",
                    report.table, report.lifetime, report.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Starts a new Kafka log lifetime for `spec`'s table from what `kafka`'s
/// logs hold now (`lake::lifetimes`).
pub async fn reset_offsets(
    project: &Project,
    spec: &Arc<StreamSpec>,
    kafka: &lake::kafka::KafkaSource,
) -> Result<Option<lake::lifetimes::ResetReport>> {
    let location = project.location(spec.lake.as_deref())?;
    let topics = spec.topics.clone();
    let kafka = kafka.clone();
    let ranges = tokio::task::spawn_blocking(move || {
        lake::kafka::OffsetReader::new(&kafka)?.log_ranges(&topics, Duration::from_secs(10))
    })
    .await?
    .context("reading the partitions' offsets from the broker (reset-offsets needs it)")?;
    Ok(lake::lifetimes::reset_offsets(&location, spec, &ranges).await?)
}

async fn list(settings: &Settings) -> Result<ExitCode> {
    let project = &settings.project;
    if settings.json() {
        let list: Vec<_> = project
            .streams
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name, "topics": s.topics, "group": s.group, "table": s.table,
                    "dead_letter_table": s.dead_letter_table,
                    "partition_by": s.partition_by.iter().map(|p| p.name()).collect::<Vec<_>>(),
                    "lake": project.location(s.lake.as_deref()).map(|l| l.root().to_string()).ok()})
            })
            .collect();
        return output::json(&list).map(|()| ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = project
        .streams
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.topics.join(","),
                s.table.clone(),
                s.partition_by
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(","),
                project
                    .location(s.lake.as_deref())
                    .map(|l| l.root().to_string())
                    .unwrap_or_else(|e| e.to_string()),
            ]
        })
        .collect();
    output::table(
        &["STREAM", "TOPICS", "TABLE", "PARTITION BY", "LAKE"],
        &rows,
    );
    if rows.is_empty() {
        println!("(no [[stream]] in {})", project.source());
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_writer(
    settings: &Settings,
    name: &str,
    until_caught_up: bool,
    metrics_flag: Option<&str>,
) -> Result<ExitCode> {
    let project = &settings.project;
    let spec = project.stream(name)?;
    let metrics = Arc::new(Metrics::default());
    let opts = writer_options(project, spec.clone(), &metrics, until_caught_up)?;
    let stop = crate::shutdown::on_signals();
    let bind = metrics_bind(metrics_flag, project);
    if bind != "off" {
        let addr = serve_metrics(&bind, metrics.clone(), stop.clone()).await?;
        eprintln!("metrics on http://{addr}/metrics");
    }
    eprintln!(
        "stream {}: {} → {} ({})",
        spec.name,
        spec.topics.join(","),
        opts.location.table_url(&spec.table),
        if until_caught_up {
            "until caught up"
        } else {
            "Ctrl-C flushes, commits and stops"
        }
    );
    let run = lake::writer::run(opts, stop.clone());
    tokio::pin!(run);
    let summary = tokio::select! {
        r = &mut run => r?,
        _ = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            // Like a crash, which the log makes safe: whatever was
            // not committed is read again from the log's offsets.
            eprintln!(
                "error: stream {} did not stop within {}s of the signal (is Kafka reachable?); \
                 exiting; records not yet committed are read again on the next start",
                spec.name,
                SHUTDOWN_GRACE.as_secs()
            );
            std::process::exit(1);
        }
    };
    stop.cancel();
    if settings.json() {
        output::json(&serde_json::json!({
            "stream": spec.name, "records_in": summary.records_in, "rows_written": summary.rows_written,
            "rejected": summary.rejected, "commits": summary.commits, "fenced": summary.fenced, "version": summary.version}))?;
    } else {
        println!("{}", summary_line(&spec.name, &summary));
    }
    Ok(ExitCode::SUCCESS)
}
