//! Checking views before anything runs: each one's batch SQL planned over
//! empty tables of its source's schema (a stream's declared schema, or the
//! table as it is), so an unknown table or column is reported at its place
//! in the config file while the lake may still be empty.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::spec::ViewSpec;
use crate::config::ConfigProblem;
use crate::sql::{Bound, SqlEngine};
use crate::transform::DeclaredTables;

/// Every problem of `views`, each at its place in the config file.
/// `declared` holds the tables something writes before they exist (with
/// their schema when known; a view over one without is checked once it
/// exists).
pub async fn validate(
    views: &[Arc<ViewSpec>],
    engine: &SqlEngine,
    declared: &DeclaredTables,
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for spec in views {
        let at = |place, msg: String| {
            (
                Some(spec.sql_at.span(&spec.sql, place)),
                format!("view {:?}: sql: {msg}", spec.name),
            )
        };
        let mut bound = BTreeMap::new();
        match declared.get(&spec.source) {
            Some(Some(schema)) => {
                bound.insert(spec.source.clone(), Bound::Empty(schema.clone()));
            }
            Some(None) => {
                let exists = engine
                    .catalog()
                    .location(&spec.source)
                    .open_log_exists(&spec.source)
                    .await
                    .unwrap_or(false);
                if !exists {
                    continue; // checked once its writer has made it
                }
            }
            None => {}
        }
        if let Err(e) = engine.plan_bound(spec.batch_sql(), &bound).await {
            problems.push(at(e.place, e.message));
        }
    }
    problems
}
