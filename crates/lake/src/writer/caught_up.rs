//! `--until-caught-up`: the end offsets seen at start are the target; the
//! writer flushes its partitions that reached them and stops once the table
//! holds every partition up to its target, whoever wrote it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Writer;
use crate::LakeError;
use crate::kafka::{TopicPartition, last_offsets};
use crate::table::app_id;

impl Writer {
    /// The last offset of every partition of the stream's topics now.
    fn end_offsets(&self) -> Result<HashMap<TopicPartition, i64>, LakeError> {
        let out = tokio::task::block_in_place(|| {
            last_offsets(
                &*self.consumer,
                &self.opts.spec.topics,
                Duration::from_secs(30),
            )
        })?;
        tracing::info!(stream = %self.spec().name, partitions = out.len(), "until caught up: end offsets read");
        Ok(out)
    }

    /// With `--until-caught-up`: flushes our partitions that reached their
    /// end and says whether the table holds every partition up to the end
    /// offsets read at start.
    pub(super) async fn until_done(&mut self) -> Result<bool, LakeError> {
        if !self.opts.until_caught_up || !self.seen_assignment {
            return Ok(false);
        }
        if self.caught_up_targets.is_none() {
            self.caught_up_targets = Some(self.end_offsets()?);
        }
        let targets = self.caught_up_targets.clone().expect("set above");
        // Flush our partitions that reached their end.
        let mut to_flush = Vec::new();
        for tp in &self.assigned {
            let last_wanted = targets.get(tp).copied().unwrap_or(-1);
            let Some(part) = self.buffers.get(tp) else {
                continue;
            };
            let reached = part.next.is_some_and(|n| n > last_wanted) || last_wanted < 0;
            if reached && part.has_data() {
                to_flush.push(tp.clone());
            }
        }
        if !to_flush.is_empty() {
            self.flush(to_flush).await?;
        }
        // Done when the table holds every partition up to its end offset,
        // whoever wrote it: partitions of a member that died stay pending
        // until the group gives them to someone (maybe us). A partition
        // whose start lies past its end has nothing to read.
        let pending = |w: &Self| {
            let spec = &w.opts.spec;
            targets
                .iter()
                .filter(|(tp, last)| {
                    let start = spec.start.get(&(tp.topic.to_string(), tp.partition));
                    **last >= 0
                        && start.is_none_or(|s| s <= *last)
                        && w.main
                            .offset(&app_id(&spec.name, &tp.topic, tp.partition))
                            .is_none_or(|c| c < **last)
                })
                .count()
        };
        if pending(self) == 0 {
            return Ok(true);
        }
        let now = Instant::now();
        if self
            .last_refresh
            .is_none_or(|t| now - t >= Duration::from_millis(200))
        {
            self.last_refresh = Some(now);
            self.main.refresh().await?;
        }
        Ok(pending(self) == 0)
    }
}
