//! Task kinds (operators) that DAG tasks run. Each kind validates its own
//! settings without I/O and builds an [`scheduler::operator::Operator`].
//!
//! Kinds: `shell` (a bash command), `noop` (does nothing; for joins and
//! benchmarks), `random_user_to_kafka` and `http_json_to_kafka` (API → Kafka,
//! [`ingest`]). [`registry`] returns them all, for the binary to hand to the
//! scheduler.

pub mod dev;
mod kind_settings;

pub mod http;
pub mod ingest;
pub mod kafka;
pub mod noop;
pub mod random_user;
pub mod shell;

use std::sync::Arc;

use scheduler::operator::Kinds;

/// Every task kind this build knows.
pub fn registry() -> Kinds {
    let mut k = Kinds::new();
    k.register(Arc::new(shell::ShellKind))
        .register(Arc::new(noop::NoopKind))
        .register(Arc::new(ingest::RandomUserKind))
        .register(Arc::new(ingest::HttpJsonKind));
    k
}
