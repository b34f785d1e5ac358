//! The expectations of a `lake_check` task: how they are written
//! ([`ExpectSettings`]), checked at load ([`Expectation::from_settings`]),
//! evaluated in one aggregate query over the checked rows
//! ([`aggregate_sql`]), judged ([`outcomes`]) and illustrated with failing
//! rows ([`failing_samples`]).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use lake::sql::SqlEngine;
use lake::sql::template::Template;
use lake::sql::write::quote_ident;
use scheduler::duration::Dur;
use scheduler::operator::{TaskContext, TaskError};
use schemars::JsonSchema;
use serde::Deserialize;

use super::source::checked_in;
use super::task_error;

/// Failing rows shown in the log for a `row` expectation.
const SAMPLE_ROWS: usize = 3;

/// What a failed expectation does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Fail the try.
    #[default]
    Fail,
    /// Log a warning and go on.
    Warn,
}

impl OnFailure {
    pub(super) fn name(self) -> &'static str {
        match self {
            OnFailure::Fail => "fail",
            OnFailure::Warn => "warn",
        }
    }
}

/// One expectation (exactly one of `row`, `assert`, `fresh`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSettings {
    /// A name for the log and the quality table (default: the expression).
    pub name: Option<String>,
    /// A predicate every row must satisfy.
    pub row: Option<String>,
    /// A condition over all the rows, with aggregates: `count(*) > 0`.
    pub assert: Option<String>,
    /// A time column whose newest value must be recent (with `within`).
    pub fresh: Option<String>,
    /// For `fresh`: how old the newest value may be, e.g. `"1h"`.
    pub within: Option<Dur>,
    /// Overrides the task's `on_failure` for this expectation.
    pub on_failure: Option<OnFailure>,
}

/// What an expectation tests.
#[derive(Debug, Clone)]
pub(super) enum Test {
    Row(Template),
    Assert(Template),
    Fresh { column: String, within: Duration },
}

#[derive(Debug, Clone)]
pub(super) struct Expectation {
    pub(super) name: String,
    pub(super) test: Test,
    pub(super) on_failure: OnFailure,
}

impl Expectation {
    pub(super) fn kind(&self) -> &'static str {
        match self.test {
            Test::Row(_) => "row",
            Test::Assert(_) => "assert",
            Test::Fresh { .. } => "fresh",
        }
    }
}

/// The SQL an aggregate expression is checked in at load.
const AGG_PREFIX: &str = "SELECT coalesce((";
const AGG_SUFFIX: &str = "), false) FROM checked";

impl Expectation {
    /// An expectation as written, checked (its SQL parsed) for a DAG file.
    pub(super) fn from_settings(
        n: usize,
        e: &ExpectSettings,
        default: OnFailure,
    ) -> Result<Expectation, String> {
        let label = format!("expect[{n}]");
        let which = [e.row.is_some(), e.assert.is_some(), e.fresh.is_some()];
        if which.iter().filter(|x| **x).count() != 1 {
            return Err(format!(
                "{label}: give exactly one of `row` (a predicate every row satisfies), `assert` (a condition over all rows) or `fresh` (a time column)"
            ));
        }
        let at = |what: &str, (span, m): (std::ops::Range<usize>, String), text: &str| {
            let (l, c) = diag::line_col(text, span.start);
            format!("{label}.{what}: {m} (at {l}:{c} of the expression)")
        };
        let test = if let Some(r) = &e.row {
            Test::Row(checked_in(AGG_PREFIX, r, AGG_SUFFIX).map_err(|x| at("row", x, r))?)
        } else if let Some(a) = &e.assert {
            Test::Assert(checked_in(AGG_PREFIX, a, AGG_SUFFIX).map_err(|x| at("assert", x, a))?)
        } else {
            let column = e.fresh.clone().unwrap_or_default();
            let Some(within) = e.within else {
                return Err(format!(
                    "{label}: `fresh` needs `within`, how old the newest {column:?} may be (e.g. within = \"1h\")"
                ));
            };
            Test::Fresh {
                column,
                within: within.0,
            }
        };
        if e.within.is_some() && !matches!(test, Test::Fresh { .. }) {
            return Err(format!("{label}: `within` is for `fresh`"));
        }
        let name = e.name.clone().unwrap_or_else(|| match &test {
            Test::Row(t) => format!("every row: {}", t.text().trim()),
            Test::Assert(t) => t.text().trim().to_string(),
            Test::Fresh { column, within } => {
                format!("{column} within {}", humantime::format_duration(*within))
            }
        });
        Ok(Expectation {
            name,
            test,
            on_failure: e.on_failure.unwrap_or(default),
        })
    }
}

/// One expectation's result.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) passed: bool,
    pub(super) observed: String,
}

/// A piece of the check's SQL for this try.
pub(super) fn render(t: &Template, ctx: &TaskContext, what: &str) -> Result<String, TaskError> {
    t.render(&super::vars(ctx))
        .map(|r| r.sql)
        .map_err(|e| TaskError::Fatal(format!("{what}: {}", e.message)))
}

fn ts(t: DateTime<Utc>) -> String {
    format!(
        "TIMESTAMP '{}'",
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

/// Each expectation's result from the aggregate row.
pub(super) fn outcomes(expectations: &[Expectation], row: &[String], rows: i64) -> Vec<Outcome> {
    let mut col = 1;
    let mut next = || {
        let v = row.get(col).cloned().unwrap_or_default();
        col += 1;
        v
    };
    expectations
        .iter()
        .map(|e| match &e.test {
            Test::Row(p) => {
                let failing: i64 = next().parse().unwrap_or(rows);
                Outcome {
                    passed: failing == 0,
                    observed: if failing == 0 {
                        format!("all {rows} rows satisfy {}", p.text().trim())
                    } else {
                        format!("{failing} of {rows} rows fail {}", p.text().trim())
                    },
                }
            }
            Test::Assert(a) => {
                let ok = next() == "true";
                Outcome {
                    passed: ok,
                    observed: format!("{} is {ok}", a.text().trim()),
                }
            }
            Test::Fresh { column, within } => {
                let ok = next() == "true";
                let newest = next();
                let newest = if newest.is_empty() {
                    "none (no rows)".into()
                } else {
                    newest
                };
                Outcome {
                    passed: ok,
                    observed: format!(
                        "newest {column} is {newest}; allowed: within {}",
                        humantime::format_duration(*within)
                    ),
                }
            }
        })
        .collect()
}

/// Up to [`SAMPLE_ROWS`] failing rows of each failed `row` expectation.
pub(super) async fn failing_samples(
    engine: &SqlEngine,
    expectations: &[Expectation],
    outcomes: &[Outcome],
    scope: &str,
    ctx: &TaskContext,
) -> Result<Vec<Vec<String>>, TaskError> {
    let mut out = Vec::new();
    for (i, (e, o)) in expectations.iter().zip(outcomes).enumerate() {
        let mut sample = Vec::new();
        if let Test::Row(p) = &e.test
            && !o.passed
        {
            let sql = format!(
                "SELECT * FROM ({scope}) AS checked WHERE NOT coalesce(({}), false) LIMIT {SAMPLE_ROWS}",
                render(p, ctx, &format!("expect[{i}]"))?
            );
            let a = engine
                .plan(&sql)
                .await
                .map_err(|e| task_error(&e, "failing rows"))?
                .collect(Some(SAMPLE_ROWS as u64))
                .await
                .map_err(|e| task_error(&e, "failing rows"))?;
            let names: Vec<String> = a.schema.fields().iter().map(|f| f.name().clone()).collect();
            for r in lake::sql::encode::cells(&a.batches)
                .map_err(|e| TaskError::Retryable(e.to_string()))?
            {
                let pairs: Vec<String> = names
                    .iter()
                    .zip(&r)
                    .map(|(n, v)| format!("{n}={}", diag::cut(v, 40)))
                    .collect();
                sample.push(diag::cut(&pairs.join(", "), 300).into_owned());
            }
        }
        out.push(sample);
    }
    Ok(out)
}

/// The one aggregate query: `count(*)`, then per expectation its
/// column(s).
pub(super) fn aggregate_sql(
    expectations: &[Expectation],
    scope: &str,
    ctx: &TaskContext,
    reference: DateTime<Utc>,
) -> Result<String, TaskError> {
    let mut cols = vec!["count(*)".to_string()];
    for (i, e) in expectations.iter().enumerate() {
        let what = format!("expect[{i}]");
        match &e.test {
            Test::Row(p) => cols.push(format!(
                "count(*) FILTER (WHERE NOT coalesce(({}), false))",
                render(p, ctx, &what)?
            )),
            Test::Assert(a) => cols.push(format!("coalesce(({}), false)", render(a, ctx, &what)?)),
            Test::Fresh { column, within } => {
                let c = quote_ident(column);
                let since = reference
                    - chrono::Duration::from_std(*within).unwrap_or(chrono::Duration::MAX);
                cols.push(format!("coalesce(max({c}) >= {}, false)", ts(since)));
                cols.push(format!("CAST(max({c}) AS VARCHAR)"));
            }
        }
    }
    Ok(format!(
        "SELECT {} FROM ({scope}) AS checked",
        cols.join(", ")
    ))
}
