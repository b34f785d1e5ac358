//! The lake: Delta Lake tables of Parquet files on `object_store` (local
//! folder, in memory, S3), the exactly-once Kafka → table streaming writer
//! and its commit log, and table readers.
//!
//! This crate knows nothing about the scheduler. Its contents arrive with the
//! lake issue; until then it only pins the dependency boundary in the
//! workspace (the `tasks` and `web` crates depend on it).
