//! `[[transform]]` as written (serde types with byte spans) and its
//! resolution into a [`TransformSpec`]: every problem collected, each at
//! its key — names, the trigger, and the SQL (it must parse, be a query and
//! read its source; a place in the SQL maps back into the file).

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::spec::{DEFAULT_MAX_SOURCE_VERSIONS, DEFAULT_TRIGGER, SqlOrigin, TransformSpec};
use crate::config::{ConfigProblem, valid_name};
use crate::units::parse_duration;

/// One `[[transform]]` table as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Transform name (the `transform run` argument).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The lake table whose new rows the SQL reads (a stream's table, or
    /// another transform's).
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    /// The query over `source` (by its table name); it may join any lake
    /// table, read as of each commit.
    #[schemars(with = "String")]
    pub sql: Spanned<String>,
    /// The output table.
    #[schemars(with = "String")]
    pub table: Spanned<String>,
    /// Partition columns of the output table (columns of the answer).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub partition_by: Vec<Spanned<String>>,
    /// How often to look for new source versions (default `1s`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub trigger: Option<Spanned<String>>,
    /// Source versions one commit carries at most (default 100).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_source_versions: Option<Spanned<u64>>,
}

impl TransformConfig {
    /// Validates the declaration; `file` is the config file's text (to
    /// find where the SQL starts inside its quotes).
    pub fn resolve(&self, file: &str) -> Result<TransformSpec, Vec<ConfigProblem>> {
        let mut p: Vec<ConfigProblem> = Vec::new();
        let mut name_of = |v: &Spanned<String>, what: &str| {
            let n = v.get_ref().clone();
            if !valid_name(&n) {
                p.push((
                    Some(v.span()),
                    format!("invalid {what} name {n:?}: use letters, digits, '_' or '-'"),
                ));
            }
            n
        };
        let name = name_of(&self.name, "transform");
        let source = name_of(&self.source, "source table");
        let table = name_of(&self.table, "table");
        let partition_by: Vec<String> = self
            .partition_by
            .iter()
            .map(|c| c.get_ref().clone())
            .collect();
        if source == table {
            p.push((
                Some(self.table.span()),
                format!("table {table:?} is the source: write the output to a table of its own"),
            ));
        }
        let trigger = match &self.trigger {
            None => DEFAULT_TRIGGER,
            Some(t) => match parse_duration(t.get_ref(), "trigger") {
                Ok(d) if d.is_zero() => {
                    p.push((Some(t.span()), "trigger must be above zero".to_string()));
                    DEFAULT_TRIGGER
                }
                Ok(d) => d,
                Err(e) => {
                    p.push((Some(t.span()), e));
                    DEFAULT_TRIGGER
                }
            },
        };
        let max_source_versions = match &self.max_source_versions {
            None => DEFAULT_MAX_SOURCE_VERSIONS,
            Some(m) if *m.get_ref() == 0 => {
                p.push((
                    Some(m.span()),
                    "max_source_versions must be at least 1".to_string(),
                ));
                DEFAULT_MAX_SOURCE_VERSIONS
            }
            Some(m) => *m.get_ref(),
        };
        let sql = self.sql.get_ref().clone();
        let sql_at = origin(file, self.sql.span());
        match crate::sql::tables_named(&sql) {
            Err(e) => p.push((
                Some(sql_at.span(&sql, e.place)),
                format!("sql: {}", e.message),
            )),
            Ok(names) => {
                if !names.contains(&source) {
                    p.push((
                        Some(self.sql.span()),
                        format!(
                            "sql: the query does not read its source table {source:?} (it reads {}); \
                             the source's new rows are the rows of that name",
                            if names.is_empty() { "no table".to_string() } else { names.join(", ") }
                        ),
                    ));
                }
                if names.contains(&table) {
                    p.push((
                        Some(self.sql.span()),
                        format!("sql: the query reads the transform's own output table {table:?}"),
                    ));
                }
            }
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(TransformSpec {
            name,
            source,
            sql,
            table,
            partition_by,
            partition_spans: self.partition_by.iter().map(Spanned::span).collect(),
            trigger,
            max_source_versions,
            sql_at,
        })
    }
}

/// Where a string value's text starts: after `"`, `'`, `"""` or `'''`,
/// and the newline TOML drops right after opening triple quotes.
fn origin(file: &str, value: std::ops::Range<usize>) -> SqlOrigin {
    let raw = file.get(value.clone()).unwrap_or("");
    let mut start = value.start;
    if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        start += 3;
        let rest = &file[start.min(file.len())..];
        if rest.starts_with("\r\n") {
            start += 2;
        } else if rest.starts_with('\n') {
            start += 1;
        }
    } else if raw.starts_with('"') || raw.starts_with('\'') {
        start += 1;
    }
    SqlOrigin { start, value }
}
