//! `lake swap` and `lake rollback`: the live table switches generation in
//! one fenced commit while its writer runs.
//!
//! A swap keeps the generation's writer following the topics (a short
//! rotation age, so it stays close to the log's end) and waits for the
//! moment its offsets are at or past the live table's in every partition;
//! then it switches the dead-letter table, then the table (`switch`). A live
//! writer's commit in between moves the live offsets: the attempt is
//! fenced and the swap waits for the next moment (and switches the dead
//! letters again, so none the live writer added meanwhile is lost). A rollback switches back
//! to the previous generation's files and offsets as readers last saw them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::ledger::{Ledger, relative_folder};
use super::replay::open_generation;
use super::switch::{Switched, Target, files_of, fingerprints_of, switch, transform_txns};
use super::verify::verified;
use crate::LakeError;
use crate::config::StreamSpec;
use crate::kafka::KafkaSource;
use crate::metrics::StreamMetrics;
use crate::table::{DeltaTableHandle, Location};
use crate::transform::changes::table_rows;
use crate::writer::{WriterOptions, run};

/// How long a generation's follower waits before flushing while a swap
/// waits for it.
const FOLLOW_AGE: Duration = Duration::from_millis(200);

/// Everything a swap needs.
#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// The lake.
    pub location: Location,
    /// The stream's cluster.
    pub kafka: KafkaSource,
    /// The stream as declared for the live table.
    pub live: Arc<StreamSpec>,
    /// The declaration the generation was replayed with.
    pub spec: Arc<StreamSpec>,
    /// The generation to make current.
    pub generation: u32,
    /// Swap a generation that is not verified (or failed verification).
    pub force: bool,
    /// Give up when the generation has not caught up by then.
    pub timeout: Duration,
    /// The follower's counters.
    pub metrics: Arc<StreamMetrics>,
}

/// What a swap or rollback did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SwitchReport {
    /// The live table.
    pub table: String,
    /// The generation it was.
    pub from: u32,
    /// The generation it is.
    pub to: u32,
    /// The live table's version that made the switch.
    pub version: u64,
    /// Files the switch removed and added.
    pub files_removed: u64,
    /// Files added (the generation's, where they are).
    pub files_added: u64,
    /// Rows the table holds now.
    pub rows: u64,
    /// The stream's offsets now: `topic/partition` → last offset.
    pub offsets: BTreeMap<String, i64>,
    /// Commit attempts (a live writer's commit fences one).
    pub attempts: u32,
    /// From start to the moment the generation had caught up, in ms.
    pub waited_ms: u64,
    /// The switching commit itself, in ms.
    pub commit_ms: u64,
    /// The dead-letter table's version after its switch.
    pub dead_letters_version: Option<u64>,
}

impl SwitchReport {
    /// What it did, in two lines: `what` is `swapped` or `rolled back`.
    pub fn summary(&self, what: &str) -> [String; 2] {
        [
            format!(
                "{what} {}: generation {} → {} at version {} ({} files out, {} in, {} rows; commit {} ms after {} ms waiting, {} attempt(s))",
                self.table,
                self.from,
                self.to,
                self.version,
                self.files_removed,
                self.files_added,
                self.rows,
                self.commit_ms,
                self.waited_ms,
                self.attempts
            ),
            if self.offsets.is_empty() {
                "a running transform of the table goes on from the generation's checkpoint".into()
            } else {
                format!(
                    "offsets now {}; a running writer of the table goes on from them",
                    self.offsets
                        .iter()
                        .map(|(k, v)| format!("{k} ≤ {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ]
    }
}

async fn handle(location: &Location, table: &str) -> Result<Option<DeltaTableHandle>, LakeError> {
    match location.open(table).await? {
        Some(t) => Ok(Some(DeltaTableHandle::new(table, t).await?)),
        None => Ok(None),
    }
}

async fn must(location: &Location, table: &str) -> Result<DeltaTableHandle, LakeError> {
    DeltaTableHandle::new(table, location.open_existing(table).await?).await
}

/// Whether `generation` holds every offset `live` holds.
fn caught_up(stream: &str, generation: &DeltaTableHandle, live: &DeltaTableHandle) -> bool {
    let have = generation.stream_offsets(stream);
    live.stream_offsets(stream)
        .iter()
        .all(|(k, o)| have.get(k).is_some_and(|g| g >= o))
}

/// The switch to generation `n`'s files as `g` holds them.
fn target_of(
    stream: &str,
    g: &DeltaTableHandle,
    n: u32,
    previous: u32,
) -> Result<Target, LakeError> {
    Ok(Target {
        generation: n,
        previous: Some(previous),
        files: files_of(g.table(), &relative_folder(n))?,
        metadata: g.table().snapshot()?.metadata().clone(),
        offsets: g.stream_offsets(stream),
        fingerprints: fingerprints_of(g, stream),
        txns: BTreeMap::new(),
    })
}

/// Makes generation `o.generation` the live table's.
pub async fn swap(o: SwapOptions, stop: CancellationToken) -> Result<SwitchReport, LakeError> {
    let n = o.generation;
    let name = o.live.name.clone();
    let table = o.live.table.clone();
    let generation = open_generation(&o.location, &o.live, &o.spec, n).await?;
    let mut live = must(&o.location, &table).await?;
    let from = Ledger::read(live.txns()).current;
    if from == n {
        return Err(LakeError::Config(format!(
            "{table}@v{n} is already the current generation"
        )));
    }
    let mut g = must(&o.location, &generation.spec.table).await?;
    if !o.force {
        verified(&g, &table, n)?;
    }
    let mut follow = (*generation.spec).clone();
    follow.rotation.max_age = follow.rotation.max_age.min(FOLLOW_AGE);
    let follower_stop = stop.child_token();
    let mut follower = tokio::spawn(run(
        WriterOptions {
            spec: Arc::new(follow),
            location: o.location.clone(),
            kafka: o.kafka.clone(),
            until_caught_up: false,
            metrics: o.metrics.clone(),
        },
        follower_stop.clone(),
    ));
    let mut live_dlq = handle(&o.location, &o.live.dead_letter_table).await?;
    let mut g_dlq = handle(&o.location, &generation.spec.dead_letter_table).await?;
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut dead_letters_version = None;
    let outcome: Result<(u64, u64, u64), LakeError> = loop {
        if follower.is_finished() {
            break Err(match (&mut follower).await {
                Ok(Err(e)) => e,
                _ => LakeError::Config(format!("the writer of {table}@v{n} stopped")),
            });
        }
        if started.elapsed() > o.timeout {
            break Err(LakeError::Config(format!(
                "{table}@v{n} did not catch up with the live table within {}; is the live writer far ahead, or the topic unreachable?",
                humantime::format_duration(o.timeout)
            )));
        }
        let step = async {
            // The generation's dead letters are read after its table, so
            // they hold every rejected record up to the table's offsets.
            g.refresh().await?;
            if let Some(gd) = g_dlq.as_mut() {
                gd.refresh().await?;
            }
            live.refresh().await?;
            if !caught_up(&name, &g, &live) {
                return Ok::<_, LakeError>(None);
            }
            crate::failpoint("swap:before_commit");
            attempts += 1;
            // The dead letters switch first, every attempt, to the
            // generation's as of this read with the table's offsets: a
            // live writer that adds dead letters before the table's switch
            // lands fences it, and the next attempt replaces them with the
            // generation's, which hold them too.
            if let (Some(ld), Some(gd)) = (live_dlq.as_mut(), g_dlq.as_ref()) {
                ld.refresh().await?;
                let dl = Ledger::read(ld.txns());
                let previous = if dl.current == n {
                    dl.previous.get(&n).copied()
                } else {
                    Some(dl.current)
                };
                let t = Target {
                    previous,
                    offsets: g.stream_offsets(&name),
                    fingerprints: fingerprints_of(&g, &name),
                    ..target_of(&name, gd, n, dl.current)?
                };
                let read = ld.version();
                match switch(ld, &name, read, &t).await? {
                    Switched::Committed(v) => dead_letters_version = Some(v),
                    Switched::Moved => return Ok(None),
                }
            }
            crate::failpoint("swap:between_commits");
            let t = target_of(&name, &g, n, from)?;
            let removed = live.table().snapshot()?.log_data().num_files() as u64;
            let read = live.version();
            let t0 = Instant::now();
            Ok(match switch(&mut live, &name, read, &t).await? {
                Switched::Committed(v) => Some((v, removed, t0.elapsed().as_millis() as u64)),
                Switched::Moved => None,
            })
        };
        match step.await {
            Ok(Some(done)) => break Ok(done),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        tokio::select! {
            _ = stop.cancelled() => break Err(LakeError::Config("stopped before the swap".into())),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    follower_stop.cancel();
    let _ = follower.await;
    let (version, files_removed, commit_ms) = outcome?;
    crate::failpoint("swap:after_commit");
    report(
        &live,
        &name,
        started,
        Switch {
            from,
            to: n,
            version,
            files_removed,
            attempts,
            commit_ms,
            dead_letters_version,
        },
    )
}

/// What a switch did, before the table is read for the rest.
struct Switch {
    from: u32,
    to: u32,
    version: u64,
    files_removed: u64,
    attempts: u32,
    commit_ms: u64,
    dead_letters_version: Option<u64>,
}

/// The report of a switch of `h` (its writer's or transform's name
/// `owner`) from generation `from` to `to` that began at `started`:
/// (version, files removed, attempts, commit ms).
pub(crate) fn report_of(
    h: &DeltaTableHandle,
    owner: &str,
    started: Instant,
    from: u32,
    to: u32,
    (version, files_removed, attempts, commit_ms): (u64, u64, u32, u64),
) -> Result<SwitchReport, LakeError> {
    report(
        h,
        owner,
        started,
        Switch {
            from,
            to,
            version,
            files_removed,
            attempts,
            commit_ms,
            dead_letters_version: None,
        },
    )
}

/// The report of a switch of `h` that began at `started`.
fn report(
    h: &DeltaTableHandle,
    stream: &str,
    started: Instant,
    s: Switch,
) -> Result<SwitchReport, LakeError> {
    Ok(SwitchReport {
        table: h.name().to_string(),
        from: s.from,
        to: s.to,
        version: s.version,
        files_removed: s.files_removed,
        files_added: h.table().snapshot()?.log_data().num_files() as u64,
        rows: table_rows(h.table())?,
        offsets: h
            .stream_offsets(stream)
            .into_iter()
            .map(|((t, p), o)| (format!("{t}/{p}"), o))
            .collect(),
        attempts: s.attempts,
        waited_ms: started.elapsed().as_millis() as u64 - s.commit_ms,
        commit_ms: s.commit_ms,
        dead_letters_version: s.dead_letters_version,
    })
}

/// Returns the live table to the generation it replaced, with that
/// generation's files and offsets as of its last live version; the writer
/// re-reads what came after from Kafka.
pub async fn rollback(location: &Location, live: &StreamSpec) -> Result<SwitchReport, LakeError> {
    rollback_table(
        location,
        &live.name,
        &live.table,
        Some(&live.dead_letter_table),
    )
    .await
}

/// Returns `table` (written by the writer or transform `owner`) to the
/// generation it replaced, its side table (dead letters, late rows) first.
pub async fn rollback_table(
    location: &Location,
    owner: &str,
    table: &str,
    side: Option<&str>,
) -> Result<SwitchReport, LakeError> {
    let started = Instant::now();
    let mut main = must(location, table).await?;
    let ledger = Ledger::read(main.txns());
    let Some(&to) = ledger.previous.get(&ledger.current) else {
        return Err(LakeError::Config(format!(
            "{table} is at generation {} and has no earlier generation to return to",
            ledger.current
        )));
    };
    let mut dead_letters_version = None;
    if let Some(side) = side
        && let Some(mut d) = handle(location, side).await?
    {
        let dl = Ledger::read(d.txns());
        if dl.current != to && dl.until.contains_key(&to) {
            let (v, _, _) = switch_back(location, &mut d, owner, to).await?;
            dead_letters_version = Some(v);
        }
    }
    let files_removed = main.table().snapshot()?.log_data().num_files() as u64;
    let (version, attempts, commit_ms) = switch_back(location, &mut main, owner, to).await?;
    report(
        &main,
        owner,
        started,
        Switch {
            from: ledger.current,
            to,
            version,
            files_removed,
            attempts,
            commit_ms,
            dead_letters_version,
        },
    )
}

/// Switches a table back to generation `to` as of its last live version:
/// (version, attempts, commit ms).
async fn switch_back(
    location: &Location,
    h: &mut DeltaTableHandle,
    stream: &str,
    to: u32,
) -> Result<(u64, u32, u64), LakeError> {
    let ledger = Ledger::read(h.txns());
    let Some(&until) = ledger.until.get(&to) else {
        return Err(LakeError::Config(format!(
            "{}: the log does not record generation {to}'s last version",
            h.name()
        )));
    };
    let old = DeltaTableHandle::new(h.name(), location.open_at(h.name(), until).await?).await?;
    let files = files_of(old.table(), "")?;
    check_files_exist(location, h.name(), &files).await?;
    let target = Target {
        generation: to,
        previous: None,
        files,
        metadata: old.table().snapshot()?.metadata().clone(),
        offsets: old.stream_offsets(stream),
        fingerprints: fingerprints_of(&old, stream),
        txns: transform_txns(&old, stream),
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        h.refresh().await?;
        let read = h.version();
        let t0 = Instant::now();
        if let Switched::Committed(v) = switch(h, stream, read, &target).await? {
            return Ok((v, attempts, t0.elapsed().as_millis() as u64));
        }
        if attempts > 1000 {
            return Err(LakeError::Commit(format!(
                "{}: gave up after {attempts} attempts (the table keeps moving)",
                h.name()
            )));
        }
    }
}

/// Refuses a rollback whose files a vacuum has deleted.
async fn check_files_exist(
    location: &Location,
    table: &str,
    files: &[deltalake::kernel::Add],
) -> Result<(), LakeError> {
    use futures::StreamExt;
    use object_store::ObjectStoreExt;
    use object_store::path::Path;
    let t = location.builder(table)?.build()?;
    let store = t.log_store().object_store(None);
    let missing: Vec<String> = futures::stream::iter(files.iter().map(|f| {
        let store = store.clone();
        let path = Path::parse(&f.path).unwrap_or_else(|_| Path::from(f.path.as_str()));
        async move { store.head(&path).await.err().map(|_| path.to_string()) }
    }))
    .buffer_unordered(32)
    .filter_map(|m| async move { m })
    .collect()
    .await;
    if let Some(first) = missing.first() {
        return Err(LakeError::Config(format!(
            "{table}: {} file(s) of the earlier generation are gone (vacuumed?), e.g. {first}; it cannot be restored",
            missing.len()
        )));
    }
    Ok(())
}
