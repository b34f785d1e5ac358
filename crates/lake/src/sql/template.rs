//! `{{ … }}` template variables in the SQL of DAG tasks, rendered as typed SQL
//! literals — never pasted text: `{{ data_interval_start }}` becomes
//! `TIMESTAMP '2026-11-21T00:00:00Z'`, `{{ ds }}` becomes
//! `DATE '2026-11-21'`, a string param a quoted, escaped string. So a
//! template variable cannot change the query's shape, and one written inside
//! quotes (`'{{ ds }}'`) is refused rather than half-substituted.
//!
//! A [`Rendered`] query remembers where each part came from, so an error
//! DataFusion reports at line:column of the rendered SQL is shown at the
//! place in the file the user wrote.

use std::ops::Range;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

/// The names a template variable may use, for messages.
pub const NAMES: &str = "data_interval_start, data_interval_end, logical_date, ds, dag_id, run_id, task_id, params.NAME";

/// A value a template variable stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    DataIntervalStart,
    DataIntervalEnd,
    LogicalDate,
    Ds,
    DagId,
    RunId,
    TaskId,
    Param(String),
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "data_interval_start" => Var::DataIntervalStart,
            "data_interval_end" => Var::DataIntervalEnd,
            "logical_date" => Var::LogicalDate,
            "ds" => Var::Ds,
            "dag_id" => Var::DagId,
            "run_id" => Var::RunId,
            "task_id" => Var::TaskId,
            _ => {
                let p = name.strip_prefix("params.")?;
                let valid = !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                return valid.then(|| Var::Param(p.to_string()));
            }
        })
    }
}

/// One piece of the template text.
#[derive(Debug, Clone)]
enum Part {
    /// Text kept as written.
    Text(Range<usize>),
    /// A template variable, with the span of the whole `{{ … }}`.
    Var(Var, Range<usize>),
}

/// A problem with a template, at a byte range of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Where in the template text.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
}

/// SQL text with its template variables found.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

/// What the template variables of one run stand for.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    /// Start of the run's data interval.
    pub data_interval_start: DateTime<Utc>,
    /// End of the run's data interval.
    pub data_interval_end: DateTime<Utc>,
    /// The run's logical date.
    pub logical_date: DateTime<Utc>,
    /// DAG id.
    pub dag_id: &'a str,
    /// Run id.
    pub run_id: &'a str,
    /// Task id.
    pub task_id: &'a str,
    /// The run's params; `None` when checking a file, where every param is
    /// `NULL` (its value is known only at run time).
    pub params: Option<&'a Map<String, Value>>,
}

impl Vars<'static> {
    /// Stand-in values for checking a query when a DAG file is loaded.
    pub fn sample() -> Vars<'static> {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Vars {
            data_interval_start: start,
            data_interval_end: start + chrono::Duration::days(1),
            logical_date: start,
            dag_id: "dag",
            run_id: "run",
            task_id: "task",
            params: None,
        }
    }
}

/// A rendered query and where each part of it came from.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The SQL to run.
    pub sql: String,
    /// `(rendered start, template start, is a template variable)` of each part.
    map: Vec<(usize, usize, bool)>,
}

impl Rendered {
    /// The template offset a rendered offset came from (a template variable's
    /// start for any offset inside its literal).
    pub fn template_offset(&self, rendered: usize) -> usize {
        let i = self.map.partition_point(|&(r, _, _)| r <= rendered);
        match i.checked_sub(1).map(|i| self.map[i]) {
            Some((r, t, false)) => t + (rendered - r),
            Some((_, t, true)) => t,
            None => rendered,
        }
    }

    /// The template offset of a 1-based line and column (in characters)
    /// of the rendered SQL.
    pub fn template_offset_of(&self, line: u64, column: u64) -> usize {
        self.template_offset(byte_offset(&self.sql, line, column))
    }
}

/// The byte offset of a 1-based line and character column of `text`.
pub fn byte_offset(text: &str, line: u64, column: u64) -> usize {
    let mut start = 0;
    for _ in 1..line.max(1) {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let rest = &text[start..];
    start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(rest.len(), |(i, _)| i)
}

/// Lexer states that matter for finding template variables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    Quoted(u8),
    LineComment,
    BlockComment,
}

impl Template {
    /// Finds the template variables of `text`, refusing unknown names, unclosed
    /// braces and template variables inside quotes.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let b = text.as_bytes();
        let mut parts = Vec::new();
        let (mut i, mut kept, mut state) = (0, 0, Lex::Code);
        while i < b.len() {
            let next = b.get(i + 1).copied();
            match state {
                Lex::Code => match (b[i], next) {
                    (b'\'' | b'"', _) => state = Lex::Quoted(b[i]),
                    (b'-', Some(b'-')) => state = Lex::LineComment,
                    (b'/', Some(b'*')) => state = Lex::BlockComment,
                    (b'{', Some(b'{')) => {
                        let (var, end) = variable_at(text, i)?;
                        if kept < i {
                            parts.push(Part::Text(kept..i));
                        }
                        parts.push(Part::Var(var, i..end));
                        (i, kept) = (end, end);
                        continue;
                    }
                    _ => {}
                },
                Lex::Quoted(q) => {
                    if b[i] == q {
                        state = Lex::Code;
                    } else if b[i] == b'{' && next == Some(b'{') {
                        let shown = variable_at(text, i).map_or_else(
                            |_| "a template variable".to_string(),
                            |(_, end)| format!("`{}`", &text[i..end]),
                        );
                        let what = if q == b'\'' {
                            "a quoted string"
                        } else {
                            "a quoted name"
                        };
                        return Err(TemplateError {
                            span: i..(i + 2),
                            message: format!(
                                "{shown} is inside {what}: write it without quotes, it becomes a typed \
                                 literal (e.g. {{{{ ds }}}} is DATE '2026-11-21')"
                            ),
                        });
                    }
                }
                Lex::LineComment if b[i] == b'\n' => state = Lex::Code,
                Lex::BlockComment if b[i] == b'*' && next == Some(b'/') => {
                    state = Lex::Code;
                    i += 1;
                }
                Lex::LineComment | Lex::BlockComment => {}
            }
            i += 1;
        }
        if kept < b.len() {
            parts.push(Part::Text(kept..b.len()));
        }
        Ok(Template {
            text: text.to_string(),
            parts,
        })
    }

    /// Whether a template variable names `name` (as written inside the braces).
    pub fn mentions(&self, name: &str) -> bool {
        let Some(var) = Var::parse(name) else {
            return false;
        };
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v, _) if *v == var))
    }

    /// The template text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The SQL for one run.
    pub fn render(&self, vars: &Vars<'_>) -> Result<Rendered, TemplateError> {
        let mut sql = String::with_capacity(self.text.len() + 64);
        let mut map = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            match part {
                Part::Text(r) => {
                    map.push((sql.len(), r.start, false));
                    sql.push_str(&self.text[r.clone()]);
                }
                Part::Var(var, span) => {
                    map.push((sql.len(), span.start, true));
                    let literal = literal(var, vars).map_err(|message| TemplateError {
                        span: span.clone(),
                        message,
                    })?;
                    sql.push_str(&literal);
                }
            }
        }
        Ok(Rendered { sql, map })
    }
}

/// The template variable starting at `start` (`{{`): its variable and where it ends.
fn variable_at(text: &str, start: usize) -> Result<(Var, usize), TemplateError> {
    let Some(len) = text[start + 2..].find("}}") else {
        return Err(TemplateError {
            span: start..start + 2,
            message: "`{{` is never closed with `}}`".into(),
        });
    };
    let end = start + 2 + len + 2;
    let name = text[start + 2..end - 2].trim();
    match Var::parse(name) {
        Some(v) => Ok((v, end)),
        None => Err(TemplateError {
            span: start..end,
            message: format!(
                "unknown template variable `{{{{ {} }}}}`: use one of {NAMES}",
                diag::cut(name, 60)
            ),
        }),
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    format!(
        "TIMESTAMP '{}'",
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

/// A string as a SQL literal.
pub fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn literal(var: &Var, vars: &Vars<'_>) -> Result<String, String> {
    Ok(match var {
        Var::DataIntervalStart => timestamp(vars.data_interval_start),
        Var::DataIntervalEnd => timestamp(vars.data_interval_end),
        Var::LogicalDate => timestamp(vars.logical_date),
        Var::Ds => format!("DATE '{}'", vars.logical_date.format("%Y-%m-%d")),
        Var::DagId => string_literal(vars.dag_id),
        Var::RunId => string_literal(vars.run_id),
        Var::TaskId => string_literal(vars.task_id),
        Var::Param(name) => {
            let Some(params) = vars.params else {
                return Ok("NULL".into());
            };
            match params.get(name) {
                None => {
                    let mut known: Vec<&str> = params.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    return Err(format!(
                        "the DAG has no param {name:?} (params: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
                Some(Value::Null) => "NULL".into(),
                Some(Value::Bool(b)) => if *b { "TRUE" } else { "FALSE" }.into(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => string_literal(s),
                Some(Value::Array(_) | Value::Object(_)) => {
                    return Err(format!(
                        "param {name:?} is a list or table; a template variable takes a string, number, boolean or null"
                    ));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_vars(params: &Map<String, Value>) -> Vars<'_> {
        Vars {
            params: Some(params),
            ..Vars::sample()
        }
    }

    #[test]
    fn template_variables_become_typed_literals() {
        let t = Template::parse(
            "SELECT * FROM t WHERE at >= {{data_interval_start}} AND at < {{ data_interval_end }} \
             AND d = {{ ds }} AND n = {{ params.nation }} AND k > {{ params.min }} -- {{ ignored }}",
        )
        .unwrap();
        let mut p = Map::new();
        p.insert("nation".into(), Value::String("O'Brien".into()));
        p.insert("min".into(), serde_json::json!(2.5));
        let r = t.render(&run_vars(&p)).unwrap();
        assert_eq!(
            r.sql,
            "SELECT * FROM t WHERE at >= TIMESTAMP '2026-01-01T00:00:00Z' AND at < TIMESTAMP '2026-01-02T00:00:00Z' \
             AND d = DATE '2026-01-01' AND n = 'O''Brien' AND k > 2.5 -- {{ ignored }}"
        );
    }

    #[test]
    fn quoted_unknown_and_unclosed_template_variables_are_refused_at_their_place() {
        let e = Template::parse("SELECT * FROM t WHERE d = '{{ ds }}'").unwrap_err();
        assert_eq!(e.span.start, 27);
        assert!(
            e.message.contains("`{{ ds }}` is inside a quoted string"),
            "{}",
            e.message
        );
        let e = Template::parse("SELECT {{ dss }}").unwrap_err();
        assert_eq!(e.span, 7..16);
        assert!(
            e.message.contains("unknown template variable `{{ dss }}`"),
            "{}",
            e.message
        );
        let e = Template::parse("SELECT {{ ds").unwrap_err();
        assert!(e.message.contains("never closed"), "{}", e.message);
        // A quote inside a comment does not open a string.
        Template::parse("SELECT 1 -- it's\n, {{ ds }}").unwrap();
    }

    #[test]
    fn missing_and_structured_params_are_refused() {
        let t = Template::parse("SELECT {{ params.x }}").unwrap();
        let e = t.render(&run_vars(&Map::new())).unwrap_err();
        assert!(e.message.contains("no param \"x\""), "{}", e.message);
        let mut p = Map::new();
        p.insert("x".into(), serde_json::json!([1]));
        assert!(t.render(&run_vars(&p)).is_err());
        // Checking a file: params are NULL.
        assert_eq!(t.render(&Vars::sample()).unwrap().sql, "SELECT NULL");
    }

    #[test]
    fn rendered_places_map_back_to_the_template() {
        let text = "SELECT {{ ds }},\n  nope FROM t";
        let r = Template::parse(text)
            .unwrap()
            .render(&Vars::sample())
            .unwrap();
        // `nope` on rendered line 2, column 3.
        assert_eq!(r.template_offset_of(2, 3), text.find("nope").unwrap());
        // Inside the literal: the template variable's start.
        assert_eq!(r.template_offset(10), 7);
    }
}
