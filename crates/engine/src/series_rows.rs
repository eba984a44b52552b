//! Rows per series (per system, per device) of a stream, for the run summary: the operators
//! of a migration check its progress system by system.
//!
//! A stream whose source names series columns is counted by the value of the first one
//! (`system_id`, ThingsBoard's `entity_id`): rows read and rows rejected, per partition,
//! added to the stream's totals when the partition commits.

use std::collections::BTreeMap;

use serde::Serialize;
use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{Batch, ValueRef};

/// Rows of one series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SeriesRows {
    /// Rows read (after an unpivot: narrow rows).
    pub read: u64,
    /// Rows rejected (in the rejects file).
    pub rejected: u64,
}

/// Per-series counts of one partition (or, merged, of a stream).
#[derive(Clone, Debug, Default)]
pub struct SeriesCounts {
    /// Series value (as text) → rows.
    pub rows: BTreeMap<String, SeriesRows>,
}

impl SeriesCounts {
    /// Counts the rows of `batch` by the value of column `col`, and `rejected` (row indexes
    /// of the batch) as rejected. Rows of one series usually come together, so the value is
    /// turned into text once per run of equal values.
    pub fn add(&mut self, batch: &Batch, col: usize, rejected: &[usize]) {
        let Some(column) = batch.columns.get(col) else {
            return;
        };
        let mut run: Option<(ValueRef<'_>, u64)> = None;
        for row in 0..batch.len() {
            let v = column.get(row);
            match &mut run {
                Some((prev, n)) if *prev == v => *n += 1,
                _ => {
                    if let Some((prev, n)) = run.take() {
                        self.entry(prev).read += n;
                    }
                    run = Some((v, 1));
                }
            }
        }
        if let Some((prev, n)) = run {
            self.entry(prev).read += n;
        }
        for &row in rejected {
            if row < batch.len() {
                self.entry(column.get(row)).rejected += 1;
            }
        }
    }

    fn entry(&mut self, v: ValueRef<'_>) -> &mut SeriesRows {
        self.rows.entry(value_to_string(v)).or_default()
    }

    /// Adds another partition's counts.
    pub fn absorb(&mut self, other: SeriesCounts) {
        for (k, v) in other.rows {
            let e = self.rows.entry(k).or_default();
            e.read += v.read;
            e.rejected += v.rejected;
        }
    }

    /// The series in a natural order: numerically when every value is an integer.
    pub fn ordered(rows: &BTreeMap<String, SeriesRows>) -> Vec<(&String, &SeriesRows)> {
        let mut out: Vec<_> = rows.iter().collect();
        if out.iter().all(|(k, _)| k.parse::<i64>().is_ok()) {
            out.sort_by_key(|(k, _)| k.parse::<i64>().unwrap_or(0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use tsmigrate_core::{Column, DataType, Field, Schema};

    #[test]
    fn counts_rows_and_rejects_per_series() {
        let mut c = Column::with_capacity(DataType::Int64, 6);
        for v in [2, 2, 10, 10, 10, 2] {
            c.push_i64(v);
        }
        c.push_null();
        let schema = Arc::new(Schema::new(vec![Field::new("system_id", DataType::Int64)]));
        let batch = Batch::new(schema, vec![Arc::new(c)]).expect("batch");
        let mut counts = SeriesCounts::default();
        counts.add(&batch, 0, &[3, 6]);
        let mut more = SeriesCounts::default();
        more.add(&batch, 0, &[]);
        counts.absorb(more);
        let ordered: Vec<(String, SeriesRows)> = SeriesCounts::ordered(&counts.rows)
            .into_iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let names: Vec<&str> = ordered.iter().map(|(k, _)| k.as_str()).collect();
        // NULL is not an integer, so the order is the text order.
        assert_eq!(names.len(), 3);
        let get = |name: &str| ordered.iter().find(|(k, _)| k == name).map(|x| x.1);
        assert_eq!(
            get("2"),
            Some(SeriesRows {
                read: 6,
                rejected: 0
            })
        );
        assert_eq!(
            get("10"),
            Some(SeriesRows {
                read: 6,
                rejected: 1
            })
        );
        let null = ordered
            .iter()
            .find(|(k, _)| k != "2" && k != "10")
            .map(|x| x.1);
        assert_eq!(
            null,
            Some(SeriesRows {
                read: 2,
                rejected: 1
            })
        );
        let mut numeric = counts.rows.clone();
        numeric.retain(|k, _| k == "2" || k == "10");
        let names: Vec<&String> = SeriesCounts::ordered(&numeric)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(names, ["2", "10"]);
    }
}
