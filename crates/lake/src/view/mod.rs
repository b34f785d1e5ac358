//! Lambda views (`[[view]]`): a batch view recomputed on a schedule, a
//! speed view over what arrived since, and an exact serving merge.
//!
//! - [`spec`]: `[[view]]` as written → [`ViewSpec`];
//! - [`merge`]: what makes the SQL mergeable (partial aggregates) and the
//!   SQL of each layer;
//! - [`coverage`]: the batch's mark (source version, offsets per
//!   partition), kept as `txn` entries in the batch's own commits;
//! - [`refresh`](refresh::refresh): recompute the batch table;
//! - [`layers`]: `batch.<view>`, `speed.<view>` and `live.<view>` as SQL
//!   names ([`Views`], the catalog's [`Layers`](crate::sql::Layers));
//! - `speed`: the tables a layer reads and the speed layer's rows;
//! - [`serving`]: what a long-running engine keeps of a view between
//!   queries (the batch's mark, the speed rows' partial aggregates);
//! - [`status`](status::status): where a view stands;
//! - [`check`]: the SQL planned before anything runs.

pub mod check;
pub mod coverage;
pub mod layers;
pub mod merge;
pub mod refresh;
pub mod serving;
pub mod spec;
mod speed;
pub mod status;

pub use layers::Views;
pub use refresh::{Refreshed, refresh};
pub use spec::{LAYERS, Merge, ViewConfig, ViewSpec};
pub use status::{ViewStatus, status};
