//! Applying rebalance events in the loop: a revoked partition's buffer is
//! dropped (its new owner reads it again from the log); a newly assigned
//! one continues the log's offset, read fresh, since another writer may have
//! committed it while we did not own it, and only if the broker's log
//! still continues it (`log_check`).

use super::Writer;
use super::buffer::PartitionBuffer;
use crate::LakeError;
use crate::table::app_id;

impl Writer {
    /// Applies the events queued by the rebalance callbacks.
    pub(super) async fn handle_rebalance(&mut self) -> Result<(), LakeError> {
        let (events, count) = self.rebalances.take();
        if count == self.rebalances_applied {
            return Ok(());
        }
        self.rebalances_applied = count;
        for tp in events.revoked {
            self.assigned.remove(&tp);
            if let Some(part) = self.buffers.remove(&tp) {
                self.buffered -= part.bytes.min(self.buffered);
            }
        }
        if events.assigned.is_empty() {
            return Ok(());
        }
        self.seen_assignment = true;
        // Someone else may have committed since we last looked.
        self.main.refresh().await?;
        let mut newly = Vec::new();
        for tp in events.assigned {
            let tp = self.intern(tp);
            let log = self
                .main
                .offset(&app_id(&self.opts.spec.name, &tp.topic, tp.partition));
            match self.buffers.get(&tp) {
                // Records may have arrived before this event was handled:
                // keep them if they continue the log.
                Some(part) if part.base == log => self.record_committed(&tp, log),
                Some(_) => self.reset_partition(&tp, log),
                None => {
                    self.buffers.insert(
                        tp.clone(),
                        PartitionBuffer::new(tp.topic.clone(), tp.partition, log),
                    );
                    self.record_committed(&tp, log);
                }
            }
            self.assigned.insert(tp.clone());
            newly.push(tp);
        }
        self.check_logs(&newly).await
    }
}
