//! Tributary's web server: the HTML UI and the JSON REST API (`/api/v1`),
//! one axum [`Router`] built by [`app`].
//!
//! Everything is read from the metadata store (DAGs are parsed from the
//! source the scheduler recorded, so the server needs no DAGs folder) and,
//! for the streams page, from the lake tables and Kafka. Pages are rendered
//! on the server from askama templates (HTML-escaped automatically); the
//! small script in `assets/app.js` refreshes the live parts of a page and
//! tails task logs over server-sent events. Nothing is loaded from a CDN.
//!
//! Security ([`security`]): the server binds 127.0.0.1 unless told
//! otherwise and refuses to bind elsewhere without a token; with a token,
//! every state-changing request needs it (`Authorization: Bearer` or the
//! cookie the login page sets); HTML forms carry a double-submit CSRF token
//! and JSON requests must be `application/json`, so no other site can make a
//! browser change anything.

mod api;
mod chart;
mod cookies;
mod dags;
mod error;
mod openapi;
mod pages;
mod query;
pub mod security;
mod service;
mod state;
mod streams;
pub mod svg;
mod transforms;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};
pub use state::{AppState, WebOptions};
pub use streams::StreamSource;

/// The default address of the web server.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The whole application: UI pages, static assets, the REST API and the
/// security layer. Tests call it without a socket (`oneshot`).
pub fn app(state: AppState) -> Router {
    let ui = Router::new()
        .route("/", get(pages::dag_list))
        .route("/dags/{dag_id}", get(pages::dag_grid))
        .route("/dags/{dag_id}/code", get(pages::dag_code))
        .route(
            "/dags/{dag_id}/trigger",
            get(pages::trigger_form).post(pages::trigger_submit),
        )
        .route(
            "/dags/{dag_id}/backfills",
            get(pages::backfills).post(pages::backfill_submit),
        )
        .route("/dags/{dag_id}/pause", post(pages::pause))
        .route("/backfills/{id}/cancel", post(pages::backfill_cancel))
        .route("/dags/{dag_id}/runs/{run_id}", get(pages::run_page))
        .route("/dags/{dag_id}/runs/{run_id}/mark", post(pages::run_mark))
        .route("/dags/{dag_id}/runs/{run_id}/clear", post(pages::run_clear))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
            get(pages::task_page),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear",
            post(pages::task_clear),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
            post(pages::task_mark),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/log/stream",
            get(pages::log_stream),
        )
        .route("/streams", get(pages::streams))
        .route("/query", get(pages::query_page))
        .route("/query.csv", get(pages::query_csv))
        .route("/api", get(pages::api_reference))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/static/app.css", get(pages::css))
        .route("/static/app.js", get(pages::js))
        .route("/healthz", get(api::health))
        .route("/metrics", get(api::metrics))
        .fallback(pages::not_found);
    Router::new()
        .merge(ui)
        .nest("/api/v1", api::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
}

/// The shortest token the server accepts: a short one can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Refuses a token shorter than [`MIN_TOKEN_CHARS`], and a bind address
/// other than loopback when no token is set.
pub fn check_bind(addr: &SocketAddr, token: Option<&str>) -> Result<()> {
    if let Some(t) = token.filter(|t| !t.is_empty())
        && t.chars().count() < MIN_TOKEN_CHARS
    {
        return Err(Error::Config(format!(
            "the web token has {} characters: use at least {MIN_TOKEN_CHARS} \
             (e.g. `openssl rand -hex 16`)",
            t.chars().count()
        )));
    }
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "the web server would listen on {addr}, reachable from other machines, without a token: \
             set [web] token = \"${{TRIBUTARY_WEB_TOKEN}}\" in tributary.toml (or TRIBUTARY_WEB_TOKEN), \
             or bind 127.0.0.1"
        )));
    }
    Ok(())
}

/// Binds `addr` (after [`check_bind`]) and serves [`app`] until `stop`.
/// Returns the bound address and the server's task.
pub async fn serve(
    addr: SocketAddr,
    opts: WebOptions,
    stop: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    check_bind(&addr, opts.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr} for the web UI: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("web UI socket: {e}")))?;
    let router = app(AppState::with_stop(opts, stop.clone()));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            tracing::error!(%e, "web server stopped");
        }
    });
    Ok((local, task))
}
