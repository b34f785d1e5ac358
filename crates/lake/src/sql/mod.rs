//! SQL over the lake (DataFusion through `deltalake`): every Delta table
//! under the lake is a table by name, `"name@version"` or `"name@time"`
//! reads an older commit, and queries only read.
//!
//! - [`catalog`]: where tables are, [`TableRef`] (`users@12`), listing.
//! - [`engine`]: [`SqlEngine`] — parse, open the named tables, plan with
//!   writes refused, run within a time limit and a shared memory pool.
//! - [`statement`]: what a query may be (read-only), checked without
//!   opening a table; the table names it uses.
//! - [`error`]: [`SqlError`] with the place in the SQL and "did you mean".
//! - [`encode`]: rows as text cells, JSON, CSV and Parquet.
//! - [`template`]: `{{ data_interval_start }}` and the other template variables
//!   of task SQL, rendered as typed literals.
//! - [`wire`]: an answer as an Arrow IPC stream, with what it says in the
//!   schema's metadata (the server's answer to `tributary sql`).
//! - [`write`]: an answer into a table (overwrite, append, interval,
//!   merge), exactly once per run through a `txn` in the same commit.

pub mod catalog;
pub mod encode;
pub mod engine;
pub mod error;
mod page_index;
mod provider;
pub mod statement;
pub mod template;
pub mod wire;
pub mod write;

pub use catalog::{AsOf, Bound, LakeCatalog, Layer, Layers, Rows, Run, TableRef};
pub use engine::{Answer, Batches, CachedFooters, Limits, Query, SqlEngine};
pub use error::{Place, SqlError, SqlErrorKind};
pub use statement::{check, tables_named};
pub use write::{WriteMode, WriteReport, WriteSpec};
