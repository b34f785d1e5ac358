//! One Kafka partition's buffer in the writer: records staged raw, the rows
//! and dead letters decoded from them, and the log offset the buffer
//! continues.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;

use crate::decode::{RawBatch, Rejected};

/// Bytes counted per staged record on top of its key and value (offset,
/// timestamp, lengths), for the memory budget.
pub(super) const RECORD_OVERHEAD: u64 = 48;

/// What the writer holds for one Kafka partition.
///
/// Invariant: the buffer holds records `base + 1 ..= last`, contiguous as
/// far as the broker delivers them; `base` is the table log's offset when
/// the buffer (re)started, and the commit of this buffer is fenced on the
/// log still holding `base`.
#[derive(Debug)]
pub(super) struct PartitionBuffer {
    /// The log offset this buffer continues (None: the log has none yet).
    pub base: Option<i64>,
    /// The next offset expected from Kafka; records below it are dropped
    /// (already durable, or re-delivered after a seek).
    pub next: Option<i64>,
    /// Records received and not yet decoded.
    pub staged: RawBatch,
    /// Decoded rows.
    pub rows: Vec<RecordBatch>,
    pub row_count: u64,
    /// Decoded records that go to the dead-letter table.
    pub rejected: Vec<Rejected>,
    /// Memory held, as counted for the budget.
    pub bytes: u64,
    /// First and last offsets taken into the buffer.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Fingerprint of the record at `last` ([`crate::fingerprint`]), set
    /// when its chunk is decoded (every chunk is, before a flush).
    pub last_fingerprint: Option<i64>,
    /// When the oldest record held arrived (for `rotation.max_age`); after
    /// a fence, when the dropped buffer's oldest did (see
    /// [`PartitionBuffer::keep_waiting_since`]).
    pub oldest: Option<Instant>,
    /// After a fenced reset: records up to this offset had been received
    /// before the fence, and count as waiting since the dropped buffer's
    /// oldest (due at once) however many flushes re-reading them takes —
    /// until a record past it arrives.
    refetch: Option<(i64, Instant)>,
}

impl PartitionBuffer {
    /// An empty buffer continuing the log offset `base`.
    pub fn new(topic: Arc<str>, partition: i32, base: Option<i64>) -> Self {
        PartitionBuffer {
            base,
            next: base.map(|c| c + 1),
            staged: RawBatch::new(topic, partition),
            rows: Vec::new(),
            row_count: 0,
            rejected: Vec::new(),
            bytes: 0,
            first: None,
            last: None,
            last_fingerprint: None,
            oldest: None,
            refetch: None,
        }
    }

    /// Whether the buffer holds any record.
    pub fn has_data(&self) -> bool {
        self.last.is_some()
    }

    /// Rows held, decoded or not.
    pub fn rows_buffered(&self) -> u64 {
        self.row_count + self.staged.len() as u64
    }

    /// Takes one record (the caller checked `offset >= next`); returns the
    /// bytes it adds to the budget.
    pub fn push(
        &mut self,
        offset: i64,
        ts: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> u64 {
        self.next = Some(offset + 1);
        let before = self.staged.bytes();
        self.staged.push(offset, ts, key, value);
        let added = (self.staged.bytes() - before) as u64 + RECORD_OVERHEAD;
        self.bytes += added;
        self.first.get_or_insert(offset);
        self.last = Some(offset);
        if self.oldest.is_none() {
            self.oldest = Some(match self.refetch {
                Some((up_to, since)) if offset <= up_to => since,
                _ => Instant::now(),
            });
        }
        if self.refetch.is_some_and(|(up_to, _)| offset >= up_to) {
            self.refetch = None;
        }
        added
    }

    /// Empties the buffer after its records were committed: it continues
    /// from `last`. Returns the bytes freed.
    pub fn committed(&mut self) -> u64 {
        let base = self.last;
        let freed = self.bytes;
        self.reset_to(base);
        freed
    }

    /// After a fence moved the log's offset to `g` (a swap caught up to
    /// within this buffer): keeps the records past `g`, which continue it
    /// exactly, and returns the bytes freed. `None` when `g + 1` is not
    /// within the buffer (the caller resets it and seeks to `g + 1`).
    /// Every record is decoded before a flush, so only decoded rows and
    /// dead letters are trimmed.
    pub fn trim_to(&mut self, g: i64) -> Option<u64> {
        let (first, last) = (self.first?, self.last?);
        if !self.staged.is_empty() || g < first - 1 || g >= last {
            return None;
        }
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut count = 0u64;
        for b in &self.rows {
            let offsets = b
                .column_by_name(crate::schema::COL_OFFSET)?
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()?;
            let keep =
                arrow::compute::kernels::cmp::gt(offsets, &arrow::array::Int64Array::new_scalar(g))
                    .ok()?;
            let kept = arrow::compute::filter_record_batch(b, &keep).ok()?;
            if kept.num_rows() > 0 {
                count += kept.num_rows() as u64;
                rows.push(kept);
            }
        }
        self.rows = rows;
        self.row_count = count;
        self.rejected.retain(|r| r.offset > g);
        let before = self.bytes;
        // Bytes are counted per record: keep the share of the records kept.
        self.bytes = (before as u128 * (last - g) as u128 / (last - first + 1) as u128) as u64;
        self.base = Some(g);
        self.first = Some(g + 1);
        Some(before - self.bytes)
    }

    /// After a fenced reset: the records to come count as having waited
    /// since `since` (for `rotation.max_age`), as if they had been held
    /// then — the first ones whatever their offset, and every one up to
    /// `seen` (the last offset received before the fence) across flushes.
    pub fn keep_waiting_since(&mut self, since: Option<Instant>, seen: Option<i64>) {
        self.oldest = since;
        self.refetch = since.zip(seen).map(|(s, o)| (o, s));
    }

    /// Drops what the buffer holds and makes it continue the log offset
    /// `base` (a fence, or a reassignment that found the log moved on).
    /// The caller seeks the consumer to `base + 1`.
    pub fn reset_to(&mut self, base: Option<i64>) {
        // A fresh staging batch, not `RawBatch::clear`: a flushed partition
        // may stay idle, and its chunk-sized buffers would stay allocated.
        self.staged = RawBatch::new(self.staged.topic.clone(), self.staged.partition);
        self.rows.clear();
        self.row_count = 0;
        self.rejected.clear();
        self.bytes = 0;
        self.first = None;
        self.last = None;
        self.last_fingerprint = None;
        self.oldest = None;
        self.base = base;
        self.next = base.map(|c| c + 1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// A buffer continuing offset 9 and holding decoded rows 10..=19, with
    /// 14 a dead letter.
    fn held() -> PartitionBuffer {
        let mut p = PartitionBuffer::new(Arc::from("t"), 0, Some(9));
        let schema = Arc::new(Schema::new(vec![Field::new(
            crate::schema::COL_OFFSET,
            DataType::Int64,
            false,
        )]));
        let batch = |o: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(o))]).unwrap()
        };
        p.rows = vec![batch(vec![10, 11, 12, 13]), batch(vec![15, 16, 17, 18, 19])];
        p.row_count = 9;
        p.rejected = vec![Rejected {
            topic: Arc::from("t"),
            partition: 0,
            offset: 14,
            timestamp_ms: None,
            key: None,
            value: None,
            error: "bad".into(),
        }];
        (p.first, p.last, p.bytes, p.next) = (Some(10), Some(19), 1000, Some(20));
        p
    }

    #[test]
    fn a_fence_within_the_buffer_keeps_the_records_past_it() {
        let mut p = held();
        assert_eq!(p.trim_to(13), Some(400), "6 of 10 records stay");
        assert_eq!(
            (p.base, p.first, p.last, p.next),
            (Some(13), Some(14), Some(19), Some(20))
        );
        assert_eq!(p.row_count, 5);
        assert_eq!(p.rows.len(), 1, "the batch wholly at or below 13 is gone");
        assert_eq!(p.rejected.len(), 1, "14 is past 13");
        let mut p = held();
        assert_eq!(p.trim_to(16).map(|_| p.rejected.len()), Some(0));
        assert_eq!(p.row_count, 3);
        // At the buffer's own base: everything stays.
        let mut p = held();
        assert_eq!(p.trim_to(9), Some(0));
        assert_eq!(p.row_count, 9);
    }

    #[test]
    fn records_after_a_fenced_reset_are_as_old_as_the_dropped_ones() {
        let mut p = held();
        let waiting = Instant::now() - std::time::Duration::from_secs(5);
        p.oldest = Some(waiting);
        p.reset_to(Some(30));
        p.keep_waiting_since(Some(waiting), Some(19));
        assert!(!p.has_data());
        p.push(31, None, None, Some(b"{}"));
        assert_eq!(p.oldest, Some(waiting), "due at once, not max_age from now");
        // A plain reset (after a flush) starts the clock again.
        p.reset_to(Some(31));
        p.push(32, None, None, Some(b"{}"));
        assert!(p.oldest.is_some_and(|o| o > waiting));
    }

    #[test]
    fn records_received_before_a_fence_stay_due_across_the_flushes_that_reread_them() {
        // A rollback moved the log back to 4; the buffer had received up
        // to 19: re-reading 5..=19 may take several flushes.
        let mut p = held();
        let waiting = Instant::now() - std::time::Duration::from_secs(5);
        p.reset_to(Some(4));
        p.keep_waiting_since(Some(waiting), Some(19));
        for o in 5..=9 {
            p.push(o, None, None, Some(b"{}"));
        }
        p.committed();
        p.push(10, None, None, Some(b"{}"));
        assert_eq!(p.oldest, Some(waiting), "10 was received before the fence");
        for o in 11..=19 {
            p.push(o, None, None, Some(b"{}"));
        }
        p.committed();
        p.push(20, None, None, Some(b"{}"));
        assert!(
            p.oldest.is_some_and(|o| o > waiting),
            "20 is new: its own clock"
        );
    }

    #[test]
    fn a_fence_outside_the_buffer_leaves_it_to_a_reset() {
        // Past the last record, or behind where the buffer starts (a
        // rollback), or with records not decoded yet: not trimmed.
        assert_eq!(held().trim_to(19), None);
        assert_eq!(held().trim_to(25), None);
        assert_eq!(held().trim_to(5), None);
        let mut p = held();
        p.staged.push(20, None, None, Some(b"{}"));
        assert_eq!(p.trim_to(13), None);
    }
}
