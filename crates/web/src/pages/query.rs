//! The Query page: an SQL box, the answer as a table (and a chart when it
//! has one label column and numeric columns), the lake's tables with their
//! columns to click into the box, and the answer as CSV. A query is a GET
//! (`/query?sql=…`): it only reads, and its address can be shared.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lake::sql::catalog::TableColumns;
use lake::sql::encode::ColumnInfo;
use serde::Deserialize;
use serde_json::Value;

use crate::chart::{self, Chart};
use crate::cookies::Csrf;
use crate::query::{self, SqlAnswer};
use crate::state::AppState;

use super::layout::{Chrome, PageResult, chrome, query as query_params, render};

/// Rows the page shows unless asked for more.
const PAGE_ROWS: u64 = 200;
/// Tables whose columns the page lists (the rest by name only).
const MAX_DESCRIBED: usize = 200;

/// `?sql=…&limit=…`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueryParams {
    #[serde(default)]
    sql: String,
    limit: Option<u64>,
}

#[derive(Template)]
#[template(path = "query.html")]
struct QueryPage {
    c: Chrome,
    sql: String,
    tables: Vec<TableColumns>,
    views: Vec<String>,
    answer: Option<AnswerView>,
    error: Option<String>,
    csv_href: String,
    example: String,
}

struct AnswerView {
    columns: Vec<ColumnInfo>,
    rows: Vec<Vec<String>>,
    row_count: u64,
    more: u64,
    read: String,
    made_of: Vec<String>,
    elapsed_ms: u64,
    chart: Option<Chart>,
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn view(a: SqlAnswer) -> AnswerView {
    let chart = chart::chart(&a.columns, &a.rows);
    AnswerView {
        rows: a
            .rows
            .iter()
            .map(|r| r.iter().map(cell).collect())
            .collect(),
        more: a.row_count - a.rows.len() as u64,
        row_count: a.row_count,
        read: a
            .tables
            .iter()
            .map(|(t, v)| format!("{t} v{v}"))
            .collect::<Vec<_>>()
            .join(", "),
        made_of: a.made_of,
        elapsed_ms: a.elapsed_ms,
        columns: a.columns,
        chart,
    }
}

/// The lake's tables with their columns, for the side list.
async fn tables(s: &AppState) -> Vec<TableColumns> {
    let Some(engine) = s.0.sql.as_ref() else {
        return Vec::new();
    };
    let catalog = engine.catalog();
    let names = catalog.list().await.unwrap_or_default();
    let described =
        futures::future::join_all(names.iter().take(MAX_DESCRIBED).map(|n| catalog.columns(n)))
            .await;
    let mut out: Vec<TableColumns> = described.into_iter().flatten().flatten().collect();
    out.extend(names.iter().skip(MAX_DESCRIBED).map(|n| TableColumns {
        name: n.clone(),
        version: 0,
        columns: Vec::new(),
        partition_columns: Vec::new(),
    }));
    out
}

pub(crate) async fn query_page(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    q: Result<Query<QueryParams>, QueryRejection>,
) -> PageResult {
    let p = query_params(q)?;
    let tables = tables(&s).await;
    let (answer, error) = if p.sql.trim().is_empty() {
        (None, None)
    } else {
        let limit = p.limit.unwrap_or(PAGE_ROWS).min(query::MAX_ROWS);
        match query::run(&s, &p.sql, limit).await {
            Ok((a, _)) => (Some(view(a)), None),
            Err(f) => (None, Some(f.message())),
        }
    };
    let example = tables
        .first()
        .map(|t| format!("SELECT * FROM {} LIMIT 10", t.name))
        .unwrap_or_else(|| "SELECT 1 AS one".into());
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = QueryPage {
        c: chrome(&s, &headers, &csrf, "Query".into(), "query"),
        csv_href: format!("/query.csv?sql={}", encode_query(&p.sql)),
        sql: p.sql,
        tables,
        views: s
            .0
            .sql
            .as_ref()
            .and_then(|e| e.catalog().layers())
            .map(|l| l.names())
            .unwrap_or_default(),
        answer,
        error,
        example,
    };
    Ok(render(&page, status))
}

/// The whole answer as CSV (up to the API's row limit), for download.
pub(crate) async fn query_csv(
    State(s): State<AppState>,
    q: Result<Query<QueryParams>, QueryRejection>,
) -> Result<Response, super::layout::PageError> {
    let p = query_params(q)?;
    let (_, answer) = match query::run(&s, &p.sql, query::MAX_ROWS).await {
        Ok(a) => a,
        Err(f) => {
            return Ok((StatusCode::BAD_REQUEST, f.message()).into_response());
        }
    };
    let mut out = lake::sql::encode::CsvOut::new(Vec::new());
    for b in &answer.batches {
        if let Err(e) = out.write(b) {
            return Ok((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response());
        }
    }
    let body = match out.finish(&answer.schema) {
        Ok(b) => b,
        Err(e) => return Ok((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
    };
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"query.csv\""),
    );
    Ok(r)
}

fn encode_query(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
