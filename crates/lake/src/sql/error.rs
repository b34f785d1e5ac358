//! What can go wrong with a query, said so a user can fix it: the place in
//! the SQL (line:column) where DataFusion knows it, and a "did you mean"
//! for a misspelt table or column.

use std::fmt;
use std::time::Duration;

use deltalake::datafusion::common::SchemaError;
use deltalake::datafusion::error::DataFusionError;

use crate::LakeError;
use crate::units::format_bytes;

/// A place in the SQL text, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Place {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of problem a query has (the JSON `kind` of an API error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SqlErrorKind {
    /// The text is not SQL.
    Syntax,
    /// A table the lake does not have.
    UnknownTable,
    /// A column the tables do not have.
    UnknownColumn,
    /// Types that do not fit, a function that does not exist, and other
    /// planning errors.
    Plan,
    /// DDL, DML or a statement a read-only query may not run.
    NotAllowed,
    /// The query ran out of time.
    Timeout,
    /// The query needed more memory than it may use.
    MemoryLimit,
    /// The query failed while running (reading files, arithmetic, …).
    Execution,
    /// Another writer committed to the table first, in a way that
    /// conflicts with this write: planning and writing again may succeed.
    Conflict,
}

/// A query that could not be answered.
#[derive(Debug, Clone)]
pub struct SqlError {
    /// The kind of problem.
    pub kind: SqlErrorKind,
    /// Where in the SQL, when known.
    pub place: Option<Place>,
    /// What is wrong, in one sentence (no place prefix).
    pub message: String,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SqlError {}

impl SqlError {
    pub(crate) fn new(kind: SqlErrorKind, message: impl Into<String>) -> SqlError {
        SqlError {
            kind,
            place: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, place: Option<Place>) -> SqlError {
        self.place = place;
        self
    }

    /// The error as `source:line:col: message` (or `source: message`).
    pub fn render(&self, source: &str) -> String {
        match self.place {
            Some(p) => format!("{source}:{p}: {}", self.message),
            None => format!("{source}: {}", self.message),
        }
    }

    pub(crate) fn timeout(limit: Duration) -> SqlError {
        SqlError::new(
            SqlErrorKind::Timeout,
            format!(
                "the query did not finish within {} (raise --timeout, or narrow it with a WHERE on a partition column)",
                humantime::format_duration(limit)
            ),
        )
    }

    /// A failure while running the query or writing its answer.
    pub fn execution(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlErrorKind::Execution, message)
    }

    pub(crate) fn lake(e: LakeError) -> SqlError {
        SqlError::new(SqlErrorKind::Execution, e.to_string())
    }

    /// Turns DataFusion's error into ours: the place from its diagnostic
    /// (or the parser's "at Line: l, Column: c"), and a suggestion for a
    /// misspelt column.
    pub(crate) fn from_datafusion(e: DataFusionError, memory_limit: u64) -> SqlError {
        SqlError::from_datafusion_in(e, memory_limit, "")
    }

    /// As [`SqlError::from_datafusion`], naming the parts of `sql` the
    /// diagnostic's notes point at ("`name` has type Utf8").
    pub(crate) fn from_datafusion_in(e: DataFusionError, memory_limit: u64, sql: &str) -> SqlError {
        let place = e
            .diagnostic()
            .and_then(|d| d.span)
            .filter(|s| s.start.line > 0)
            .map(|s| Place {
                line: s.start.line,
                column: s.start.column,
            });
        let root = e.find_root();
        let (kind, message) = match root {
            DataFusionError::SQL(parser, _) => {
                let text = parser.to_string();
                let (text, at) = split_parser_place(&text);
                let text = text.trim_start_matches("sql parser error: ").to_string();
                // "found: EOF" comes without a place: it is just past the end.
                let at = at.or_else(|| text.contains("found: EOF").then(|| end_of(sql)).flatten());
                return SqlError::new(SqlErrorKind::Syntax, format!("syntax error: {text}"))
                    .at(place.or(at));
            }
            DataFusionError::SchemaError(s, _) => match s.as_ref() {
                SchemaError::FieldNotFound {
                    field,
                    valid_fields,
                } => {
                    let names: Vec<String> =
                        valid_fields.iter().map(|c| c.name().to_string()).collect();
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    let place = place.or_else(|| {
                        field.spans().first().map(|s| Place {
                            line: s.start.line,
                            column: s.start.column,
                        })
                    });
                    let hint = diag::suggest(field.name(), &refs)
                        .map(|s| format!("; did you mean {s:?}?"))
                        .unwrap_or_default();
                    let mut known = names.clone();
                    known.dedup();
                    return SqlError::new(
                        SqlErrorKind::UnknownColumn,
                        format!(
                            "no column {:?}{hint} (columns here: {})",
                            field.flat_name(),
                            diag::cut(&known.join(", "), 400)
                        ),
                    )
                    .at(place);
                }
                other => (SqlErrorKind::Plan, other.to_string()),
            },
            DataFusionError::Plan(m) => (SqlErrorKind::Plan, m.clone()),
            DataFusionError::ResourcesExhausted(m) => (
                SqlErrorKind::MemoryLimit,
                format!(
                    "the query needs more than its memory limit of {} ({}); raise --memory-limit or aggregate more before sorting or joining",
                    format_bytes(memory_limit),
                    first_line(m)
                ),
            ),
            DataFusionError::NotImplemented(m) => {
                (SqlErrorKind::Plan, format!("not supported: {m}"))
            }
            other => (SqlErrorKind::Execution, other.strip_backtrace()),
        };
        let message = match (kind, e.diagnostic()) {
            (SqlErrorKind::Plan, Some(d)) if !d.message.is_empty() => {
                let more: Vec<String> = d
                    .notes
                    .iter()
                    .map(|n| match n.span.and_then(|s| snippet(sql, s)) {
                        Some(part) => format!("`{part}` {}", n.message),
                        None => n.message.clone(),
                    })
                    .chain(d.helps.iter().map(|h| h.message.clone()))
                    .collect();
                if more.is_empty() {
                    d.message.clone()
                } else {
                    format!("{}: {}", d.message, more.join("; "))
                }
            }
            _ => message,
        };
        SqlError::new(kind, tidy(&message)).at(place)
    }
}

/// The place just past the last character of `sql` (none for no text).
fn end_of(sql: &str) -> Option<Place> {
    let text = sql.trim_end();
    let last = text.lines().last()?;
    Some(Place {
        line: text.lines().count() as u64,
        column: last.chars().count() as u64 + 1,
    })
}

/// The text of `sql` a span covers (one line at most, trimmed to 60
/// characters).
fn snippet(sql: &str, span: deltalake::datafusion::common::Span) -> Option<String> {
    let (start, end) = (span.start, span.end);
    if start.line == 0 || start.line != end.line {
        return None;
    }
    let line = sql.lines().nth(start.line as usize - 1)?;
    let part: String = line
        .chars()
        .skip(start.column as usize - 1)
        .take(end.column.saturating_sub(start.column) as usize)
        .collect();
    (!part.trim().is_empty()).then(|| diag::cut(part.trim(), 60).into_owned())
}

/// Splits sqlparser's " at Line: 3, Column: 5" off a message.
fn split_parser_place(text: &str) -> (&str, Option<Place>) {
    let Some(i) = text.rfind(" at Line: ") else {
        return (text, None);
    };
    let tail = &text[i + " at Line: ".len()..];
    let mut parts = tail.split(", Column: ");
    let line = parts.next().and_then(|l| l.trim().parse().ok());
    let column = parts
        .next()
        .map(|c| c.trim_end_matches(|ch: char| !ch.is_ascii_digit()))
        .and_then(|c| c.parse().ok());
    match (line, column) {
        (Some(line), Some(column)) => (&text[..i], Some(Place { line, column })),
        _ => (text, None),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// DataFusion's messages start with "Error during planning: " and the like.
fn tidy(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "This feature is not implemented: ",
    ] {
        m = m.strip_prefix(prefix).unwrap_or(m);
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_place_is_split_off() {
        let (m, p) =
            split_parser_place("Expected: end of statement, found: FRM at Line: 2, Column: 10");
        assert_eq!(m, "Expected: end of statement, found: FRM");
        assert_eq!(
            p,
            Some(Place {
                line: 2,
                column: 10
            })
        );
        let (m, p) = split_parser_place("no place");
        assert_eq!((m, p), ("no place", None));
    }
}
