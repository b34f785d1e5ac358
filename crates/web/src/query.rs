//! SQL over the lake for the JSON API (`POST /api/v1/sql`) and the Query
//! page: one way to run a query and shape its answer, so both show the same
//! rows, types, limits and errors.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lake::sql::encode::{self, ColumnInfo};
use lake::sql::{Answer, SqlError};
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
