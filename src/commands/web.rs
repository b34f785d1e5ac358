//! `tributary web`, and the web server `standalone` runs: options from the
//! project config (bind address, token) and the project's streams.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use lake::metrics::Metrics;
use scheduler::store::Store;
use tokio_util::sync::CancellationToken;
use web::{StreamSource, WebOptions};

use crate::cli::WebArgs;
use crate::config::Project;
use crate::settings::Settings;

/// Where the web server listens: the flag, else the config, else the default.
pub fn bind_addr(flag: Option<&str>, project: &Project) -> Result<SocketAddr> {
    let text = flag
        .or(project.web.bind.as_deref())
        .unwrap_or(web::DEFAULT_BIND);
    crate::config::parse_addr(text, "web bind address", "127.0.0.1:8080")
}

/// The token: `[web] token` (with `${VAR}` resolved), else TRIBUTARY_WEB_TOKEN.
pub fn token(project: &Project) -> Result<Option<String>> {
    match &project.web.token {
        Some(t) => Ok(Some(crate::config::resolve(t, "[web] token")?)),
        None => Ok(std::env::var("TRIBUTARY_WEB_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())),
    }
}

/// The project's streams as the web server reports on them.
pub fn stream_sources(project: &Project) -> Result<Vec<StreamSource>> {
    let mut out = Vec::new();
    for spec in &project.streams {
        out.push(StreamSource {
            location: project.location(spec.lake.as_deref())?,
            kafka: project.kafka_source()?,
            spec: spec.clone(),
        });
    }
    Ok(out)
}

/// What queries from the UI and `/api/v1/sql` may use, together: they share
/// the process with the scheduler and, in `standalone`, the stream writers.
const WEB_SQL_LIMITS: lake::sql::Limits = lake::sql::Limits {
    memory: 512 << 20,
    timeout: std::time::Duration::from_secs(120),
};

/// Starts the web server on `addr`; returns the bound address.
pub async fn start(
    settings: &Settings,
    addr: SocketAddr,
    store: Arc<dyn Store>,
    metrics: Option<Arc<Metrics>>,
    stop: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let opts = WebOptions {
        store,
        kinds: settings.kinds.clone(),
        streams: stream_sources(&settings.project)?,
        transforms: settings.project.transforms.clone(),
        metrics,
        sql: Some(lake::sql::SqlEngine::new(
            settings.project.catalog()?,
            WEB_SQL_LIMITS,
        )?),
        token: token(&settings.project)?,
        anonymous_read: settings.project.web.anonymous_read,
        allowed_hosts: settings.project.web.allowed_hosts.clone(),
        project: Some(settings.project.identity()),
    };
    Ok(web::serve(addr, opts, stop).await?)
}

/// `tributary web`.
pub async fn run(settings: &Settings, a: &WebArgs) -> Result<ExitCode> {
    let addr = bind_addr(a.bind.as_deref(), &settings.project)?;
    let store = settings.store().await?;
    let stop = crate::shutdown::on_signals();
    let (local, task) = start(settings, addr, store, None, stop)
        .await
        .context("cannot start the web server")?;
    println!(
        "web UI and API on http://{local}/ (API: http://{local}/api/v1/openapi.json; Ctrl-C to stop)"
    );
    task.await?;
    Ok(ExitCode::SUCCESS)
}
