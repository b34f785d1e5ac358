//! The table provider queries see: deltalake's scan, with two corrections.
//!
//! Its Parquet readers load each file's page index with the footer, so both
//! stay in the engine's metadata cache across queries
//! ([`super::page_index`]).
//!
//! deltalake 1.1.3 answers a scan that needs no columns (`SELECT 1 FROM t
//! LIMIT 1`, `EXISTS (…)`) from the log alone (`DeltaScanMetaExec`), and
//! that plan claims to take the limit but returns every row, so DataFusion
//! drops its own limit and the query returns the whole table. A scan with a
//! limit and no columns therefore reads one real column and projects it
//! away; every other scan (`count(*)` from statistics included) is
//! deltalake's own.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::{Result, Statistics};
use deltalake::datafusion::datasource::TableType;
use deltalake::datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

use super::page_index::with_cached_page_index;

/// A Delta table provider whose column-less limited scans honour the limit.
#[derive(Debug)]
pub(crate) struct LakeTable {
    inner: Arc<dyn TableProvider>,
}

impl LakeTable {
    pub(crate) fn new(inner: Arc<dyn TableProvider>) -> LakeTable {
        LakeTable { inner }
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columnless = projection.is_some_and(|p| p.is_empty());
        let one = vec![0];
        let fix_limit = columnless && limit.is_some() && !self.schema().fields().is_empty();
        let projection = if fix_limit { Some(&one) } else { projection };
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        let plan = with_cached_page_index(plan)?;
        if !fix_limit {
            return Ok(plan);
        }
        let none: Vec<ProjectionExpr> = Vec::new();
        Ok(Arc::new(ProjectionExec::try_new(none, plan)?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}
