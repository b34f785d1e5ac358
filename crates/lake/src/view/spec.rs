//! `[[view]]` as written (serde types with byte spans) and as validated
//! ([`ViewSpec`]): every problem collected, each at its key.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::merge::MergePlan;
use crate::config::{ConfigProblem, checked_name};
use crate::transform::config::origin;
use crate::transform::spec::SqlOrigin;

/// One `[[view]]` table as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// View name: `batch.<name>`, `speed.<name>` and `live.<name>` in SQL.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The lake table the view aggregates (a stream's table, or a
    /// transform's append-only output).
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    /// `SELECT keys…, aggregates… FROM <source> … GROUP BY keys`.
    #[schemars(with = "String")]
    pub sql: Spanned<String>,
    /// The batch table (default `<name>_batch`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub table: Option<Spanned<String>>,
    /// `"exact"` (default: batch and speed partials combined) or
    /// `"recompute"` (live runs the SQL over the whole source; for
    /// aggregates that cannot be combined, such as `count(DISTINCT …)`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub merge: Option<Spanned<String>>,
}

/// How `live` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Batch partials and speed partials, combined per group.
    Exact(MergePlan),
    /// The SQL over the whole source.
    Recompute,
}

/// A validated `[[view]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSpec {
    /// The view's name.
    pub name: String,
    /// The table it aggregates.
    pub source: String,
    /// The view's SQL.
    pub sql: String,
    /// The batch table.
    pub table: String,
    /// How live is served.
    pub merge: Merge,
    /// Where the SQL sits in the config file.
    pub sql_at: SqlOrigin,
}

/// The layers of a view, as SQL schema names.
pub const LAYERS: [&str; 3] = ["batch", "speed", "live"];

impl ViewSpec {
    /// What the batch table holds: the partial SQL of an exact view, the
    /// view's SQL itself for a recomputed one.
    pub fn batch_sql(&self) -> &str {
        match &self.merge {
            Merge::Exact(p) => &p.partial_sql,
            Merge::Recompute => &self.sql,
        }
    }
}

impl ViewConfig {
    /// Validates the declaration; `file` is the config file's text.
    pub fn resolve(&self, file: &str) -> Result<ViewSpec, Vec<ConfigProblem>> {
        let mut p: Vec<ConfigProblem> = Vec::new();
        let name = checked_name(&self.name, "view", &mut p);
        let source = checked_name(&self.source, "source table", &mut p);
        let table = match &self.table {
            Some(t) => checked_name(t, "table", &mut p),
            None => format!("{name}_batch"),
        };
        let table_span = self.table.as_ref().map_or(self.name.span(), Spanned::span);
        if table == source {
            p.push((
                Some(table_span),
                format!("table {table:?} is the source: the batch view needs a table of its own"),
            ));
        }
        let sql = self.sql.get_ref().clone();
        let sql_at = origin(file, self.sql.span());
        match crate::sql::tables_named(&sql) {
            Err(e) => p.push((
                Some(sql_at.span(&sql, e.place)),
                format!("sql: {}", e.message),
            )),
            Ok(names) if !names.contains(&source) => p.push((
                Some(self.sql.span()),
                format!(
                    "sql: the query does not read its source table {source:?} (it reads {})",
                    if names.is_empty() {
                        "no table".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )),
            Ok(_) => {}
        }
        let merge = match self
            .merge
            .as_ref()
            .map(|m| (m.get_ref().as_str(), m.span()))
        {
            Some(("recompute", _)) => Merge::Recompute,
            None | Some(("exact", _)) => match MergePlan::analyse(&sql) {
                Ok(plan) => Merge::Exact(plan),
                Err((place, msg)) => {
                    p.push((Some(sql_at.span(&sql, place)), format!("sql: {msg}")));
                    Merge::Recompute
                }
            },
            Some((other, span)) => {
                p.push((
                    Some(span),
                    format!("merge {other:?}: write \"exact\" or \"recompute\""),
                ));
                Merge::Recompute
            }
        };
        if !p.is_empty() {
            return Err(p);
        }
        Ok(ViewSpec {
            name,
            source,
            sql,
            table,
            merge,
            sql_at,
        })
    }
}
