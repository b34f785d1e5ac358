//! SQL over the lake for the JSON API (`POST /api/v1/sql`) and the Query
//! page: one way to run a query and shape its answer, so both show the same
//! rows, types, limits and errors.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use lake::sql::encode::{self, ColumnInfo};
use lake::sql::wire::{self, AnswerMeta, Encoder};
use lake::sql::{Answer, Batches, SqlError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::AppState;

/// Rows an answer carries unless the request asks for fewer or more.
pub(crate) const DEFAULT_ROWS: u64 = 1000;
/// The most rows one answer carries (the rest are counted).
pub(crate) const MAX_ROWS: u64 = 10_000;

/// A query to run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlBody {
    /// The query (read-only: DDL, DML and statements are refused). Lake
    /// tables by name; `"users@12"` or `"users@2026-11-21T10:00:00Z"`
    /// reads an older version.
    pub sql: String,
    /// Rows to return (default 1000, at most 10000); the rest are counted.
    /// An Arrow answer (`Accept: application/vnd.apache.arrow.stream`)
    /// takes any limit, and without one holds every row.
    #[schemars(range(min = 0, max = 10000))]
    pub limit: Option<u64>,
}

/// A query's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SqlAnswer {
    /// Column names and types, in order.
    pub columns: Vec<ColumnInfo>,
    /// Rows, each an array of values in column order (dates and times as
    /// RFC 3339 text, decimals as text, nulls as null).
    pub rows: Vec<Vec<Value>>,
    /// Rows the query returned in all (`rows` holds the first `limit`).
    pub row_count: u64,
    /// Whether `rows` stops before `row_count`.
    pub truncated: bool,
    /// Each table the answer was read from, as named in the query, and the
    /// Delta version read.
    pub tables: BTreeMap<String, u64>,
    /// What each view layer read is made of (`live.users_by_nation = batch
    /// … + speed …`), one sentence per layer; empty without views.
    pub made_of: Vec<String>,
    /// Planning and running, in milliseconds.
    pub elapsed_ms: u64,
}

/// Runs a query with a row limit; `Err` is the query's problem as the API
/// and the page report it.
pub(crate) async fn run(
    state: &AppState,
    sql: &str,
    limit: u64,
) -> Result<(SqlAnswer, Answer), QueryFailure> {
    let Some(engine) = state.0.sql.as_ref() else {
        return Err(QueryFailure::NoLake);
    };
    let query = engine.plan(sql).await.map_err(QueryFailure::Sql)?;
    let answer = query
        .collect(Some(limit.min(MAX_ROWS)))
        .await
        .map_err(QueryFailure::Sql)?;
    let columns = encode::columns(&answer.schema);
    let rows = encode::json_arrays(&answer.schema, &answer.batches)
        .map_err(|e| QueryFailure::Sql(SqlError::execution(e.to_string())))?;
    let shaped = SqlAnswer {
        columns,
        rows,
        row_count: answer.rows,
        truncated: answer.kept() < answer.rows,
        tables: answer.tables.clone(),
        made_of: answer.made_of.clone(),
        elapsed_ms: answer.elapsed.as_millis() as u64,
    };
    Ok((shaped, answer))
}

/// Why a query has no answer.
#[derive(Debug)]
pub(crate) enum QueryFailure {
    /// The server was started without a lake.
    NoLake,
    /// The query's own problem.
    Sql(SqlError),
}

impl QueryFailure {
    /// The message, with the place (`line:col`) where known.
    pub(crate) fn message(&self) -> String {
        match self {
            QueryFailure::NoLake => "this server was started without a lake to query".into(),
            QueryFailure::Sql(e) => e.to_string(),
        }
    }
}

impl IntoResponse for QueryFailure {
    fn into_response(self) -> Response {
        let (status, extra) = match &self {
            QueryFailure::NoLake => (StatusCode::NOT_FOUND, json!({})),
            QueryFailure::Sql(e) => (
                StatusCode::BAD_REQUEST,
                json!({
                    "kind": e.kind,
                    "line": e.place.map(|p| p.line),
                    "column": e.place.map(|p| p.column),
                }),
            ),
        };
        let mut error = json!({"status": status.as_u16(), "message": self.message()});
        if let (Some(e), Some(x)) = (error.as_object_mut(), extra.as_object()) {
            e.extend(
                x.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

/// Whether the request asks for an Arrow IPC stream.
pub(crate) fn wants_arrow(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().map(str::trim) == Some(wire::MEDIA_TYPE))
}

/// The answer as an Arrow IPC stream ([`lake::sql::wire`]): with a limit,
/// run to the end first (the row count and time ride in the schema);
/// without, every row, sent as it comes.
pub(crate) async fn arrow(state: &AppState, headers: &HeaderMap, q: SqlBody) -> Response {
    if let Some(want) = headers.get(wire::PROJECT_HEADER) {
        let own = state.0.project.as_deref().unwrap_or_default();
        if want.as_bytes() != own.as_bytes() {
            let status = StatusCode::CONFLICT;
            let message = format!(
                "this server serves the project {own:?}, not {:?}",
                String::from_utf8_lossy(want.as_bytes())
            );
            return (
                status,
                Json(json!({"error": {"status": status.as_u16(), "message": message}})),
            )
                .into_response();
        }
    }
    match arrow_answer(state, q).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn arrow_answer(state: &AppState, q: SqlBody) -> Result<Response, QueryFailure> {
    let Some(engine) = state.0.sql.as_ref() else {
        return Err(QueryFailure::NoLake);
    };
    let query = engine.plan(&q.sql).await.map_err(QueryFailure::Sql)?;
    let mut meta = AnswerMeta {
        tables: query.tables().clone(),
        made_of: query.made_of().to_vec(),
        ..AnswerMeta::default()
    };
    let own = query.schema();
    let encoding = |e: lake::deltalake::arrow::error::ArrowError| {
        QueryFailure::Sql(SqlError::execution(format!(
            "cannot encode the answer: {e}"
        )))
    };
    let arrow_body = |body: Body| ([(CONTENT_TYPE, wire::MEDIA_TYPE)], body).into_response();
    if let Some(limit) = q.limit {
        let answer = query
            .collect(Some(limit))
            .await
            .map_err(QueryFailure::Sql)?;
        meta.rows = Some(answer.rows);
        meta.elapsed = Some(answer.elapsed);
        let bytes = wire::encode_all(&meta.attach(&own), &answer.batches).map_err(encoding)?;
        return Ok(arrow_body(Body::from(bytes)));
    }
    let schema = meta.attach(&own);
    let mut batches = query.stream().await.map_err(QueryFailure::Sql)?;
    // The first batch before the status line: most failures (an
    // aggregation's, a cast's, the time limit of a query that sends nothing
    // until it is done) come before it, and are answered as JSON errors.
    let first = batches
        .next()
        .await
        .transpose()
        .map_err(QueryFailure::Sql)?;
    // A batch message carries only columns: the batches go as they are.
    let (mut enc, head) = Encoder::start(&schema).map_err(encoding)?;
    let mut start = vec![head];
    if let Some(b) = first {
        start.push(enc.batch(&b).map_err(encoding)?);
    }
    let rest = futures::stream::unfold(Some((batches, enc)), next_chunk);
    let chunks = futures::stream::iter(start.into_iter().map(Ok)).chain(rest);
    Ok(arrow_body(Body::from_stream(chunks)))
}

/// The next message of a streamed answer. A failure past the first batch
/// ends the response without the stream's end marker, so no reader takes
/// the rows before it for the whole answer; the server logs why.
async fn next_chunk(
    state: Option<(Batches, Encoder)>,
) -> Option<(std::io::Result<Vec<u8>>, Option<(Batches, Encoder)>)> {
    let (mut batches, mut enc) = state?;
    let failed = |e: String| {
        tracing::warn!(error = %e, "an Arrow answer stopped part way");
        Some((Err(std::io::Error::other(e)), None))
    };
    match batches.next().await {
        Some(Ok(b)) => match enc.batch(&b) {
            Ok(bytes) => Some((Ok(bytes), Some((batches, enc)))),
            Err(e) => failed(e.to_string()),
        },
        Some(Err(e)) => failed(e.to_string()),
        None => match enc.finish() {
            Ok(bytes) => Some((Ok(bytes), None)),
            Err(e) => failed(e.to_string()),
        },
    }
}
