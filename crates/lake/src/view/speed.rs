//! The tables a view's layers read, and the speed layer's rows: the source
//! rows past the batch's mark.

use deltalake::DeltaTable;

use super::coverage::{Coverage, keyed_by_offset};
use super::spec::ViewSpec;
use crate::LakeError;
use crate::sql::Bound;
use crate::transform::changes::{Since, added_since};

/// The tables a layer reads, opened once.
pub(super) struct Opened {
    pub source: DeltaTable,
    pub batch: Option<Batch>,
}

/// The batch table as loaded, with its mark.
pub(super) struct Batch {
    pub table: DeltaTable,
    pub coverage: Coverage,
    /// `table vN (covers…, refreshed at T)`, for the reader of an answer.
    pub said: String,
}

impl Batch {
    /// The batch table's version.
    pub fn version(&self) -> u64 {
        self.table.version().unwrap_or(0)
    }
}

/// The most source commits a query reads to find the files added since
/// the batch; past that (a stale batch) the speed rows are found by
/// scanning the whole source with the offset predicate instead.
pub(super) const MOST_COMMITS_READ: u64 = 500;

/// The speed layer's rows, and whether batch + speed is the source.
pub(super) struct Speed {
    /// The source rows past the batch's mark (all of them without a
    /// batch); `None` when they cannot be told apart (a derived source that
    /// removed rows after the batch).
    pub rows: Option<Bound>,
    /// Why the batch no longer merges: the source removed rows after it (a
    /// `DELETE`, an overwrite), so the batch counts rows the source no
    /// longer holds and only a recomputation is exact.
    pub stale: Option<String>,
}

pub(super) async fn speed(spec: &ViewSpec, o: &Opened) -> Result<Speed, LakeError> {
    let source = || o.source.clone();
    let Some(batch) = &o.batch else {
        return Ok(Speed {
            rows: Some(Bound::Table(source())),
            stale: None,
        });
    };
    let coverage = &batch.coverage;
    let keyed = keyed_by_offset(&o.source.snapshot()?.snapshot().arrow_schema());
    let to = o.source.version().unwrap_or(0);
    let since = added_since(
        &o.source,
        &spec.source,
        coverage.version,
        to,
        MOST_COMMITS_READ,
    )
    .await?;
    let stale = match since {
        Since::Rewritten(v) => Some(format!(
            "{}@{v} removed rows after the batch (refresh it)",
            spec.source
        )),
        _ => None,
    };
    let files = |files| Bound::Files {
        table: source(),
        files,
    };
    let filtered = |rows| Bound::Where {
        rows: Box::new(rows),
        predicate: coverage.speed_predicate(),
    };
    let rows = match (since, keyed) {
        // A stream table: a writer's appends after the batch hold only
        // offsets past the mark (each of its commits is fenced on the
        // offsets before it), so they need no test; a compaction's files
        // may also hold rows the batch has, so then the offsets decide row
        // by row, and over the whole table when the files are unknown.
        (
            Since::Files {
                files: f,
                rearranged: false,
            },
            _,
        ) => Some(files(f)),
        (Since::Files { files: f, .. }, true) => Some(filtered(files(f))),
        (_, true) => Some(filtered(Bound::Table(source()))),
        // A derived table's rows carry no mark of their own: the appends.
        (Since::Rewritten(_), false) => None,
        (_, false) => Some(files(
            crate::transform::changes::appended(&o.source, &spec.source, coverage.version, to)
                .await?
                .files,
        )),
    };
    Ok(Speed { rows, stale })
}
