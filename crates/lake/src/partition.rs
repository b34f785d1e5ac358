//! Splitting buffered rows into the table's partitions (one file each).
//!
//! The writer flushes many Kafka partitions' rows at once, and those rows
//! scatter over many table partitions (`nation=FR/date=…`). Writing them
//! through one Delta writer keeps an open Parquet encoder per table
//! partition until the flush ends, which costs memory in proportion to the
//! number of partitions (page buffers, compression contexts and each file's
//! row group). [`PartitionPlan`] instead groups the rows first, without
//! copying them, and [`PartitionPlan::materialize`] gathers one group at a
//! time, so the writer can encode and close one file before starting the
//! next.

use std::collections::HashMap;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::interleave;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use delta_kernel::expressions::Scalar;
use deltalake::kernel::scalars::ScalarExt;
use indexmap::IndexMap;

/// The rows of a set of batches grouped by their partition values.
#[derive(Debug)]
pub struct PartitionPlan {
    groups: Vec<Group>,
}

#[derive(Debug)]
struct Group {
    /// Partition column name → value, in the table's partition order.
    values: IndexMap<String, Scalar>,
    /// (batch, row) of each row of the group, in input order.
    rows: Vec<(usize, usize)>,
}

impl PartitionPlan {
    /// Groups the rows of `batches` (which share one schema holding every
    /// column of `columns`) by the values of `columns`, in order of first
    /// appearance.
    pub fn new(batches: &[RecordBatch], columns: &[String]) -> Result<Self, ArrowError> {
        let Some(first) = batches.first() else {
            return Ok(PartitionPlan { groups: Vec::new() });
        };
        let schema = first.schema();
        let idx = columns
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<Result<Vec<_>, _>>()?;
        let converter = RowConverter::new(
            idx.iter()
                .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                .collect(),
        )?;
        let mut by_key: HashMap<Box<[u8]>, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let keys: Vec<ArrayRef> = idx.iter().map(|&i| batch.column(i).clone()).collect();
            let rows = converter.convert_columns(&keys)?;
            for (r, row) in rows.iter().enumerate() {
                let g = match by_key.get(row.as_ref()) {
                    Some(&g) => g,
                    None => {
                        let values = columns
                            .iter()
                            .zip(&keys)
                            .map(|(name, col)| {
                                let v = Scalar::from_array(col.as_ref(), r).ok_or_else(|| {
                                    ArrowError::InvalidArgumentError(format!(
                                        "partition column {name} has a value of type {} \
                                         Delta cannot store as a partition value",
                                        col.data_type()
                                    ))
                                })?;
                                Ok((name.clone(), v))
                            })
                            .collect::<Result<IndexMap<_, _>, ArrowError>>()?;
                        groups.push(Group {
                            values,
                            rows: Vec::new(),
                        });
                        by_key.insert(row.as_ref().into(), groups.len() - 1);
                        groups.len() - 1
                    }
                };
                groups[g].rows.push((b, r));
            }
        }
        Ok(PartitionPlan { groups })
    }

    /// How many partitions the rows fall in.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The partition values of group `g`.
    pub fn values(&self, g: usize) -> &IndexMap<String, Scalar> {
        &self.groups[g].values
    }

    /// The rows of group `g` gathered into one batch (one copy; a group
    /// that is one whole input batch is shared, not copied).
    pub fn materialize(
        &self,
        batches: &[RecordBatch],
        g: usize,
    ) -> Result<RecordBatch, ArrowError> {
        let rows = &self.groups[g].rows;
        if let (Some(&(b, 0)), Some(&(last_b, last_r))) = (rows.first(), rows.last())
            && b == last_b
            && last_r + 1 == rows.len()
            && batches[b].num_rows() == rows.len()
        {
            return Ok(batches[b].clone());
        }
        let schema = batches[0].schema();
        let columns = (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn arrow::array::Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, rows)
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(schema, columns)
    }
}

/// Writes `batches` (which share one schema) as Parquet files of `table`,
/// one table partition at a time, each file closed before the next starts
/// (one Parquet encoder open, not one per partition); returns the `add`
/// actions to commit. `columns` are the table's partition columns.
pub async fn write_files(
    table: &deltalake::DeltaTable,
    columns: &[String],
    batches: &[RecordBatch],
    props: parquet::file::properties::WriterProperties,
) -> Result<Vec<deltalake::kernel::Add>, crate::LakeError> {
    use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let mut w = RecordBatchWriter::for_table(table)?.with_writer_properties(props);
    if columns.is_empty() {
        for b in batches {
            w.write(b.clone()).await?;
        }
        return Ok(w.flush().await?);
    }
    let plan = PartitionPlan::new(batches, columns)?;
    let mut adds = Vec::with_capacity(plan.len());
    for g in 0..plan.len() {
        let rows = plan.materialize(batches, g)?;
        w.write_partition(rows, plan.values(g), WriteMode::Default)
            .await?;
        adds.extend(w.flush().await?);
    }
    Ok(adds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Array, Date32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(rows: &[(i64, Option<&str>, i32)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("nation", DataType::Utf8, true),
            Field::new("date", DataType::Date32, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn ids(b: &RecordBatch) -> Vec<i64> {
        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        a.values().to_vec()
    }

    #[test]
    fn rows_of_many_batches_are_grouped_in_order_without_loss() {
        let batches = [
            batch(&[
                (1, Some("FR"), 10),
                (2, Some("DE"), 10),
                (3, Some("FR"), 11),
            ]),
            batch(&[(4, Some("FR"), 10), (5, None, 10), (6, Some("DE"), 10)]),
        ];
        let cols = ["nation".to_string(), "date".to_string()];
        let plan = PartitionPlan::new(&batches, &cols).unwrap();
        assert_eq!(plan.len(), 4);
        let got: Vec<(String, Vec<i64>)> = (0..plan.len())
            .map(|g| {
                let v = plan.values(g);
                assert_eq!(v.keys().collect::<Vec<_>>(), ["nation", "date"]);
                let b = plan.materialize(&batches, g).unwrap();
                assert_eq!(b.schema(), batches[0].schema());
                (
                    format!("{}/{}", v["nation"].serialize(), v["date"].serialize()),
                    ids(&b),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("FR/1970-01-11".to_string(), vec![1, 4]),
                ("DE/1970-01-11".to_string(), vec![2, 6]),
                ("FR/1970-01-12".to_string(), vec![3]),
                ("null/1970-01-11".to_string(), vec![5]),
            ]
        );
        // The null partition value stays a null, of the column's type.
        assert!(plan.values(3)["nation"].is_null());
    }

    #[test]
    fn a_group_that_is_a_whole_batch_is_shared() {
        let batches = [
            batch(&[(1, Some("FR"), 10), (2, Some("FR"), 10)]),
            batch(&[(3, Some("DE"), 10)]),
        ];
        let plan = PartitionPlan::new(&batches, &["nation".to_string()]).unwrap();
        let fr = plan.materialize(&batches, 0).unwrap();
        assert_eq!(ids(&fr), [1, 2]);
        assert!(Arc::ptr_eq(fr.column(0), batches[0].column(0)));
        assert_eq!(plan.materialize(&batches, 1).unwrap().column(1).len(), 1);
    }

    #[test]
    fn no_batches_no_groups() {
        let plan = PartitionPlan::new(&[], &["nation".to_string()]).unwrap();
        assert!(plan.is_empty());
    }
}
