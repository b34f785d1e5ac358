//! Where generations live and the ledger the live table's log keeps of
//! them.
//!
//! Generation 1 is the table as its stream first wrote it, in the table's
//! own folder. Generation `N ≥ 2` is a Delta table of its own under the live
//! table's folder, `<table>/_generations/vN` (readers of the live table
//! never list folders, and Delta's vacuum skips `_`-folders), until a swap
//! makes the live table's files point at its files.
//!
//! The ledger is a set of `txn` entries in the live table's log, written by
//! the swap and rollback commits themselves, so it changes atomically with
//! the files and offsets:
//! - `tributary-generation` → the current generation (none: 1);
//! - `tributary-generation:<P>:until` → the live version just before
//!   generation P stopped being current: P's rows and offsets as readers
//!   last saw them, what a rollback to P restores;
//! - `tributary-generation:<N>:previous` → the generation N replaced.

use std::collections::{BTreeMap, HashMap};

use deltalake::DeltaTable;

use crate::LakeError;
use crate::table::{DeltaTableHandle, OffsetUpdate};

/// The app id of the current generation.
pub const CURRENT: &str = "tributary-generation";

/// The app id of the last live version of generation `n`.
pub fn until_id(n: u32) -> String {
    format!("{CURRENT}:{n}:until")
}

/// The app id of the generation `n` replaced.
pub fn previous_id(n: u32) -> String {
    format!("{CURRENT}:{n}:previous")
}

/// Where generation `n ≥ 2` of `table` is written: a table name under the
/// lake's root.
pub fn storage_name(table: &str, n: u32) -> String {
    format!("{table}/{}", relative_folder(n))
}

/// Where generation `n ≥ 2` lies relative to the live table's folder (the
/// prefix its files' paths take when swapped in).
pub fn relative_folder(n: u32) -> String {
    format!("_generations/v{n}")
}

/// Parses the generation part of `users@v2`: `v2` → 2.
pub fn parse_generation(text: &str) -> Option<u32> {
    let n = text.strip_prefix('v')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|n| *n >= 1)
}

/// Where a generation's rows are read ([`Ledger::source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The live table, latest.
    Live,
    /// The live table at this version.
    LiveAt(u64),
    /// Its own table (`storage_name`), never swapped in.
    Own,
}

/// The generation ledger as of one live version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// The current generation.
    pub current: u32,
    /// Generation → the last live version it was current at.
    pub until: BTreeMap<u32, u64>,
    /// Generation → the generation it replaced.
    pub previous: BTreeMap<u32, u32>,
    /// The raw entries, for fencing the next change on them.
    raw: HashMap<String, i64>,
}

impl Ledger {
    /// Reads the ledger from a table's `txn` entries.
    pub fn read(txns: &HashMap<String, i64>) -> Ledger {
        let mut l = Ledger {
            current: 1,
            until: BTreeMap::new(),
            previous: BTreeMap::new(),
            raw: HashMap::new(),
        };
        for (id, v) in txns {
            let Some(rest) = id.strip_prefix(CURRENT) else {
                continue;
            };
            l.raw.insert(id.clone(), *v);
            if rest.is_empty() {
                l.current = u32::try_from(*v).unwrap_or(1).max(1);
                continue;
            }
            let mut parts = rest.trim_start_matches(':').split(':');
            let (Some(n), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            match kind {
                "until" => {
                    l.until.insert(n, u64::try_from(*v).unwrap_or(0));
                }
                "previous" => {
                    l.previous.insert(n, u32::try_from(*v).unwrap_or(1).max(1));
                }
                _ => {}
            }
        }
        l
    }

    /// The ledger of a table as loaded.
    pub async fn of(name: &str, table: &DeltaTable) -> Result<Ledger, LakeError> {
        Ok(Ledger::read(
            DeltaTableHandle::new(name, table.clone()).await?.txns(),
        ))
    }

    /// Where generation `n`'s rows are read: the live table while it is
    /// current, the live table at its last version while current once,
    /// else its own table.
    pub fn source(&self, n: u32) -> Source {
        if n == self.current {
            Source::Live
        } else if let Some(v) = self.until.get(&n) {
            Source::LiveAt(*v)
        } else {
            Source::Own
        }
    }

    /// Whether generation `n` has ever been the live table's.
    pub fn was_current(&self, n: u32) -> bool {
        n == 1 || n == self.current || self.until.contains_key(&n)
    }

    /// The entries of a change from the current generation to `to`, made at
    /// the live version `read` (the one the commit follows); each fenced on
    /// its value now, so two changes racing cannot both land.
    pub fn change(&self, to: u32, read: u64, previous: Option<u32>) -> Vec<OffsetUpdate> {
        let entry = |id: String, last: i64| OffsetUpdate {
            expected: self.raw.get(&id).copied(),
            app_id: id,
            last,
        };
        let mut out = vec![
            entry(CURRENT.to_string(), i64::from(to)),
            entry(until_id(self.current), read as i64),
        ];
        if let Some(p) = previous {
            out.push(entry(previous_id(to), i64::from(p)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_parse_and_nothing_else_does() {
        assert_eq!(parse_generation("v2"), Some(2));
        assert_eq!(parse_generation("v10"), Some(10));
        for bad in ["2", "v", "v0", "v-1", "vx", "V2", "v2x"] {
            assert_eq!(parse_generation(bad), None, "{bad}");
        }
        assert_eq!(storage_name("users", 3), "users/_generations/v3");
    }

    #[test]
    fn the_ledger_reads_back_what_a_change_writes() {
        let empty = Ledger::read(&HashMap::new());
        assert_eq!(empty.current, 1);
        assert!(empty.was_current(1) && !empty.was_current(2));
        let change = empty.change(2, 41, Some(1));
        assert!(change.iter().all(|u| u.expected.is_none()));
        let mut txns: HashMap<String, i64> =
            change.iter().map(|u| (u.app_id.clone(), u.last)).collect();
        txns.insert("tributary:users:users:0".into(), 99);
        let l = Ledger::read(&txns);
        assert_eq!(l.current, 2);
        assert_eq!(l.until, BTreeMap::from([(1, 41)]));
        assert_eq!(l.previous, BTreeMap::from([(2, 1)]));
        // The next change is fenced on these entries.
        let back = l.change(1, 57, None);
        assert_eq!(back[0].expected, Some(2));
        assert_eq!(back[1].app_id, until_id(2));
        assert_eq!(back[1].expected, None);
    }
}
