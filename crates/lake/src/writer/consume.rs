//! The loop: take what Kafka delivers into the partitions' buffers, decode
//! full chunks, flush what is due; apply rebalances before the messages that
//! follow them.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use super::buffer::{PartitionBuffer, RECORD_OVERHEAD};
use super::{DECODE_CHUNK, Writer, record_committed};
use crate::LakeError;
use crate::kafka::TopicPartition;
use crate::table::app_id;

impl Writer {
    /// Runs until `stop`, or (with `--until-caught-up`) until caught up.
    pub(super) async fn main_loop(&mut self, stop: &CancellationToken) -> Result<(), LakeError> {
        // Without a buffer coming due, wake this often anyway: the idle
        // log checks and `--until-caught-up` look at the clock too.
        let max_age = self.spec().rotation.max_age;
        let idle = (max_age / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let consumer = self.consumer.clone();
        let mut stream = consumer.stream();
        loop {
            self.handle_rebalance().await?;
            if self.until_done().await? {
                return Ok(());
            }
            // Wake when the oldest buffer reaches `max_age`, not at the next
            // tick after: a tick period of delay was a quarter of `max_age`
            // on every record's way to the table.
            let wake = Instant::now() + idle;
            let wake = self.next_due().map_or(wake, |due| due.min(wake));
            // Messages before the timer: a deadline already past is always
            // ready, and must not keep the consumer from being polled
            // (`flush_due` runs after every message batch anyway).
            let first = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                m = stream.next() => m,
                _ = tokio::time::sleep_until(wake.into()) => None,
            };
            let mut next = first;
            let mut taken = 0;
            if matches!(next, Some(Ok(_))) {
                self.quiet_since = Instant::now();
            }
            // Take what is already here without awaiting timers.
            while let Some(m) = next {
                match m {
                    Ok(m) => {
                        let due = if self.rebalances.count.load(Ordering::SeqCst)
                            != self.rebalances_applied
                        {
                            // A rebalance happened while this message was
                            // fetched: apply it first, so the message lands
                            // in the new assignment's buffers.
                            let owned = m.detach();
                            self.handle_rebalance().await?;
                            self.accept_message(&owned)
                        } else {
                            self.accept_message(&m)
                        };
                        if due {
                            break; // a buffer is due: flush before taking more
                        }
                    }
                    Err(e) if super::log_check::is_out_of_range(&e) => {
                        // A position outside the log: find which and why.
                        self.check_assigned_logs().await?;
                        tracing::warn!(stream = %self.spec().name, error = %e, "offset out of range, but every assigned partition fits its log");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(stream = %self.spec().name, error = %e, "Kafka error (the client retries)");
                        break;
                    }
                }
                taken += 1;
                if taken >= DECODE_CHUNK {
                    break;
                }
                next = stream.next().now_or_never().flatten();
            }
            self.decode_full_chunks();
            self.flush_due().await?;
            self.recheck_if_idle().await?;
        }
    }

    fn accept_message<M: Message>(&mut self, m: &M) -> bool {
        let topic = self.topic(m.topic());
        let ts = m.timestamp().to_millis();
        self.accept(topic, m.partition(), m.offset(), ts, m.key(), m.payload())
    }

    /// Takes one record into its partition's buffer. True when that buffer
    /// reached a size limit, or all buffers the memory budget.
    fn accept(
        &mut self,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        ts: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> bool {
        let spec = &self.opts.spec;
        let buffer = match self.buffers.entry(TopicPartition { topic, partition }) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                // A partition seen before its assignment event was applied.
                let tp = e.key().clone();
                let base = self.main.offset(&app_id(&spec.name, &tp.topic, partition));
                record_committed(&self.log_offsets, &self.opts.metrics, &tp, base);
                e.insert(PartitionBuffer::new(tp.topic, partition, base))
            }
        };
        if let Some(next) = buffer.next {
            if offset < next {
                // Already durable, or re-delivered after a seek.
                return false;
            }
            if offset > next {
                tracing::warn!(stream = %spec.name, topic = %buffer.staged.topic, partition, expected = next, got = offset,
                    "offset gap (compaction, retention or transaction markers)");
            }
        }
        let added = buffer.push(offset, ts, key, value);
        self.buffered += added;
        self.opts.metrics.set_buffered(self.buffered);
        self.summary.records_in += 1;
        self.opts.metrics.records_in.fetch_add(1, Ordering::Relaxed);
        let r = &spec.rotation;
        buffer.rows_buffered() >= r.max_rows
            || buffer.bytes >= r.max_bytes
            || self.buffered > spec.memory_budget
    }

    /// Decodes a partition's staged records into rows and dead letters.
    pub(super) fn decode_part(&mut self, key: &TopicPartition) {
        let Some(part) = self.buffers.get_mut(key) else {
            return;
        };
        if part.staged.is_empty() {
            return;
        }
        let raw_bytes = part.staged.bytes() as u64 + RECORD_OVERHEAD * part.staged.len() as u64;
        let out = self.decoder.decode(&part.staged);
        // Once per chunk, not per record: only the last one is committed.
        part.last_fingerprint = part.staged.last_fingerprint();
        // Keep the buffers' capacity: this partition is filling again.
        part.staged.clear();
        let mut new_bytes = 0u64;
        if let Some(b) = out.rows {
            new_bytes += b.get_array_memory_size() as u64;
            part.row_count += b.num_rows() as u64;
            part.rows.push(b);
        }
        for r in &out.rejected {
            new_bytes += (r.value.as_ref().map_or(0, Vec::len) + r.error.len() + 64) as u64;
        }
        part.rejected.extend(out.rejected);
        part.bytes = part.bytes - raw_bytes.min(part.bytes) + new_bytes;
        self.buffered = self.buffered - raw_bytes.min(self.buffered) + new_bytes;
        self.opts.metrics.set_buffered(self.buffered);
    }

    fn decode_full_chunks(&mut self) {
        let full: Vec<TopicPartition> = self
            .buffers
            .iter()
            .filter(|(_, p)| p.staged.len() >= DECODE_CHUNK)
            .map(|(k, _)| k.clone())
            .collect();
        for k in full {
            self.decode_part(&k);
        }
    }
}
