//! Timetables: a cron schedule read in a time zone, turned into logical dates
//! and data intervals (Airflow's semantics).
//!
//! A scheduled run covers the data interval `[start, end)` between two
//! consecutive cron points; its logical date is `start` and it is created once
//! `end` has passed. Cron points are found in the DAG's time zone by `croner`,
//! so intervals follow the wall clock across DST changes (a daily interval is
//! 23 or 25 hours long on those days). Everything is returned in UTC.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::Serialize;

/// When runs are created.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Manual triggers only.
    None,
    /// A cron expression (aliases already expanded).
    Cron {
        /// The expression as written in the file.
        expr: String,
        /// Parsed form.
        cron: Box<Cron>,
    },
}

impl Schedule {
    /// Parses `none`, an `@alias`, or a 5-field / 6-field cron expression.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let t = text.trim();
        let expanded = match t.to_ascii_lowercase().as_str() {
            "none" | "" => return Ok(Schedule::None),
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            a if a.starts_with('@') => {
                return Err(format!(
                    "unknown schedule alias {t:?} (use @hourly, @daily, @weekly, @monthly, @yearly, none, or a cron expression)"
                ));
            }
            _ => t,
        };
        let fields = expanded.split_whitespace().count();
        if !(fields == 5 || fields == 6) {
            return Err(format!(
                "invalid cron expression {t:?}: expected 5 fields (minute hour day month weekday) or 6 (with seconds first), found {fields}"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expanded)
            .map_err(|e| format!("invalid cron expression {t:?}: {e}"))?;
        // `0 0 30 2 *` (30 February) parses but never fires; a date that
        // exists only in leap years still fires within eight years.
        let from = DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default();
        let fires = cron
            .find_next_occurrence(&from, false)
            .is_ok_and(|t| t < from + chrono::Duration::days(366 * 8));
        if !fires {
            return Err(format!(
                "cron expression {t:?} never fires: no such day exists (check the day and month fields)"
            ));
        }
        Ok(Schedule::Cron {
            expr: t.to_string(),
            cron: Box::new(cron),
        })
    }

    /// The text shown to users.
    pub fn as_text(&self) -> &str {
        match self {
            Schedule::None => "none",
            Schedule::Cron { expr, .. } => expr,
        }
    }
}

/// A run's data interval, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
pub struct DataInterval {
    /// Start; also the run's logical date.
    pub start: DateTime<Utc>,
    /// End (exclusive); a scheduled run is created once it has passed.
    pub end: DateTime<Utc>,
}

/// Schedule, time zone, start/end dates and catchup of a DAG.
#[derive(Debug, Clone)]
pub struct Timetable {
    /// When runs are created.
    pub schedule: Schedule,
    /// Time zone the cron expression is read in.
    pub tz: Tz,
    /// No interval starts before this.
    pub start: Option<DateTime<Utc>>,
    /// No interval starts after this.
    pub end: Option<DateTime<Utc>>,
    /// Create every missed interval (true) or only the latest (false).
    pub catchup: bool,
}

impl Timetable {
    fn cron(&self) -> Option<&Cron> {
        match &self.schedule {
            Schedule::None => None,
            Schedule::Cron { cron, .. } => Some(cron),
        }
    }

    /// The first cron point after `t` (or at `t` when `inclusive`).
    pub fn next_point(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        let next = self.cron()?.find_next_occurrence(&local, inclusive).ok()?;
        Some(next.with_timezone(&Utc))
    }

    /// The last cron point before `t` (or at `t` when `inclusive`).
    pub fn prev_point(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        let prev = self
            .cron()?
            .find_previous_occurrence(&local, inclusive)
            .ok()?;
        Some(prev.with_timezone(&Utc))
    }

    /// The interval starting at cron point `start`.
    fn interval_at(&self, start: DateTime<Utc>) -> Option<DataInterval> {
        let end = self.next_point(start, false)?;
        Some(DataInterval { start, end })
    }

    fn within_end(&self, i: DataInterval) -> Option<DataInterval> {
        match self.end {
            Some(end) if i.start > end => None,
            _ => Some(i),
        }
    }

    /// The latest interval that has ended by `now`.
    pub fn latest_complete(&self, now: DateTime<Utc>) -> Option<DataInterval> {
        let end = self.prev_point(now, true)?;
        let start = self.prev_point(end, false)?;
        Some(DataInterval { start, end })
    }

    /// The next interval the scheduler should create after the last scheduled
    /// one (`last`), whether or not it is due yet (it is due once `end <= now`).
    /// With `catchup = false`, missed intervals older than the latest complete
    /// one are skipped. `None` when there is no schedule or the end date is passed.
    pub fn next_dagrun(
        &self,
        last: Option<&DataInterval>,
        now: DateTime<Utc>,
    ) -> Option<DataInterval> {
        self.cron()?;
        let earliest = match self.start {
            Some(s) => Some(self.next_point(s, true)?),
            None => None,
        };
        let latest = self.latest_complete(now).map(|i| i.start);
        let mut start = match (last, earliest) {
            (Some(l), _) => l.end,
            (None, Some(e)) => e,
            // No start date and no run yet: begin with the latest complete interval,
            // or (just after the first cron point of all time) the current one.
            (None, None) => latest.or_else(|| self.prev_point(now, true))?,
        };
        if !self.catchup
            && let Some(l) = latest
        {
            start = start.max(l);
        }
        if let Some(e) = earliest {
            start = start.max(e);
        }
        self.within_end(self.interval_at(start)?)
    }

    /// The next `n` intervals that end after `now`: the runs still to come.
    pub fn upcoming(&self, now: DateTime<Utc>, n: usize) -> Vec<DataInterval> {
        let mut out = Vec::with_capacity(n);
        let Some(mut start) = self.prev_point(now, true) else {
            return out;
        };
        if let Some(s) = self.start
            && let Some(e) = self.next_point(s, true)
        {
            start = start.max(e);
        }
        while out.len() < n {
            let Some(i) = self.interval_at(start).and_then(|i| self.within_end(i)) else {
                break;
            };
            out.push(i);
            start = i.end;
        }
        out
    }

    /// Every interval whose logical date lies in `[from, to]` (for backfills),
    /// clipped to the DAG's start and end dates.
    pub fn intervals_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DataInterval> {
        let mut out = Vec::new();
        let lower = self.start.map_or(from, |s| s.max(from));
        let Some(mut start) = self.next_point(lower, true) else {
            return out;
        };
        while start <= to {
            let Some(i) = self.interval_at(start).and_then(|i| self.within_end(i)) else {
                break;
            };
            out.push(i);
            start = i.end;
        }
        out
    }

    /// Data interval of a manual run at `logical_date`: the cron interval
    /// starting there when the date is a cron point, else the instant itself.
    pub fn manual_interval(&self, logical_date: DateTime<Utc>) -> DataInterval {
        if self.next_point(logical_date, true) == Some(logical_date)
            && let Some(i) = self.interval_at(logical_date)
        {
            return i;
        }
        DataInterval {
            start: logical_date,
            end: logical_date,
        }
    }
}

/// Parses a date or datetime written by a user (`2026-11-01`,
/// `2026-11-01T06:00:00`, `2026-11-01T06:00:00Z`, `2026-11-01 06:00:00+02:00`);
/// dates and local datetimes are read in `tz`.
pub fn parse_datetime(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let dt: toml::value::Datetime = text.trim().parse().map_err(|e| format!("{e}"))?;
    datetime_in_tz(&dt, tz)
}

/// Converts a TOML datetime to UTC: dates and local datetimes are read in `tz`.
pub fn datetime_in_tz(dt: &toml::value::Datetime, tz: Tz) -> Result<DateTime<Utc>, String> {
    use chrono::{LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
    let date = dt
        .date
        .ok_or("a date is required (a time alone is not enough)")?;
    let nd = NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
    .ok_or("no such calendar date")?;
    let nt = match dt.time {
        Some(t) => NaiveTime::from_hms_nano_opt(
            u32::from(t.hour),
            u32::from(t.minute),
            u32::from(t.second),
            t.nanosecond,
        )
        .ok_or("no such time of day")?,
        None => NaiveTime::MIN,
    };
    let naive = NaiveDateTime::new(nd, nt);
    match dt.offset {
        Some(toml::value::Offset::Z) => Ok(naive.and_utc()),
        Some(toml::value::Offset::Custom { minutes }) => {
            Ok(naive.and_utc() - chrono::Duration::minutes(i64::from(minutes)))
        }
        None => match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
            LocalResult::None => Err(format!(
                "{naive} does not exist in time zone {} (DST gap)",
                tz.name()
            )),
        },
    }
}

/// A UTC instant as the CLI and the UI show it: `2026-11-21 10:00:00`.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An instant in a DAG's time zone with the zone named, as the CLI and the
/// UI show a DAG's dates: `2026-11-01 00:00:00 CET`.
pub fn format_in(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_show_in_the_dag_zone_with_its_name() {
        let t = Utc.with_ymd_and_hms(2026, 10, 31, 23, 0, 0).unwrap();
        assert_eq!(
            format_in(t, chrono_tz::Europe::Paris),
            "2026-11-01 00:00:00 CET"
        );
        assert_eq!(format_in(t, chrono_tz::UTC), "2026-10-31 23:00:00 UTC");
    }

    fn tt(expr: &str, tz: &str, start: Option<&str>, catchup: bool) -> Timetable {
        Timetable {
            schedule: Schedule::parse(expr).unwrap(),
            tz: tz.parse().unwrap(),
            start: start.map(utc),
            end: None,
            catchup,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_schedules() {
        assert!(matches!(Schedule::parse("none").unwrap(), Schedule::None));
        assert_eq!(Schedule::parse("@daily").unwrap().as_text(), "@daily");
        assert!(
            Schedule::parse("*/10 * * * * *").is_ok(),
            "6 fields with seconds"
        );
        let e = Schedule::parse("0 0 * *").unwrap_err();
        assert!(e.contains("expected 5 fields"), "{e}");
        let e = Schedule::parse("61 * * * *").unwrap_err();
        assert!(e.contains("invalid cron expression"), "{e}");
        assert!(
            Schedule::parse("@fortnightly")
                .unwrap_err()
                .contains("unknown schedule alias")
        );
        assert!(
            Schedule::parse("0 0 0 1 1 * 2030")
                .unwrap_err()
                .contains("found 7")
        );
    }

    #[test]
    fn daily_intervals_in_utc() {
        let t = tt("@daily", "UTC", Some("2026-11-01T00:00:00Z"), true);
        let first = t.next_dagrun(None, utc("2026-11-21T12:00:00Z")).unwrap();
        assert_eq!(first.start, utc("2026-11-01T00:00:00Z"));
        assert_eq!(first.end, utc("2026-11-02T00:00:00Z"));
        let second = t
            .next_dagrun(Some(&first), utc("2026-11-21T12:00:00Z"))
            .unwrap();
        assert_eq!(second.start, first.end);
    }

    #[test]
    fn start_date_is_aligned_up() {
        let t = tt("0 6 * * *", "UTC", Some("2026-11-01T07:30:00Z"), true);
        let first = t.next_dagrun(None, utc("2026-11-21T00:00:00Z")).unwrap();
        assert_eq!(first.start, utc("2026-11-02T06:00:00Z"));
    }

    #[test]
    fn no_catchup_skips_to_latest_complete() {
        let t = tt("@daily", "UTC", Some("2026-11-01T00:00:00Z"), false);
        let now = utc("2026-11-21T12:00:00Z");
        let i = t.next_dagrun(None, now).unwrap();
        assert_eq!(
            i,
            DataInterval {
                start: utc("2026-11-20T00:00:00Z"),
                end: utc("2026-11-21T00:00:00Z")
            }
        );
        // After a long downtime, the old last run does not cause a catchup either.
        let old = DataInterval {
            start: utc("2026-11-02T00:00:00Z"),
            end: utc("2026-11-03T00:00:00Z"),
        };
        assert_eq!(
            t.next_dagrun(Some(&old), now).unwrap().start,
            utc("2026-11-20T00:00:00Z")
        );
        // With catchup, it continues where it left off.
        let c = tt("@daily", "UTC", Some("2026-11-01T00:00:00Z"), true);
        assert_eq!(
            c.next_dagrun(Some(&old), now).unwrap().start,
            utc("2026-11-03T00:00:00Z")
        );
    }

    #[test]
    fn future_start_date_waits() {
        let t = tt("@daily", "UTC", Some("2026-12-01T00:00:00Z"), false);
        let i = t.next_dagrun(None, utc("2026-11-21T12:00:00Z")).unwrap();
        assert_eq!(i.start, utc("2026-12-01T00:00:00Z"));
        assert!(i.end > utc("2026-11-21T12:00:00Z"), "not due yet");
    }

    #[test]
    fn end_date_stops_runs() {
        let mut t = tt("@daily", "UTC", Some("2026-11-01T00:00:00Z"), true);
        t.end = Some(utc("2026-11-02T00:00:00Z"));
        let a = t.next_dagrun(None, utc("2026-11-21T00:00:00Z")).unwrap();
        let b = t
            .next_dagrun(Some(&a), utc("2026-11-21T00:00:00Z"))
            .unwrap();
        assert_eq!(b.start, utc("2026-11-02T00:00:00Z"));
        assert_eq!(t.next_dagrun(Some(&b), utc("2026-11-21T00:00:00Z")), None);
    }

    #[test]
    fn no_schedule_never_creates_runs() {
        let t = tt("none", "UTC", Some("2026-11-01T00:00:00Z"), true);
        assert_eq!(t.next_dagrun(None, utc("2026-11-21T00:00:00Z")), None);
        assert!(t.upcoming(utc("2026-11-21T00:00:00Z"), 3).is_empty());
        let i = t.manual_interval(utc("2026-11-21T10:00:00Z"));
        assert_eq!(i.start, i.end);
    }

    /// Spring forward in Paris (2026-03-29, 02:00 → 03:00): the daily interval
    /// is 23 hours long and midnight stays midnight in local time.
    #[test]
    fn daily_across_spring_forward() {
        let t = tt("@daily", "Europe/Paris", None, true);
        let v = t.intervals_between(utc("2026-03-27T23:00:00Z"), utc("2026-03-30T22:00:00Z"));
        let lens: Vec<i64> = v.iter().map(|i| (i.end - i.start).num_hours()).collect();
        assert_eq!(lens, vec![24, 23, 24, 24]);
        let paris: Tz = "Europe/Paris".parse().unwrap();
        for i in &v {
            let local = i.start.with_timezone(&paris);
            assert_eq!(local.format("%H:%M").to_string(), "00:00");
        }
    }

    /// Fall back in New York (2026-11-01, 02:00 → 01:00): a 25-hour day, and an
    /// hourly schedule runs 25 intervals of one real hour each that day.
    #[test]
    fn fall_back_in_new_york() {
        let daily = tt("@daily", "America/New_York", None, true);
        let v = daily.intervals_between(utc("2026-11-01T04:00:00Z"), utc("2026-11-01T04:00:00Z"));
        assert_eq!((v[0].end - v[0].start).num_hours(), 25);
        let hourly = tt("@hourly", "America/New_York", None, true);
        let v = hourly.intervals_between(utc("2026-11-01T04:00:00Z"), utc("2026-11-02T04:59:00Z"));
        assert_eq!(v.len(), 25);
        assert!(v.iter().all(|i| (i.end - i.start).num_minutes() == 60));
        // Strictly increasing, no duplicate logical dates.
        assert!(v.windows(2).all(|w| w[0].end == w[1].start));
    }

    /// A fixed-time job in the spring gap (02:30 does not exist) runs once that day.
    #[test]
    fn fixed_time_in_gap_runs_once() {
        let t = tt("30 2 * * *", "Europe/Paris", None, true);
        let v = t.intervals_between(utc("2026-03-28T00:00:00Z"), utc("2026-03-30T23:00:00Z"));
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn upcoming_lists_future_runs() {
        let t = tt("0 */6 * * *", "UTC", None, false);
        let now = utc("2026-11-21T07:00:00Z");
        let v = t.upcoming(now, 3);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].start, utc("2026-11-21T06:00:00Z"));
        assert_eq!(v[0].end, utc("2026-11-21T12:00:00Z"));
        assert!(v.iter().all(|i| i.end > now));
    }

    #[test]
    fn parses_user_datetimes() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            parse_datetime("2026-11-01", paris).unwrap(),
            utc("2026-10-31T23:00:00Z")
        );
        assert_eq!(
            parse_datetime("2026-11-01T06:00:00Z", paris).unwrap(),
            utc("2026-11-01T06:00:00Z")
        );
        assert_eq!(
            parse_datetime("2026-11-01T06:00:00+02:00", paris).unwrap(),
            utc("2026-11-01T04:00:00Z")
        );
        assert!(
            parse_datetime("2026-03-29T02:30:00", paris)
                .unwrap_err()
                .contains("DST gap")
        );
        assert!(parse_datetime("2026-02-30", paris).is_err());
        assert!(parse_datetime("yesterday", paris).is_err());
    }

    #[test]
    fn manual_interval_on_cron_point() {
        let t = tt("@daily", "UTC", None, false);
        let i = t.manual_interval(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
        assert_eq!((i.end - i.start).num_hours(), 24);
    }
}
