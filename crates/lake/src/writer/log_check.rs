//! Does the broker's log still continue what the table holds? Checked for
//! every newly assigned partition, again when librdkafka reports a
//! position out of range (the consumer runs with `auto.offset.reset =
//! error`, so it never jumps silently), and every [`IDLE_RECHECK`] while
//! no record arrives (a client can wait on a topic that is gone without
//! any error: librdkafka ignores a Fetch answer naming no topic it knows,
//! which is how Tansu answers for a deleted topic). A new broker, a topic deleted and
//! re-created (caught by the offsets, or by the fingerprint of the record at
//! the committed offset once the new log has grown past it), or retention that deleted unread records stops the stream
//! with [`LakeError::LogMismatch`], naming the table, the partition, both
//! offsets and the command that goes on without losing data.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::Writer;
use crate::LakeError;
use crate::fingerprint::fingerprint_id;
use crate::kafka::{TopicPartition, check_logs};

/// How long each step of the check (listing offsets, probing a suspect
/// partition) may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How long a writer with partitions may receive nothing before it checks
/// their logs, and how often it checks again while nothing arrives. One
/// ListOffsets round, plus a one-record fetch per partition whose table
/// holds a fingerprint.
const IDLE_RECHECK: Duration = Duration::from_secs(15);

/// Whether a consumer error means a position is outside the log.
pub(super) fn is_out_of_range(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
    )
}

impl Writer {
    /// [`Writer::check_logs`] of every assigned partition, when no record
    /// arrived for [`IDLE_RECHECK`] since the last record or check.
    pub(super) async fn recheck_if_idle(&mut self) -> Result<(), LakeError> {
        if self.assigned.is_empty() || self.quiet_since.elapsed() < IDLE_RECHECK {
            return Ok(());
        }
        self.quiet_since = Instant::now();
        tracing::debug!(stream = %self.spec().name, "no records for a while: checking the partitions' logs");
        self.check_assigned_logs().await
    }

    /// [`Writer::check_logs`] of every assigned partition.
    pub(super) async fn check_assigned_logs(&self) -> Result<(), LakeError> {
        let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
        self.check_logs(&assigned).await
    }

    /// Fails with the reason when the broker's log of any of `partitions`
    /// cannot continue the offset the table holds for it.
    pub(super) async fn check_logs(&self, partitions: &[TopicPartition]) -> Result<(), LakeError> {
        let committed: HashMap<TopicPartition, i64> = partitions
            .iter()
            .filter_map(|tp| Some((tp.clone(), self.log_offsets.get(tp)?)))
            .collect();
        if committed.is_empty() {
            return Ok(());
        }
        let mut topics: Vec<String> = committed.keys().map(|tp| tp.topic.to_string()).collect();
        topics.sort();
        topics.dedup();
        let name = self.spec().name.clone();
        let fingerprints: HashMap<TopicPartition, i64> = committed
            .keys()
            .filter_map(|tp| {
                let id = fingerprint_id(&name, &tp.topic, tp.partition);
                Some((tp.clone(), *self.main.txns().get(&id)?))
            })
            .collect();
        let consumer = self.consumer.clone();
        let kafka = self.opts.kafka.clone();
        let lookup = tokio::task::spawn_blocking(move || {
            check_logs(
                consumer.as_ref(),
                &kafka,
                &topics,
                |tp| committed.get(tp).copied(),
                |tp| fingerprints.get(tp).copied(),
                TIMEOUT,
            )
        })
        .await
        .map_err(|e| LakeError::Kafka(format!("offset lookup stopped: {e}")))
        .and_then(|r| r);
        let found = match lookup {
            Ok(check) => check.mismatches,
            Err(e) => {
                // Not fatal: a position outside the log still surfaces as
                // an out-of-range error, which checks again.
                tracing::warn!(stream = %self.spec().name, error = %e, "cannot check the partitions' logs now");
                return Ok(());
            }
        };
        if found.is_empty() {
            return Ok(());
        }
        let spec = self.spec();
        let why: Vec<String> = found
            .iter()
            .map(|m| m.explain(&spec.name, &spec.table))
            .collect();
        for w in &why {
            tracing::error!(stream = %spec.name, "{w}");
        }
        Err(LakeError::LogMismatch(format!(
            "stream {}: {}",
            spec.name,
            why.join("; ")
        )))
    }
}
