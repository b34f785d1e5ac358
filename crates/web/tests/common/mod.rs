//! What the router tests share: an application on a real SQLite (or
//! PostgreSQL) metadata store with the `pipeline` DAG loaded, and requests
//! sent to it without a socket.
#![allow(dead_code)] // each test file uses its own share

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use scheduler::dagbag::DagBag;
use scheduler::store::{SqlStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;
use web::{AppState, WebOptions, app};

pub const HOSTILE: &str = "<script>alert('x')</script>";

pub const PIPELINE: &str = r#"
dag_id = "pipeline"
description = "Loads <script>alert('x')</script> & more"
schedule = "@daily"
timezone = "UTC"
start_date = 2026-01-01
catchup = false
tags = ["etl", "demo"]

[params.count]
type = "integer"
default = 3
minimum = 1
maximum = 10
description = "How many"

[params.mode]
type = "string"
enum = ["fast", "safe"]
default = "safe"

[[task]]
id = "extract"
kind = "noop"

[[task]]
id = "left"
kind = "noop"
depends_on = ["extract"]

[[task]]
id = "right"
kind = "noop"
depends_on = ["extract"]

[[task]]
id = "load"
kind = "noop"
depends_on = ["left", "right"]
"#;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqlStore>,
    pub app: Router,
}

pub async fn env_with(url: Option<String>, token: Option<&str>) -> Env {
    env_with_reads(url, token, false).await
}

pub async fn env_with_reads(url: Option<String>, token: Option<&str>, anonymous_read: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("meta.db").display()));
    let store = Arc::new(SqlStore::connect(&url).await.unwrap());
    store.migrate().await.unwrap();
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags).unwrap();
    std::fs::write(dags.join("pipeline.toml"), PIPELINE).unwrap();
    std::fs::write(
        dags.join("broken.toml"),
        "dag_id = \"broken\"\n[[task]]\nid = \"a\"\nkind = \"nope\"\n",
    )
    .unwrap();
    let bag = DagBag::load(&[dags], &tasks::registry()).unwrap();
    bag.sync(store.as_ref()).await.unwrap();
    let app = app(AppState::new(WebOptions {
        store: store.clone(),
        kinds: tasks::registry(),
        streams: Vec::new(),
        transforms: Vec::new(),
        metrics: None,
        sql: Some(
            lake::sql::SqlEngine::new(
                lake::sql::LakeCatalog::new(
                    lake::table::Location::parse("lake", dir.path(), Default::default()).unwrap(),
                ),
                lake::sql::Limits::default(),
            )
            .unwrap(),
        ),
        token: token.map(str::to_string),
        anonymous_read,
        allowed_hosts: Vec::new(),
        project: None,
    }));
    Env { dir, store, app }
}

pub async fn env() -> Env {
    env_with(None, None).await
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn get(app: &Router, uri: &str) -> Resp {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub fn json_req(method: &str, uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A form post from our own page: CSRF cookie and field agree.
pub fn form(uri: &str, fields: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, "tributary_csrf=tok123")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .body(Body::from(format!("_csrf=tok123&{fields}")))
        .unwrap()
}

pub async fn trigger(e: &Env, conf: Value, date: &str) -> Value {
    let r = send(
        &e.app,
        json_req(
            "POST",
            "/api/v1/dags/pipeline/runs",
            json!({"conf": conf, "logical_date": date}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()
}
