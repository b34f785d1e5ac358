//! Checking transforms before anything runs: each one's SQL is planned
//! over empty tables of the schemas its tables will have — a stream's
//! table schema, another transform's answer, or an existing table's — so
//! an unknown table or column, a refused aggregate or a `partition_by`
//! column the answer lacks is reported at its place in the config file
//! while the lake may still be empty. Transforms are checked in the order
//! they feed each other.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::plan::check_plan;
use super::spec::TransformSpec;
use crate::config::ConfigProblem;
use crate::sql::{Bound, Place, SqlEngine};

/// Tables something declares before they exist: a stream's (its schema
/// known), or one a DAG task writes (`None`: its columns are known once it
/// exists; until then a transform reading it is not checked further, and
/// waits for it when run).
pub type DeclaredTables = BTreeMap<String, Option<SchemaRef>>;

/// Every problem of `specs`, each at its place in the config file.
pub async fn validate(
    specs: &[Arc<TransformSpec>],
    engine: &SqlEngine,
    declared: &DeclaredTables,
) -> Vec<ConfigProblem> {
    let mut schemas: BTreeMap<String, SchemaRef> = declared
        .iter()
        .filter_map(|(n, s)| Some((n.clone(), s.clone()?)))
        .collect();
    let mut problems = Vec::new();
    let mut later = declared.clone();
    let mut pending: Vec<&Arc<TransformSpec>> = specs.iter().collect();
    while !pending.is_empty() {
        let outputs: Vec<&str> = pending.iter().map(|s| s.table.as_str()).collect();
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|s| {
            crate::sql::tables_named(&s.planned_sql())
                .unwrap_or_default()
                .iter()
                .all(|n| !outputs.contains(&n.as_str()))
        });
        if ready.is_empty() {
            let names: Vec<&str> = waiting.iter().map(|s| s.name.as_str()).collect();
            for s in &waiting {
                problems.push((
                    Some(s.sql_at.value.clone()),
                    format!(
                        "transform {:?}: transforms {} read each other's output in a circle",
                        s.name,
                        names.join(", ")
                    ),
                ));
            }
            break;
        }
        for spec in ready {
            match check_one(spec, engine, &later, &mut schemas).await {
                Ok(true) => {}
                // Checked once its tables exist: its output may be read
                // before it exists too.
                Ok(false) => {
                    later.insert(spec.table.clone(), None);
                }
                Err(p) => problems.push(p),
            }
        }
        pending = waiting;
    }
    problems
}

/// Checks one transform: `Ok(false)` when a table it reads is written
/// later by a DAG task (or by a transform waiting for one), so it is
/// checked once that exists.
async fn check_one(
    spec: &TransformSpec,
    engine: &SqlEngine,
    declared: &DeclaredTables,
    schemas: &mut BTreeMap<String, SchemaRef>,
) -> Result<bool, ConfigProblem> {
    let at = |place: Option<Place>, msg: String| {
        (
            Some(spec.sql_at.span(&spec.sql, place)),
            format!("transform {:?}: sql: {msg}", spec.name),
        )
    };
    let sql = spec.planned_sql();
    let names = crate::sql::tables_named(&sql).map_err(|e| at(e.place, e.message))?;
    let mut bound = BTreeMap::new();
    for n in &names {
        if let Some(s) = schemas.get(n) {
            bound.insert(n.clone(), Bound::Empty(s.clone()));
            continue;
        }
        let exists = engine
            .catalog()
            .location(n)
            .open_log_exists(n)
            .await
            .unwrap_or(false);
        if !exists && declared.contains_key(n) {
            // A DAG task writes it: checked once it exists.
            return Ok(false);
        }
        if !exists {
            let mut known: Vec<String> = engine.catalog().list().await.unwrap_or_default();
            known.extend(declared.keys().cloned());
            known.extend(schemas.keys().cloned());
            known.sort();
            known.dedup();
            let refs: Vec<&str> = known.iter().map(String::as_str).collect();
            let hint = diag::suggest(n, &refs)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            return Err(at(
                place_of(&spec.sql, n),
                format!(
                    "no table {n:?}{hint}: the lake has none, and no stream, transform or DAG task writes it (tables: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        diag::cut(&known.join(", "), 300).into_owned()
                    }
                ),
            ));
        }
    }
    if let Some(w) = &spec.window {
        let probe = format!(
            "SELECT {} FROM {}",
            crate::sql::write::quote_ident(&w.window.column),
            crate::sql::write::quote_ident(&w.window.table)
        );
        let q = engine
            .plan_bound(&probe, &bound)
            .await
            .map_err(|e| at(spec.sql_at_window(), e.message))?;
        let ty = q.schema().field(0).data_type().clone();
        if !matches!(ty, arrow::datatypes::DataType::Timestamp(..)) {
            return Err(at(
                spec.sql_at_window(),
                format!(
                    "the window's time column {:?} is {ty}, not a timestamp",
                    w.window.column
                ),
            ));
        }
    }
    let query = engine
        .plan_bound(&sql, &bound)
        .await
        .map_err(|e| at(e.place, e.message))?;
    check_plan(query.logical_plan(), spec.window.is_some()).map_err(|e| at(e.place, e.message))?;
    let answer = query.schema();
    if spec.window.is_some() && answer.field_with_name("window_start").is_err() {
        return Err(at(
            None,
            "a windowed transform's answer needs the window_start column (group by window_start, window_end)".into(),
        ));
    }
    for (column, span) in spec.partition_by.iter().zip(&spec.partition_spans) {
        if answer.field_with_name(column).is_err() {
            let columns: Vec<&str> = answer.fields().iter().map(|f| f.name().as_str()).collect();
            return Err((
                Some(span.clone()),
                format!(
                    "transform {:?}: partition_by column {column:?} is not a column of the answer (columns: {})",
                    spec.name,
                    columns.join(", ")
                ),
            ));
        }
    }
    if let Some(key) = spec.sink.as_ref().and_then(|s| s.key.as_ref())
        && answer.field_with_name(key).is_err()
    {
        let columns: Vec<&str> = answer.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(at(
            None,
            format!(
                "the sink's key {key:?} is not a column of the answer (columns: {})",
                columns.join(", ")
            ),
        ));
    }
    schemas.insert(spec.table.clone(), answer);
    Ok(true)
}

/// Where a table name first appears in the SQL as a whole word.
fn place_of(sql: &str, word: &str) -> Option<Place> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (l, line) in sql.lines().enumerate() {
        let mut from = 0;
        while let Some(i) = line[from..].find(word) {
            let start = from + i;
            let end = start + word.len();
            let before = line[..start].chars().next_back();
            let after = line[end..].chars().next();
            if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                return Some(Place {
                    line: l as u64 + 1,
                    column: line[..start].chars().count() as u64 + 1,
                });
            }
            from = end;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_name_is_found_as_a_word() {
        let sql = "SELECT u.*\nFROM users_v2 u JOIN users ON true";
        assert_eq!(
            place_of(sql, "users"),
            Some(Place {
                line: 2,
                column: 22
            })
        );
        assert_eq!(place_of(sql, "nations"), None);
    }
}
