//! What a query may be, decided without opening any table: it parses, it
//! is a query (or an EXPLAIN of one), its plan writes nothing; and the
//! table names it uses.

use deltalake::datafusion::common::config::Dialect;
use deltalake::datafusion::execution::session_state::SessionStateBuilder;
use deltalake::datafusion::logical_expr::LogicalPlan;
use deltalake::datafusion::prelude::SessionConfig;
use deltalake::datafusion::sql::parser::Statement as DfStatement;

use super::error::{SqlError, SqlErrorKind};

/// The catalog and schema unqualified table names resolve in.
pub(super) const CATALOG: &str = "lake";
pub(super) const SCHEMA: &str = "public";

/// Checks that `sql` parses and is a query, without opening any table
/// (for checking task SQL when a DAG file is loaded: its tables may not
/// exist yet).
pub fn check(sql: &str) -> Result<(), SqlError> {
    if sql.trim().trim_end_matches(';').trim().is_empty() {
        return Err(SqlError::new(SqlErrorKind::Syntax, "the query is empty"));
    }
    let config = SessionConfig::new().set_bool("datafusion.sql_parser.collect_spans", true);
    let state = SessionStateBuilder::new().with_config(config).build();
    let statement = state
        .sql_to_statement(sql, &Dialect::Generic)
        .map_err(|e| SqlError::from_datafusion_in(e, 0, sql))?;
    refuse_statement(&statement, sql)
}

/// The table names a query uses (after checking it parses and is a
/// query), without opening any: for checking that a transform reads its
/// source before anything runs.
pub fn tables_named(sql: &str) -> Result<Vec<String>, SqlError> {
    check(sql)?;
    let config = SessionConfig::new().set_bool("datafusion.sql_parser.collect_spans", true);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    let err = |e| SqlError::from_datafusion_in(e, 0, sql);
    let statement = state
        .sql_to_statement(sql, &Dialect::Generic)
        .map_err(err)?;
    let references = state.resolve_table_references(&statement).map_err(err)?;
    let mut names: Vec<String> = references
        .iter()
        .filter(|r| {
            r.schema().is_none_or(|s| s == SCHEMA) && r.catalog().is_none_or(|c| c == CATALOG)
        })
        .map(|r| r.table().to_string())
        .filter(|n| !state.table_functions().contains_key(n))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Refuses anything but a query (or an EXPLAIN of one) before its tables
/// are looked up: `CREATE TABLE x AS …` is refused for what it is, not for
/// `x` missing.
pub(super) fn refuse_statement(statement: &DfStatement, sql: &str) -> Result<(), SqlError> {
    use deltalake::datafusion::sql::sqlparser::ast::Statement as Ast;
    let query = |s: &Ast| matches!(s, Ast::Query(_));
    let ok = match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Ast::Explain { statement, .. } => query(statement),
            s => query(s),
        },
        DfStatement::Explain(e) => match e.statement.as_ref() {
            DfStatement::Statement(s) => query(s),
            _ => false,
        },
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let what: String = sql
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    Err(SqlError::new(
        SqlErrorKind::NotAllowed,
        format!(
            "{what} … is not allowed: queries only read the lake; write tables with a `lake_sql` task"
        ),
    ))
}

/// Refuses DDL, DML and statements anywhere in the plan: a query only reads.
pub(super) fn refuse_writes(plan: &LogicalPlan) -> Result<(), SqlError> {
    let refused = first_in_plan(plan, |node| match node {
        LogicalPlan::Ddl(ddl) => Some(format!("{} (DDL)", ddl.name())),
        LogicalPlan::Dml(dml) => Some(format!("{} (DML)", dml.op)),
        LogicalPlan::Copy(_) => Some("COPY (DML)".to_string()),
        LogicalPlan::Statement(s) => Some(format!("{} (a statement)", s.name())),
        _ => None,
    });
    match refused {
        Some(what) => Err(SqlError::new(
            SqlErrorKind::NotAllowed,
            format!(
                "{what} is not allowed: queries only read the lake; write tables with a `lake_sql` task"
            ),
        )),
        None => Ok(()),
    }
}

/// The first node of a plan (subqueries included) that `what` names.
pub fn first_in_plan<T>(
    plan: &LogicalPlan,
    mut what: impl FnMut(&LogicalPlan) -> Option<T>,
) -> Option<T> {
    use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = None;
    plan.apply_with_subqueries(|node| {
        found = what(node);
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })
    .expect("the visitor does not fail");
    found
}
