//! Per-series watermarks: the newest time seen for each series of a partition, recorded in
//! the ledger with the partition so `sync` knows where each series stopped.

use std::collections::HashMap;

use tsmigrate_core::{Batch, ColumnData, SeriesInfo, ValueRef};

/// Tracks the newest time per series over the batches of one partition.
pub struct SeriesTracker {
    series_idx: Vec<usize>,
    time_idx: usize,
    /// Raw series key (the values' bytes, tagged) → newest time.
    newest: HashMap<Vec<u8>, (i64, String)>,
    /// Highest watermark recorded (the time of the read, in the source's units).
    cap: i64,
}

impl SeriesTracker {
    /// A tracker for `info`'s columns in batches of `schema`, or `None` when a column is
    /// missing. Times above `cap` are recorded as `cap`.
    pub fn new(
        info: &SeriesInfo,
        schema: &tsmigrate_core::Schema,
        cap: i64,
    ) -> Option<SeriesTracker> {
        let series_idx = info
            .columns
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<Option<Vec<_>>>()?;
        Some(SeriesTracker {
            series_idx,
            time_idx: schema.index_of(&info.time_column)?,
            newest: HashMap::new(),
            cap,
        })
    }

    /// Adds the rows of a source batch.
    pub fn add(&mut self, batch: &Batch) {
        let Some(time_col) = batch.columns.get(self.time_idx) else {
            return;
        };
        let ColumnData::Int(times) = time_col.data() else {
            return;
        };
        let mut key = Vec::with_capacity(64);
        // The current run of rows of one series: (key, newest time, one of its rows).
        let mut last: Option<(Vec<u8>, i64, usize)> = None;
        for (row, &t) in times.iter().enumerate() {
            if !time_col.is_valid(row) {
                continue;
            }
            let t = t.min(self.cap);
            key.clear();
            for &c in &self.series_idx {
                encode(&mut key, batch.columns[c].get(row));
            }
            // Runs of the same series are common: keep the running max locally.
            match &mut last {
                Some((k, m, _)) if *k == key => *m = (*m).max(t),
                _ => {
                    if let Some((k, m, r)) = last.take() {
                        self.bump(k, m, batch, r);
                    }
                    last = Some((key.clone(), t, row));
                }
            }
        }
        if let Some((k, m, r)) = last {
            self.bump(k, m, batch, r);
        }
    }

    fn bump(&mut self, key: Vec<u8>, t: i64, batch: &Batch, row: usize) {
        if let Some(e) = self.newest.get_mut(&key) {
            e.0 = e.0.max(t);
            return;
        }
        // First time this series is seen: name it as a JSON array of its values (text).
        let values: Vec<Option<String>> = self
            .series_idx
            .iter()
            .map(|&c| match batch.columns[c].get(row) {
                ValueRef::Null => None,
                v => Some(tsmigrate_core::convert::value_to_string(v)),
            })
            .collect();
        let name = serde_json::to_string(&values).unwrap_or_default();
        self.newest.insert(key, (t, name));
    }

    /// (series as a JSON array, newest time), sorted by series.
    pub fn finish(self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = self.newest.into_values().map(|(t, n)| (n, t)).collect();
        out.sort();
        out
    }
}

/// Appends a tagged, length-prefixed encoding of a value's raw bytes (distinct values never
/// share an encoding within one column type).
fn encode(out: &mut Vec<u8>, v: ValueRef<'_>) {
    let mut put = |tag: u8, bytes: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Bool(b) => put(1, &[u8::from(b)]),
        ValueRef::Int(i) => put(2, &i.to_le_bytes()),
        ValueRef::Float(f) => put(3, &f.to_bits().to_le_bytes()),
        ValueRef::Str(s) => put(4, s.as_bytes()),
        ValueRef::Bytes(b) => put(7, b),
        ValueRef::Uuid(u) => put(5, u),
        ValueRef::Timestamp(t, _) => put(6, &t.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tsmigrate_core::{Column, DataType, Field, Schema};

    use super::*;

    #[test]
    fn newest_time_per_series_capped() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("entity_id", DataType::Text),
            Field::new("key", DataType::Text),
            Field::new("ts", DataType::Int64),
        ]));
        let rows = [
            ("a", "t", 5),
            ("a", "t", 9),
            ("b", "t", 7),
            ("a", "t", 3),
            ("a", "h", 1),
            ("b", "t", 1_000),
        ];
        let (mut e, mut k, mut t) = (
            Column::with_capacity(DataType::Text, 6),
            Column::with_capacity(DataType::Text, 6),
            Column::with_capacity(DataType::Int64, 6),
        );
        for (a, b, c) in rows {
            e.push_str(a);
            k.push_str(b);
            t.push_i64(c);
        }
        let batch = match Batch::new(schema.clone(), vec![Arc::new(e), Arc::new(k), Arc::new(t)]) {
            Some(b) => b,
            None => panic!("bad batch"),
        };
        let info = SeriesInfo {
            columns: vec!["entity_id".into(), "key".into()],
            time_column: "ts".into(),
            ticks_per_second: 1000,
        };
        let Some(mut tr) = SeriesTracker::new(&info, &schema, 100) else {
            panic!("columns not found");
        };
        tr.add(&batch);
        assert_eq!(
            tr.finish(),
            vec![
                (r#"["a","h"]"#.to_string(), 1),
                (r#"["a","t"]"#.to_string(), 9),
                (r#"["b","t"]"#.to_string(), 100),
            ]
        );
    }
}
