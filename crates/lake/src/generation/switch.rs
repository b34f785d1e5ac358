//! One table's switch to other files and offsets in one fenced commit: the
//! step a swap and a rollback share.
//!
//! The commit removes every file of the version it follows, adds the new
//! generation's files (zero copy: their paths point where they already
//! are), carries the new shape when it differs, and moves each partition's
//! offset — fenced on the offsets it read, like every writer commit, and on
//! the generation ledger. So a live writer, still running, loses its next
//! commit to the fence, re-reads its position and goes on from the new
//! offsets; and two switches racing cannot both land.

use std::collections::{BTreeMap, BTreeSet};

use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add, Metadata, MetadataExt};
use deltalake::protocol::{DeltaOperation, OutputMode};

use super::ledger::Ledger;
use crate::LakeError;
use crate::fingerprint::{fingerprint_id, parse_fingerprint_id};
use crate::table::{CommitOutcome, DeltaTableHandle, OffsetUpdate, app_id};
use crate::transform::changes::snapshot_files;
use crate::transform::checkpoint::parse_app_id;

/// What a table switches to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The generation it becomes.
    pub generation: u32,
    /// The generation it replaces, recorded for a later rollback (a
    /// rollback records none).
    pub previous: Option<u32>,
    /// The files, with paths relative to the live table's folder.
    pub files: Vec<Add>,
    /// The shape (schema, partitioning) the files have.
    pub metadata: Metadata,
    /// The stream's offsets: (topic, partition) → last offset held.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// The fingerprints of the records at those offsets
    /// (`crate::fingerprint`), where recorded.
    pub fingerprints: BTreeMap<(String, i32), i64>,
    /// Other `txn` entries it sets (app id → value), fenced on their
    /// values as read: a transform's checkpoint and state
    /// (`crate::transform::checkpoint`).
    pub txns: BTreeMap<String, i64>,
}

/// A table's recorded fingerprints of a stream: (topic, partition) → value.
pub fn fingerprints_of(h: &DeltaTableHandle, stream: &str) -> BTreeMap<(String, i32), i64> {
    h.txns()
        .iter()
        .filter_map(|(id, v)| {
            let (s, t, p) = parse_fingerprint_id(id)?;
            (s == stream).then(|| ((t.to_string(), p), *v))
        })
        .collect()
}

/// A transform's `txn` entries in `h` (checkpoint, reference versions,
/// window state: `crate::transform::checkpoint`).
pub fn transform_txns(h: &DeltaTableHandle, transform: &str) -> BTreeMap<String, i64> {
    h.txns()
        .iter()
        .filter(|(id, _)| parse_app_id(id).is_some_and(|(t, _, _)| t == transform))
        .map(|(id, v)| (id.clone(), *v))
        .collect()
}

/// What one attempt did.
#[derive(Debug)]
pub enum Switched {
    /// Committed as this version.
    Committed(u64),
    /// The table moved since `read` (a writer commit, a compaction): read
    /// again and retry.
    Moved,
}

/// Files of `table` (as loaded) as `add` actions relative to the live
/// table's folder: `prefix` is where the table lies under it (empty for
/// the live table itself).
pub fn files_of(table: &DeltaTable, prefix: &str) -> Result<Vec<Add>, LakeError> {
    let mut files = snapshot_files(table)?.files;
    if !prefix.is_empty() {
        for add in &mut files {
            add.path = format!("{prefix}/{}", add.path);
        }
    }
    Ok(files)
}

/// Makes `live` hold `target`, if it is still at version `read` with the
/// offsets and ledger read there.
pub async fn switch(
    live: &mut DeltaTableHandle,
    stream: &str,
    read: u64,
    target: &Target,
) -> Result<Switched, LakeError> {
    let ledger = Ledger::read(live.txns());
    let mut updates: Vec<OffsetUpdate> = Vec::new();
    let now = live.stream_offsets(stream);
    let keys: BTreeSet<&(String, i32)> = now.keys().chain(target.offsets.keys()).collect();
    for key in keys {
        updates.push(OffsetUpdate {
            app_id: app_id(stream, &key.0, key.1),
            expected: now.get(key).copied(),
            // A partition the target never read starts again at its
            // beginning.
            last: target.offsets.get(key).copied().unwrap_or(-1),
        });
    }
    // The writer's log check compares the record at each committed offset
    // with its fingerprint: it moves with the offset (0: unknown).
    let prints = fingerprints_of(live, stream);
    for key in prints
        .keys()
        .chain(target.fingerprints.keys())
        .collect::<BTreeSet<_>>()
    {
        updates.push(OffsetUpdate {
            app_id: fingerprint_id(stream, &key.0, key.1),
            expected: prints.get(key).copied(),
            last: target.fingerprints.get(key).copied().unwrap_or(0),
        });
    }
    for (id, v) in &target.txns {
        updates.push(OffsetUpdate {
            app_id: id.clone(),
            expected: live.txns().get(id).copied(),
            last: *v,
        });
    }
    updates.extend(ledger.change(target.generation, read, target.previous));
    let shape = |m: &Metadata| (m.schema_string().clone(), m.partition_columns().to_vec());
    let live_meta = live.table().snapshot()?.metadata().clone();
    let metadata = if shape(&live_meta) == shape(&target.metadata) {
        None
    } else {
        // The table keeps its identity; the shape is the generation's.
        let shape_err = |e: deltalake::kernel::Error| {
            LakeError::Commit(format!("cannot carry the generation's shape: {e}"))
        };
        let m = target
            .metadata
            .clone()
            .with_table_id(live_meta.id().to_string())
            .map_err(shape_err)?;
        Some(match live_meta.name() {
            Some(n) => m.with_name(n.to_string()).map_err(shape_err)?,
            None => m,
        })
    };
    let op = DeltaOperation::StreamingUpdate {
        output_mode: OutputMode::Complete,
        query_id: format!("tributary-generation:{}", live.name()),
        epoch_id: i64::from(target.generation),
    };
    let mut moved = false;
    let outcome = live
        .commit_built(&updates, op, |table| {
            if table.version().unwrap_or(0) != read {
                moved = true;
                return Err(LakeError::Commit("moved".into()));
            }
            let snapshot = table.snapshot()?;
            let mut actions: Vec<Action> = Vec::new();
            if let Some(m) = &metadata {
                actions.push(Action::Metadata(m.clone()));
            }
            actions.extend(
                snapshot
                    .log_data()
                    .iter()
                    .map(|f| Action::Remove(f.remove_action(true))),
            );
            actions.extend(target.files.iter().cloned().map(Action::Add));
            Ok(actions)
        })
        .await;
    match outcome {
        _ if moved => Ok(Switched::Moved),
        Ok(CommitOutcome::Committed { version, .. }) => Ok(Switched::Committed(version)),
        Ok(CommitOutcome::Fenced(_)) => Ok(Switched::Moved),
        Err(e) => Err(e),
    }
}
