//! Stream declarations (`[[stream]]` in `tributary.toml`) and their
//! validation into a [`StreamSpec`] the writer runs.
//!
//! - [`file`]: the serde types as written, with byte spans, so every problem
//!   found after parsing (an unknown partition column, a bad Arrow type, a
//!   zero rotation limit) still points at `file:line:col`;
//! - [`resolve`](StreamConfig::resolve): one function per section, every
//!   problem collected;
//! - [`spec`]: the validated result.
//!
//! Resolution needs one thing from outside the crate: the named schemas
//! that task kinds export (`schema = "random_user"`), passed in as a
//! [`SchemaCatalog`].

mod file;
mod resolve;
mod spec;
#[cfg(test)]
mod tests;

pub use file::{
    ColumnSpec, LateDataConfig, LatePolicy, ParquetConfig, RotationConfig, SchemaSpec, StreamConfig,
};
pub use resolve::{ConfigProblem, SchemaCatalog, checked_name, valid_name, writer_properties};
pub use spec::{Codec, DEFAULT_MEMORY_BUDGET, Dictionary, LateData, Rotation, StreamSpec};
