//! What a source table's commits added: the data files of the versions
//! after a checkpoint, read from the JSON commits of the Delta log.
//!
//! A transform reads appends. A commit that only rearranges files
//! (`OPTIMIZE`: `dataChange = false`) adds no rows and is passed over; a
//! commit that removes rows (`DELETE`, `UPDATE`, an overwrite:
//! `dataChange = true` removes) cannot be followed by appending, and stops
//! the transform with the version and what to do.

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

/// The files versions `after + 1 ..= to` of `table` added.
pub async fn appended(
    table: &DeltaTable,
    name: &str,
    after: u64,
    to: u64,
) -> Result<Appended, LakeError> {
    let log = table.log_store();
    let mut out = Appended::default();
    for v in after + 1..=to {
        let Some(bytes) = log.read_commit_entry(v).await? else {
            return Err(LakeError::Config(format!(
                "table {name}: version {v} is no longer in the Delta log (log retention removed it) \
                 before the transform read it; rebuild the transform's table from the source (a new table name)"
            )));
        };
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let action: Action = serde_json::from_slice(line).map_err(|e| {
                LakeError::Config(format!(
                    "table {name}: version {v} has an unreadable action: {e}"
                ))
            })?;
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

/// When version `v` of a table was committed (its `commitInfo`).
pub async fn commit_time(table: &DeltaTable, v: u64) -> Result<Option<DateTime<Utc>>, LakeError> {
    let Some(bytes) = table.log_store().read_commit_entry(v).await? else {
        return Ok(None);
    };
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(Action::CommitInfo(c)) = serde_json::from_slice::<Action>(line) {
            return Ok(c
                .in_commit_timestamp
                .or(c.timestamp)
                .and_then(DateTime::from_timestamp_millis));
        }
    }
    Ok(None)
}
