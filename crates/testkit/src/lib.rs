//! What the workspace's tests share, in one place: a Kafka to write to
//! (librdkafka's mock cluster), producers that wait for every delivery,
//! stream specs from TOML text, and a bounded wait for a condition.
//!
//! Only tests depend on this crate (`[dev-dependencies]`); production code
//! cannot reach it. The development broker that `standalone` runs lives in
//! `tasks::dev`, not here.

pub mod kafka;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lake::config::{StreamConfig, StreamSpec};

/// A resolved `[[stream]]` from its TOML text; panics naming the problem
/// when the text is not a valid stream.
pub fn stream_spec(toml_text: &str) -> Arc<StreamSpec> {
    let config: StreamConfig =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("stream TOML: {e}"));
    let spec = config
        .resolve(&BTreeMap::new())
        .unwrap_or_else(|e| panic!("invalid stream: {e:?}"));
    Arc::new(spec)
}

/// Waits until `condition` holds, checking every 10 ms; panics naming
/// `what` after a minute.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
