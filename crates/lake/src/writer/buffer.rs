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
    /// When the oldest record held arrived (for `rotation.max_age`).
    pub oldest: Option<Instant>,
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
        self.oldest.get_or_insert_with(Instant::now);
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
