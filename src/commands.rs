//! What each CLI command does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use scheduler::dag::Dag;
use scheduler::dagbag::DagBag;
use scheduler::operator::Kinds;
use scheduler::scheduling::{Scheduler, SchedulerConfig};
use scheduler::state::RunState;
use scheduler::store::{PoolRecord, SqlStore, Store};
use scheduler::timetable::parse_datetime;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::DevCommand;
use crate::cli::{
    Cli, Command, DagsCommand, DbCommand, MarkState, Output, PoolsCommand, RunsCommand,
    SchedulerArgs, TasksCommand, TriggerArgs,
};
use crate::config::Project;
use crate::output::{self, opt_ts, secs, ts};

/// The default metadata database: a SQLite file in `.tributary/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://.tributary/tributary.db";

pub(crate) struct Ctx {
    pub(crate) cli: Cli,
    pub(crate) kinds: Kinds,
    pub(crate) project: Project,
}

impl Ctx {
    /// Flag or environment, then the config file, then the default.
    pub(crate) fn database_url(&self) -> String {
        let raw = self
            .cli
            .database_url
            .clone()
            .or_else(|| self.project.database_url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        crate::config::resolve(&raw, "database_url").unwrap_or(raw)
    }

    /// Flag or environment, then the config file, then ./dags.
    pub(crate) fn dags_folder(&self) -> PathBuf {
        self.cli
            .dags_folder
            .clone()
            .or_else(|| {
                self.project
                    .dags_folder
                    .as_ref()
                    .map(|d| self.project.base_dir.join(d))
            })
            .unwrap_or_else(|| PathBuf::from("dags"))
    }

    async fn sql_store(&self) -> Result<SqlStore> {
        let url = self.database_url();
        let store = SqlStore::connect(&url).await.with_context(|| {
            format!(
                "cannot open the metadata database {}",
                scheduler::store::redact(&url)
            )
        })?;
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) async fn store(&self) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(self.sql_store().await?))
    }

    fn bag(&self) -> Result<DagBag> {
        let folder = &self.dags_folder();
        if !folder.exists() {
            bail!(
                "DAGs folder {} does not exist (set --dags-folder or TRIBUTARY_DAGS_FOLDER)",
                folder.display()
            );
        }
        Ok(DagBag::load(std::slice::from_ref(folder), &self.kinds)?)
    }

    /// Loads the DAGs folder and records it in the store, like a scheduler would.
    pub(crate) async fn synced_bag(&self, store: &dyn Store) -> Result<DagBag> {
        let bag = self.bag()?;
        bag.sync(store).await?;
        Ok(bag)
    }
}

/// Runs a command; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let project = Project::load(cli.config.as_deref())?;
    let ctx = Ctx {
        cli,
        kinds: tasks::registry(),
        project,
    };
    match &ctx.cli.command {
        Command::Standalone(a) => scheduler_cmd(&ctx, a, true).await,
        Command::Scheduler(a) => scheduler_cmd(&ctx, a, false).await,
        Command::Db(DbCommand::Migrate) => {
            ctx.store().await?;
            println!(
                "metadata database {} is up to date",
                scheduler::store::redact(&ctx.database_url())
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Dags(c) => dags(&ctx, c).await,
        Command::Trigger(a) => trigger(&ctx, a).await,
        Command::Backfill(a) => crate::backfill_cmd::run(&ctx, a).await,
        Command::Runs(RunsCommand::List { dag_id, limit }) => runs_list(&ctx, dag_id, *limit).await,
        Command::Runs(RunsCommand::Mark {
            dag_id,
            run_id,
            state,
        }) => {
            let store = ctx.store().await?;
            let run = find_run(store.as_ref(), dag_id, run_id).await?;
            let r =
                scheduler::actions::mark_run(store.as_ref(), &run, *state == MarkState::Success)
                    .await?;
            report_action(
                &ctx,
                &format!("run {run_id} marked {}", state_word(*state)),
                &r,
            )
        }
        Command::Tasks(c) => tasks_cmd(&ctx, c).await,
        Command::Stream(c) => crate::lake_cmd::stream(&ctx, c).await,
        Command::Lake(c) => crate::lake_cmd::lake(&ctx, c).await,
        Command::Config => crate::lake_cmd::config(&ctx),
        Command::Web(a) => crate::web_cmd::run(&ctx, a).await,
        Command::Pools(c) => pools(&ctx, c).await,
        Command::Dev(DevCommand::Kafka { topics }) => {
            let mut parsed = Vec::new();
            for t in topics {
                let (name, parts) = t.split_once(':').unwrap_or((t.as_str(), "4"));
                let n: i32 = parts.parse().ok().filter(|n| *n > 0).with_context(|| {
                    format!("--topic {t:?}: write NAME:PARTITIONS with at least 1 partition")
                })?;
                parsed.push((name, n));
            }
            let broker = tasks::kafka::DevBroker::start(&parsed).map_err(|e| anyhow::anyhow!(e))?;
            println!(
                "Kafka dev broker on {} (in-memory, for development: about 5 MB per partition, gone on exit)",
                broker.bootstrap_servers()
            );
            println!(
                "use it with: TRIBUTARY_KAFKA_BOOTSTRAP={} tributary scheduler",
                broker.bootstrap_servers()
            );
            shutdown_on_signals().cancelled().await;
            drop(broker);
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev(DevCommand::RandomUserApi {
            bind,
            fixtures,
            fault,
            fault_first,
            fault_every,
        }) => {
            use tasks::random_user::server::{Fault, Faults, OfflineApiConfig, start};
            let fault: Option<Fault> = match fault {
                Some(f) => Some(
                    f.parse()
                        .map_err(|e: String| anyhow::anyhow!("--fault: {e}"))?,
                ),
                None => None,
            };
            if fault.is_none() && (*fault_first > 0 || fault_every.is_some()) {
                bail!("--fault-first and --fault-every need --fault");
            }
            let mut cfg = OfflineApiConfig {
                faults: Faults {
                    fault,
                    first: if fault.is_some() && fault_every.is_none() && *fault_first == 0 {
                        u64::MAX
                    } else {
                        *fault_first
                    },
                    every: *fault_every,
                },
                ..OfflineApiConfig::default()
            };
            if let Some(dir) = fixtures {
                cfg = cfg
                    .with_fixtures(dir)
                    .map_err(|e| anyhow::anyhow!("--fixtures: {e}"))?;
            }
            let stop = shutdown_on_signals();
            let api = start(*bind, cfg, stop.clone())
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            println!(
                "offline random-user API on {} (format 1.4; Ctrl-C to stop)",
                api.url()
            );
            println!("try: curl '{}?results=3&seed=demo&nat=fr'", api.url());
            stop.cancelled().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(_) = async { match term.as_mut() { Some(s) => s.recv().await, None => None } } => {}
        }
        eprintln!("shutting down gracefully (press Ctrl-C again to exit at once)");
        t.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    token
}

async fn scheduler_cmd(ctx: &Ctx, a: &SchedulerArgs, standalone: bool) -> Result<ExitCode> {
    let sql = ctx.sql_store().await?;
    // Held for the life of the process (SQLite: one scheduler at a time).
    let _exclusive = sql.exclusive_scheduler_lock()?;
    let store: Arc<dyn Store> = Arc::new(sql);
    let cfg = SchedulerConfig {
        dags: vec![ctx.dags_folder()],
        parallelism: usize::from(a.parallelism),
        dag_refresh: Duration::from_secs(a.dag_refresh_secs),
        ..SchedulerConfig::default()
    };
    let bag = ctx.bag()?;
    // Standalone brings its own Kafka and random-user API unless the user
    // points at real ones; tasks find them through ${TRIBUTARY_KAFKA_BOOTSTRAP}
    // and ${TRIBUTARY_RANDOM_USER_URL}.
    let mut _dev_broker = None;
    let dev_stop = CancellationToken::new();
    let mut services = Vec::new();
    if standalone {
        match std::env::var("TRIBUTARY_KAFKA_BOOTSTRAP") {
            Ok(b) => services.push(format!("  kafka      {b} (TRIBUTARY_KAFKA_BOOTSTRAP)")),
            // The config names a cluster: tasks produce where streams consume.
            Err(_) if ctx.project.kafka.bootstrap_servers.is_some() => {
                let b = ctx.project.kafka_bootstrap()?;
                scheduler::secrets::provide("TRIBUTARY_KAFKA_BOOTSTRAP", &b);
                services.push(format!("  kafka      {b} ({})", ctx.project.source()));
            }
            Err(_) => {
                // The ingest DAG's topic and every stream's, 4 partitions each.
                let mut topics: Vec<&str> = vec!["users"];
                for s in &ctx.project.streams {
                    topics.extend(s.topics.iter().map(String::as_str));
                }
                topics.sort_unstable();
                topics.dedup();
                let with_parts: Vec<(&str, i32)> = topics.iter().map(|t| (*t, 4)).collect();
                let broker =
                    tasks::kafka::DevBroker::start(&with_parts).map_err(|e| anyhow::anyhow!(e))?;
                scheduler::secrets::provide(
                    "TRIBUTARY_KAFKA_BOOTSTRAP",
                    &broker.bootstrap_servers(),
                );
                services.push(format!(
                    "  kafka      {} (in-memory, for development: about 5 MB per partition, gone on exit)",
                    broker.bootstrap_servers()
                ));
                _dev_broker = Some(broker);
            }
        }
        match std::env::var("TRIBUTARY_RANDOM_USER_URL") {
            Ok(u) => services.push(format!("  users API  {u} (TRIBUTARY_RANDOM_USER_URL)")),
            Err(_) => {
                let api = tasks::random_user::server::start(
                    ([127, 0, 0, 1], 0).into(),
                    tasks::random_user::server::OfflineApiConfig::default(),
                    dev_stop.clone(),
                )
                .await
                .context("cannot start the offline random-user API")?;
                scheduler::secrets::provide("TRIBUTARY_RANDOM_USER_URL", &api.url());
                services.push(format!(
                    "  users API  {} (offline random-user API)",
                    api.url()
                ));
            }
        }
    }
    // Standalone also runs every stream writer and serves their metrics.
    let shutdown = shutdown_on_signals();
    let metrics = Arc::new(lake::metrics::Metrics::default());
    let mut web_task = None;
    let mut web_url: Option<String> = None;
    let mut writers = Vec::new();
    if standalone {
        writers = crate::lake_cmd::spawn_streams(&ctx.project, &metrics, &shutdown)?;
        for s in &ctx.project.streams {
            let loc = ctx.project.location(s.lake.as_deref())?;
            services.push(format!(
                "  stream     {}: topic {} → table {} (dead letters → {})",
                s.name,
                s.topics.join(","),
                loc.table_url(&s.table),
                s.dead_letter_table
            ));
        }
        let bind = ctx
            .project
            .metrics
            .bind
            .clone()
            .unwrap_or_else(|| crate::lake_cmd::DEFAULT_METRICS_BIND.to_string());
        match crate::lake_cmd::serve_metrics(&bind, metrics.clone(), shutdown.clone()).await {
            Ok(addr) => services.push(format!("  metrics    http://{addr}/metrics")),
            Err(e) => services.push(format!("  metrics    not served: {e:#}")),
        }
    }
    if standalone && a.web_bind.as_deref() != Some("off") {
        let addr = crate::web_cmd::bind_addr(a.web_bind.as_deref(), &ctx.project)?;
        let (local, task) = crate::web_cmd::start(
            ctx,
            addr,
            store.clone(),
            Some(metrics.clone()),
            shutdown.clone(),
        )
        .await?;
        web_task = Some(task);
        web_url = Some(format!("http://{local}/"));
        services.insert(
            0,
            format!("  web UI     http://{local}/ (REST API under /api/v1)"),
        );
    }
    if standalone {
        println!("Tributary standalone");
        println!(
            "  metadata   {}",
            scheduler::store::redact(&ctx.database_url())
        );
        println!(
            "  dags       {} ({} DAGs, {} import errors)",
            ctx.dags_folder().display(),
            bag.dags.len(),
            bag.errors.len()
        );
        println!(
            "  scheduler  running, {} parallel task tries",
            a.parallelism
        );
        for line in &services {
            println!("{line}");
        }
        let me = invoked_as();
        if let Some(url) = &web_url {
            println!("Open {url} to watch DAGs, runs, logs and streams.");
        }
        println!("Try ({me} is this binary):");
        println!("  {me} dags list");
        println!("  {me} trigger hello --conf '{{\"name\": \"you\"}}' --wait");
        for s in &ctx.project.streams {
            println!("  {me} lake ls {}", s.table);
        }
        println!(
            "Ctrl-C stops (running tasks go back to scheduled; stream writers commit what they hold)"
        );
    }
    for d in bag.diagnostics() {
        eprintln!("import error: {d}");
    }
    Scheduler::new(store, ctx.kinds.clone(), cfg)
        .run(shutdown.clone())
        .await?;
    // Writers flush and commit on the same signal; wait for them before
    // the dev broker goes away.
    shutdown.cancel();
    for w in writers {
        if tokio::time::timeout(crate::lake_cmd::SHUTDOWN_GRACE, w)
            .await
            .is_err()
        {
            eprintln!(
                "a stream writer did not stop within {}s (is Kafka reachable?); records not yet committed are read again on the next start",
                crate::lake_cmd::SHUTDOWN_GRACE.as_secs()
            );
        }
    }
    if let Some(t) = web_task {
        let _ = tokio::time::timeout(crate::lake_cmd::SHUTDOWN_GRACE, t).await;
    }
    dev_stop.cancel();
    drop(_dev_broker);
    Ok(ExitCode::SUCCESS)
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

async fn dags(ctx: &Ctx, c: &DagsCommand) -> Result<ExitCode> {
    match c {
        DagsCommand::Validate { paths } => validate(ctx, paths),
        DagsCommand::Schema => {
            output::json(&scheduler::dag::file::json_schema(&ctx.kinds))?;
            Ok(ExitCode::SUCCESS)
        }
        DagsCommand::NextRuns { dag_id, count } => {
            let bag = ctx.bag()?;
            let dag = bag.get(dag_id)?;
            next_runs(ctx, &dag, *count)
        }
        DagsCommand::Show { dag_id } => {
            let bag = ctx.bag()?;
            show(ctx, &*bag.get(dag_id)?)
        }
        DagsCommand::List { tag } => dags_list(ctx, tag).await,
        DagsCommand::Pause { dag_id } | DagsCommand::Unpause { dag_id } => {
            let pause = matches!(c, DagsCommand::Pause { .. });
            let store = ctx.store().await?;
            let bag = ctx.synced_bag(store.as_ref()).await?;
            if !store.set_paused(dag_id, pause).await? {
                bag.get(dag_id)?;
                bail!("DAG {dag_id:?} not found");
            }
            println!("DAG {dag_id} {}", if pause { "paused" } else { "unpaused" });
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn validate(ctx: &Ctx, paths: &[PathBuf]) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![ctx.dags_folder()]
    } else {
        paths.to_vec()
    };
    for p in &paths {
        if !p.exists() {
            bail!("{} does not exist", p.display());
        }
    }
    let bag = DagBag::load(&paths, &ctx.kinds)?;
    let diags = bag.diagnostics();
    if ctx.cli.output == Output::Json {
        output::json(&json!({
            "valid": diags.is_empty(),
            "dags": bag.dags.values().map(|d| json!({"dag_id": d.dag_id, "file": d.fileloc})).collect::<Vec<_>>(),
            "errors": diags,
        }))?;
    } else {
        for d in &diags {
            println!("{d}");
        }
        let files = bag.dags.len() + bag.errors.len();
        if diags.is_empty() {
            println!(
                "{files} file(s) checked: {} DAG(s), all valid",
                bag.dags.len()
            );
        } else {
            println!(
                "{files} file(s) checked: {} valid DAG(s), {} problem(s) in {} file(s)",
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

fn next_runs(ctx: &Ctx, dag: &Dag, n: usize) -> Result<ExitCode> {
    let tt = &dag.timetable;
    let runs = tt.upcoming(Utc::now(), n);
    if ctx.cli.output == Output::Json {
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
    let local = |t: chrono::DateTime<Utc>| {
        t.with_timezone(&tt.tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
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

fn dag_json(dag: &Dag) -> Value {
    let tt = &dag.timetable;
    json!({
        "dag_id": dag.dag_id,
        "description": dag.description,
        "file": dag.fileloc,
        "schedule": tt.schedule.as_text(),
        "timezone": tt.tz.name(),
        "start_date": tt.start,
        "end_date": tt.end,
        "catchup": tt.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "tags": dag.tags,
        "params": dag.params,
        "tasks": dag.tasks.iter().map(|t| json!({
            "id": t.id,
            "kind": t.kind,
            "depends_on": t.depends_on,
            "trigger_rule": t.trigger_rule.as_str(),
            "retries": t.retry.retries,
            "retry_delay_secs": t.retry.retry_delay.as_secs_f64(),
            "retry_exponential_backoff": t.retry.exponential_backoff,
            "max_retry_delay_secs": t.retry.max_retry_delay.as_secs_f64(),
            "execution_timeout_secs": t.execution_timeout.map(|d| d.as_secs_f64()),
            "pool": t.pool,
            "priority": t.priority,
            "settings": t.settings,
        })).collect::<Vec<_>>(),
    })
}

fn show(ctx: &Ctx, dag: &Dag) -> Result<ExitCode> {
    if ctx.cli.output == Output::Json {
        output::json(&dag_json(dag))?;
        return Ok(ExitCode::SUCCESS);
    }
    let tt = &dag.timetable;
    println!("DAG          {}", dag.dag_id);
    if !dag.description.is_empty() {
        println!("description  {}", dag.description);
    }
    println!("file         {}", dag.fileloc.display());
    println!("schedule     {} ({})", tt.schedule.as_text(), tt.tz.name());
    println!("start_date   {}", opt_ts(tt.start));
    println!("end_date     {}", opt_ts(tt.end));
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

async fn dags_list(ctx: &Ctx, tags: &[String]) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let bag = ctx.synced_bag(store.as_ref()).await?;
    let records: HashMap<String, _> = store
        .list_dags()
        .await?
        .into_iter()
        .map(|d| (d.dag_id.clone(), d))
        .collect();
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for dag in bag.dags.values() {
        if !tags.is_empty() && !dag.tags.iter().any(|t| tags.contains(t)) {
            continue;
        }
        let paused = records.get(&dag.dag_id).is_some_and(|r| r.is_paused);
        let last = store.last_scheduled_run(&dag.dag_id).await?;
        let next = dag
            .timetable
            .next_dagrun(last.as_ref().map(|r| &r.data_interval), now);
        let recent = store.list_runs(&dag.dag_id, 5).await?;
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
            "file": dag.fileloc,
            "recent_runs": recent.iter().map(|r| json!({"run_id": r.run_id, "state": r.state})).collect::<Vec<_>>(),
        }));
    }
    let errors = store.import_errors().await?;
    if ctx.cli.output == Output::Json {
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

async fn trigger(ctx: &Ctx, a: &TriggerArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let bag = ctx.synced_bag(store.as_ref()).await?;
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
    if ctx.cli.output == Output::Json && !a.wait {
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
    let mut changes = store.changes().await?;
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

async fn runs_list(ctx: &Ctx, dag_id: &str, limit: i64) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let runs = store.list_runs(dag_id, limit.max(1)).await?;
    if runs.is_empty() && store.get_dag(dag_id).await?.is_none() {
        ctx.bag()?.get(dag_id)?;
    }
    if ctx.cli.output == Output::Json {
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

fn state_word(s: MarkState) -> &'static str {
    match s {
        MarkState::Success => "success",
        MarkState::Failed => "failed",
    }
}

async fn find_run(
    store: &dyn Store,
    dag_id: &str,
    run_id: &str,
) -> Result<scheduler::store::RunRecord> {
    Ok(store
        .get_run(dag_id, run_id)
        .await?
        .ok_or_else(|| scheduler::Error::RunNotFound {
            dag_id: dag_id.to_string(),
            run_id: run_id.to_string(),
        })?)
}

fn report_action(ctx: &Ctx, what: &str, r: &scheduler::actions::ActionReport) -> Result<ExitCode> {
    if ctx.cli.output == Output::Json {
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

async fn tasks_cmd(ctx: &Ctx, c: &TasksCommand) -> Result<ExitCode> {
    match c {
        TasksCommand::Clear {
            dag_id,
            run_id,
            task,
            downstream,
            upstream,
            failed_only,
        } => {
            let store = ctx.store().await?;
            let bag = ctx.synced_bag(store.as_ref()).await?;
            let dag = bag.get(dag_id)?;
            let run = find_run(store.as_ref(), dag_id, run_id).await?;
            let opts = scheduler::actions::ClearOptions {
                task: task.clone(),
                downstream: *downstream,
                upstream: *upstream,
                failed_only: *failed_only,
            };
            let r = scheduler::actions::clear(store.as_ref(), &dag, &run, &opts).await?;
            if r.changed.is_empty() && ctx.cli.output == Output::Table {
                println!("nothing to clear in run {run_id}");
                return Ok(ExitCode::SUCCESS);
            }
            report_action(
                ctx,
                &format!("cleared {} task(s) of run {run_id}", r.changed.len()),
                &r,
            )
        }
        TasksCommand::Mark {
            dag_id,
            run_id,
            task_id,
            state,
        } => {
            let store = ctx.store().await?;
            let bag = ctx.synced_bag(store.as_ref()).await?;
            let dag = bag.get(dag_id)?;
            let run = find_run(store.as_ref(), dag_id, run_id).await?;
            let r = scheduler::actions::mark_task(
                store.as_ref(),
                &dag,
                &run,
                task_id,
                *state == MarkState::Success,
            )
            .await?;
            report_action(
                ctx,
                &format!("task {task_id} marked {}", state_word(*state)),
                &r,
            )
        }
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
        TasksCommand::Kinds => {
            if ctx.cli.output == Output::Json {
                let v: Vec<Value> = ctx
                    .kinds
                    .iter()
                    .map(|k| json!({"kind": k.name(), "summary": k.summary(), "settings": k.settings_schema()}))
                    .collect();
                output::json(&v)?;
            } else {
                for k in ctx.kinds.iter() {
                    println!("{:<8} {}", k.name(), k.summary());
                    let schema = k.settings_schema();
                    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                        for (name, p) in props {
                            let desc = p.get("description").and_then(Value::as_str).unwrap_or("");
                            println!("         {name:<16} {}", desc.lines().next().unwrap_or(""));
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::List { dag_id, run_id } => {
            let store = ctx.store().await?;
            let run = store.get_run(dag_id, run_id).await?.ok_or_else(|| {
                scheduler::Error::RunNotFound {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                }
            })?;
            let tis = store.task_instances(&[run.id]).await?;
            if ctx.cli.output == Output::Json {
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
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
        } => {
            let store = ctx.store().await?;
            let ti = store.get_task_instance(dag_id, run_id, task_id).await?.with_context(|| {
                format!("no task {task_id:?} in run {run_id:?} of DAG {dag_id:?} (see `tributary tasks list {dag_id} {run_id}`)")
            })?;
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
            if ctx.cli.output == Output::Json {
                output::json(&lines)?;
            } else {
                for l in lines {
                    println!("[{}] {}", l.ts.format("%Y-%m-%d %H:%M:%S%.3f"), l.line);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn pools(ctx: &Ctx, c: &PoolsCommand) -> Result<ExitCode> {
    let store = ctx.store().await?;
    match c {
        PoolsCommand::List => {
            let usage = store.slot_usage().await?;
            let pools = store.list_pools().await?;
            if ctx.cli.output == Output::Json {
                let v: Vec<Value> = pools
                    .iter()
                    .map(|p| json!({"name": p.name, "slots": p.slots, "used": usage.by_pool.get(&p.name).copied().unwrap_or(0), "description": p.description}))
                    .collect();
                output::json(&v)?;
            } else {
                let rows: Vec<Vec<String>> = pools
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.slots.to_string(),
                            usage.by_pool.get(&p.name).copied().unwrap_or(0).to_string(),
                            p.description.clone(),
                        ]
                    })
                    .collect();
                output::table(&["POOL", "SLOTS", "USED", "DESCRIPTION"], &rows);
            }
        }
        PoolsCommand::Set {
            name,
            slots,
            description,
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                bail!("invalid pool name {name:?}: use letters, digits, '_', '-' or '.'");
            }
            store
                .set_pool(&PoolRecord {
                    name: name.clone(),
                    slots: i64::from(*slots),
                    description: description.clone(),
                })
                .await?;
            store.notify().await?;
            println!("pool {name} has {slots} slot(s)");
        }
        PoolsCommand::Delete { name } => {
            if !store.delete_pool(name).await? {
                bail!("pool {name:?} not found");
            }
            println!("pool {name} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
