//! The quality table: one row per expectation per `lake_check` try,
//! appended to a lake table (`tributary_quality` by default) so results can
//! be queried, charted on the Query page, and kept with the data they judge.
//! Appended once per try (a `txn` whose version is the try number).

use std::sync::Arc;

use lake::deltalake::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use lake::deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use lake::sql::LakeCatalog;
use scheduler::operator::{TaskContext, TaskError};

/// What one try checked.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The table (and filter) or "the query's rows".
    pub scope: &'a str,
    /// Rows checked.
    pub rows: i64,
    /// Tables read, with versions (`users v12`).
    pub read: &'a str,
}

/// One expectation's verdict.
#[derive(Debug)]
pub struct Verdict<'a> {
    /// Its name.
    pub expectation: &'a str,
    /// `row`, `assert` or `fresh`.
    pub kind: &'a str,
    /// `fail` or `warn`: what a failure does.
    pub severity: &'a str,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub observed: &'a str,
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The quality table's columns.
pub fn schema() -> Schema {
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    Schema::new(vec![
        Field::new("checked_at", utc_micros(), false),
        text("dag_id"),
        text("task_id"),
        text("run_id"),
        Field::new("logical_date", utc_micros(), false),
        Field::new("try_number", DataType::Int64, false),
        text("scope"),
        text("tables_read"),
        Field::new("rows_checked", DataType::Int64, false),
        text("expectation"),
        text("kind"),
        text("severity"),
        Field::new("passed", DataType::Boolean, false),
        text("observed"),
    ])
}

/// Appends a try's verdicts; returns the table's version after.
pub async fn record(
    catalog: &LakeCatalog,
    table: &str,
    ctx: &TaskContext,
    checked: &Checked<'_>,
    verdicts: &[Verdict<'_>],
) -> Result<u64, TaskError> {
    let n = verdicts.len();
    let now = chrono::Utc::now().timestamp_micros();
    let repeat = |s: &str| Arc::new(StringArray::from(vec![s; n])) as ArrayRef;
    let time = |t: i64| {
        Arc::new(TimestampMicrosecondArray::from(vec![t; n]).with_timezone("UTC")) as ArrayRef
    };
    let strings = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        time(now),
        repeat(&ctx.dag_id),
        repeat(&ctx.task_id),
        repeat(&ctx.run_id),
        time(ctx.logical_date.timestamp_micros()),
        Arc::new(Int64Array::from(vec![i64::from(ctx.try_number); n])),
        repeat(checked.scope),
        repeat(checked.read),
        Arc::new(Int64Array::from(vec![checked.rows; n])),
        strings(verdicts.iter().map(|v| v.expectation).collect()),
        strings(verdicts.iter().map(|v| v.kind).collect()),
        strings(verdicts.iter().map(|v| v.severity).collect()),
        Arc::new(BooleanArray::from_iter(
            verdicts.iter().map(|v| Some(v.passed)),
        )),
        strings(verdicts.iter().map(|v| v.observed).collect()),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema()), columns)
        .map_err(|e| TaskError::Fatal(format!("building the quality rows: {e}")))?;
    let app_id = super::app_id(ctx, table);
    let txn = (app_id.as_str(), i64::from(ctx.try_number));
    // Checks of a backfill's parallel days append side by side; only the
    // table's creation can collide, and then the table is there to append to.
    let mut attempt = 1;
    loop {
        match lake::sql::write::append_batches(catalog, table, vec![batch.clone()], &[], txn).await
        {
            Ok((version, _)) => return Ok(version),
            Err(e) if e.kind == lake::sql::SqlErrorKind::Conflict && attempt < 5 => attempt += 1,
            Err(e) => {
                return Err(TaskError::Retryable(format!(
                    "recording the results in {table}: {e}"
                )));
            }
        }
    }
}
