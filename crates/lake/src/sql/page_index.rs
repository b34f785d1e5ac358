//! Parquet page indexes kept with the footers the engine already caches.
//!
//! DataFusion 55 caches each file's footer across queries (the runtime's
//! file-metadata cache, which deltalake's scan reads through), but it asks
//! for the footer *without* the page index and then, whenever a filter could
//! prune pages, reads the page index from the file again — on every query,
//! for every file, and never into the cache. On a streamed table of small
//! files that read is a third of a filtered count's time (one more object
//! store request per file; measured in `bench/sql.sh`, q1).
//!
//! [`with_cached_page_index`] rewrites a scan so each file's reader asks for
//! the footer *with* its page index (`PageIndexPolicy::Optional`): the first
//! query reads and caches both, later ones find both in the cache and the
//! opener sees the index already there. Page pruning is kept; only the
//! repeated read goes.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use deltalake::datafusion::common::Result;
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode};
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
};
use deltalake::datafusion::datasource::source::DataSourceExec;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

/// The plan with every Parquet scan's readers asking for page indexes along
/// with footers (so both are cached together).
pub(crate) fn with_cached_page_index(
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        Ok(match rebuild(node.as_ref()) {
            Some(rebuilt) => Transformed::yes(rebuilt),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// A Parquet `DataSourceExec` rebuilt with [`WithPageIndex`] readers; `None`
/// for any other node, and when page indexes are off
/// (`datafusion.execution.parquet.enable_page_index = false`).
fn rebuild(node: &dyn ExecutionPlan) -> Option<Arc<dyn ExecutionPlan>> {
    let exec = node.downcast_ref::<DataSourceExec>()?;
    let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
    let source = config.file_source.downcast_ref::<ParquetSource>()?;
    if !source.table_parquet_options().global.enable_page_index {
        return None;
    }
    let inner = source.parquet_file_reader_factory()?;
    let factory = Arc::new(WithPageIndex(inner.clone()));
    let source = source.clone().with_parquet_file_reader_factory(factory);
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Some(DataSourceExec::from_data_source(config))
}

/// A reader factory whose readers load the page index with the footer.
struct WithPageIndex(Arc<dyn ParquetFileReaderFactory>);

impl fmt::Debug for WithPageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WithPageIndex").field(&self.0).finish()
    }
}

impl ParquetFileReaderFactory for WithPageIndex {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.0.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(Reader(inner)))
    }
}

struct Reader(Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for Reader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        async move { self.0.get_metadata(Some(&options)).await }.boxed()
    }
}
