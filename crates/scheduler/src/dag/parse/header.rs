//! The DAG-level keys: id, schedule, time zone, dates, limits and
//! `[defaults]`, checked into the [`Timing`] the timetable is built from.

use std::ops::Range;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diag::Diags;
use toml::Spanned;

use super::tasks::{check_settings, valid_id};
use crate::dag::file::{DagHeader, DateValue};
use crate::timetable::Schedule;

/// Top-level keys read apart from the DAG's own (for "did you mean").
pub(super) const TABLE_KEYS: &[&str] = &["params", "task"];

/// When a DAG runs, as its header says (defaults where it is silent or
/// wrong; the problem is recorded).
pub(super) struct Timing {
    pub tz: Tz,
    pub schedule: Schedule,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Checks the header's values, recording every problem.
pub(super) fn check_header(d: &mut Diags<'_>, h: &DagHeader, root_span: Range<usize>) -> Timing {
    let mut tz = Tz::UTC;
    let mut schedule = Schedule::None;
    if !valid_id(h.dag_id.get_ref()) {
        d.err(
            Some(h.dag_id.span()),
            format!(
                "invalid dag_id {:?}: use 1 to 250 letters, digits, '_', '-' or '.'",
                h.dag_id.get_ref()
            ),
        );
    }
    if let Some(z) = &h.timezone {
        match z.get_ref().parse::<Tz>() {
            Ok(t) => tz = t,
            Err(_) => d.err(
                Some(z.span()),
                format!(
                    "unknown time zone {:?}: use an IANA name such as \"Europe/Paris\" or \"UTC\"",
                    z.get_ref()
                ),
            ),
        }
    }
    if let Some(s) = &h.schedule {
        match Schedule::parse(s.get_ref()) {
            Ok(sch) => schedule = sch,
            Err(e) => d.err(Some(s.span()), e),
        }
    }
    let start = h
        .start_date
        .as_ref()
        .and_then(|v| date_in_tz(d, v, tz, "start_date"));
    let end = h
        .end_date
        .as_ref()
        .and_then(|v| date_in_tz(d, v, tz, "end_date"));
    if let (Some(s), Some(e), Some(ev)) = (start, end, &h.end_date)
        && e < s
    {
        d.err(
            Some(ev.span()),
            format!("end_date ({e}) is before start_date ({s})"),
        );
    }
    check_settings(
        d,
        &h.defaults,
        &Default::default(),
        Some(root_span.clone()),
        "[defaults]",
    );
    Timing {
        tz,
        schedule,
        start,
        end,
    }
}

/// Converts a date setting to UTC: dates and local datetimes are read in `tz`.
pub(super) fn date_in_tz(
    d: &mut Diags<'_>,
    v: &Spanned<DateValue>,
    tz: Tz,
    key: &str,
) -> Option<DateTime<Utc>> {
    let parsed = match v.get_ref() {
        DateValue::Toml(dt) => Ok(*dt),
        DateValue::Text(s) => s
            .parse::<toml::value::Datetime>()
            .map_err(|e| e.to_string()),
    };
    let result = parsed.and_then(|dt| crate::timetable::datetime_in_tz(&dt, tz));
    match result {
        Ok(t) => Some(t),
        Err(e) => {
            d.err(
                Some(v.span()),
                format!("invalid {key}: {e}; write a date like 2026-11-01 or 2026-11-01T06:00:00Z"),
            );
            None
        }
    }
}
