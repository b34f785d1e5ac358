//! Window table functions in a transform's SQL — `TUMBLE(t, col, size)`
//! and `HOP(t, col, slide, size)`, the Flink / RisingWave form — rewritten
//! into plain SQL before planning: each becomes a derived table of `t`'s
//! rows with `window_start` and `window_end` columns (`date_bin` buckets;
//! a hopping window repeats each row once per window holding it, `size /
//! slide` times). The text before the call keeps its place, so errors there
//! still point at the right line and column.
//!
//! The rewrite can also keep only the rows whose time falls in a range:
//! recomputing some windows reads only their rows.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::sql::write::quote_ident;

/// A window function found in the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The table the windows are over.
    pub table: String,
    /// Its time column.
    pub column: String,
    /// Window length.
    pub size: Duration,
    /// Distance between window starts (`size` for a tumbling window).
    pub slide: Duration,
    /// Byte range of the call in the SQL.
    pub at: std::ops::Range<usize>,
    /// Whether an alias follows the call.
    pub aliased: bool,
}

impl Window {
    /// How many windows hold each row.
    pub fn copies(&self) -> u32 {
        (self.size.as_micros() / self.slide.as_micros().max(1)) as u32
    }
}

/// Microseconds of a duration, as SQL interval text.
fn interval(d: Duration) -> String {
    format!("INTERVAL '{} microseconds'", d.as_micros())
}

/// A time as SQL text a timestamp column is compared with (the column's
/// type decides how it is read).
pub fn ts_literal(t: DateTime<Utc>) -> String {
    format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Finds the one window call of the SQL (`None`: no window), or says what
/// is wrong with it.
pub fn find(sql: &str) -> Result<Option<Window>, String> {
    let mut found = None;
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if b == b'\'' || b == b'"' {
            quote = Some(b);
            i += 1;
            continue;
        }
        if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        for name in ["TUMBLE", "HOP"] {
            let end = i + name.len();
            if word_start
                && sql.len() > end
                && sql[i..end].eq_ignore_ascii_case(name)
                && sql[end..].trim_start().starts_with('(')
            {
                if found.is_some() {
                    return Err("one window (TUMBLE or HOP) per transform".into());
                }
                let open = end + sql[end..].find('(').expect("checked");
                let close = matching(sql, open).ok_or(format!("{name}( is not closed"))?;
                let args = split_args(&sql[open + 1..close]);
                found = Some(window(name, &args, i..close + 1, sql)?);
                i = close;
            }
        }
        i += 1;
    }
    Ok(found)
}

fn window(
    name: &str,
    args: &[String],
    at: std::ops::Range<usize>,
    sql: &str,
) -> Result<Window, String> {
    let (want, usage) = if name == "TUMBLE" {
        (3, "TUMBLE(table, time_column, INTERVAL '5 minutes')")
    } else {
        (
            4,
            "HOP(table, time_column, INTERVAL '1 minute' (slide), INTERVAL '5 minutes' (size))",
        )
    };
    if args.len() != want {
        return Err(format!("{name} takes {want} arguments: {usage}"));
    }
    let ident = |s: &str| s.trim().trim_matches('"').to_string();
    let size = duration_arg(&args[want - 1], usage)?;
    let slide = if name == "HOP" {
        duration_arg(&args[2], usage)?
    } else {
        size
    };
    if slide > size {
        return Err(format!(
            "{name}: the slide is longer than the size ({usage})"
        ));
    }
    if size.as_micros() % slide.as_micros() != 0 {
        return Err(format!(
            "{name}: the size ({}) must be a whole number of slides ({})",
            humantime::format_duration(size),
            humantime::format_duration(slide)
        ));
    }
    let rest = sql[at.end..].trim_start();
    let next: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '"')
        .collect();
    const NOT_ALIAS: [&str; 16] = [
        "", "WHERE", "GROUP", "JOIN", "ON", "LEFT", "RIGHT", "INNER", "FULL", "CROSS", "ORDER",
        "LIMIT", "UNION", "HAVING", "NATURAL", "WINDOW",
    ];
    let aliased = !NOT_ALIAS.contains(&next.to_ascii_uppercase().as_str());
    Ok(Window {
        table: ident(&args[0]),
        column: ident(&args[1]),
        size,
        slide,
        at,
        aliased,
    })
}

/// `INTERVAL '5 minutes'` (or `INTERVAL '5' MINUTE`) as a duration.
fn duration_arg(arg: &str, usage: &str) -> Result<Duration, String> {
    let t = arg.trim();
    let bad = || format!("{t:?} is not an interval: write {usage}");
    let rest = t
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("INTERVAL"))
        .map(|_| t[8..].trim())
        .ok_or_else(bad)?;
    let (quoted, unit) = rest
        .strip_prefix('\'')
        .and_then(|r| r.split_once('\''))
        .ok_or_else(bad)?;
    let text = format!("{} {}", quoted.trim(), unit.trim().to_ascii_lowercase());
    let d = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    if d.is_zero() {
        return Err(format!("{t:?}: a window lasts more than zero"));
    }
    Ok(d)
}

fn matching(sql: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in sql[open..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn split_args(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0, None, 0);
    for (i, c) in inner.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(inner[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(inner[start..].to_string());
    out
}

/// The SQL with the window call replaced by a derived table; with a range,
/// only the rows whose time is in `[from, to)` are read.
pub fn rewrite(
    sql: &str,
    w: &Window,
    range: Option<(Option<DateTime<Utc>>, DateTime<Utc>)>,
) -> String {
    let t = quote_ident(&w.table);
    let c = format!("__w.{}", quote_ident(&w.column));
    let filter = match range {
        None => String::new(),
        Some((from, to)) => {
            let lo = from
                .map(|f| format!("{c} >= {} AND ", ts_literal(f)))
                .unwrap_or_default();
            format!(" WHERE {lo}{c} < {}", ts_literal(to))
        }
    };
    let bin = format!("date_bin({}, {c})", interval(w.slide));
    let copies: Vec<String> = (0..w.copies())
        .map(|i| {
            let start = if i == 0 {
                bin.clone()
            } else {
                format!("{bin} - {}", interval(w.slide * i))
            };
            format!(
                "SELECT __w.*, {start} AS window_start, {start} + {} AS window_end FROM {t} AS __w{filter}",
                interval(w.size)
            )
        })
        .collect();
    let alias = if w.aliased {
        String::new()
    } else {
        format!(" AS {t}")
    };
    format!(
        "{}({}){alias}{}",
        &sql[..w.at.start],
        copies.join(" UNION ALL "),
        &sql[w.at.end..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumble_and_hop_calls_are_found_with_their_arguments() {
        let sql = "SELECT window_start, count(*) FROM TUMBLE(users, event_time, INTERVAL '5 minutes') GROUP BY 1";
        let w = find(sql).unwrap().unwrap();
        assert_eq!(
            (w.table.as_str(), w.column.as_str()),
            ("users", "event_time")
        );
        assert_eq!(
            (w.size, w.slide, w.copies()),
            (Duration::from_secs(300), Duration::from_secs(300), 1)
        );
        assert!(!w.aliased);
        assert!(sql[w.at.clone()].starts_with("TUMBLE(") && sql[w.at.clone()].ends_with("')"));

        let sql = "SELECT * FROM hop(users, \"at\", INTERVAL '1' MINUTE, INTERVAL '5 minutes') u WHERE true";
        let w = find(sql).unwrap().unwrap();
        assert_eq!((w.column.as_str(), w.copies(), w.aliased), ("at", 5, true));
        assert_eq!(find("SELECT 'TUMBLE(x)' FROM users").unwrap(), None);
    }

    #[test]
    fn a_bad_window_says_how_to_write_it() {
        let e = find("SELECT * FROM TUMBLE(users, at)").unwrap_err();
        assert!(e.contains("TUMBLE takes 3 arguments"), "{e}");
        let e = find("SELECT * FROM TUMBLE(users, at, '5 minutes')").unwrap_err();
        assert!(e.contains("is not an interval"), "{e}");
        let e = find("SELECT * FROM HOP(users, at, INTERVAL '2 minutes', INTERVAL '5 minutes')")
            .unwrap_err();
        assert!(e.contains("whole number of slides"), "{e}");
    }

    #[test]
    fn the_rewrite_adds_window_columns_and_an_optional_range() {
        let sql = "SELECT window_start, count(*) AS n FROM HOP(users, at, INTERVAL '1 minute', INTERVAL '2 minutes') GROUP BY 1";
        let w = find(sql).unwrap().unwrap();
        let to = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let out = rewrite(sql, &w, Some((None, to)));
        assert!(
            out.starts_with("SELECT window_start, count(*) AS n FROM (SELECT __w.*, date_bin("),
            "{out}"
        );
        assert_eq!(out.matches(" UNION ALL ").count(), 1, "{out}");
        assert!(
            out.contains("WHERE __w.\"at\" < '2026-12-01T10:00:00.000000Z'"),
            "{out}"
        );
        assert!(out.ends_with(") AS \"users\" GROUP BY 1"), "{out}");
    }
}
