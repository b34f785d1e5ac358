//! `stream`, `lake` and `config` commands, and the pieces `standalone`
//! uses to run stream writers and serve their metrics.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use lake::config::StreamSpec;
use lake::metrics::Metrics;
use lake::table::Location;
use lake::writer::{KafkaSource, RunSummary, WriterOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::{LakeCommand, Output, StreamCommand};
use crate::commands::{Ctx, shutdown_on_signals};
use crate::config::Project;
use crate::output;

/// How long a stopping writer may take to flush and commit before the
/// process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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
        kafka: KafkaSource {
            bootstrap_servers: project.kafka_bootstrap()?,
            properties: project.kafka_properties()?,
        },
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
    let addr: SocketAddr = bind.parse().map_err(|e| {
        anyhow!("metrics bind {bind:?}: {e} (write HOST:PORT, e.g. 127.0.0.1:9464)")
    })?;
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

/// Runs every stream of the project until `stop` (used by `standalone`).
/// Each writer restarts after an error, with a growing pause.
pub fn spawn_streams(
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
pub async fn stream(ctx: &Ctx, c: &StreamCommand) -> Result<ExitCode> {
    let project = &ctx.project;
    match c {
        StreamCommand::List => {
            if ctx.cli.output == Output::Json {
                let list: Vec<_> = project
                    .streams
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "name": s.name, "topics": s.topics, "group": s.group, "table": s.table,
                            "dead_letter_table": s.dead_letter_table,
                            "partition_by": s.partition_by.iter().map(|p| p.name()).collect::<Vec<_>>(),
                            "lake": project.location(s.lake.as_deref()).map(|l| l.root().to_string()).ok(),
                        })
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
        StreamCommand::Run {
            name,
            until_caught_up,
            metrics_bind,
        } => {
            let spec = project.stream(name)?;
            let metrics = Arc::new(Metrics::default());
            let opts = writer_options(project, spec.clone(), &metrics, *until_caught_up)?;
            let stop = shutdown_on_signals();
            let bind = metrics_bind
                .clone()
                .or_else(|| project.metrics.bind.clone())
                .unwrap_or_else(|| DEFAULT_METRICS_BIND.to_string());
            if bind != "off" {
                let addr = serve_metrics(&bind, metrics.clone(), stop.clone()).await?;
                eprintln!("metrics on http://{addr}/metrics");
            }
            eprintln!(
                "stream {}: {} → {} ({})",
                spec.name,
                spec.topics.join(","),
                opts.location.table_url(&spec.table),
                if *until_caught_up {
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
            if ctx.cli.output == Output::Json {
                output::json(&serde_json::json!({
                    "stream": spec.name, "records_in": summary.records_in, "rows_written": summary.rows_written,
                    "rejected": summary.rejected, "commits": summary.commits, "fenced": summary.fenced, "version": summary.version,
                }))?;
            } else {
                println!("{}", summary_line(&spec.name, &summary));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The location of a table, and the stream that writes it (if declared).
fn table_location(project: &Project, table: &str) -> Result<(Location, Option<Arc<StreamSpec>>)> {
    if !lake::config::valid_name(table) {
        bail!("invalid table name {table:?}: use letters, digits, '_' or '-'");
    }
    let stream = project.stream_of_table(table);
    let location = project.location(stream.as_ref().and_then(|s| s.lake.as_deref()))?;
    Ok((location, stream))
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `lake …`.
pub async fn lake(ctx: &Ctx, c: &LakeCommand) -> Result<ExitCode> {
    let json = ctx.cli.output == Output::Json;
    match c {
        LakeCommand::Ls { table, history } => {
            let (location, stream) = table_location(&ctx.project, table)?;
            let info = lake::tools::describe(
                &location,
                table,
                stream.as_ref().map(|s| s.name.as_str()),
                *history,
            )
            .await?;
            if json {
                return output::json(&info).map(|()| ExitCode::SUCCESS);
            }
            println!("table {}  ({})", info.name, info.url);
            println!(
                "version {}  files {}  rows {}  size {}  partitioned by [{}]",
                info.version,
                info.files,
                info.rows,
                size(info.bytes),
                info.partition_columns.join(", ")
            );
            println!();
            let rows: Vec<Vec<String>> = info
                .partitions
                .iter()
                .map(|(p, i)| {
                    vec![
                        p.clone(),
                        i.files.to_string(),
                        i.rows.to_string(),
                        size(i.bytes),
                    ]
                })
                .collect();
            output::table(&["PARTITION", "FILES", "ROWS", "SIZE"], &rows);
            if !info.offsets.is_empty() {
                println!();
                let rows: Vec<Vec<String>> = info
                    .offsets
                    .iter()
                    .map(|(tp, o)| vec![tp.clone(), o.to_string()])
                    .collect();
                output::table(&["TOPIC/PARTITION", "LAST OFFSET"], &rows);
            }
            println!();
            let rows: Vec<Vec<String>> = info
                .history
                .iter()
                .map(|v| {
                    vec![
                        v.version.to_string(),
                        v.timestamp_ms
                            .and_then(chrono::DateTime::from_timestamp_millis)
                            .map(output::ts)
                            .unwrap_or_default(),
                        v.operation.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["VERSION", "COMMITTED", "OPERATION"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        LakeCommand::Verify { table } => {
            let (location, stream) = table_location(&ctx.project, table)?;
            let dead = stream
                .as_ref()
                .filter(|s| s.table == *table)
                .map(|s| s.dead_letter_table.clone());
            let report = lake::tools::verify(
                &location,
                table,
                dead.as_deref(),
                stream.as_ref().map(|s| s.name.as_str()),
            )
            .await?;
            if json {
                output::json(&report)?;
            } else {
                let rows: Vec<Vec<String>> = report
                    .partitions
                    .iter()
                    .map(|p| {
                        vec![
                            format!("{}/{}", p.topic, p.partition),
                            p.first.to_string(),
                            p.last.to_string(),
                            p.committed.map_or("-".into(), |c| c.to_string()),
                            p.rows.to_string(),
                            p.rejected.to_string(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "TOPIC/PARTITION",
                        "FIRST",
                        "LAST",
                        "COMMITTED",
                        "ROWS",
                        "DEAD LETTERS",
                    ],
                    &rows,
                );
                println!(
                    "table {} version {}: {} rows read, {} rows in the log, {} dead letters",
                    report.table,
                    report.version,
                    report.rows_read,
                    report.rows_in_log,
                    report.rejected_read
                );
                for p in &report.problems {
                    println!("PROBLEM: {p}");
                }
                if report.ok() {
                    println!(
                        "OK: every offset is held exactly once, contiguous up to the committed offset"
                    );
                }
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        LakeCommand::Optimize { table, target_size } => {
            let target = lake::config::parse_bytes(target_size)
                .map_err(|e| anyhow!("--target-size: {e}"))?;
            let (location, _) = table_location(&ctx.project, table)?;
            let r = lake::tools::optimize(&location, table, target).await?;
            if json {
                return output::json(&r).map(|()| ExitCode::SUCCESS);
            }
            println!(
                "optimized {table}: {} files compacted into {} across {} partitions (version {})",
                r.files_removed, r.files_added, r.partitions_optimized, r.version
            );
            Ok(ExitCode::SUCCESS)
        }
        LakeCommand::Vacuum {
            table,
            retention,
            dry_run,
        } => {
            let keep = humantime::parse_duration(retention)
                .map_err(|e| anyhow!("--retention {retention:?}: {e} (e.g. 7d, 12h)"))?;
            let (location, _) = table_location(&ctx.project, table)?;
            let files = lake::tools::vacuum(&location, table, keep, *dry_run).await?;
            if json {
                return output::json(&serde_json::json!({ "dry_run": dry_run, "files": files }))
                    .map(|()| ExitCode::SUCCESS);
            }
            for f in &files {
                println!(
                    "{}{f}",
                    if *dry_run {
                        "would delete "
                    } else {
                        "deleted "
                    }
                );
            }
            println!(
                "{} file(s) {}",
                files.len(),
                if *dry_run {
                    "would be deleted"
                } else {
                    "deleted"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `config`.
pub fn config(ctx: &Ctx) -> Result<ExitCode> {
    let p = &ctx.project;
    println!("config       {}", p.source());
    println!(
        "metadata     {}",
        scheduler::store::redact(&ctx.database_url())
    );
    println!("dags folder  {}", ctx.dags_folder().display());
    println!(
        "kafka        {}",
        p.kafka_bootstrap()
            .unwrap_or_else(|e| format!("error: {e}"))
    );
    println!(
        "lake         {}",
        p.location(None)
            .map(|l| l.root().to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    );
    println!(
        "web          {}{}",
        p.web.bind.as_deref().unwrap_or("127.0.0.1:8080"),
        if p.web.token.is_some() {
            " (token set)"
        } else {
            ""
        }
    );
    println!("streams      {}", p.streams.len());
    for s in &p.streams {
        println!(
            "  {}: {} → {} (partition by {}; dead letters → {})",
            s.name,
            s.topics.join(","),
            s.table,
            s.partition_by
                .iter()
                .map(|x| x.name())
                .collect::<Vec<_>>()
                .join(", "),
            s.dead_letter_table
        );
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}
