//! Lake locations and Delta tables: open or create a table, know the Kafka
//! offsets its log records, and commit files together with new offsets —
//! only if the offsets it started from are still the log's.
//!
//! The offsets live in Delta `txn` actions, one app id per stream, topic
//! and partition ([`app_id`]); `version` is the last offset whose record is
//! durable (in this table or, for rejected records, in its dead-letter
//! table). [`DeltaTableHandle::commit`] is the one place a writer commits:
//! it refreshes the log, compares each partition's recorded offset with the
//! one the caller's data starts after, and puts the next log version with
//! put-if-absent (a conditional write on S3). Losing that race means someone
//! else committed: refresh and check again.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, Remove, Transaction};
use deltalake::protocol::{DeltaOperation, OutputMode};
use deltalake::{DeltaTable, DeltaTableError};

use crate::LakeError;
pub use crate::location::Location;

/// The Delta `txn` app id of a stream's topic partition.
pub fn app_id(stream: &str, topic: &str, partition: i32) -> String {
    format!("tributary:{stream}:{topic}:{partition}")
}

/// Splits an app id made by [`app_id`] into (stream, topic, partition).
pub fn parse_app_id(id: &str) -> Option<(&str, &str, i32)> {
    let rest = id.strip_prefix("tributary:")?;
    let (stream, rest) = rest.split_once(':')?;
    let (topic, partition) = rest.rsplit_once(':')?;
    Some((stream, topic, partition.parse().ok()?))
}

/// Every `txn` entry of a table's log as of `version`: the last
/// checkpoint's, then the JSON commits after it. One pass over the log,
/// instead of one log replay per app id.
pub async fn all_txns(table: &DeltaTable, version: u64) -> Result<HashMap<String, i64>, LakeError> {
    use object_store::ObjectStoreExt;
    use object_store::path::Path as StorePath;
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let store = table.log_store().object_store(None);
    let mut out = HashMap::new();
    let mut from = 0u64;
    if let Ok(r) = store
        .get(&StorePath::from("_delta_log/_last_checkpoint"))
        .await
    {
        let bytes = r.bytes().await?;
        let last: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| LakeError::Commit(format!("_last_checkpoint is not JSON: {e}")))?;
        if let Some(v) = last
            .get("version")
            .and_then(|v| v.as_u64())
            .filter(|v| *v <= version)
        {
            let parts = last.get("parts").and_then(|p| p.as_i64());
            let files: Vec<String> = match parts {
                None => vec![format!("_delta_log/{v:020}.checkpoint.parquet")],
                Some(n) => (1..=n)
                    .map(|i| format!("_delta_log/{v:020}.checkpoint.{i:010}.{n:010}.parquet"))
                    .collect(),
            };
            for f in files {
                let path = StorePath::from(f);
                let bytes = store.get(&path).await?.bytes().await?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
                let Some(idx) = builder.schema().index_of("txn").ok() else {
                    continue;
                };
                let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
                for batch in builder.with_projection(mask).build()? {
                    let batch = batch.map_err(parquet::errors::ParquetError::from)?;
                    let col = batch.column(0);
                    let txn = col
                        .as_any()
                        .downcast_ref::<arrow::array::StructArray>()
                        .ok_or_else(|| {
                            LakeError::Commit("checkpoint txn column is not a struct".into())
                        })?;
                    let ids = txn.column_by_name("appId").and_then(|c| {
                        c.as_any()
                            .downcast_ref::<arrow::array::StringArray>()
                            .cloned()
                    });
                    let vs = txn.column_by_name("version").and_then(|c| {
                        c.as_any()
                            .downcast_ref::<arrow::array::Int64Array>()
                            .cloned()
                    });
                    let (Some(ids), Some(vs)) = (ids, vs) else {
                        continue;
                    };
                    use arrow::array::Array;
                    for i in 0..txn.len() {
                        if txn.is_valid(i) && ids.is_valid(i) && vs.is_valid(i) {
                            out.insert(ids.value(i).to_string(), vs.value(i));
                        }
                    }
                }
            }
            from = v + 1;
        }
    }
    let log = table.log_store();
    for v in from..=version {
        if let Some(bytes) = log.read_commit_entry(v).await? {
            scan_txns(&bytes, &mut out);
        }
    }
    Ok(out)
}

fn scan_txns(bytes: &[u8], out: &mut HashMap<String, i64>) {
    for line in bytes.split(|b| *b == b'\n') {
        if line.windows(6).any(|w| w == b"\"txn\":")
            && let Ok(Action::Txn(t)) = serde_json::from_slice::<Action>(line)
        {
            out.insert(t.app_id, t.version);
        }
    }
}

/// Per-partition offset expectations for a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetUpdate {
    /// The app id ([`app_id`]).
    pub app_id: String,
    /// The offset the log must hold now (None: no entry yet).
    pub expected: Option<i64>,
    /// The offset to record.
    pub last: i64,
}

/// What [`DeltaTableHandle::commit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Committed as this table version.
    Committed {
        /// The new version.
        version: u64,
        /// Attempts it took (1 = no race).
        attempts: u32,
    },
    /// The log's offsets moved: these app ids now hold these offsets. Nothing
    /// was committed.
    Fenced(Vec<(String, Option<i64>)>),
}

/// A Delta table and the offsets its log records, kept current
/// incrementally.
pub struct DeltaTableHandle {
    name: String,
    table: DeltaTable,
    partition_by: Vec<String>,
    /// App id → last durable offset, as of `version`.
    offsets: HashMap<String, i64>,
    version: u64,
}

impl std::fmt::Debug for DeltaTableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTableHandle")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

impl DeltaTableHandle {
    /// Wraps a loaded table and reads every offset its log records.
    pub async fn new(name: &str, table: DeltaTable) -> Result<Self, LakeError> {
        let version = table.version().unwrap_or(0);
        let partition_by = table.snapshot()?.metadata().partition_columns().to_vec();
        let offsets = all_txns(&table, version).await?;
        Ok(DeltaTableHandle {
            name: name.to_string(),
            table,
            partition_by,
            offsets,
            version,
        })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The version last seen.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The last durable offset recorded for an app id.
    pub fn offset(&self, app_id: &str) -> Option<i64> {
        self.offsets.get(app_id).copied()
    }

    /// Reads commits newer than the last seen version, updating offsets and
    /// the snapshot. Returns true when there were any.
    pub async fn refresh(&mut self) -> Result<bool, LakeError> {
        let log = self.table.log_store();
        let latest = log.get_latest_version(self.version).await?;
        if latest <= self.version {
            return Ok(false);
        }
        let mut complete = true;
        for v in self.version + 1..=latest {
            match log.read_commit_entry(v).await? {
                Some(bytes) => scan_txns(&bytes, &mut self.offsets),
                None => complete = false,
            }
        }
        self.table.update_incremental(Some(latest)).await?;
        self.version = latest;
        if !complete {
            // A commit file vanished (log clean-up): read the log again.
            self.offsets = all_txns(&self.table, latest).await?;
        }
        Ok(true)
    }

    /// Commits `adds` and the offset updates atomically, if every update's
    /// expectation still holds.
    pub async fn commit(
        &mut self,
        adds: Vec<Add>,
        updates: &[OffsetUpdate],
        stream: &str,
        epoch: i64,
    ) -> Result<CommitOutcome, LakeError> {
        self.commit_changes(adds, Vec::new(), updates, stream, epoch)
            .await
    }

    /// [`commit`](Self::commit) that also removes files (rows replaced:
    /// the commit is a streaming update rather than an append).
    pub async fn commit_changes(
        &mut self,
        adds: Vec<Add>,
        removes: Vec<Remove>,
        updates: &[OffsetUpdate],
        stream: &str,
        epoch: i64,
    ) -> Result<CommitOutcome, LakeError> {
        let output_mode = if removes.is_empty() {
            OutputMode::Append
        } else {
            OutputMode::Update
        };
        let op = DeltaOperation::StreamingUpdate {
            output_mode,
            query_id: stream.to_string(),
            epoch_id: epoch,
        };
        self.commit_built(updates, op, |_| {
            let mut actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
            actions.extend(removes.iter().cloned().map(Action::Remove));
            Ok(actions)
        })
        .await
    }

    /// The fenced commit: refreshes the log, refuses when an update's
    /// expected offset is not the log's ([`CommitOutcome::Fenced`]), else
    /// commits the actions `build` makes from the refreshed table with the
    /// updates' `txn` entries. `build` runs again after a lost race, so
    /// actions that depend on the table's files (a swap removing all of
    /// them) are made from the version the commit follows.
    pub async fn commit_built(
        &mut self,
        updates: &[OffsetUpdate],
        op: DeltaOperation,
        mut build: impl FnMut(&DeltaTable) -> Result<Vec<Action>, LakeError>,
    ) -> Result<CommitOutcome, LakeError> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.refresh().await?;
            let fenced: Vec<(String, Option<i64>)> = updates
                .iter()
                .filter(|u| self.offsets.get(&u.app_id).copied() != u.expected)
                .map(|u| (u.app_id.clone(), self.offsets.get(&u.app_id).copied()))
                .collect();
            if !fenced.is_empty() {
                return Ok(CommitOutcome::Fenced(fenced));
            }
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut actions = build(&self.table)?;
            actions.extend(updates.iter().map(|u| {
                Action::Txn(Transaction::new_with_last_update(
                    &u.app_id,
                    u.last,
                    Some(now_ms),
                ))
            }));
            let started = Instant::now();
            // No deltalake retries: a lost race must re-check our offsets.
            let props = CommitProperties::default()
                .with_create_checkpoint(true)
                .with_max_retries(0);
            let result = CommitBuilder::from(props)
                .with_actions(actions)
                .build(
                    Some(self.table.snapshot()?),
                    self.table.log_store(),
                    op.clone(),
                )
                .await;
            match result {
                Ok(done) => {
                    let version = done.version();
                    self.table.state = Some(done.snapshot());
                    self.version = version;
                    for u in updates {
                        self.offsets.insert(u.app_id.clone(), u.last);
                    }
                    tracing::debug!(table = %self.name, version, attempts, ms = started.elapsed().as_millis() as u64, "committed");
                    return Ok(CommitOutcome::Committed { version, attempts });
                }
                Err(DeltaTableError::VersionAlreadyExists(_))
                | Err(DeltaTableError::Transaction {
                    source:
                        TransactionError::VersionAlreadyExists(_)
                        | TransactionError::MaxCommitAttempts(_),
                }) => {
                    tracing::debug!(table = %self.name, attempts, "lost a commit race; re-checking offsets");
                    if attempts > 1000 {
                        return Err(LakeError::Commit(format!(
                            "table {}: gave up after {attempts} commit races",
                            self.name
                        )));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The partition columns.
    pub fn partition_by(&self) -> &[String] {
        &self.partition_by
    }

    /// Every tributary offset in the log: (stream, topic, partition) → last offset.
    pub fn all_offsets(&self) -> BTreeMap<(String, String, i32), i64> {
        self.offsets
            .iter()
            .filter_map(|(id, v)| {
                let (s, t, p) = parse_app_id(id)?;
                Some(((s.to_string(), t.to_string(), p), *v))
            })
            .collect()
    }

    /// Every `txn` entry of the log: app id → version (offsets, and the
    /// records `lifetimes` keeps).
    pub fn txns(&self) -> &HashMap<String, i64> {
        &self.offsets
    }

    /// All recorded offsets of one stream: (topic, partition) → last offset.
    pub fn stream_offsets(&self, stream: &str) -> BTreeMap<(String, i32), i64> {
        self.offsets
            .iter()
            .filter_map(|(id, v)| {
                let (s, t, p) = parse_app_id(id)?;
                (s == stream).then(|| ((t.to_string(), p), *v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_round_trip() {
        let id = app_id("users", "users.v1", 7);
        assert_eq!(id, "tributary:users:users.v1:7");
        assert_eq!(parse_app_id(&id), Some(("users", "users.v1", 7)));
        assert_eq!(parse_app_id("spark:q1"), None);
    }
}
