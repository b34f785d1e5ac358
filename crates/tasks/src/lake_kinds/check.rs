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

use async_trait::async_trait;
use chrono::Utc;
use lake::sql::template::Template;
use lake::sql::write::quote_ident;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::expect::{
    ExpectSettings, Expectation, OnFailure, aggregate_sql, failing_samples, outcomes, render,
};
use super::quality::{self, Checked, Verdict};
use super::source::{SqlSource, checked_in};
use super::{Lake, Problems, task_error};

/// The quality table results go to by default.
pub const DEFAULT_RESULTS_TABLE: &str = "tributary_quality";

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
        let mut p = Problems::new(settings);
        let query =
            SqlSource::from_settings(settings, s.sql.as_deref(), s.sql_file.as_deref(), false);
        let scope = match (&s.table, query) {
            (_, Err(e)) => {
                p.push(e);
                None
            }
            (Some(_), Ok(Some(_))) => {
                p.at("table", "give `table` or `sql`, not both");
                None
            }
            (None, Ok(None)) => {
                p.at(
                    "expect",
                    "the task needs what to check: `table = \"name\"` (optionally with `where`) or `sql`",
                );
                None
            }
            (None, Ok(Some(q))) => {
                if s.filter.is_some() {
                    p.at(
                        "where",
                        "`where` filters `table`; put the filter in `sql` instead",
                    );
                }
                Some(Scope::Query(q))
            }
            (Some(t), Ok(None)) => {
                p.table_ref("table", t);
                let filter = match &s.filter {
                    None => None,
                    Some(f) => match checked_in("SELECT * FROM t WHERE (", f, ")") {
                        Ok(t) => Some(t),
                        Err((span, m)) => {
                            let (l, c) = diag::line_col(f, span.start);
                            p.at("where", format!("where: {m} (at {l}:{c} of the predicate)"));
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
            p.at(
                "expect",
                "the task has no expectations: add [[task.expect]] tables",
            );
        }
        let mut expectations = Vec::new();
        for (n, e) in s.expect.iter().enumerate() {
            match Expectation::from_settings(n, e, s.on_failure) {
                Ok(x) => expectations.push(x),
                Err(m) => p.at("expect", m),
            }
        }
        let results_table = s
            .results_table
            .unwrap_or_else(|| DEFAULT_RESULTS_TABLE.to_string());
        p.table_name("results_table", &results_table);
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeCheck {
                lake: self.0.clone(),
                scope: scope?,
                expectations,
                results_table,
            });
            Some(op)
        })
    }
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
}

#[async_trait]
impl Operator for LakeCheck {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let catalog = self.lake.catalog()?;
        let engine = super::engine(catalog, lake::sql::Limits::default().memory)?;
        let (scope, shown) = self.scope_sql(&ctx)?;
        let reference = ctx.data_interval.end.min(Utc::now());
        let sql = aggregate_sql(&self.expectations, &scope, &ctx, reference)?;
        let (answer, outcomes, samples) = super::unless_cancelled(&ctx, async {
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
            let rows: i64 = row.first().and_then(|c| c.parse().ok()).unwrap_or(0);
            let outcomes = outcomes(&self.expectations, &row, rows);
            let samples =
                failing_samples(&engine, &self.expectations, &outcomes, &scope, &ctx).await?;
            Ok(((rows, answer.tables), outcomes, samples))
        })
        .await?;
        let (rows_checked, tables) = answer;
        let read: Vec<String> = tables.iter().map(|(t, v)| format!("{t} v{v}")).collect();
        ctx.log.line(format!(
            "checking {shown} (read {}): {rows_checked} rows",
            read.join(", ")
        ));
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
