//! Task kinds (operators) that DAG tasks run. Each kind validates its own
//! settings without I/O and builds an [`scheduler::operator::Operator`].
//!
//! Kinds: `shell` (a bash command), `noop` (does nothing; for joins and
//! benchmarks), `random_user_to_kafka` and `http_json_to_kafka` (API → Kafka,
//! [`ingest`]), and the batch work on the lake: `lake_sql`, `lake_check`,
//! `lake_load`, `lake_maintenance`, `lake_view`, and Kappa reprocessing:
//! `lake_replay`, `lake_verify`, `lake_swap` ([`lake_kinds`]). [`registry_with`] returns them all,
//! working on the project's lake, for the binary to hand to the scheduler.

pub mod dev;
mod kind_settings;

pub mod http;
pub mod ingest;
pub mod kafka;
pub mod lake_kinds;
pub mod noop;
pub mod random_user;
pub mod shell;

use std::sync::Arc;

use scheduler::operator::Kinds;

pub use lake_kinds::{Lake, StreamProject, StreamTable};

/// Every task kind this build knows, the lake kinds working on `lake`.
pub fn registry_with(lake: Lake) -> Kinds {
    let mut k = Kinds::new();
    k.register(Arc::new(shell::ShellKind))
        .register(Arc::new(noop::NoopKind))
        .register(Arc::new(ingest::RandomUserKind))
        .register(Arc::new(ingest::HttpJsonKind))
        .register(Arc::new(lake_kinds::sql::LakeSqlKind(lake.clone())))
        .register(Arc::new(lake_kinds::check::LakeCheckKind(lake.clone())))
        .register(Arc::new(lake_kinds::load::LakeLoadKind(lake.clone())))
        .register(Arc::new(lake_kinds::maintenance::LakeMaintenanceKind(
            lake.clone(),
        )))
        .register(Arc::new(lake_kinds::view::LakeViewKind(lake.clone())))
        .register(Arc::new(lake_kinds::generation::LakeReplayKind(
            lake.clone(),
        )))
        .register(Arc::new(lake_kinds::generation::LakeVerifyKind(
            lake.clone(),
        )))
        .register(Arc::new(lake_kinds::generation::LakeSwapKind(lake)));
    k
}

/// Every task kind, for checking DAG files where no lake is configured:
/// lake tasks validate, and a try of one fails saying there is no lake.
pub fn registry() -> Kinds {
    registry_with(Lake::unavailable("this process was started without a lake"))
}
