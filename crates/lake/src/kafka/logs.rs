//! Does the broker's log still continue what a table holds? The offsets
//! ([`mismatches`], with a fetch probe, [`out_of_range`], for logs whose
//! listed end looks short) and the record at each committed offset
//! ([`replaced`], by fingerprint), judged together by [`check_logs`]: a new
//! broker or a re-created topic must never make the writer skip records
//! silently.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{KafkaSource, LogRange, TopicPartition, log_ranges};
use crate::LakeError;

/// A table's committed offset that the broker's log cannot continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogMismatch {
    /// The log ends at or before the committed offset: it is not the log
    /// the table was written from (a new broker, a topic deleted and
    /// re-created, a truncated log).
    Behind {
        /// The partition.
        tp: TopicPartition,
        /// The last offset the table holds.
        committed: i64,
        /// The log's end offset (next to be written).
        end: i64,
    },
    /// The log holds the committed offset, but the record there is not the
    /// one the table recorded ([`crate::fingerprint`]): the topic was
    /// deleted and re-created (or the cluster replaced) and the new log
    /// has grown past the committed offset.
    Replaced {
        /// The partition.
        tp: TopicPartition,
        /// The last offset the table holds.
        committed: i64,
    },
    /// Records after the committed offset were deleted (retention) before
    /// the writer read them.
    Deleted {
        /// The partition.
        tp: TopicPartition,
        /// The last offset the table holds.
        committed: i64,
        /// The earliest offset the log still holds.
        start: i64,
    },
}

impl LogMismatch {
    /// The partition it is about.
    pub fn partition(&self) -> &TopicPartition {
        match self {
            LogMismatch::Behind { tp, .. }
            | LogMismatch::Deleted { tp, .. }
            | LogMismatch::Replaced { tp, .. } => tp,
        }
    }

    /// One sentence for `table`, written by `stream`: what happened and
    /// the command that goes on without losing what the table holds.
    pub fn explain(&self, stream: &str, table: &str) -> String {
        match self {
            LogMismatch::Behind { tp, committed, end } => format!(
                "table {table:?} holds offsets up to {committed} of {tp}, but the broker's log of {tp} \
                 ends before that (end offset {end}): this is not the log the table was written from \
                 (a new or reset broker, or the topic was deleted and re-created). Nothing was skipped \
                 or written. To keep the table and continue with the new log, run \
                 `tributary stream reset-offsets {stream}` (recorded in the table's log; \
                 `lake verify` shows it)"
            ),
            LogMismatch::Replaced { tp, committed } => format!(
                "table {table:?} holds offsets up to {committed} of {tp}, but the record the broker \
                 now has at offset {committed} of {tp} is not the one the table recorded: this is a \
                 different log (the topic was deleted and re-created, or the cluster replaced, and it \
                 grew past {committed}). Nothing was skipped or written. To keep the table and continue \
                 with the new log from its first record, run `tributary stream reset-offsets {stream}` \
                 (recorded in the table's log; `lake verify` shows it)"
            ),
            LogMismatch::Deleted {
                tp,
                committed,
                start,
            } => format!(
                "table {table:?} holds offsets up to {committed} of {tp}, but the broker's log of {tp} \
                 now starts at {start}: records {}..={} were deleted (retention) before the writer read \
                 them. Nothing was written. To accept the gap and continue from {start}, run \
                 `tributary stream reset-offsets {stream} --to earliest`",
                committed + 1,
                start - 1
            ),
        }
    }
}

/// Whether the broker still has a record at each partition's committed
/// offset (the last the table holds): the partitions where a fetch from
/// there is out of range. This asks the log itself rather than trusting a
/// listed end offset (Tansu 0.6 lists the last record batch's base offset
/// as the end, which would look like a shorter log). Blocks up to
/// `timeout`; partitions not answered by then are not reported.
pub fn out_of_range(
    kafka: &KafkaSource,
    committed: &HashMap<TopicPartition, i64>,
    timeout: Duration,
) -> Result<std::collections::HashSet<TopicPartition>, LakeError> {
    use rdkafka::Message;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let mut cfg = kafka.client_config("tributary-log-probe");
    cfg.set("group.id", "tributary-log-probe")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = cfg
        .create()
        .map_err(|e| LakeError::Kafka(format!("cannot create a Kafka client: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    let mut pending: HashMap<TopicPartition, i64> = HashMap::new();
    for (tp, &c) in committed.iter().filter(|(_, c)| **c >= 0) {
        let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(c));
        pending.insert(tp.clone(), c);
    }
    let mut out = std::collections::HashSet::new();
    if pending.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| LakeError::Kafka(format!("cannot assign partitions: {e}")))?;
    let deadline = std::time::Instant::now() + timeout;
    let mut saw_out_of_range = false;
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                pending.remove(&TopicPartition::new(m.topic(), m.partition()));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // At the end with nothing at the committed offset: only
                // possible when the log ends at or before it.
                let found: Vec<TopicPartition> = pending
                    .keys()
                    .filter(|tp| tp.partition == p)
                    .cloned()
                    .collect();
                if let [tp] = found.as_slice() {
                    pending.remove(tp);
                    out.insert(tp.clone());
                }
            }
            Some(Err(e))
                if matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
                ) =>
            {
                // The error names no partition: the ones that never deliver
                // a record from their committed offset are the ones.
                saw_out_of_range = true;
            }
            _ => {}
        }
    }
    if saw_out_of_range {
        out.extend(pending.into_keys());
    }
    Ok(out)
}

/// The partitions whose listed end offset is at or below the committed
/// one: the ones worth asking [`out_of_range`] about.
pub fn suspects(
    committed: &HashMap<TopicPartition, i64>,
    ranges: &HashMap<TopicPartition, LogRange>,
) -> HashMap<TopicPartition, i64> {
    committed
        .iter()
        .filter(|(tp, c)| **c >= 0 && ranges.get(*tp).is_some_and(|r| r.end <= **c))
        .map(|(tp, c)| (tp.clone(), *c))
        .collect()
}

/// The partitions whose committed offset (`committed`, the last offset the
/// table holds) the broker's logs (`ranges`) cannot continue, in partition
/// order. A partition the broker does not report is not judged here.
/// `gone` are the partitions whose log no longer holds a record at the
/// committed offset ([`out_of_range`]); a listed end offset alone is not
/// trusted to say the log is shorter.
pub fn mismatches(
    committed: &HashMap<TopicPartition, i64>,
    ranges: &HashMap<TopicPartition, LogRange>,
    gone: &std::collections::HashSet<TopicPartition>,
) -> Vec<LogMismatch> {
    let mut out: Vec<LogMismatch> = committed
        .iter()
        .filter(|(_, c)| **c >= 0)
        .filter_map(|(tp, &committed)| {
            let r = ranges.get(tp)?;
            if r.end <= committed && gone.contains(tp) {
                Some(LogMismatch::Behind {
                    tp: tp.clone(),
                    committed,
                    end: r.end,
                })
            } else if r.start > committed + 1 {
                Some(LogMismatch::Deleted {
                    tp: tp.clone(),
                    committed,
                    start: r.start,
                })
            } else {
                None
            }
        })
        .collect();
    out.sort_by(|a, b| a.partition().cmp(b.partition()));
    out
}

/// The partitions whose record at the committed offset is not the one the
/// table recorded: `expected` maps each partition to (committed offset,
/// fingerprint); only partitions whose log still holds that offset should
/// be asked. Blocks up to `timeout`; partitions not answered by then are
/// not reported.
pub fn replaced(
    kafka: &KafkaSource,
    expected: &HashMap<TopicPartition, (i64, i64)>,
    timeout: Duration,
) -> Result<Vec<TopicPartition>, LakeError> {
    let mut out = Vec::new();
    if expected.is_empty() {
        return Ok(out);
    }
    let mut cfg = kafka.client_config("tributary-fingerprint-probe");
    cfg.set("group.id", "tributary-fingerprint-probe")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error");
    let consumer: BaseConsumer = cfg
        .create()
        .map_err(|e| LakeError::Kafka(format!("cannot create a Kafka client: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    for (tp, (offset, _)) in expected {
        let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset));
    }
    consumer
        .assign(&tpl)
        .map_err(|e| LakeError::Kafka(format!("cannot assign partitions: {e}")))?;
    let mut pending: HashMap<TopicPartition, (i64, i64)> = expected.clone();
    let deadline = std::time::Instant::now() + timeout;
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        use rdkafka::Message;
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let tp = TopicPartition::new(m.topic(), m.partition());
        let Some(&(offset, want)) = pending.get(&tp) else {
            continue;
        };
        if m.offset() != offset {
            // Not the record asked for (the log moved on under us): the
            // offset check judges this partition.
            pending.remove(&tp);
            continue;
        }
        let got = crate::fingerprint::fingerprint(m.timestamp().to_millis(), m.key(), m.payload());
        if got != want {
            out.push(tp.clone());
        }
        pending.remove(&tp);
    }
    out.sort();
    Ok(out)
}

/// The broker's logs of a stream's partitions judged against what a table
/// holds: one ListOffsets round for `topics`, then a fetch probe of the
/// partitions whose listed end looks short ([`out_of_range`]).
#[derive(Debug, Clone)]
pub struct LogCheck {
    /// What each partition's log holds now.
    pub ranges: HashMap<TopicPartition, LogRange>,
    /// The committed offset of each partition that has one.
    pub committed: HashMap<TopicPartition, i64>,
    /// The partitions whose log cannot continue the table.
    pub mismatches: Vec<LogMismatch>,
}

/// [`LogCheck`] of `topics` with `consumer`; `committed` gives the last
/// offset the table holds per partition. Blocks (up to `timeout` per step).
pub fn check_logs<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    kafka: &KafkaSource,
    topics: &[String],
    committed: impl Fn(&TopicPartition) -> Option<i64>,
    fingerprint: impl Fn(&TopicPartition) -> Option<i64>,
    timeout: Duration,
) -> Result<LogCheck, LakeError> {
    let ranges = log_ranges(consumer, topics, timeout)?;
    let committed: HashMap<TopicPartition, i64> = ranges
        .keys()
        .filter_map(|tp| Some((tp.clone(), committed(tp)?)))
        .collect();
    let gone = out_of_range(kafka, &suspects(&committed, &ranges), timeout)?;
    let mut mismatches = mismatches(&committed, &ranges, &gone);
    // The offsets fit; is it the same log? Ask the record at each
    // committed offset the log still holds.
    let same_offsets: HashMap<TopicPartition, (i64, i64)> = committed
        .iter()
        .filter(|(tp, c)| {
            **c >= 0
                && ranges
                    .get(*tp)
                    .is_some_and(|r| r.start <= **c && **c < r.end)
                && !gone.contains(*tp)
                && !mismatches.iter().any(|m| m.partition() == *tp)
        })
        .filter_map(|(tp, c)| Some((tp.clone(), (*c, fingerprint(tp).filter(|f| *f != 0)?))))
        .collect();
    for tp in replaced(kafka, &same_offsets, timeout)? {
        let committed = same_offsets[&tp].0;
        mismatches.push(LogMismatch::Replaced { tp, committed });
    }
    mismatches.sort_by(|a, b| a.partition().cmp(b.partition()));
    Ok(LogCheck {
        ranges,
        committed,
        mismatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_offsets_the_log_cannot_continue_are_named() {
        let tp = |p| TopicPartition::new("users", p);
        let committed =
            HashMap::from([(tp(0), 29), (tp(1), 9), (tp(2), 4), (tp(3), -1), (tp(4), 7)]);
        let ranges = HashMap::from([
            // A new broker: 6 records where the table holds 30.
            (tp(0), LogRange { start: 0, end: 6 }),
            // Caught up exactly: the next record will be 10.
            (tp(1), LogRange { start: 0, end: 10 }),
            // Retention deleted 5..=7 before they were read.
            (tp(2), LogRange { start: 8, end: 12 }),
            // Nothing committed yet: any log fits.
            (tp(3), LogRange { start: 3, end: 5 }),
            // Retention caught up with the table, nothing lost.
            (tp(4), LogRange { start: 8, end: 8 }),
            // A listed end below the committed offset while the log still
            // holds that record (Tansu lists a batch's base offset): fine.
            (tp(5), LogRange { start: 0, end: 15 }),
        ]);
        let gone = std::collections::HashSet::from([tp(0)]);
        let found = mismatches(&committed, &ranges, &gone);
        assert_eq!(
            found,
            vec![
                LogMismatch::Behind {
                    tp: tp(0),
                    committed: 29,
                    end: 6
                },
                LogMismatch::Deleted {
                    tp: tp(2),
                    committed: 4,
                    start: 8
                },
            ]
        );
        let why = found[0].explain("users", "users");
        assert!(why.contains("holds offsets up to 29 of users/0"), "{why}");
        assert!(
            why.contains("`tributary stream reset-offsets users`"),
            "{why}"
        );
        assert!(
            found[1]
                .explain("users", "users")
                .contains("records 5..=7 were deleted")
        );
    }
}
