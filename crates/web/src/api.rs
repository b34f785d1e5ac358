//! The JSON REST API under `/api/v1`: everything the UI shows and does.
//! Lists are bounded and paginated by key (`before` = the last logical date
//! seen), so every request costs the same whatever the history size.
//! The document describing it is [`crate::openapi`].

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scheduler::backfill;
use scheduler::dag::Dag;
use scheduler::model::BackfillState;
use scheduler::timetable::parse_datetime;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::dags::{self, parse_cursor};
use crate::error::{ApiError, Failure};
use crate::service::{self, ClearRunBody, DagPatch, MarkBody, TriggerBody};
use crate::state::AppState;

type ApiResult<T = Response> = Result<T, ApiError>;

/// Default and largest page sizes.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/dags", get(list_dags))
        .route("/dags/{dag_id}", get(get_dag).patch(patch_dag))
        .route("/dags/{dag_id}/runs", get(list_runs).post(trigger))
        .route("/dags/{dag_id}/runs/{run_id}", get(get_run))
        .route("/dags/{dag_id}/runs/{run_id}/mark", post(mark_run))
        .route("/dags/{dag_id}/runs/{run_id}/clear", post(clear_run))
        .route("/dags/{dag_id}/runs/{run_id}/tasks", get(list_tasks))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
            get(get_task),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs",
            get(task_logs),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/tries",
            get(task_tries),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear",
            post(clear_task),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
            post(mark_task),
        )
        .route("/backfills", get(list_backfills).post(create_backfill))
        .route("/backfills/{id}", get(get_backfill))
        .route("/backfills/{id}/cancel", post(cancel_backfill))
        .route("/streams", get(list_streams))
        .route("/streams/{name}", get(get_stream))
        .route("/transforms", get(list_transforms))
        .route("/sql", post(sql))
        .route("/server", get(server_info))
        .route("/import_errors", get(import_errors))
        .route("/openapi.json", get(openapi))
        .fallback(|| async {
            ApiError(Failure::not_found(
                "no such API endpoint (see /api/v1/openapi.json)",
            ))
        })
}

/// Path parameters, with a JSON error when they do not parse.
fn path<T>(p: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError(Failure::bad_request(e.body_text())))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(v)| v).map_err(|e| {
        ApiError(Failure::bad_request(format!(
            "query string: {}",
            e.body_text()
        )))
    })
}

/// A JSON body (an empty body reads as `{}`), with a message naming the
/// problem and its place.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError(Failure::bad_request(format!("request body: {e}"))))
}

fn limit(l: Option<i64>) -> ApiResult<i64> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError(Failure::bad_request(format!(
            "limit {n} is out of range: use 1 to {MAX_LIMIT}"
        )))),
    }
}

pub(crate) async fn health(State(s): State<AppState>) -> Response {
    match s.store().import_errors().await {
        Ok(_) => Json(json!({"status": "ok", "database": s.store().backend()})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: metadata database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "message": "the metadata database does not answer"})),
            )
                .into_response()
        }
    }
}

pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    match &s.0.metrics {
        Some(m) => ([("content-type", "text/plain; version=0.0.4")], m.render()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no stream writer runs in this process; see `tributary stream run --metrics-bind`",
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct TagQuery {
    tag: Option<String>,
}

async fn list_dags(
    State(s): State<AppState>,
    q: Result<Query<TagQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let list = dags::summaries(s.store(), &s.0.dags, q.tag.as_deref()).await?;
    let errors = s.store().import_errors().await.map_err(Failure::from)?;
    Ok(Json(json!({"dags": list, "import_errors": errors})).into_response())
}

/// A DAG's JSON view with its paused flag.
pub(crate) fn dag_json(dag: &Dag, is_paused: bool) -> Value {
    let mut v = dag.to_json();
    v["is_paused"] = json!(is_paused);
    v
}

async fn get_dag(State(s): State<AppState>, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let id = path(p)?;
    let (rec, dag) = s.0.dags.read(s.store(), &id).await?;
    Ok(Json(dag_json(&dag, rec.is_paused)).into_response())
}

async fn patch_dag(
    State(s): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    b: Bytes,
) -> ApiResult {
    let id = path(p)?;
    let patch: DagPatch = body(&b)?;
    let (_, dag) = s.0.dags.get(s.store(), &id).await?;
    s.store()
        .set_paused(&id, patch.is_paused)
        .await
        .map_err(Failure::from)?;
    s.store().notify().await.map_err(Failure::from)?;
    Ok(Json(dag_json(&dag, patch.is_paused)).into_response())
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<i64>,
    before: Option<String>,
}

async fn list_runs(
    State(s): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult {
    let id = path(p)?;
    let q = query(q)?;
    let n = limit(q.limit)?;
    let before = q
        .before
        .as_deref()
        .map(|b| parse_cursor(b, "before"))
        .transpose()?;
    s.0.dags.read(s.store(), &id).await?;
    let page = dags::run_page(s.store(), &id, before, n).await?;
    Ok(Json(json!({"runs": page.runs, "next_before": page.next_before})).into_response())
}

async fn trigger(
    State(s): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    b: Bytes,
) -> ApiResult {
    let id = path(p)?;
    let t: TriggerBody = body(&b)?;
    let (_, dag) = s.0.dags.get(s.store(), &id).await?;
    let ld = t
        .logical_date
        .as_deref()
        .map(|d| {
            parse_datetime(d, dag.timetable.tz)
                .map_err(|e| Failure::invalid(format!("logical_date {d:?}: {e}")))
        })
        .transpose()?;
    let run = scheduler::runs::trigger(s.store(), &dag, t.conf, ld).await?;
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

async fn get_run(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let (dag_id, run_id) = path(p)?;
    let (_, dag) = s.0.dags.read(s.store(), &dag_id).await?;
    let (run, tis) = dags::run_with_tasks(s.store(), &dag, &run_id).await?;
    Ok(Json(json!({"run": run, "task_instances": tis})).into_response())
}

async fn mark_run(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Bytes,
) -> ApiResult {
    let (dag_id, run_id) = path(p)?;
    let m: MarkBody = body(&b)?;
    let success = service::mark_state(&m.state)?;
    s.0.dags.get(s.store(), &dag_id).await?;
    let run = service::find_run(&s, &dag_id, &run_id).await?;
    let r = scheduler::actions::mark_run(s.store(), &run, success).await?;
    Ok(Json(r).into_response())
}

async fn list_tasks(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let (dag_id, run_id) = path(p)?;
    let (_, dag) = s.0.dags.read(s.store(), &dag_id).await?;
    let (_, tis) = dags::run_with_tasks(s.store(), &dag, &run_id).await?;
    Ok(Json(json!({"task_instances": tis})).into_response())
}

async fn get_task(
    State(s): State<AppState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult {
    let (dag_id, run_id, task_id) = path(p)?;
    Ok(Json(service::find_ti(&s, &dag_id, &run_id, &task_id).await?).into_response())
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(rename = "try")]
    try_number: Option<u32>,
    after: Option<i64>,
    limit: Option<i64>,
}

async fn task_logs(
    State(s): State<AppState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult {
    let (dag_id, run_id, task_id) = path(p)?;
    let q = query(q)?;
    let ti = service::find_ti(&s, &dag_id, &run_id, &task_id).await?;
    let try_number = service::pick_try(&ti, q.try_number)?;
    let n = match q.limit {
        None => 1000,
        Some(n) if (1..=10_000).contains(&n) => n,
        Some(n) => {
            return Err(ApiError(Failure::bad_request(format!(
                "limit {n} is out of range: use 1 to 10000"
            ))));
        }
    };
    let mut lines = s
        .store()
        .read_logs(ti.id, try_number, q.after.unwrap_or(0))
        .await
        .map_err(Failure::from)?;
    lines.truncate(usize::try_from(n).unwrap_or(0));
    let next_after = lines.last().map(|l| l.id).or(q.after);
    let finished = try_number < ti.try_number || !service::is_live(ti.state);
    Ok(Json(json!({
        "try_number": try_number,
        "tries": ti.try_number,
        "state": ti.state,
        "finished": finished,
        "lines": lines,
        "next_after": next_after}))
    .into_response())
}

async fn task_tries(
    State(s): State<AppState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult {
    let (dag_id, run_id, task_id) = path(p)?;
    let ti = service::find_ti(&s, &dag_id, &run_id, &task_id).await?;
    let tries = s.store().tries(&[ti.id]).await.map_err(Failure::from)?;
    Ok(Json(json!({"tries": tries})).into_response())
}

async fn clear_run(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Bytes,
) -> ApiResult {
    let (dag_id, run_id) = path(p)?;
    let c: ClearRunBody = body(&b)?;
    Ok(Json(service::clear_run(&s, &dag_id, &run_id, c.failed_only).await?).into_response())
}

async fn clear_task(
    State(s): State<AppState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
    b: Bytes,
) -> ApiResult {
    let (dag_id, run_id, task_id) = path(p)?;
    let c: service::ClearBody = body(&b)?;
    Ok(Json(service::clear_task(&s, &dag_id, &run_id, &task_id, c).await?).into_response())
}

async fn mark_task(
    State(s): State<AppState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
    b: Bytes,
) -> ApiResult {
    let (dag_id, run_id, task_id) = path(p)?;
    let m: MarkBody = body(&b)?;
    let success = service::mark_state(&m.state)?;
    Ok(Json(service::mark_task(&s, &dag_id, &run_id, &task_id, success).await?).into_response())
}

#[derive(Deserialize)]
struct BackfillQuery {
    dag_id: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

async fn list_backfills(
    State(s): State<AppState>,
    q: Result<Query<BackfillQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let state = q
        .state
        .as_deref()
        .map(|t| t.parse::<BackfillState>().map_err(Failure::bad_request))
        .transpose()?;
    let list = s
        .store()
        .list_backfills(q.dag_id.as_deref(), state, limit(q.limit)?)
        .await
        .map_err(Failure::from)?;
    let mut out = Vec::new();
    for bf in &list {
        out.push(service::backfill_with_progress(&s, bf).await?.1);
    }
    Ok(Json(json!({"backfills": out})).into_response())
}

async fn create_backfill(State(s): State<AppState>, b: Bytes) -> ApiResult {
    let req: service::BackfillBody = body(&b)?;
    match service::request_backfill(&s, req).await? {
        service::BackfillOutcome::Created(bf, n) => Ok((
            StatusCode::CREATED,
            Json(json!({"backfill": bf, "dates": n})),
        )
            .into_response()),
        service::BackfillOutcome::Plan(plan) => Ok(Json(json!({
            "dry_run": true,
            "plan": plan.iter().map(|(ld, end, a)| json!({"logical_date": ld, "data_interval_end": end, "action": a})).collect::<Vec<_>>()}))
        .into_response())}
}

async fn get_backfill(State(s): State<AppState>, p: Result<Path<i64>, PathRejection>) -> ApiResult {
    let id = path(p)?;
    let bf = service::find_backfill(&s, id).await?;
    let dates = s
        .store()
        .backfill_dates(id, None, Some(MAX_LIMIT), bf.reverse)
        .await
        .map_err(Failure::from)?;
    let (_, mut v) = service::backfill_with_progress(&s, &bf).await?;
    v["dates"] = json!(dates);
    Ok(Json(v).into_response())
}

async fn cancel_backfill(
    State(s): State<AppState>,
    p: Result<Path<i64>, PathRejection>,
) -> ApiResult {
    let id = path(p)?;
    service::find_backfill(&s, id).await?;
    let bf = backfill::cancel(s.store(), id).await?;
    Ok(Json(json!({"backfill": bf})).into_response())
}

async fn sql(State(s): State<AppState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    let q: crate::query::SqlBody = body(&b)?;
    if crate::query::wants_arrow(&headers) {
        return Ok(crate::query::arrow(&s, &headers, q).await);
    }
    let limit = q.limit.unwrap_or(crate::query::DEFAULT_ROWS);
    if limit > crate::query::MAX_ROWS {
        return Err(Failure::bad_request(format!(
            "limit {limit}: at most {} rows per answer (the rest are counted)",
            crate::query::MAX_ROWS
        ))
        .into());
    }
    Ok(match crate::query::run(&s, &q.sql, limit).await {
        Ok((answer, _)) => Json(answer).into_response(),
        Err(f) => f.into_response(),
    })
}

/// What this server is: `tributary sql` asks it only when it serves the
/// same project.
async fn server_info(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!({
        "project": s.0.project,
        "version": env!("CARGO_PKG_VERSION"),
        "sql": s.0.sql.is_some(),
    }))
    .into_response())
}

async fn list_streams(State(s): State<AppState>) -> ApiResult {
    let all = crate::streams::all(&s.0.streams, &s.0.offset_readers, s.0.metrics.as_deref()).await;
    Ok(Json(json!({"streams": all})).into_response())
}

async fn list_transforms(State(s): State<AppState>) -> ApiResult {
    let all = crate::transforms::all(
        &s.0.transforms,
        s.0.sql.as_ref().map(|e| e.catalog()),
        s.0.metrics.as_deref(),
    )
    .await;
    Ok(Json(json!({"transforms": all})).into_response())
}

async fn get_stream(
    State(s): State<AppState>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let name = path(p)?;
    let src =
        s.0.streams
            .iter()
            .find(|x| x.spec.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = s.0.streams.iter().map(|x| x.spec.name.as_str()).collect();
                Failure::not_found(format!(
                    "stream {name:?} not found (streams: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })?;
    Ok(
        Json(crate::streams::status(src, &s.0.offset_readers, s.0.metrics.as_deref()).await)
            .into_response(),
    )
}

async fn import_errors(State(s): State<AppState>) -> ApiResult {
    let errors = s.store().import_errors().await.map_err(Failure::from)?;
    Ok(Json(json!({"import_errors": errors})).into_response())
}

async fn openapi() -> Response {
    Json(crate::openapi::document().clone()).into_response()
}
