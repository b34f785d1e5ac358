//! `lake replay`: a stream's topics, read again from a point, written by the
//! stream writer into a new generation of its table.
//!
//! The generation is an ordinary writer target: its own table and
//! dead-letter table (`ledger::storage_name`), its own consumer group, its
//! own offsets in its own log. So a replay resumes after a crash exactly as
//! a writer does, and the same command run again resumes the unfinished
//! generation instead of starting another. Where a replay starts (`--from`)
//! is kept in the generation's table properties: a partition it has not
//! reached yet still starts there after a crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ledger::{Ledger, storage_name};
use crate::LakeError;
use crate::config::StreamSpec;
use crate::kafka::{KafkaSource, OffsetReader};
use crate::schema::dead_letter_schema;
use crate::table::Location;

/// Table property: the generation's number.
pub const PROP_GENERATION: &str = "tributary.generation";
/// Table property: what made it (`replay from earliest with tributary.toml`).
pub const PROP_MADE_BY: &str = "tributary.generation.madeBy";
/// Table property: where each partition started, `topic:partition=offset`
/// joined by `,` (empty: the earliest).
pub const PROP_START: &str = "tributary.generation.start";

/// Where a replay starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The earliest record each partition still holds.
    Earliest,
    /// This offset of each listed partition (others: the earliest).
    Offsets(BTreeMap<(String, i32), i64>),
    /// The first record at or after this time, per partition.
    Time(DateTime<Utc>),
}

impl ReplayFrom {
    /// Parses `earliest`, an RFC 3339 time, or offsets
    /// (`topic:partition=offset,…`, or `partition=offset,…` for a stream of
    /// one topic).
    pub fn parse(text: &str, topics: &[String]) -> Result<ReplayFrom, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("earliest") {
            return Ok(ReplayFrom::Earliest);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(ReplayFrom::Time(t.with_timezone(&Utc)));
        }
        let usage = "--from takes `earliest`, an RFC 3339 time (2026-12-01T00:00:00Z), \
                     or offsets per partition (users:0=1200,users:1=1180; `0=1200` for a stream of one topic)";
        let mut out = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((tp, offset)) = item.split_once('=') else {
                return Err(format!("{item:?}: {usage}"));
            };
            let (topic, partition) = match tp.rsplit_once(':') {
                Some((t, p)) => (t.to_string(), p),
                None if topics.len() == 1 => (topics[0].clone(), tp),
                None => {
                    return Err(format!(
                        "{item:?}: the stream reads several topics ({}); name the topic (topic:partition=offset)",
                        topics.join(", ")
                    ));
                }
            };
            if !topics.contains(&topic) {
                return Err(format!(
                    "{item:?}: the stream does not read topic {topic:?} (it reads {})",
                    topics.join(", ")
                ));
            }
            let (Ok(partition), Ok(offset)) = (partition.parse::<i32>(), offset.parse::<i64>())
            else {
                return Err(format!("{item:?}: {usage}"));
            };
            if partition < 0 || offset < 0 {
                return Err(format!("{item:?}: partitions and offsets are not negative"));
            }
            out.insert((topic, partition), offset);
        }
        if out.is_empty() {
            return Err(usage.to_string());
        }
        Ok(ReplayFrom::Offsets(out))
    }

    /// How it reads in a sentence part: `from earliest`.
    pub fn describe(&self) -> String {
        match self {
            ReplayFrom::Earliest => "from earliest".into(),
            ReplayFrom::Offsets(m) => format!("from offsets {}", format_start(m)),
            ReplayFrom::Time(t) => format!(
                "from {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        }
    }
}

fn format_start(m: &BTreeMap<(String, i32), i64>) -> String {
    m.iter()
        .map(|((t, p), o)| format!("{t}:{p}={o}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_start(text: &str) -> BTreeMap<(String, i32), i64> {
    text.split(',')
        .filter_map(|item| {
            let (tp, o) = item.split_once('=')?;
            let (t, p) = tp.rsplit_once(':')?;
            Some(((t.to_string(), p.parse().ok()?), o.parse().ok()?))
        })
        .collect()
}

/// A replay ready to run.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The generation it writes.
    pub generation: u32,
    /// Whether it goes on with an unfinished replay.
    pub resumed: bool,
    /// What made the generation.
    pub made_by: String,
    /// The stream as the writer runs it: the generation's tables, its own
    /// consumer group, its start offsets.
    pub spec: Arc<StreamSpec>,
    /// What was refilled from the current generation because Kafka no
    /// longer holds it (`super::refill`), when anything was.
    pub refilled: Option<super::refill::Refilled>,
}

/// What a replay needs to know.
#[derive(Debug, Clone)]
pub struct ReplayRequest<'a> {
    /// The stream as declared for the live table.
    pub live: &'a StreamSpec,
    /// The stream as the replay declares it (the live one, or the same
    /// stream in another config file).
    pub spec: &'a StreamSpec,
    /// Where to start; `None`: the earliest, or as the unfinished replay
    /// started.
    pub from: Option<ReplayFrom>,
    /// Start a new generation even if an unfinished one exists.
    pub fresh: bool,
    /// The config file the replay's declaration comes from.
    pub config: String,
}

/// The generations the live table's folder holds (2, 3, … while their
/// logs exist).
pub async fn stored(location: &Location, table: &str) -> Result<Vec<u32>, LakeError> {
    let mut out = Vec::new();
    let mut n = 2;
    while location.open_log_exists(&storage_name(table, n)).await? {
        out.push(n);
        n += 1;
    }
    Ok(out)
}

/// Picks (and creates) the generation a replay writes: the unfinished one
/// with the same shape, else the next number.
pub async fn prepare(
    location: &Location,
    kafka: &KafkaSource,
    req: ReplayRequest<'_>,
) -> Result<Replay, LakeError> {
    let live = req.live.clone();
    let mut r = pick(location, kafka, req).await?;
    // Offsets Kafka's retention deleted come from the live table's rows,
    // in the generation's first commit (nothing when it has one already).
    let reader = OffsetReader::new(kafka)?;
    let topics = live.topics.clone();
    let ranges =
        tokio::task::spawn_blocking(move || reader.log_ranges(&topics, Duration::from_secs(30)))
            .await
            .map_err(|e| LakeError::Kafka(format!("offset lookup stopped: {e}")))??;
    r.refilled = super::refill::refill(location, &live, &r.spec, &ranges).await?;
    Ok(r)
}

/// The generation a replay writes: the unfinished one with the same
/// shape, else a new one, created.
async fn pick(
    location: &Location,
    kafka: &KafkaSource,
    req: ReplayRequest<'_>,
) -> Result<Replay, LakeError> {
    let live = req.live;
    if req.spec.topics != live.topics {
        return Err(LakeError::Config(format!(
            "stream {} reads [{}] in {}, but [{}] live: a replay reads the live stream's topics",
            live.name,
            req.spec.topics.join(", "),
            req.config,
            live.topics.join(", ")
        )));
    }
    let table = location.open_existing(&live.table).await?;
    let ledger = Ledger::of(&live.table, &table).await?;
    let stored = stored(location, &live.table).await?;
    let top = stored.last().copied().unwrap_or(1);
    let parts: Vec<String> = req
        .spec
        .partition_by
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    if !req.fresh && top >= 2 && !ledger.was_current(top) {
        return resume(location, &req, top).await;
    }
    let n = top.max(ledger.current) + 1;
    let from = req.from.clone().unwrap_or(ReplayFrom::Earliest);
    let start = match &from {
        ReplayFrom::Earliest => BTreeMap::new(),
        ReplayFrom::Offsets(m) => m.clone(),
        ReplayFrom::Time(t) => {
            let reader = OffsetReader::new(kafka)?;
            let topics = live.topics.clone();
            let at = *t;
            tokio::task::spawn_blocking(move || {
                reader.offsets_at(&topics, at, Duration::from_secs(30))
            })
            .await
            .map_err(|e| LakeError::Kafka(format!("offset lookup stopped: {e}")))??
        }
    };
    let made_by = format!("replay {} with {}", from.describe(), req.config);
    let props = vec![
        (PROP_GENERATION.to_string(), n.to_string()),
        (PROP_MADE_BY.to_string(), made_by.clone()),
        (PROP_START.to_string(), format_start(&start)),
    ];
    let spec = generation_spec(req.spec, &live.table, &live.dead_letter_table, n, start);
    location
        .open_or_create_with(&spec.table, &spec.table_schema, &parts, &props)
        .await?;
    location
        .open_or_create_with(&spec.dead_letter_table, &dead_letter_schema(), &[], &props)
        .await?;
    Ok(Replay {
        generation: n,
        resumed: false,
        made_by,
        spec: Arc::new(spec),
        refilled: None,
    })
}

/// Goes on with the unfinished generation `n`, if it has the replay's
/// shape and start.
async fn resume(location: &Location, req: &ReplayRequest<'_>, n: u32) -> Result<Replay, LakeError> {
    let live = req.live;
    let g = open_generation(location, live, req.spec, n)
        .await
        .map_err(|e| {
            LakeError::Config(format!(
                "{e}; or pass --new to start {}@v{} instead",
                live.table,
                n + 1
            ))
        })?;
    if let Some(from) = &req.from {
        let same = match from {
            ReplayFrom::Earliest => g.spec.start.is_empty(),
            ReplayFrom::Offsets(m) => *m == g.spec.start,
            // A time was turned into offsets when the replay began.
            ReplayFrom::Time(_) => g.made_by.contains(&from.describe()),
        };
        if !same {
            return Err(LakeError::Config(format!(
                "{}@v{n} is an unfinished {}; run without --from to resume it, or pass --new to start {}@v{} {}",
                live.table,
                g.made_by,
                live.table,
                n + 1,
                from.describe()
            )));
        }
    }
    Ok(Replay { resumed: true, ..g })
}

/// Generation `n ≥ 2` of a stream's table as its writer runs it, with the
/// declaration `spec` (which must give the generation's shape).
pub async fn open_generation(
    location: &Location,
    live: &StreamSpec,
    spec: &StreamSpec,
    n: u32,
) -> Result<Replay, LakeError> {
    let name = storage_name(&live.table, n);
    let Some(t) = location.open(&name).await? else {
        return Err(LakeError::Config(format!(
            "{}@v{n} does not exist (`tributary lake generations {}` lists them)",
            live.table, live.table
        )));
    };
    let config = t.snapshot()?.metadata().configuration().clone();
    let made_by = config.get(PROP_MADE_BY).cloned().unwrap_or_default();
    let parts: Vec<String> = spec
        .partition_by
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    crate::location::check_compatible(&name, &t, &spec.table_schema, &parts).map_err(|_| {
        LakeError::Config(format!(
            "{}@v{n} was made by a {made_by}, whose declaration of stream {} differs from this one: pass that config (--config)",
            live.table, live.name
        ))
    })?;
    let start = parse_start(config.get(PROP_START).map_or("", String::as_str));
    Ok(Replay {
        generation: n,
        resumed: false,
        made_by,
        spec: Arc::new(generation_spec(
            spec,
            &live.table,
            &live.dead_letter_table,
            n,
            start,
        )),
        refilled: None,
    })
}

/// The stream as a replay into generation `n` runs it.
fn generation_spec(
    spec: &StreamSpec,
    table: &str,
    dead_letters: &str,
    n: u32,
    start: BTreeMap<(String, i32), i64>,
) -> StreamSpec {
    let mut g = spec.clone();
    g.table = storage_name(table, n);
    g.dead_letter_table = storage_name(dead_letters, n);
    g.group = format!("{}-replay-v{n}", spec.group);
    g.start = start;
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parses_each_form_and_names_what_is_wrong() {
        let topics = vec!["users".to_string()];
        assert_eq!(
            ReplayFrom::parse("earliest", &topics),
            Ok(ReplayFrom::Earliest)
        );
        let t = ReplayFrom::parse("2026-12-01T00:00:00Z", &topics).unwrap();
        assert_eq!(t.describe(), "from 2026-12-01T00:00:00Z");
        let o = ReplayFrom::parse("0=10, users:1=20", &topics).unwrap();
        assert_eq!(o.describe(), "from offsets users:0=10,users:1=20");
        let ReplayFrom::Offsets(m) = o else { panic!() };
        assert_eq!(parse_start(&format_start(&m)), m);
        let e = ReplayFrom::parse("orders:0=1", &topics).unwrap_err();
        assert!(e.contains("does not read topic \"orders\""), "{e}");
        let e = ReplayFrom::parse("yesterday", &topics).unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
        let two = vec!["a".to_string(), "b".to_string()];
        let e = ReplayFrom::parse("0=1", &two).unwrap_err();
        assert!(e.contains("name the topic"), "{e}");
    }
}
