//! The SQL of a lake task: inline (`sql = '''…'''`) or in a file next to
//! the DAG (`sql_file = "sql/daily.sql"`). Both are checked when the DAG is
//! loaded — template variables known, the text a single query — with errors at
//! the line and column of the DAG file (inline) or of the SQL file; the
//! file is read again for each try, so an edit takes effect at once.

use std::ops::Range;
use std::path::{Path, PathBuf};

use lake::sql::template::{Rendered, Template, TemplateError, Vars};
use scheduler::operator::{KindSettings, SettingsError, TaskContext, TaskError};

/// Where a task's SQL is.
#[derive(Debug, Clone)]
pub enum SqlSource {
    /// In the DAG file.
    Inline(Template),
    /// In a file; `shown` is the path as written in the DAG file.
    File {
        /// The file.
        path: PathBuf,
        /// As written.
        shown: String,
    },
}

impl SqlSource {
    /// Reads `sql` / `sql_file` (exactly one; `required` says whether
    /// neither is an error) and checks the query.
    pub fn from_settings(
        settings: &KindSettings<'_>,
        sql: Option<&str>,
        sql_file: Option<&str>,
        required: bool,
    ) -> Result<Option<SqlSource>, SettingsError> {
        let at = |key: &str, message: String| SettingsError {
            span: settings.value_span(key),
            message,
        };
        match (sql, sql_file) {
            (Some(_), Some(_)) => Err(at(
                "sql_file",
                "give `sql` or `sql_file`, not both".into(),
            )),
            (None, None) if required => Err(SettingsError {
                span: None,
                message: "the task needs its query: `sql = '''SELECT …'''` or `sql_file = \"sql/name.sql\"`".into(),
            }),
            (None, None) => Ok(None),
            (Some(text), None) => {
                let start = content_start(settings, "sql", text);
                let place = |e: (Range<usize>, String)| SettingsError {
                    span: Some(match start {
                        Some(s) => s + e.0.start..s + e.0.end.max(e.0.start + 1),
                        None => settings.value_span("sql").unwrap_or(0..0),
                    }),
                    message: format!("sql: {}", e.1),
                };
                let t = checked(text).map_err(place)?;
                Ok(Some(SqlSource::Inline(t)))
            }
            (None, Some(file)) => {
                let dir = settings.dag_file().parent().unwrap_or(Path::new("."));
                let path = dir.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    at(
                        "sql_file",
                        format!("sql_file: cannot read {}: {e}", path.display()),
                    )
                })?;
                checked(&text).map_err(|(span, m)| {
                    let (l, c) = diag::line_col(&text, span.start);
                    at("sql_file", format!("sql_file: {}:{l}:{c}: {m}", path.display()))
                })?;
                Ok(Some(SqlSource::File {
                    path,
                    shown: file.to_string(),
                }))
            }
        }
    }

    /// The template of a try (the file read now).
    fn template(&self) -> Result<Template, TaskError> {
        match self {
            SqlSource::Inline(t) => Ok(t.clone()),
            SqlSource::File { path, shown } => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    TaskError::Fatal(format!(
                        "cannot read sql_file {shown:?} ({}): {e}",
                        path.display()
                    ))
                })?;
                Template::parse(&text).map_err(|e| {
                    let (l, c) = diag::line_col(&text, e.span.start);
                    TaskError::Fatal(format!("{shown}:{l}:{c}: {}", e.message))
                })
            }
        }
    }

    /// The SQL of a try, template variables rendered.
    pub fn render(&self, ctx: &TaskContext) -> Result<Rendered, TaskError> {
        let t = self.template()?;
        t.render(&super::vars(ctx))
            .map_err(|e| TaskError::Fatal(format!("{}: {}", self.name(), e.message)))
    }

    /// `sql` or the file's name, for messages.
    pub fn name(&self) -> &str {
        match self {
            SqlSource::Inline(_) => "sql",
            SqlSource::File { shown, .. } => shown,
        }
    }
}

/// Parses the template and checks the query with stand-in values; an error
/// at its byte range of `text`.
fn checked(text: &str) -> Result<Template, (Range<usize>, String)> {
    checked_in("", text, "")
}

/// As [`checked`], for a piece of SQL (a predicate, an expression) that
/// is checked inside `prefix` … `suffix`.
pub(crate) fn checked_in(
    prefix: &str,
    text: &str,
    suffix: &str,
) -> Result<Template, (Range<usize>, String)> {
    let t = Template::parse(text).map_err(|TemplateError { span, message }| (span, message))?;
    let rendered = t.render(&Vars::sample()).map_err(|e| (e.span, e.message))?;
    let whole = format!("{prefix}{}{suffix}", rendered.sql);
    if let Err(e) = lake::sql::check(&whole) {
        let offset = e.place.map_or(0, |p| {
            let at = lake::sql::template::byte_offset(&whole, p.line, p.column);
            let inner = at.saturating_sub(prefix.len()).min(rendered.sql.len());
            rendered.template_offset(inner)
        });
        let message = match e.kind {
            lake::sql::SqlErrorKind::NotAllowed => format!(
                "{}: a lake task's SQL is one query (SELECT, or WITH … SELECT) whose answer the task uses",
                e.message
                    .split(" is not allowed")
                    .next()
                    .unwrap_or("this statement")
            ),
            _ => e.message,
        };
        return Err((offset..offset + 1, message));
    }
    Ok(t)
}

/// Where the text of string value `key` starts in the DAG file, when the
/// text is written as-is (no escapes), so offsets in it map exactly.
fn content_start(settings: &KindSettings<'_>, key: &str, value: &str) -> Option<usize> {
    let span = settings.value_span(key)?;
    let raw = settings.source().get(span.clone())?;
    let (open, close) = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        (3, 3)
    } else {
        (1, 1)
    };
    let mut start = span.start + open;
    let mut inner = raw.get(open..raw.len().checked_sub(close)?)?;
    // TOML drops a newline right after a multi-line string's opening.
    if open == 3 {
        for nl in ["\r\n", "\n"] {
            if let Some(rest) = inner.strip_prefix(nl) {
                inner = rest;
                start += nl.len();
                break;
            }
        }
    }
    (inner == value).then_some(start)
}
