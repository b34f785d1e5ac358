//! What a transform's SQL may do. It runs over each step's new source
//! rows, so it must be a per-row query — filter, project, join reference
//! tables. An aggregate, `DISTINCT`, a window function or a `LIMIT` would
//! be computed per step, over whichever rows that step happened to carry,
//! and the output would depend on timing: refused, with the reason.

use deltalake::datafusion::logical_expr::LogicalPlan;

use crate::sql::statement::first_in_plan;
use crate::sql::{SqlError, SqlErrorKind};

/// Refuses plans whose answer would depend on how rows fall into steps.
/// A windowed transform recomputes whole windows from the source, so its
/// aggregates are exact.
pub fn check_plan(plan: &LogicalPlan, windowed: bool) -> Result<(), SqlError> {
    let refused = first_in_plan(plan, |node| match node {
        LogicalPlan::Aggregate(_) if !windowed => {
            Some("an aggregate (GROUP BY, count, sum, …) without a window")
        }
        LogicalPlan::Distinct(_) if !windowed => Some("DISTINCT without a window"),
        LogicalPlan::Window(_) => Some("a window function (… OVER (…))"),
        LogicalPlan::Limit(_) => Some("LIMIT"),
        _ => None,
    });
    match refused {
        None => Ok(()),
        Some(what) => Err(SqlError::new(
            SqlErrorKind::Plan,
            format!(
                "{what} is not allowed in a transform: its SQL runs over each step's new rows, \
                 so the answer would depend on how rows fell into steps; keep it per row \
                 (filter, project, join reference tables), aggregate per window with FROM TUMBLE(…) or HOP(…), \
                 or aggregate with a lake_sql task over the output"
            ),
        )),
    }
}
