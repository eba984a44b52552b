//! Per-series watermarks: the newest time seen for each series of a partition, recorded in
//! the ledger with the partition so `sync` knows where each series stopped.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tsmigrate_core::{Batch, ColumnData, SeriesInfo, ValueRef};
use xxhash_rust::xxh3::xxh3_64;

/// The keys of [`SeriesTracker::newest`] are already xxh3 hashes: use them as they are.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for u64 keys; fold anything else in for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One series seen in the partition.
struct Seen {
    /// The series' raw key (compared on every hash hit, so a hash collision cannot merge two
    /// series).
    key: Vec<u8>,
    /// Newest time not after the cap (`None`: every row so far is stamped in the future).
    newest: Option<i64>,
    name: String,
}

/// Tracks the newest time per series over the batches of one partition.
///
/// A series' watermark is its newest time *not after the time of the read* (`cap`): a row
/// stamped in the future (a device with a wrong clock) is copied, but does not move the
/// series' watermark, so rows that arrive later with the right time are still read by the
/// next sync (which re-reads the future row too, and skips it as present). A series whose
/// every row is in the future gets the cap. The newest time of all, future rows included,
/// is kept apart for reporting ([`Watermarks::newest`]).
pub struct SeriesTracker {
    series_idx: Vec<usize>,
    time_idx: usize,
    /// xxh3 of the raw series key (the values' bytes, tagged) → the series with that hash.
    newest: HashMap<u64, Vec<Seen>, BuildHasherDefault<PreHashed>>,
    /// The time of the read, in the source's units.
    cap: i64,
    /// Newest time of every row, future ones included.
    newest_any: Option<i64>,
}

/// What a partition's rows say about the series' times.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Watermarks {
    /// (series as a JSON array, watermark), sorted by series.
    pub series: Vec<(String, i64)>,
    /// Newest time of any row (future-stamped rows included), in the source's units.
    pub newest: Option<i64>,
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
            newest: HashMap::default(),
            cap,
            newest_any: None,
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
        for (row, &t) in times.iter().enumerate() {
            if !time_col.is_valid(row) {
                continue;
            }
            self.newest_any = Some(self.newest_any.map_or(t, |n| n.max(t)));
            let past = (t <= self.cap).then_some(t);
            key.clear();
            for &c in &self.series_idx {
                encode(&mut key, batch.columns[c].get(row));
            }
            let bucket = self.newest.entry(xxh3_64(&key)).or_default();
            match bucket.iter_mut().find(|s| s.key == key) {
                Some(seen) => seen.newest = seen.newest.max(past),
                None => bucket.push(Seen {
                    key: key.clone(),
                    newest: past,
                    name: series_name(&self.series_idx, batch, row),
                }),
            }
        }
    }

    /// The series' watermarks and the newest time of all.
    pub fn finish(self) -> Watermarks {
        let cap = self.cap;
        let mut series: Vec<(String, i64)> = self
            .newest
            .into_values()
            .flatten()
            .map(|s| (s.name, s.newest.unwrap_or(cap)))
            .collect();
        series.sort();
        Watermarks {
            series,
            newest: self.newest_any,
        }
    }
}

/// A series' name: the JSON array of its values as text.
fn series_name(columns: &[usize], batch: &Batch, row: usize) -> String {
    let values: Vec<Option<String>> = columns
        .iter()
        .map(|&c| match batch.columns[c].get(row) {
            ValueRef::Null => None,
            v => Some(tsmigrate_core::convert::value_to_string(v)),
        })
        .collect();
    serde_json::to_string(&values).unwrap_or_default()
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
    fn newest_time_per_series_ignores_future_rows() {
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
            ("c", "t", 2_000),
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
        let w = tr.finish();
        assert_eq!(
            w.series,
            vec![
                (r#"["a","h"]"#.to_string(), 1),
                (r#"["a","t"]"#.to_string(), 9),
                // A future row does not move the watermark past the series' other rows…
                (r#"["b","t"]"#.to_string(), 7),
                // …and a series with only future rows is capped at the time of the read.
                (r#"["c","t"]"#.to_string(), 100),
            ]
        );
        assert_eq!(w.newest, Some(2_000));
    }
}
