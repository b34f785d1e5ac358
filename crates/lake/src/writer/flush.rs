//! Flushing: which buffers are due (rotation limits, the memory budget),
//! and the flush itself — dead letters, then Parquet files one table
//! partition at a time, then one commit of the files with each partition's
//! new last offset, fenced on the offsets the buffers started after.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use deltalake::kernel::Add;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::Writer;
use super::buffer::PartitionBuffer;
use crate::LakeError;
use crate::decode::Rejected;
use crate::fingerprint::fingerprint_id;
use crate::kafka::TopicPartition;
use crate::table::{CommitOutcome, OffsetUpdate, app_id};

/// What a flush wrote, for the metrics once it is committed.
struct Written {
    rows: u64,
    files: u64,
    bytes: u64,
}

impl Writer {
    /// Flushes partitions over a rotation limit; then, while over the memory
    /// budget, the largest buffers.
    pub(super) async fn flush_due(&mut self) -> Result<(), LakeError> {
        let r = self.spec().rotation;
        let now = Instant::now();
        let mut due: Vec<TopicPartition> = Vec::new();
        let mut any_due = false;
        for (k, p) in &self.buffers {
            if !p.has_data() {
                continue;
            }
            let age = p.oldest.map_or(Duration::ZERO, |o| now - o);
            if p.rows_buffered() >= r.max_rows || p.bytes >= r.max_bytes || age >= r.max_age {
                any_due = true;
                due.push(k.clone());
            } else if age >= r.max_age / 2 {
                // Ride along: fewer, larger files and commits.
                due.push(k.clone());
            }
        }
        if any_due {
            self.flush(due).await?;
        }
        let budget = self.spec().memory_budget;
        if self.buffered > budget {
            let mut by_size: Vec<(u64, TopicPartition)> = self
                .buffers
                .iter()
                .filter(|(_, p)| p.has_data())
                .map(|(k, p)| (p.bytes, k.clone()))
                .collect();
            by_size.sort_by_key(|e| std::cmp::Reverse(e.0));
            let target = budget / 2;
            let mut freed = 0u64;
            let mut chosen = Vec::new();
            for (bytes, k) in by_size {
                if self.buffered - freed.min(self.buffered) <= target {
                    break;
                }
                freed += bytes;
                chosen.push(k);
            }
            tracing::debug!(stream = %self.spec().name, buffered = self.buffered, budget, partitions = chosen.len(), "memory budget reached: flushing the largest buffers");
            self.flush(chosen).await?;
        }
        Ok(())
    }

    /// When the oldest record held reaches `rotation.max_age` (what
    /// [`Writer::flush_due`] waits for when no size limit is reached).
    pub(super) fn next_due(&self) -> Option<Instant> {
        let oldest = self
            .buffers
            .values()
            .filter(|p| p.has_data())
            .filter_map(|p| p.oldest)
            .min()?;
        Some(oldest + self.spec().rotation.max_age)
    }

    /// Flushes every buffer holding data (shutdown, caught up).
    pub(super) async fn flush_all(&mut self) -> Result<(), LakeError> {
        let all: Vec<TopicPartition> = self
            .buffers
            .iter()
            .filter(|(_, p)| p.has_data())
            .map(|(k, _)| k.clone())
            .collect();
        self.flush(all).await
    }

    /// Writes and commits the buffers of these partitions. A fenced
    /// partition continues the log's new offset: with what its buffer holds
    /// past it, written again with the others, or (when the buffer does
    /// not reach past it, or starts after it) reset and left out.
    pub(super) async fn flush(&mut self, mut keys: Vec<TopicPartition>) -> Result<(), LakeError> {
        keys.retain(|k| self.buffers.get(k).is_some_and(PartitionBuffer::has_data));
        while !keys.is_empty() {
            for k in &keys {
                self.decode_part(k);
            }
            self.flush_seq += 1;
            self.commit_dead_letters_of(&keys).await?;
            let started = Instant::now();
            let batches: Vec<RecordBatch> = keys
                .iter()
                .flat_map(|k| self.buffers[k].rows.iter().cloned())
                .collect();
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let adds = self.write_files(&batches).await?;
            let updates = self.offset_updates(&keys);
            let written = Written {
                rows,
                files: adds.len() as u64,
                bytes: adds.iter().map(|a| a.size as u64).sum(),
            };
            let name = self.spec().name.clone();
            let commit_started = Instant::now();
            match self
                .main
                .commit(adds, &updates, &name, self.flush_seq)
                .await?
            {
                CommitOutcome::Committed { version, attempts } => {
                    self.opts.metrics.observe_commit(commit_started.elapsed());
                    self.committed(&keys, version, &written);
                    tracing::debug!(stream = %name, version, attempts, rows, files = written.files, partitions = keys.len(),
                        ms = started.elapsed().as_millis() as u64, "flushed");
                    return Ok(());
                }
                CommitOutcome::Fenced(moved) => {
                    let log_offsets: Vec<String> = moved
                        .iter()
                        .map(|(id, now)| {
                            format!("{id}={}", now.map_or("none".into(), |o| o.to_string()))
                        })
                        .collect();
                    tracing::warn!(stream = %name, log_offsets = %log_offsets.join(" "),
                        commit_ms = commit_started.elapsed().as_millis() as u64,
                        flush_ms = started.elapsed().as_millis() as u64,
                        "commit fenced: another writer or a switch moved these partitions' log offsets; \
                         keeping what the buffers hold past them, or re-reading from there");
                    self.fenced(&mut keys, moved);
                    // A swap (`lake swap`) may have brought another
                    // generation's columns or partitioning: writing on
                    // with this declaration would mix shapes.
                    let spec = self.spec();
                    let parts: Vec<String> = spec
                        .partition_by
                        .iter()
                        .map(|p| p.name().to_string())
                        .collect();
                    crate::location::check_compatible(
                        &spec.table,
                        self.main.table(),
                        &spec.table_schema,
                        &parts,
                    )?;
                } // The files written for this attempt are now orphans
                  // (invisible; vacuum removes them). Rewrite the rest.
            }
        }
        Ok(())
    }

    /// Rejected records of these partitions go first, to their own table.
    async fn commit_dead_letters_of(&mut self, keys: &[TopicPartition]) -> Result<(), LakeError> {
        let name = &self.opts.spec.name;
        let rejected: Vec<Rejected> = keys
            .iter()
            .flat_map(|k| self.buffers[k].rejected.iter().cloned())
            .collect();
        if rejected.is_empty() {
            return Ok(());
        }
        let ranges: Vec<(String, i64)> = keys
            .iter()
            .filter(|k| !self.buffers[*k].rejected.is_empty())
            .map(|k| {
                (
                    app_id(name, &k.topic, k.partition),
                    self.buffers[k].last.expect("has data"),
                )
            })
            .collect();
        self.commit_rejected(rejected, &ranges).await
    }

    /// Each partition's new last offset, expecting the log to still hold the
    /// offset its buffer started after.
    fn offset_updates(&self, keys: &[TopicPartition]) -> Vec<OffsetUpdate> {
        let name = &self.opts.spec.name;
        // With each offset, the fingerprint of its record: the log check
        // tells a re-created topic from this one by it.
        let fingerprints = keys.iter().filter_map(|k| {
            let p = &self.buffers[k];
            let id = fingerprint_id(name, &k.topic, k.partition);
            Some(OffsetUpdate {
                expected: self.main.txns().get(&id).copied(),
                app_id: id,
                last: p.last_fingerprint?,
            })
        });
        let offsets: Vec<OffsetUpdate> = keys
            .iter()
            .map(|k| {
                let p = &self.buffers[k];
                let first = p.first.unwrap_or(-1);
                let held = p.row_count + p.rejected.len() as u64;
                tracing::debug!(stream = %name, topic = %k.topic, partition = k.partition, expected = ?p.base, first, last = ?p.last, held, "committing partition range");
                if let (Some(c), Some(l)) = (p.base, p.last)
                    && first != c + 1
                {
                    tracing::warn!(stream = %name, topic = %k.topic, partition = k.partition, committed = c, first, last = l, held,
                        "buffer does not start right after the committed offset");
                }
                OffsetUpdate {
                    app_id: app_id(name, &k.topic, k.partition),
                    expected: p.base,
                    last: p.last.expect("has data"),
                }
            })
            .collect();
        offsets.into_iter().chain(fingerprints).collect()
    }

    /// After a commit: the buffers continue from what they held, the group
    /// offsets follow (for lag tools only; the log is the truth).
    fn committed(&mut self, keys: &[TopicPartition], version: u64, w: &Written) {
        let m = self.opts.metrics.clone();
        m.commits.fetch_add(1, Ordering::Relaxed);
        m.records_written.fetch_add(w.rows, Ordering::Relaxed);
        m.files.fetch_add(w.files, Ordering::Relaxed);
        m.bytes.fetch_add(w.bytes, Ordering::Relaxed);
        m.last_version.store(version, Ordering::Relaxed);
        m.last_commit_ms.store(
            chrono::Utc::now().timestamp_millis() as u64,
            Ordering::Relaxed,
        );
        self.summary.commits += 1;
        self.summary.rows_written += w.rows;
        self.summary.version = version;
        let mut tpl = TopicPartitionList::new();
        for k in keys {
            let p = self.buffers.get_mut(k).expect("flushed buffer");
            let last = p.last.expect("has data");
            let freed = p.committed();
            self.buffered -= freed.min(self.buffered);
            self.record_committed(k, Some(last));
            let _ = tpl.add_partition_offset(&k.topic, k.partition, Offset::Offset(last + 1));
        }
        m.set_buffered(self.buffered);
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(stream = %self.opts.spec.name, error = %e, "group offset commit failed (harmless)");
        }
    }

    /// After a fence: every partition another writer moved restarts after
    /// the log's offset and leaves `keys`.
    fn fenced(&mut self, keys: &mut Vec<TopicPartition>, moved: Vec<(String, Option<i64>)>) {
        let name = self.opts.spec.name.clone();
        self.opts.metrics.fenced.fetch_add(1, Ordering::Relaxed);
        self.summary.fenced += 1;
        let moved: HashMap<String, Option<i64>> = moved.into_iter().collect();
        let mut stay = Vec::with_capacity(keys.len());
        for k in keys.drain(..) {
            match moved.get(&app_id(&name, &k.topic, k.partition)) {
                Some(now) => {
                    if self.rebase_partition(&k, *now) {
                        stay.push(k);
                    }
                }
                None => stay.push(k),
            }
        }
        *keys = stay;
    }

    async fn write_files(&mut self, batches: &[RecordBatch]) -> Result<Vec<Add>, LakeError> {
        let Some(largest) = batches.iter().max_by_key(|b| b.num_rows()) else {
            return Ok(Vec::new());
        };
        let props = self.encoding.properties(&self.opts.spec, largest);
        // The table's partition columns, read with its metadata at open
        // (and checked there against the stream's `partition_by`).
        crate::partition::write_files(self.main.table(), self.main.partition_by(), batches, props)
            .await
    }
}
