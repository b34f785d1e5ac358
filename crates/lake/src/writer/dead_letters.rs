//! Dead letters: records that do not decode are committed to the stream's
//! dead-letter table before the rows of the same flush, with their own `txn`
//! entries, and filtered by that table's log — so replaying a range after a
//! crash adds none twice. Idempotent, not fenced: the table commit that
//! follows is the fenced one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{
    BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::Writer;
use crate::LakeError;
use crate::decode::Rejected;
use crate::schema::dead_letter_schema;
use crate::table::{CommitOutcome, OffsetUpdate, app_id};

impl Writer {
    /// Commits rejected records to the dead-letter table, skipping those its
    /// log already holds (a crash between the two commits replays them).
    pub(super) async fn commit_rejected(
        &mut self,
        rejected: Vec<Rejected>,
        ranges: &[(String, i64)],
    ) -> Result<(), LakeError> {
        let name = self.spec().name.clone();
        loop {
            self.dlq.refresh().await?;
            let keep: Vec<&Rejected> = rejected
                .iter()
                .filter(|r| {
                    let id = app_id(&name, &r.topic, r.partition);
                    self.dlq.offset(&id).is_none_or(|c| r.offset > c)
                })
                .collect();
            let updates: Vec<OffsetUpdate> = ranges
                .iter()
                .filter_map(|(id, last)| {
                    let cur = self.dlq.offset(id);
                    (cur.is_none_or(|c| c < *last)).then(|| OffsetUpdate {
                        app_id: id.clone(),
                        expected: cur,
                        last: *last,
                    })
                })
                .collect();
            if keep.is_empty() && updates.is_empty() {
                return Ok(());
            }
            let adds = if keep.is_empty() {
                Vec::new()
            } else {
                let batch = dead_letter_batch(&keep);
                let mut w = RecordBatchWriter::for_table(self.dlq.table())?;
                w.write(batch).await?;
                w.flush().await?
            };
            match self
                .dlq
                .commit(adds, &updates, &name, self.flush_seq)
                .await?
            {
                CommitOutcome::Committed { .. } => {
                    self.opts
                        .metrics
                        .records_rejected
                        .fetch_add(keep.len() as u64, Ordering::Relaxed);
                    self.summary.rejected += keep.len() as u64;
                    for r in keep.iter().take(5) {
                        tracing::warn!(stream = %name, topic = %r.topic, partition = r.partition, offset = r.offset,
                            error = %r.error, "record sent to the dead-letter table");
                    }
                    return Ok(());
                }
                CommitOutcome::Fenced(_) => continue, // re-filter against the newer log
            }
        }
    }
}

fn dead_letter_batch(rejected: &[&Rejected]) -> RecordBatch {
    let now = chrono::Utc::now().timestamp_micros();
    RecordBatch::try_new(
        dead_letter_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rejected.iter().map(|r| r.topic.as_ref()),
            )),
            Arc::new(Int32Array::from_iter_values(
                rejected.iter().map(|r| r.partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                rejected.iter().map(|r| r.offset),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    rejected.iter().map(|r| r.timestamp_ms.map(|ms| ms * 1000)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(BinaryArray::from_iter(
                rejected.iter().map(|r| r.key.as_deref()),
            )),
            Arc::new(BinaryArray::from_iter(
                rejected.iter().map(|r| r.value.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejected.iter().map(|r| r.error.as_str()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_value(now, rejected.len()).with_timezone("UTC"),
            ),
        ],
    )
    .expect("dead-letter schema matches")
}
