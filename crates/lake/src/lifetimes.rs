//! Kafka log lifetimes: when the log a stream reads is replaced (a new or
//! reset broker, a topic deleted and re-created) or lost records to
//! retention, the table's offsets cannot continue it, and the writer stops
//! (`writer::log_check`). [`reset_offsets`] starts a new lifetime: one fenced
//! commit that moves every partition's offset to just before the earliest
//! offset the broker holds now, and records the reset in the table's log,
//! so the rows of every lifetime stay and `lake verify` accounts for them.
//!
//! A reset is recorded per partition as a `txn` entry with the app id
//! `tributary-reset:{stream}:{lifetime}:{topic}:{partition}:{first}` and the
//! last offset of the lifetime that ended as its version (-1: none): rows
//! of partition `p` with offsets `first..` after reset `n` belong to
//! lifetime `n`; earlier ones to the lifetimes before. Delta readers ignore
//! `txn` entries, so the table stays plain Delta.

use std::collections::{BTreeMap, HashMap};

use crate::LakeError;
use crate::config::StreamSpec;
use crate::fingerprint::fingerprint_id;
use crate::kafka::{LogRange, TopicPartition};
use crate::table::{CommitOutcome, DeltaTableHandle, Location, OffsetUpdate, app_id};

const PREFIX: &str = "tributary-reset:";

/// One partition's past reset: lifetime `lifetime` began at offset `first`,
/// after the previous lifetime ended at `ended` (-1: it held nothing).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct Reset {
    pub lifetime: u32,
    pub first: i64,
    pub ended: i64,
}

/// The app id recording reset `lifetime` of a partition.
fn reset_id(stream: &str, lifetime: u32, tp: &TopicPartition, first: i64) -> String {
    format!(
        "{PREFIX}{stream}:{lifetime}:{}:{}:{first}",
        tp.topic, tp.partition
    )
}

/// The resets of `stream` recorded in a table's `txn` entries, per
/// partition, oldest first.
pub fn resets(txns: &HashMap<String, i64>, stream: &str) -> BTreeMap<(String, i32), Vec<Reset>> {
    let mut out: BTreeMap<(String, i32), Vec<Reset>> = BTreeMap::new();
    for (id, ended) in txns {
        let Some(rest) = id.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((s, rest)) = rest.split_once(':') else {
            continue;
        };
        if s != stream {
            continue;
        }
        let Some((lifetime, rest)) = rest.split_once(':') else {
            continue;
        };
        let mut tail = rest.rsplitn(3, ':');
        let (Some(first), Some(partition), Some(topic)) = (tail.next(), tail.next(), tail.next())
        else {
            continue;
        };
        let (Ok(lifetime), Ok(partition), Ok(first)) =
            (lifetime.parse(), partition.parse(), first.parse())
        else {
            continue;
        };
        out.entry((topic.to_string(), partition))
            .or_default()
            .push(Reset {
                lifetime,
                first,
                ended: *ended,
            });
    }
    for list in out.values_mut() {
        list.sort_by_key(|r| r.lifetime);
    }
    out
}

/// What [`reset_offsets`] did to one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct PartitionReset {
    pub topic: String,
    pub partition: i32,
    /// The last offset the table held (None: nothing yet).
    pub was: Option<i64>,
    /// The first offset the new lifetime reads.
    pub from: i64,
}

/// What [`reset_offsets`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct ResetReport {
    pub table: String,
    /// The new lifetime (1 for the first reset).
    pub lifetime: u32,
    /// The table version of the reset commit.
    pub version: u64,
    pub partitions: Vec<PartitionReset>,
}

/// Starts a new log lifetime for `spec`'s table: every partition of
/// `ranges` (the broker's logs now) continues from its earliest offset, and
/// the reset is recorded. Fenced like a writer commit, so a writer running
/// meanwhile re-reads its positions. Rows already in the table stay.
/// `None` when there is nothing to reset: no table yet, or no offsets of
/// the stream in it.
pub async fn reset_offsets(
    location: &Location,
    spec: &StreamSpec,
    ranges: &HashMap<TopicPartition, LogRange>,
) -> Result<Option<ResetReport>, LakeError> {
    let Some(table) = location.open(&spec.table).await? else {
        return Ok(None);
    };
    let mut handle = DeltaTableHandle::new(&spec.table, table).await?;
    if handle.stream_offsets(&spec.name).is_empty() {
        return Ok(None);
    }
    for _ in 0..100 {
        let lifetime = resets(handle.txns(), &spec.name)
            .values()
            .flat_map(|r| r.iter().map(|r| r.lifetime))
            .max()
            .unwrap_or(0)
            + 1;
        let mut ordered: Vec<(&TopicPartition, &LogRange)> = ranges.iter().collect();
        ordered.sort_by(|a, b| a.0.cmp(b.0));
        let mut updates = Vec::new();
        let mut partitions = Vec::new();
        for (tp, range) in ordered {
            let id = app_id(&spec.name, &tp.topic, tp.partition);
            let was = handle.offset(&id);
            updates.push(OffsetUpdate {
                app_id: id,
                expected: was,
                last: range.start - 1,
            });
            // The new log's records are not the old ones: forget the
            // fingerprint (0 = unknown) until the next commit records one.
            let fp = fingerprint_id(&spec.name, &tp.topic, tp.partition);
            if let Some(&was_fp) = handle.txns().get(&fp) {
                updates.push(OffsetUpdate {
                    app_id: fp,
                    expected: Some(was_fp),
                    last: 0,
                });
            }
            updates.push(OffsetUpdate {
                app_id: reset_id(&spec.name, lifetime, tp, range.start),
                expected: None,
                last: was.unwrap_or(-1),
            });
            partitions.push(PartitionReset {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                was,
                from: range.start,
            });
        }
        match handle
            .commit(Vec::new(), &updates, &spec.name, -i64::from(lifetime))
            .await?
        {
            CommitOutcome::Committed { version, .. } => {
                return Ok(Some(ResetReport {
                    table: spec.table.clone(),
                    lifetime,
                    version,
                    partitions,
                }));
            }
            // A writer committed meanwhile: read again and redo.
            CommitOutcome::Fenced(_) => handle.refresh().await.map(|_| ())?,
        }
    }
    Err(LakeError::Commit(format!(
        "table {}: the reset kept losing to other commits",
        spec.table
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_back_per_partition_oldest_first() {
        let tp = TopicPartition::new("users.v1", 3);
        let txns = HashMap::from([
            (reset_id("users", 2, &tp, 0), 11),
            (reset_id("users", 1, &tp, 5), 29),
            (reset_id("other", 1, &tp, 0), 7),
            (app_id("users", "users.v1", 3), 4),
        ]);
        let got = resets(&txns, "users");
        assert_eq!(
            got[&("users.v1".to_string(), 3)],
            vec![
                Reset {
                    lifetime: 1,
                    first: 5,
                    ended: 29
                },
                Reset {
                    lifetime: 2,
                    first: 0,
                    ended: 11
                },
            ]
        );
        assert_eq!(got.len(), 1);
    }
}
