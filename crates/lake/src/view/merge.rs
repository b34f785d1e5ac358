//! What makes a view's SQL mergeable, and the SQL of its layers.
//!
//! A view is one `SELECT keys…, aggregates… FROM source … GROUP BY keys`.
//! Its batch table keeps, per group, **partial** aggregates that two sets
//! of rows can be combined from: a count, a sum, a minimum, a maximum —
//! and an average as its sum and its count. The serving merge (`live`)
//! stacks the batch's partials and the speed rows' partials and combines
//! them per group (counts and sums add, minima and maxima compare, an
//! average divides the summed sums by the summed counts), which equals the
//! view's SQL over all of the rows because the two sets never share a row.
//! An aggregate that cannot be combined from partials (`count(DISTINCT …)`,
//! a median, an expression over aggregates) is refused with its reason,
//! unless the view says `merge = "recompute"`.

use std::collections::BTreeSet;

use deltalake::datafusion::sql::sqlparser::ast::{
    self, DuplicateTreatment, Expr, FunctionArguments, GroupByExpr, Ident, ObjectName,
    ObjectNamePart, SelectItem, SetExpr, Spanned, Statement,
};
use deltalake::datafusion::sql::sqlparser::dialect::GenericDialect;
use deltalake::datafusion::sql::sqlparser::parser::Parser;

use crate::sql::Place;
use crate::sql::write::quote_ident;

/// How a column of the view combines across the batch and speed layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// A grouping key.
    Key,
    /// `count(…)`: the partial counts add.
    Count,
    /// `sum(…)`: the partial sums add.
    Sum,
    /// `min(…)`.
    Min,
    /// `max(…)`.
    Max,
    /// `avg(x)`: kept as `sum(x)` and `count(x)`, divided when served.
    Avg,
}

/// One output column of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The name the view's SQL gives it.
    pub name: String,
    /// How it combines.
    pub combine: Combine,
}

/// A mergeable view's SQL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// The view's columns, in order.
    pub columns: Vec<Column>,
    /// The SQL computing the partial columns ([`MergePlan::partial_columns`])
    /// from the rows of the source: the view's SQL with each average split.
    pub partial_sql: String,
}

/// A problem with a view's SQL: where, and what.
pub type Refusal = (Option<Place>, String);

/// The suffixes of an average's two partial columns.
const AVG_SUM: &str = "__sum";
const AVG_COUNT: &str = "__count";

impl MergePlan {
    /// Takes a view's SQL apart, or says why it cannot be merged exactly.
    pub fn analyse(sql: &str) -> Result<MergePlan, Refusal> {
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql)
            .map_err(|e| (None, format!("syntax error: {e}")))?;
        if statements.len() != 1 {
            return Err((None, "write one SELECT statement".to_string()));
        }
        let Statement::Query(mut query) = statements.remove(0) else {
            return Err((None, "a view is a SELECT … GROUP BY query".to_string()));
        };
        let at = |e: &dyn Spanned| place(e.span().start);
        if query.with.is_some() {
            return Err((
                None,
                "a view is one SELECT … GROUP BY (no WITH); put the common part in a transform"
                    .to_string(),
            ));
        }
        if let Some(o) = &query.order_by {
            return Err((
                None,
                format!(
                    "{o}: a view is unordered; order when you query it (SELECT … FROM live.<view> ORDER BY …)"
                ),
            ));
        }
        if query.limit_clause.is_some() || query.fetch.is_some() {
            return Err((
                None,
                "LIMIT: a view keeps every group; limit when you query it".to_string(),
            ));
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Err((
                None,
                "a view is one SELECT … GROUP BY (no UNION, VALUES or nested query at the top)"
                    .to_string(),
            ));
        };
        if let Some(h) = &select.having {
            return Err((
                at(h),
                "HAVING filters merged groups: filter when you query the view (SELECT … FROM live.<view> WHERE …)".to_string(),
            ));
        }
        if select.distinct.is_some() {
            return Err((
                None,
                "SELECT DISTINCT: a view groups with GROUP BY".to_string(),
            ));
        }
        let GroupByExpr::Expressions(_, modifiers) = &select.group_by else {
            return Err((None, "GROUP BY ALL: name the grouping columns".to_string()));
        };
        if !modifiers.is_empty() {
            return Err((
                None,
                "GROUP BY … WITH ROLLUP/CUBE cannot be merged".to_string(),
            ));
        }
        let aggregates = aggregate_names();
        let mut columns = Vec::new();
        let mut partial = Vec::new();
        let mut names = BTreeSet::new();
        for item in &select.projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                other => {
                    return Err((
                        at(other),
                        format!("{other}: name each column of a view (key columns and aggregates)"),
                    ));
                }
            };
            let combine = combine_of(expr, &aggregates).map_err(|m| (at(expr), m))?;
            let name = match (&alias, expr) {
                (Some(a), _) => a.value.clone(),
                (None, Expr::Identifier(i)) if combine == Combine::Key => i.value.clone(),
                (None, Expr::CompoundIdentifier(parts)) if combine == Combine::Key => {
                    parts.last().map(|i| i.value.clone()).unwrap_or_default()
                }
                (None, e) => {
                    return Err((
                        at(e),
                        format!(
                            "{e}: give it a name ({e} AS <name>): the view's columns are kept by name"
                        ),
                    ));
                }
            };
            if !names.insert(name.clone()) {
                return Err((at(expr), format!("two columns are named {name:?}")));
            }
            if combine == Combine::Avg {
                let Expr::Function(f) = expr else {
                    unreachable!("an average is a call")
                };
                for (fun, suffix) in [("sum", AVG_SUM), ("count", AVG_COUNT)] {
                    let mut call = f.clone();
                    call.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(fun))]);
                    partial.push(SelectItem::ExprWithAlias {
                        expr: Expr::Function(call),
                        alias: Ident::with_quote('"', format!("{name}{suffix}")),
                    });
                }
            } else {
                partial.push(SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', name.clone()),
                });
            }
            columns.push(Column { name, combine });
        }
        if columns.iter().all(|c| c.combine == Combine::Key) {
            return Err((
                None,
                "a view aggregates (count, sum, min, max, avg … GROUP BY keys); for row-by-row SQL use a [[transform]]".to_string(),
            ));
        }
        select.projection = partial;
        Ok(MergePlan {
            columns,
            partial_sql: query.to_string(),
        })
    }

    /// The key columns' names.
    pub fn keys(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.combine == Combine::Key)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The columns of the partial rows, in order (an average as two).
    pub fn partial_columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.columns {
            if c.combine == Combine::Avg {
                out.push(format!("{}{AVG_SUM}", c.name));
                out.push(format!("{}{AVG_COUNT}", c.name));
            } else {
                out.push(c.name.clone());
            }
        }
        out
    }

    /// SQL combining the partial rows of `input` (a table name or a
    /// parenthesised query with an alias) into the view's columns, one row
    /// per group.
    pub fn combined_sql(&self, input: &str) -> String {
        self.combine(input, false)
    }

    /// SQL combining the partial rows of `input` into partial rows again,
    /// one per group: two sets of the speed rows' partials made one.
    pub fn partials_combined_sql(&self, input: &str) -> String {
        self.combine(input, true)
    }

    fn combine(&self, input: &str, keep_partial: bool) -> String {
        let q = |n: &str| quote_ident(n);
        let added = |n: &str| format!("sum({}) AS {}", q(n), q(n));
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let n = q(&c.name);
                let (sum, count) = (
                    format!("{}{AVG_SUM}", c.name),
                    format!("{}{AVG_COUNT}", c.name),
                );
                match c.combine {
                    Combine::Key => n,
                    Combine::Count | Combine::Sum => added(&c.name),
                    Combine::Min => format!("min({n}) AS {n}"),
                    Combine::Max => format!("max({n}) AS {n}"),
                    Combine::Avg if keep_partial => format!("{}, {}", added(&sum), added(&count)),
                    Combine::Avg => format!(
                        "CAST(sum({}) AS DOUBLE) / CAST(sum({}) AS DOUBLE) AS {n}",
                        q(&sum),
                        q(&count),
                    ),
                }
            })
            .collect();
        let keys: Vec<String> = self.keys().iter().map(|k| q(k)).collect();
        let mut sql = format!("SELECT {} FROM {input}", select.join(", "));
        if !keys.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
        }
        sql
    }

    /// SQL stacking the partial rows of two inputs (the batch table and
    /// the speed rows' partials), for [`MergePlan::combined_sql`].
    pub fn stacked(&self, batch: &str, speed: &str) -> String {
        let cols: Vec<String> = self
            .partial_columns()
            .iter()
            .map(|c| quote_ident(c))
            .collect();
        let cols = cols.join(", ");
        format!("(SELECT {cols} FROM {batch} UNION ALL SELECT {cols} FROM {speed}) AS stacked")
    }
}

/// How a projected expression combines: a key (no aggregate in it), or
/// one mergeable aggregate call; anything else is refused with why.
fn combine_of(expr: &Expr, aggregates: &BTreeSet<String>) -> Result<Combine, String> {
    if let Expr::Function(f) = expr {
        let name = f.name.to_string().to_lowercase();
        if aggregates.contains(&name) {
            let combine = match name.as_str() {
                "count" => Combine::Count,
                "sum" => Combine::Sum,
                "min" => Combine::Min,
                "max" => Combine::Max,
                "avg" | "mean" => Combine::Avg,
                _ => {
                    return Err(format!(
                        "{expr}: {name} cannot be combined from partial results of the batch and the speed rows; \
                         use count, sum, min, max or avg, or declare merge = \"recompute\" (live then reads the whole source)"
                    ));
                }
            };
            if let FunctionArguments::List(l) = &f.args
                && l.duplicate_treatment == Some(DuplicateTreatment::Distinct)
            {
                return Err(format!(
                    "{expr}: a DISTINCT aggregate cannot be combined from the batch's and the speed rows' results \
                     (a value may be in both); declare merge = \"recompute\" (live then reads the whole source)"
                ));
            }
            if f.over.is_some() {
                return Err(format!(
                    "{expr}: a window function is not an aggregate of a view"
                ));
            }
            return Ok(combine);
        }
    }
    let mut nested = None;
    let _ = ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e
            && aggregates.contains(&f.name.to_string().to_lowercase())
            && f.over.is_none()
        {
            nested = Some(e.to_string());
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    match nested {
        Some(inner) => Err(format!(
            "{expr}: an expression over an aggregate ({inner}) cannot be combined from partial results; \
             select the aggregate itself and compute the expression when you query the view, \
             or declare merge = \"recompute\""
        )),
        None => Ok(Combine::Key),
    }
}

/// DataFusion's aggregate function names (lower case).
fn aggregate_names() -> BTreeSet<String> {
    use deltalake::datafusion::execution::session_state::SessionStateBuilder;
    let state = SessionStateBuilder::new().with_default_features().build();
    state.aggregate_functions().keys().cloned().collect()
}

fn place(at: deltalake::datafusion::sql::sqlparser::tokenizer::Location) -> Option<Place> {
    (at.line > 0).then_some(Place {
        line: at.line,
        column: at.column,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_split_into_sum_and_count_and_keys_group_the_combination() {
        let p = MergePlan::analyse(
            "SELECT u.nation, date, count(*) AS users, avg(latitude) AS lat, \
             max(age) AS oldest FROM users u WHERE age > 3 GROUP BY u.nation, date",
        )
        .unwrap();
        assert_eq!(p.keys(), ["nation", "date"]);
        assert_eq!(
            p.partial_columns(),
            [
                "nation",
                "date",
                "users",
                "lat__sum",
                "lat__count",
                "oldest"
            ]
        );
        assert!(
            p.partial_sql.contains("sum(latitude) AS \"lat__sum\"")
                && p.partial_sql.contains("count(latitude) AS \"lat__count\"")
                && p.partial_sql
                    .contains("WHERE age > 3 GROUP BY u.nation, date"),
            "{}",
            p.partial_sql
        );
        let s = p.combined_sql("b");
        assert!(s.contains("sum(\"users\") AS \"users\""), "{s}");
        assert!(s.ends_with("GROUP BY \"nation\", \"date\""), "{s}");
        // Partials combined stay partials: an average's sum and count add.
        let s = p.partials_combined_sql("b");
        assert!(
            s.contains("sum(\"lat__sum\") AS \"lat__sum\", sum(\"lat__count\") AS \"lat__count\"")
                && s.contains("max(\"oldest\") AS \"oldest\"")
                && !s.contains("DOUBLE"),
            "{s}"
        );
    }

    #[test]
    fn what_cannot_be_merged_is_refused_with_the_reason_and_its_place() {
        for (sql, says, line) in [
            (
                "SELECT nation, count(DISTINCT city) AS c FROM users GROUP BY nation",
                "DISTINCT",
                1,
            ),
            (
                "SELECT nation,\n  median(age) AS m FROM users GROUP BY nation",
                "median cannot be combined",
                2,
            ),
            (
                "SELECT nation, sum(a) / count(*) AS r FROM users GROUP BY nation",
                "expression over an aggregate",
                1,
            ),
            (
                "SELECT nation, count(*) FROM users GROUP BY nation",
                "give it a name",
                1,
            ),
            (
                "SELECT nation, count(*) AS n FROM users GROUP BY nation HAVING count(*) > 1",
                "HAVING",
                1,
            ),
            ("SELECT nation FROM users", "a view aggregates", 0),
        ] {
            let (at, msg) = MergePlan::analyse(sql).unwrap_err();
            assert!(msg.contains(says), "{sql}: {msg}");
            assert_eq!(at.map_or(0, |p| p.line), line, "{sql}: {msg}");
        }
    }
}
