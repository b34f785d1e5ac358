//! `tributary standalone`: everything in one process. This file is the one
//! place that decides what standalone runs around the scheduler — Kafka
//! (the configured cluster, else an in-memory dev broker), the random-user
//! API (else the offline one), every stream writer, the metrics endpoint and
//! the web UI — and the banner that says so.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use tasks::dev::DevBroker;
use tasks::dev::random_user_api::{OfflineApi, OfflineApiConfig};
use tokio_util::sync::CancellationToken;

use super::scheduler::SchedulerProcess;
use super::{stream, transform, web};
use crate::cli::SchedulerArgs;
use crate::settings::Settings;
use crate::shutdown::SHUTDOWN_GRACE;

/// `standalone`.
pub async fn run(settings: &Settings, a: &SchedulerArgs) -> Result<ExitCode> {
    let process = SchedulerProcess::open(settings, a).await?;
    let dev = DevServices::start(settings).await?;
    let shutdown = crate::shutdown::on_signals();
    let mut lines = dev.lines.clone();

    if dev.broker.is_some() {
        lines.extend(new_lifetimes(settings).await?);
    }
    let metrics = Arc::new(lake::metrics::Metrics::default());
    let writers = stream::spawn_all(&settings.project, &metrics, &shutdown)?;
    for s in &settings.project.streams {
        let loc = settings.project.location(s.lake.as_deref())?;
        lines.push(format!(
            "  stream     {}: topic {} → table {} (dead letters → {})",
            s.name,
            s.topics.join(","),
            loc.table_url(&s.table),
            s.dead_letter_table
        ));
    }
    let transforms = match transform::spawn_all(settings, &process.bag, &metrics, &shutdown).await {
        Ok(handles) => {
            for t in &settings.project.transforms {
                lines.push(format!(
                    "  transform  {}: table {} → table {} (every {})",
                    t.name,
                    t.source,
                    t.table,
                    humantime::format_duration(t.trigger)
                ));
            }
            handles
        }
        Err(e) => {
            lines.push(format!("  transforms not started: {e:#}"));
            Vec::new()
        }
    };
    for v in &settings.project.views {
        lines.push(format!(
            "  view       {}: table {} → batch table {}; query live.{}",
            v.name, v.source, v.table, v.name
        ));
    }
    let bind = stream::metrics_bind(None, &settings.project);
    match stream::serve_metrics(&bind, metrics.clone(), shutdown.clone()).await {
        Ok(addr) => lines.push(format!("  metrics    http://{addr}/metrics")),
        Err(e) => lines.push(format!("  metrics    not served: {e:#}")),
    }

    let mut web_server = None;
    if a.web_bind.as_deref() != Some("off") {
        let addr = web::bind_addr(a.web_bind.as_deref(), &settings.project)?;
        let (local, task) = web::start(
            settings,
            addr,
            process.store.clone(),
            Some(metrics.clone()),
            shutdown.clone(),
        )
        .await?;
        lines.insert(
            0,
            format!("  web UI     http://{local}/ (REST API under /api/v1)"),
        );
        web_server = Some((format!("http://{local}/"), task));
    }
    banner(
        settings,
        a,
        &process,
        &lines,
        web_server.as_ref().map(|(u, _)| u.as_str()),
    );

    process.run(settings, shutdown.clone()).await?;
    // Writers flush and commit on the same signal; wait for them before
    // the dev broker goes away.
    shutdown.cancel();
    for w in writers {
        if tokio::time::timeout(SHUTDOWN_GRACE, w).await.is_err() {
            eprintln!(
                "a stream writer did not stop within {}s (is Kafka reachable?); records not yet committed are read again on the next start",
                SHUTDOWN_GRACE.as_secs()
            );
        }
    }
    for t in transforms {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, t).await;
    }
    if let Some((_, t)) = web_server {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, t).await;
    }
    dev.stop();
    Ok(ExitCode::SUCCESS)
}

/// The in-memory dev broker starts empty at every launch, while the lake
/// keeps the offsets of the previous one: each stream table that holds
/// offsets continues as a new Kafka log lifetime (`lake::lifetimes`), so
/// the records of this launch land beside those of earlier ones instead of
/// being refused. Banner lines saying so.
async fn new_lifetimes(settings: &Settings) -> Result<Vec<String>> {
    let kafka = settings.project.kafka_source()?;
    let mut lines = Vec::new();
    for spec in &settings.project.streams {
        if let Some(r) = stream::reset_offsets(&settings.project, spec, &kafka).await? {
            lines.push(format!(
                "  lifetime   {}: the dev broker starts empty each launch; table {} continues as Kafka log lifetime {} (rows of earlier launches kept)",
                spec.name, r.table, r.lifetime
            ));
        }
    }
    Ok(lines)
}

/// The Kafka and random-user API standalone brings when the user points at
/// none; tasks find them through `${TRIBUTARY_KAFKA_BOOTSTRAP}` and
/// `${TRIBUTARY_RANDOM_USER_URL}` ([`scheduler::secrets::provide`]).
struct DevServices {
    broker: Option<DevBroker>,
    api: Option<OfflineApi>,
    stop: CancellationToken,
    /// Banner lines, one per service.
    lines: Vec<String>,
}

impl DevServices {
    async fn start(settings: &Settings) -> Result<DevServices> {
        let project = &settings.project;
        let stop = CancellationToken::new();
        let mut lines = Vec::new();
        let mut broker = None;
        match std::env::var("TRIBUTARY_KAFKA_BOOTSTRAP") {
            Ok(b) => lines.push(format!("  kafka      {b} (TRIBUTARY_KAFKA_BOOTSTRAP)")),
            // The config names a cluster: tasks produce where streams consume.
            Err(_) if project.kafka.bootstrap_servers.is_some() => {
                let b = project.kafka_bootstrap()?;
                scheduler::secrets::provide("TRIBUTARY_KAFKA_BOOTSTRAP", &b);
                lines.push(format!("  kafka      {b} ({})", project.source()));
            }
            Err(_) => {
                // The ingest DAG's topic and every stream's, 4 partitions each.
                let mut topics: Vec<&str> = vec!["users"];
                for s in &project.streams {
                    topics.extend(s.topics.iter().map(String::as_str));
                }
                topics.sort_unstable();
                topics.dedup();
                let with_parts: Vec<(&str, i32)> = topics.iter().map(|t| (*t, 4)).collect();
                let b = DevBroker::start(&with_parts).map_err(|e| anyhow!(e))?;
                scheduler::secrets::provide("TRIBUTARY_KAFKA_BOOTSTRAP", &b.bootstrap_servers());
                lines.push(format!(
                    "  kafka      {} (in-memory, for development: about 5 MB per partition, gone on exit)",
                    b.bootstrap_servers()
                ));
                broker = Some(b);
            }
        }
        let mut api_task = None;
        match std::env::var("TRIBUTARY_RANDOM_USER_URL") {
            Ok(u) => lines.push(format!("  users API  {u} (TRIBUTARY_RANDOM_USER_URL)")),
            Err(_) => {
                let api = tasks::dev::random_user_api::start(
                    ([127, 0, 0, 1], 0).into(),
                    OfflineApiConfig::default(),
                    stop.clone(),
                )
                .await
                .context("cannot start the offline random-user API")?;
                scheduler::secrets::provide("TRIBUTARY_RANDOM_USER_URL", &api.url());
                lines.push(format!(
                    "  users API  {} (offline random-user API)",
                    api.url()
                ));
                api_task = Some(api);
            }
        }
        Ok(DevServices {
            broker,
            api: api_task,
            stop,
            lines,
        })
    }

    fn stop(self) {
        self.stop.cancel();
        drop(self.api);
        drop(self.broker);
    }
}

fn banner(
    settings: &Settings,
    a: &SchedulerArgs,
    process: &SchedulerProcess,
    services: &[String],
    web_url: Option<&str>,
) {
    println!("Tributary standalone");
    println!("  metadata   {}", settings.database_display());
    println!(
        "  dags       {} ({} DAGs, {} import errors)",
        settings.dags_folder.display(),
        process.bag.dags.len(),
        process.bag.errors.len()
    );
    println!(
        "  scheduler  running, {} parallel task tries",
        a.parallelism
    );
    for line in services {
        println!("{line}");
    }
    let me = invoked_as();
    if let Some(url) = web_url {
        println!("Open {url} to watch DAGs, runs, logs and streams.");
    }
    println!("Try ({me} is this binary):");
    println!("  {me} dags list");
    println!("  {me} trigger hello --conf '{{\"name\": \"you\"}}' --wait");
    for s in &settings.project.streams {
        println!("  {me} lake ls {}", s.table);
    }
    println!(
        "Ctrl-C stops (running tasks go back to scheduled; stream writers commit what they hold)"
    );
}

/// How to call this binary from the current directory (`./target/release/tributary`).
fn invoked_as() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(e), Some(c)) => match e.strip_prefix(&c) {
            Ok(rel) => format!("./{}", rel.display()),
            Err(_) => e.display().to_string(),
        },
        _ => "tributary".to_string(),
    }
}
