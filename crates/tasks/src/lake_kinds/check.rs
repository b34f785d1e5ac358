//! `lake_check`: data-quality expectations over a table (optionally
//! filtered, e.g. to the run's data interval) or over a query's rows.
//!
//! - `row`: a predicate every row must satisfy (NULL counts as failing);
//! - `assert`: a condition over all the rows (`count(*) > 0`,
//!   `avg(latitude) BETWEEN -90 AND 90`);
//! - `fresh` + `within`: the newest value of a time column is at most
//!   `within` older than the run's data interval end (or now, if earlier).
//!
//! Every expectation is evaluated in one aggregate pass over the rows.
//! Each result goes to the task log and to a quality table in the lake
//! (`tributary_quality` unless `results_table` says otherwise), appended
//! once per try. A failed expectation fails the try (retryable: data may
//! still be arriving) unless its `on_failure` is `warn`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use lake::sql::template::Template;
use lake::sql::write::quote_ident;
use lake::sql::{Limits, SqlEngine};
use scheduler::duration::Dur;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::quality::{self, Checked, Verdict};
use super::source::{SqlSource, checked_in};
use super::{Lake, task_error};

/// The quality table results go to by default.
pub const DEFAULT_RESULTS_TABLE: &str = "tributary_quality";

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
    fn name(self) -> &'static str {
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

/// Settings of a `lake_check` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeCheckSettings {
    /// The table checked (or give `sql` / `sql_file`).
    pub table: Option<String>,
    /// Only the rows of `table` where this predicate holds, e.g.
    /// `at >= {{ data_interval_start }} AND at < {{ data_interval_end }}`.
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// A query whose rows are checked (instead of `table`).
    pub sql: Option<String>,
    /// A file holding that query, relative to the DAG file's folder.
    pub sql_file: Option<String>,
    /// `fail` (default) or `warn`, for every expectation that does not say.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// The expectations: `[[task.expect]]` tables.
    pub expect: Vec<ExpectSettings>,
    /// The lake table results are appended to. Default `tributary_quality`.
    pub results_table: Option<String>,
}

/// What an expectation tests.
#[derive(Debug, Clone)]
enum Test {
    Row(Template),
    Assert(Template),
    Fresh { column: String, within: Duration },
}

#[derive(Debug, Clone)]
struct Expectation {
    name: String,
    test: Test,
    on_failure: OnFailure,
}

impl Expectation {
    fn kind(&self) -> &'static str {
        match self.test {
            Test::Row(_) => "row",
            Test::Assert(_) => "assert",
            Test::Fresh { .. } => "fresh",
        }
    }
}

/// What is checked.
#[derive(Debug, Clone)]
enum Scope {
    Table {
        table: String,
        filter: Option<Template>,
    },
    Query(SqlSource),
}

/// The `lake_check` kind.
pub struct LakeCheckKind(pub Lake);

/// The `lake_check` operator.
#[derive(Debug)]
pub struct LakeCheck {
    lake: Lake,
    scope: Scope,
    expectations: Vec<Expectation>,
    results_table: String,
}

/// The SQL an aggregate expression is checked in at load.
const AGG_PREFIX: &str = "SELECT coalesce((";
const AGG_SUFFIX: &str = "), false) FROM checked";

fn expectation(n: usize, e: &ExpectSettings, default: OnFailure) -> Result<Expectation, String> {
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

impl TaskKind for LakeCheckKind {
    fn name(&self) -> &'static str {
        "lake_check"
    }
    fn summary(&self) -> &'static str {
        "Data-quality expectations on a lake table or query (row predicates, aggregate assertions, freshness); results to the log and a quality table."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeCheckSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeCheckSettings = settings.checked()?;
        let mut errors = Vec::new();
        let err = |key: &str, message: String| SettingsError {
            span: settings.value_span(key),
            message,
        };
        let query =
            SqlSource::from_settings(settings, s.sql.as_deref(), s.sql_file.as_deref(), false);
        let scope = match (&s.table, query) {
            (_, Err(e)) => {
                errors.push(e);
                None
            }
            (Some(_), Ok(Some(_))) => {
                errors.push(err("table", "give `table` or `sql`, not both".into()));
                None
            }
            (None, Ok(None)) => {
                errors.push(err(
                    "expect",
                    "the task needs what to check: `table = \"name\"` (optionally with `where`) or `sql`".into(),
                ));
                None
            }
            (None, Ok(Some(q))) => {
                if s.filter.is_some() {
                    errors.push(err(
                        "where",
                        "`where` filters `table`; put the filter in `sql` instead".into(),
                    ));
                }
                Some(Scope::Query(q))
            }
            (Some(t), Ok(None)) => {
                if !lake::config::valid_name(t) {
                    errors.push(err(
                        "table",
                        format!(
                            "table {:?}: use 1 to 128 letters, digits, '_' or '-'",
                            diag::cut(t, 80)
                        ),
                    ));
                }
                let filter = match &s.filter {
                    None => None,
                    Some(f) => match checked_in("SELECT * FROM t WHERE (", f, ")") {
                        Ok(t) => Some(t),
                        Err((span, m)) => {
                            let (l, c) = diag::line_col(f, span.start);
                            errors.push(err(
                                "where",
                                format!("where: {m} (at {l}:{c} of the predicate)"),
                            ));
                            None
                        }
                    },
                };
                Some(Scope::Table {
                    table: t.clone(),
                    filter,
                })
            }
        };
        if s.expect.is_empty() {
            errors.push(err(
                "expect",
                "the task has no expectations: add [[task.expect]] tables".into(),
            ));
        }
        let mut expectations = Vec::new();
        for (n, e) in s.expect.iter().enumerate() {
            match expectation(n, e, s.on_failure) {
                Ok(x) => expectations.push(x),
                Err(m) => errors.push(err("expect", m)),
            }
        }
        let results_table = s
            .results_table
            .unwrap_or_else(|| DEFAULT_RESULTS_TABLE.to_string());
        if !lake::config::valid_name(&results_table) {
            errors.push(err(
                "results_table",
                format!("results_table {results_table:?}: use letters, digits, '_' or '-'"),
            ));
        }
        match scope {
            Some(scope) if errors.is_empty() => Ok(Arc::new(LakeCheck {
                lake: self.0.clone(),
                scope,
                expectations,
                results_table,
            })),
            _ => Err(errors),
        }
    }
}

/// One expectation's result.
#[derive(Debug, Clone)]
struct Outcome {
    passed: bool,
    observed: String,
}

fn render(t: &Template, ctx: &TaskContext, what: &str) -> Result<String, TaskError> {
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

impl LakeCheck {
    /// The rows checked, as a query.
    fn scope_sql(&self, ctx: &TaskContext) -> Result<(String, String), TaskError> {
        match &self.scope {
            Scope::Table { table, filter } => {
                let mut sql = format!("SELECT * FROM {}", quote_ident(table));
                let mut shown = table.clone();
                if let Some(f) = filter {
                    let f = render(f, ctx, "where")?;
                    sql.push_str(&format!(" WHERE ({f})"));
                    shown.push_str(&format!(" where {f}"));
                }
                Ok((sql, shown))
            }
            Scope::Query(q) => Ok((q.render(ctx)?.sql, "the query's rows".into())),
        }
    }

    /// The one aggregate query: `count(*)`, then per expectation its
    /// column(s).
    fn check_sql(
        &self,
        scope: &str,
        ctx: &TaskContext,
        reference: DateTime<Utc>,
    ) -> Result<String, TaskError> {
        let mut cols = vec!["count(*)".to_string()];
        for (i, e) in self.expectations.iter().enumerate() {
            let what = format!("expect[{i}]");
            match &e.test {
                Test::Row(p) => cols.push(format!(
                    "count(*) FILTER (WHERE NOT coalesce(({}), false))",
                    render(p, ctx, &what)?
                )),
                Test::Assert(a) => {
                    cols.push(format!("coalesce(({}), false)", render(a, ctx, &what)?))
                }
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
}

#[async_trait]
impl Operator for LakeCheck {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let catalog = self.lake.catalog()?;
        let engine = SqlEngine::new(catalog.clone(), Limits::default())
            .map_err(|e| task_error(&e, "starting the query engine"))?;
        let (scope, shown) = self.scope_sql(&ctx)?;
        let reference = ctx.data_interval.end.min(Utc::now());
        let sql = self.check_sql(&scope, &ctx, reference)?;
        let (answer, samples) = super::unless_cancelled(&ctx, async {
            let answer = engine
                .plan(&sql)
                .await
                .map_err(|e| task_error(&e, "the checks"))?
                .collect(Some(1))
                .await
                .map_err(|e| task_error(&e, "the checks"))?;
            let row = lake::sql::encode::cells(&answer.batches)
                .map_err(|e| TaskError::Retryable(e.to_string()))?
                .into_iter()
                .next()
                .unwrap_or_default();
            let samples = failing_samples(&engine, &self.expectations, &row, &scope, &ctx).await?;
            Ok(((row, answer.tables), samples))
        })
        .await?;
        let (row, tables) = answer;
        let rows_checked: i64 = row.first().and_then(|c| c.parse().ok()).unwrap_or(0);
        let read: Vec<String> = tables.iter().map(|(t, v)| format!("{t} v{v}")).collect();
        ctx.log.line(format!(
            "checking {shown} (read {}): {rows_checked} rows",
            read.join(", ")
        ));
        let outcomes = outcomes(&self.expectations, &row, rows_checked);
        let mut failed = Vec::new();
        for ((e, o), sample) in self.expectations.iter().zip(&outcomes).zip(&samples) {
            let label = match (o.passed, e.on_failure) {
                (true, _) => "PASS",
                (false, OnFailure::Fail) => "FAIL",
                (false, OnFailure::Warn) => "WARN",
            };
            ctx.log
                .line(format!("{label}  {} — {}", e.name, o.observed));
            for s in sample {
                ctx.log.line(format!("        e.g. {s}"));
            }
            if !o.passed && e.on_failure == OnFailure::Fail {
                failed.push(e.name.clone());
            }
        }
        let results: Vec<Verdict> = self
            .expectations
            .iter()
            .zip(&outcomes)
            .map(|(e, o)| Verdict {
                expectation: &e.name,
                kind: e.kind(),
                severity: e.on_failure.name(),
                passed: o.passed,
                observed: &o.observed,
            })
            .collect();
        let checked = Checked {
            scope: &shown,
            rows: rows_checked,
            read: &read.join(", "),
        };
        let version =
            quality::record(catalog, &self.results_table, &ctx, &checked, &results).await?;
        ctx.log
            .line(format!("results in {} v{version}", self.results_table));
        if failed.is_empty() {
            Ok(TaskOutcome::Success)
        } else {
            Err(TaskError::Retryable(format!(
                "{} of {} expectations failed: {}",
                failed.len(),
                self.expectations.len(),
                failed.join("; ")
            )))
        }
    }
}

/// Each expectation's result from the aggregate row.
fn outcomes(expectations: &[Expectation], row: &[String], rows: i64) -> Vec<Outcome> {
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
async fn failing_samples(
    engine: &SqlEngine,
    expectations: &[Expectation],
    row: &[String],
    scope: &str,
    ctx: &TaskContext,
) -> Result<Vec<Vec<String>>, TaskError> {
    let mut col = 1;
    let mut out = Vec::new();
    for (i, e) in expectations.iter().enumerate() {
        let mut sample = Vec::new();
        match &e.test {
            Test::Row(p) => {
                if row.get(col).is_some_and(|v| v != "0") {
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
                    let names: Vec<String> =
                        a.schema.fields().iter().map(|f| f.name().clone()).collect();
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
                col += 1;
            }
            Test::Assert(_) => col += 1,
            Test::Fresh { .. } => col += 2,
        }
        out.push(sample);
    }
    Ok(out)
}
