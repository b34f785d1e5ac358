//! Who sent a change notification, and what kind it is: the payload
//! `<origin> <kind>` of PostgreSQL notifications (the change feed reads it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// The notification kind of a change that can give a scheduler work.
pub(super) const KIND_CHANGE: &str = "change";
/// The notification kind of progress no scheduler acts on.
pub(super) const KIND_PROGRESS: &str = "progress";

/// Who sent a notification: one value per store (its clones share it), so a
/// process recognizes its own announcements.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `<pid>.<µs since the epoch>.<store number>` in hex.
    id: Arc<str>,
    /// Signalled when this store notifies: this process's own `OnWork`
    /// feeds watch it.
    local: Arc<watch::Sender<()>>,
}

impl Origin {
    pub(super) fn new() -> Origin {
        static STORES: AtomicU64 = AtomicU64::new(0);
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let id = format!(
            "{:x}.{micros:x}.{:x}",
            std::process::id(),
            STORES.fetch_add(1, Ordering::Relaxed)
        );
        Origin {
            id: id.into(),
            local: Arc::new(watch::Sender::new(())),
        }
    }

    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Tells this process's `OnWork` feeds that the store notified.
    pub(super) fn signal(&self) {
        self.local.send_replace(());
    }

    /// A receiver of [`Origin::signal`] that has seen every signal so far.
    pub(super) fn subscribe(&self) -> watch::Receiver<()> {
        self.local.subscribe()
    }

    /// The payload of a notification of `kind` from this store.
    pub(super) fn payload(&self, kind: &str) -> String {
        format!("{} {kind}", self.id)
    }

    /// Whether a scheduler's feed wakes for `payload`: not for progress,
    /// not for its own process's (heard in-process). A payload of another
    /// shape (an older version, a `NOTIFY` typed by hand) wakes it.
    pub(super) fn wakes_scheduler(&self, payload: &str) -> bool {
        match payload.split_once(' ') {
            Some((origin, kind)) => kind != KIND_PROGRESS && origin != &*self.id,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduler_wakes_for_other_processes_changes_only() {
        let (a, b) = (Origin::new(), Origin::new());
        assert_ne!(a.id(), b.id(), "two stores of one process differ too");
        assert!(a.wakes_scheduler(&b.payload(KIND_CHANGE)));
        assert!(!a.wakes_scheduler(&b.payload(KIND_PROGRESS)));
        assert!(
            !a.wakes_scheduler(&a.payload(KIND_CHANGE)),
            "heard in-process"
        );
        // Another shape (an older version, a NOTIFY typed by hand): wake.
        assert!(a.wakes_scheduler(""));
        assert!(a.wakes_scheduler("hello"));
    }
}
