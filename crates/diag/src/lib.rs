//! Diagnostics for the TOML files people write — DAG files and
//! `tributary.toml` alike: a [`Diagnostic`] is `file:line:col: sentence`;
//! [`Diags`] collects them for one file, turning byte spans into positions
//! and serde's messages into sentences with a "did you mean" from the table
//! the key is in ([`suggest`]).
//!
//! Both file formats are parsed once into spanned values
//! ([`parse_document`]) and then deserialized piece by piece with
//! [`Diags::de`], so one broken table does not hide the problems of the
//! others.

pub mod schema;
mod text;

use std::fmt;
use std::ops::Range;

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use crate::schema::{Problem, Schema};
pub use crate::text::{cut, suggest};

/// One problem in a file, with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// A plain sentence saying what is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..source.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The longest message a diagnostic shows before it is cut.
const MAX_MESSAGE_CHARS: usize = 600;

/// Collects the diagnostics of one file.
pub struct Diags<'a> {
    file: String,
    source: &'a str,
    list: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Byte offset of each line's start, computed on the first problem, so
    /// a file with thousands of problems is not rescanned for each.
    line_starts: Option<Vec<usize>>,
}

impl<'a> Diags<'a> {
    /// Diagnostics of `file`, whose text is `source`.
    pub fn new(file: impl Into<String>, source: &'a str) -> Diags<'a> {
        Diags {
            file: file.into(),
            source,
            list: Vec::new(),
            warnings: Vec::new(),
            line_starts: None,
        }
    }

    /// The file's text.
    pub fn source(&self) -> &'a str {
        self.source
    }

    /// The file's name, as diagnostics show it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records a problem at a byte span (the file's start when unknown).
    /// Messages stay one readable line: longer ones (a 20,000-task cycle,
    /// a value of megabytes) are cut with a note.
    pub fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let d = self.diagnostic(span, "", &message.into());
        self.list.push(d);
    }

    /// A diagnostic at `span` (the file's start when unknown), its message
    /// cut to one readable line.
    fn diagnostic(
        &mut self,
        span: Option<Range<usize>>,
        prefix: &str,
        message: &str,
    ) -> Diagnostic {
        let (line, col) = self.position(span.map_or(0, |s| s.start));
        Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message: format!("{prefix}{}", cut(message, MAX_MESSAGE_CHARS)),
        }
    }

    /// Checks a spanned value against `T`'s schema, recording every
    /// problem (`what: message`), then deserializes it. When the schema
    /// found problems, the keys they are under are left out and the rest is
    /// deserialized, so later checks still run on what was right (the file
    /// fails anyway: the problems are recorded); `None` when even that
    /// fails. `also_known`: keys of the table read elsewhere, suggested for
    /// typos (see [`Schema::check`]).
    pub fn de<T: DeserializeOwned + schemars::JsonSchema + 'static>(
        &mut self,
        value: Spanned<DeValue<'a>>,
        what: &str,
        also_known: &[&str],
    ) -> Option<T> {
        let schema = Schema::of::<T>();
        let problems = schema.check(&value, also_known);
        let whole = value.span();
        if !problems.is_empty() {
            let wrong: Vec<String> = problems.iter().filter_map(|p| p.key.clone()).collect();
            for p in problems {
                self.err(Some(p.span), format!("{what}: {}", p.message));
            }
            // A rule only the schema knows (a bound, an enum) leaves the
            // value readable as it is; a wrong type needs its key left out.
            if let Ok(v) = T::deserialize(ValueDeserializer::from(value.clone())) {
                return Some(v);
            }
            let DeValue::Table(mut t) = value.into_inner() else {
                return None;
            };
            for key in &wrong {
                t.remove(key.as_str());
            }
            let rest = Spanned::new(whole, DeValue::Table(t));
            return T::deserialize(ValueDeserializer::from(rest)).ok();
        }
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut known = schema.keys();
                known.extend_from_slice(also_known);
                let msg = serde_message(e.message(), &known);
                self.err(e.span().or(Some(whole)), format!("{what}: {msg}"));
                None
            }
        }
    }

    /// Records something valid but probably not meant: it does not make
    /// the file invalid.
    pub fn warn(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let d = self.diagnostic(span, "warning: ", &message.into());
        self.warnings.push(d);
    }

    /// The warnings recorded so far, in file order.
    pub fn take_warnings(&mut self) -> Vec<Diagnostic> {
        let mut w = std::mem::take(&mut self.warnings);
        w.sort_by_key(|d| (d.line, d.col));
        w
    }

    /// 1-based line and column of a byte offset (like [`line_col`], in
    /// O(log lines) once the line starts are known).
    pub fn position(&mut self, offset: usize) -> (usize, usize) {
        let source = self.source;
        let starts = self.line_starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(source.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let offset = source.floor_char_boundary(offset.min(source.len()));
        let line = starts.partition_point(|&s| s <= offset);
        let start = starts[line - 1];
        (line, source[start..offset].chars().count() + 1)
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems, in file order.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.list.sort_by_key(|d| (d.line, d.col));
        self.list
    }

    /// The problems, in the order they were found.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.list
    }
}

/// Parses a TOML document into spanned values, recording every syntax
/// error; `None` when there was any.
pub fn parse_document<'a>(d: &mut Diags<'a>) -> Option<Spanned<DeTable<'a>>> {
    let (root, syntax) = DeTable::parse_recoverable(d.source());
    if syntax.is_empty() {
        return Some(root);
    }
    for e in syntax {
        d.err(e.span(), format!("TOML syntax: {}", e.message().trim_end()));
    }
    None
}

/// Rewrites serde's "unknown field `x`, expected one of …" into a sentence
/// with a "did you mean" suggestion from `known`.
pub fn serde_message(msg: &str, known: &[&str]) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(name) = rest.split('`').next()
    {
        return match suggest(name, known) {
            Some(s) => format!("unknown key `{name}` (did you mean `{s}`?)"),
            None => format!("unknown key `{name}` (known keys: {})", known.join(", ")),
        };
    }
    msg.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_allow_one_edit_per_three_characters() {
        let keys = ["kafka", "lake", "metrics", "schedule", "retries"];
        assert_eq!(suggest("kafak", &keys), Some("kafka"));
        assert_eq!(suggest("lak", &keys), Some("lake"));
        assert_eq!(suggest("schedul", &keys), Some("schedule"));
        assert_eq!(suggest("retires", &keys), Some("retries"));
        assert_eq!(suggest("zzzzz", &keys), None);
        assert_eq!(suggest("", &keys), None);
    }

    #[test]
    fn positions_are_one_based_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, src.find('=').unwrap()), (1, 3));
        let second = src.rfind('=').unwrap();
        assert_eq!(line_col(src, second), (2, 4));
        assert_eq!(line_col(src, 10_000), (3, 1));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_become_sentences() {
        #[derive(serde::Deserialize, schemars::JsonSchema, Debug)]
        #[serde(deny_unknown_fields)]
        struct T {
            schedule: Option<String>,
        }
        let src = "schedul = \"x\"\n";
        let mut d = Diags::new("f.toml", src);
        let root = parse_document(&mut d).unwrap();
        let span = root.span();
        let v: Option<T> = d.de(
            Spanned::new(span, DeValue::Table(root.into_inner())),
            "config",
            &[],
        );
        // The problem is recorded; the rest of the table is still read, so
        // later checks run on it.
        assert!(v.is_some_and(|t| t.schedule.is_none()));
        assert!(!d.is_empty());
        assert_eq!(
            d.into_vec()[0].to_string(),
            "f.toml:1:1: config: unknown key `schedul` (did you mean `schedule`?)"
        );
        let mut d = Diags::new("g.toml", "a = \n");
        assert!(parse_document(&mut d).is_none());
        let all = d.into_sorted();
        assert!(all[0].to_string().starts_with("g.toml:1:"), "{all:?}");
        assert!(all[0].message.starts_with("TOML syntax: "), "{all:?}");
    }
}
