//! Continuous SQL transforms (`[[transform]]`): a query over a lake
//! table's new rows, run as the table grows, its answer appended to
//! another table.
//!
//! A transform reads the lake, never Kafka. Its checkpoint is the source
//! table's Delta version, recorded as a `txn` in the **same commit** as the
//! output files (with the version of every reference table the SQL read),
//! and each commit is fenced on the checkpoint it started from — the
//! stream writer's argument for Kafka offsets, applied to Delta versions.
//! So a transform is exactly once across crashes, two runs of it cannot
//! both commit a step, and its output can be rebuilt from the lake.
//!
//! - [`config`]: `[[transform]]` as written → [`TransformSpec`];
//! - [`validate`](validate::validate): the SQL planned over empty tables
//!   of the schemas to come, before anything runs;
//! - [`plan`]: what a transform's SQL may do (per-row queries only);
//! - [`changes`]: the files the source's commits after a version added;
//! - [`run`](run::run): the loop and the per-row step — read new files,
//!   run the SQL, commit files and checkpoint together; `runner`: what
//!   every step shares (the tables, writing an answer, the fenced commit);
//! - [`window`]: `TUMBLE(…)` / `HOP(…)` rewritten into plain SQL;
//!   `windowed`: the windowed step (late rows, emit modes); `watermark`:
//!   its per-partition watermark state;
//! - [`sink`]: the output's rows published to a Kafka topic as well;
//! - [`status`](status::status): a transform's position, from the lake;
//! - [`checkpoint`]: the `txn` app ids.

pub mod changes;
pub mod checkpoint;
pub mod config;
pub mod plan;
pub mod run;
mod runner;
pub mod sink;
pub mod spec;
pub mod status;
pub mod validate;
mod watermark;
pub mod window;
mod windowed;

pub use config::TransformConfig;
pub use run::{RunSummary, TransformOptions, run};
pub(crate) use runner::{conform, default_properties};
pub use spec::{Delivery, Emit, SinkSpec, TransformSpec, WindowSpec};
pub use status::{TransformStatus, status};
pub use validate::{DeclaredTables, validate};
