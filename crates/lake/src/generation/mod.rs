//! Table generations: Kappa reprocessing of a stream table.
//!
//! A stream table has a current generation and may have others. A replay
//! (`replay`) writes generation N with the stream writer itself into its
//! own table under the live table's folder; `verify` checks it on its own
//! and against the live table; a swap (`swap`) makes it the live table's in
//! one fenced commit while the live writer runs; a rollback returns to the
//! generation it replaced. The live table's log keeps the ledger of which
//! generation is current and where each ended (`ledger`), written by the
//! same commits that switch files and offsets (`switch`).

pub mod derived;
pub mod ledger;
pub mod progress;
pub mod refill;
pub mod replay;
pub mod swap;
pub mod switch;
pub mod verify;

use chrono::{DateTime, Utc};

pub use ledger::{Ledger, Source, parse_generation, storage_name};
pub use progress::{Progress, Tick};
pub use replay::{Replay, ReplayFrom, ReplayRequest, open_generation, prepare};
pub use swap::{SwapOptions, SwitchReport, rollback, swap};
pub use verify::{GenerationDiff, verify_against};

use crate::LakeError;
use crate::table::{DeltaTableHandle, Location};
use crate::transform::changes::{commit_time, table_rows};

/// Where a generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The live table's.
    Current,
    /// The one the current generation replaced: `lake rollback` returns to it.
    Previous,
    /// Replayed (maybe still replaying), never swapped in.
    Replayed,
    /// Was current once, replaced since.
    Retired,
}

/// One generation in `lake generations`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct GenerationInfo {
    /// Its number (`users@v2`).
    pub generation: u32,
    /// Where it stands.
    pub state: State,
    /// The table read for its rows: the live table (at `version`) for a
    /// generation that was current, else its own.
    pub table: String,
    /// The version read.
    pub version: u64,
    /// Rows (from the log's statistics).
    pub rows: u64,
    /// Data files.
    pub files: u64,
    /// When its table was made.
    pub created: Option<DateTime<Utc>>,
    /// What made it.
    pub made_by: String,
    /// Its last verification: passed, failed, or never run (generation 1
    /// is the reference and is never verified).
    pub verified: Option<bool>,
}

/// The newest generation of a stream table: the highest-numbered one
/// stored (the latest replay's), or the current one if higher.
pub async fn newest(location: &Location, table: &str, ledger: &Ledger) -> Result<u32, LakeError> {
    let stored = replay::stored(location, table).await?;
    Ok(stored.last().copied().unwrap_or(1).max(ledger.current))
}

/// The generations of a stream table, oldest first.
pub async fn generations(
    location: &Location,
    table: &str,
) -> Result<Vec<GenerationInfo>, LakeError> {
    let live = location.open_existing(table).await?;
    let ledger = Ledger::of(table, &live).await?;
    let top = newest(location, table, &ledger).await?;
    let mut out = Vec::new();
    for n in 1..=top {
        let own = if n >= 2 {
            let name = storage_name(table, n);
            location.open(&name).await?.map(|t| (name, t))
        } else {
            None
        };
        let state = if n == ledger.current {
            State::Current
        } else if ledger.previous.get(&ledger.current) == Some(&n) {
            State::Previous
        } else if ledger.was_current(n) {
            State::Retired
        } else {
            State::Replayed
        };
        let (read_name, read) = match ledger.source(n) {
            Source::Live => (table.to_string(), live.clone()),
            Source::LiveAt(v) => (table.to_string(), location.open_at(table, v).await?),
            Source::Own => match &own {
                Some((name, t)) => (name.clone(), t.clone()),
                None => continue,
            },
        };
        let snap = read.snapshot()?;
        let (created, made_by, verified) = match &own {
            Some((name, t)) => {
                let h = DeltaTableHandle::new(name, t.clone()).await?;
                let verified = verify::verdict(&h).map(|(passed, _)| passed);
                let made_by = t
                    .snapshot()?
                    .metadata()
                    .configuration()
                    .get(replay::PROP_MADE_BY)
                    .cloned()
                    .unwrap_or_else(|| "a rebuild from its lake source".to_string());
                (commit_time(t, 0).await?, made_by, verified)
            }
            None => (
                commit_time(&live, 0).await?,
                "the stream writer".to_string(),
                None,
            ),
        };
        out.push(GenerationInfo {
            generation: n,
            state,
            table: read_name,
            version: read.version().unwrap_or(0),
            rows: table_rows(&read)?,
            files: snap.log_data().num_files() as u64,
            created,
            made_by,
            verified,
        });
    }
    Ok(out)
}
