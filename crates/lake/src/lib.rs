//! The lake: Delta Lake tables of Parquet files on `object_store` (local
//! folder, in memory, S3), the exactly-once Kafka → table streaming writer,
//! and the table tools (`ls`, `verify`, `optimize`, `vacuum`).
//!
//! This crate knows nothing about the scheduler. Module map:
//!
//! - [`config`]: `[[stream]]` declarations → a validated [`config::StreamSpec`].
//! - [`schema`]: Arrow type names, the table and dead-letter schemas.
//! - [`decode`]: Kafka values (JSON) → Arrow batches, bad records → rejections.
//! - [`table`]: lake locations, Delta tables, offset-fenced commits.
//! - [`writer`]: the streaming writer loop.
//! - [`partition`]: buffered rows grouped by table partition, one file each.
//! - [`metrics`]: Prometheus metrics of the writers.
//! - [`tools`]: describe, verify, optimize and vacuum a table.
//! - [`location`]: where tables live; open, create and list them.
//! - [`sql`]: read-only SQL over every table of the lake.
//! - [`seed`]: small CSV / JSON reference files read into rows.
//! - [`transform`]: continuous SQL transforms, checkpointed in their own commits.

pub mod config;
pub mod decode;
pub mod fingerprint;
pub mod generation;
pub mod kafka;
pub mod lifetimes;
pub mod location;
pub mod metrics;
pub mod partition;
mod s3;
pub mod schema;
pub mod seed;
pub mod sql;
pub mod table;
pub mod tools;
pub mod transform;
pub mod units;
pub mod view;
pub mod writer;

pub use deltalake;

/// Crash-test hook: when `TRIBUTARY_FAILPOINT` names this point, the
/// process kills itself with SIGKILL here — the crash a test needs at an
/// exact step (between two commits of a swap, after a task's commit),
/// with no chance to clean up.
pub fn failpoint(name: &str) {
    if std::env::var("TRIBUTARY_FAILPOINT").is_ok_and(|v| v == name) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Errors of the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Bad configuration or a table that does not match it.
    #[error("{0}")]
    Config(String),
    /// Kafka client error.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// Delta table error (log, object store, Parquet).
    #[error("Delta table: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    /// Object store error.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Arrow error (splitting rows into partitions).
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet error.
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Commit could not be made.
    #[error("commit: {0}")]
    Commit(String),
    /// The broker's log cannot continue the table's committed offsets.
    #[error("{0}")]
    LogMismatch(String),
    /// The table does not exist.
    #[error("no table {0:?} at {1}")]
    NoTable(String, String),
}
