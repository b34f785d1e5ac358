//! What a source table's commits added: the data files of the versions
//! after a checkpoint, read from the JSON commits of the Delta log.
//!
//! A transform reads appends. A commit that only rearranges files
//! (`OPTIMIZE`: `dataChange = false`) adds no rows and is passed over; a
//! commit that removes rows (`DELETE`, `UPDATE`, an overwrite:
//! `dataChange = true` removes) cannot be followed by appending, and stops
//! the transform with the version and what to do.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add};

use crate::LakeError;

/// The files some source commits added.
#[derive(Debug, Clone, Default)]
pub struct Appended {
    /// Data files added (`dataChange = true`).
    pub files: Vec<Add>,
    /// Rows those files hold (from their statistics; files without
    /// statistics count 0).
    pub rows: u64,
    /// When the last of the commits was made.
    pub committed_at: Option<DateTime<Utc>>,
}

/// Rows a file's statistics say it holds.
pub fn file_rows(add: &Add) -> u64 {
    add.stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("numRecords").and_then(|n| n.as_u64()))
        .unwrap_or(0)
}

/// The actions of version `v` of `table`; `None` when log retention has
/// removed the commit.
async fn commit_actions(
    table: &DeltaTable,
    name: &str,
    v: u64,
) -> Result<Option<Vec<Action>>, LakeError> {
    let Some(bytes) = table.log_store().read_commit_entry(v).await? else {
        return Ok(None);
    };
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            serde_json::from_slice(line).map_err(|e| {
                LakeError::Config(format!(
                    "table {name}: version {v} has an unreadable action: {e}"
                ))
            })
        })
        .collect::<Result<Vec<Action>, _>>()
        .map(Some)
}

/// The files versions `after + 1 ..= to` of `table` added.
pub async fn appended(
    table: &DeltaTable,
    name: &str,
    after: u64,
    to: u64,
) -> Result<Appended, LakeError> {
    let mut out = Appended::default();
    for v in after + 1..=to {
        let Some(actions) = commit_actions(table, name, v).await? else {
            return Err(LakeError::Config(format!(
                "table {name}: version {v} is no longer in the Delta log (log retention removed it) \
                 before the transform read it; rebuild the transform's table from the source (a new table name)"
            )));
        };
        for action in actions {
            match action {
                Action::Add(a) if a.data_change => {
                    out.rows += file_rows(&a);
                    out.files.push(a);
                }
                Action::Remove(r) if r.data_change => {
                    return Err(LakeError::Config(format!(
                        "table {name}: version {v} removed rows (file {}): a transform follows appends only; \
                         rebuild the transform's table from the source (a new table name) after a DELETE, UPDATE or overwrite",
                        r.path
                    )));
                }
                Action::CommitInfo(c) => {
                    out.committed_at = c
                        .in_commit_timestamp
                        .or(c.timestamp)
                        .and_then(DateTime::from_timestamp_millis);
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// What a table's versions after some version did to its files.
#[derive(Debug, Clone)]
pub enum Since {
    /// Only appends and rearrangements: the files added after it that the
    /// last version still holds. Every row the table gained is in one of
    /// them (a compaction's new files too, which may also hold older rows).
    Files {
        /// The files.
        files: Vec<Add>,
        /// Whether a commit rearranged files (`dataChange = false`).
        rearranged: bool,
    },
    /// This version removed rows (`DELETE`, `UPDATE`, an overwrite).
    Rewritten(u64),
    /// The versions are too many to read one by one, or log retention has
    /// removed one of them.
    Unknown,
}

/// The files versions `after + 1 ..= to` of `table` added and `to` still
/// holds, reading at most `most` commits.
pub async fn added_since(
    table: &DeltaTable,
    name: &str,
    after: u64,
    to: u64,
    most: u64,
) -> Result<Since, LakeError> {
    if to.saturating_sub(after) > most {
        return Ok(Since::Unknown);
    }
    let mut files: BTreeMap<String, Add> = BTreeMap::new();
    let mut rearranged = false;
    for v in after + 1..=to {
        let Some(actions) = commit_actions(table, name, v).await? else {
            return Ok(Since::Unknown);
        };
        for action in actions {
            match action {
                Action::Remove(r) if r.data_change => return Ok(Since::Rewritten(v)),
                Action::Remove(r) => {
                    rearranged = true;
                    files.remove(&r.path);
                }
                Action::Add(a) => {
                    rearranged |= !a.data_change;
                    files.insert(a.path.clone(), a);
                }
                _ => {}
            }
        }
    }
    Ok(Since::Files {
        files: files.into_values().collect(),
        rearranged,
    })
}

/// Every file of the table as of its loaded version: the first run of a
/// transform reads the whole source once.
pub fn snapshot_files(table: &DeltaTable) -> Result<Appended, LakeError> {
    let snapshot = table.snapshot()?;
    let mut out = Appended::default();
    for f in snapshot.log_data() {
        out.rows += f.num_records().unwrap_or(0) as u64;
        // The file as its `add` action: the same form the log's commits
        // give for later steps.
        #[allow(deprecated)]
        out.files.push(f.add_action());
    }
    Ok(out)
}

/// Rows of a table as loaded (from the log's statistics).
pub fn table_rows(table: &DeltaTable) -> Result<u64, LakeError> {
    Ok(table
        .snapshot()?
        .log_data()
        .iter()
        .map(|f| f.num_records().unwrap_or(0) as u64)
        .sum())
}

/// When version `v` of a table was committed (its `commitInfo`).
pub async fn commit_time(table: &DeltaTable, v: u64) -> Result<Option<DateTime<Utc>>, LakeError> {
    let actions = commit_actions(table, "", v).await?.unwrap_or_default();
    Ok(actions.into_iter().find_map(|a| match a {
        Action::CommitInfo(c) => c
            .in_commit_timestamp
            .or(c.timestamp)
            .and_then(DateTime::from_timestamp_millis),
        _ => None,
    }))
}
