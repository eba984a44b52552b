//! How rows are grouped into buckets for comparison.
//!
//! A row's bucket is derived from two coordinates: a hash of its series (the key columns other
//! than the time column; for streams without a time column, the whole key) and its time. At
//! level 0 a bucket holds the series whose hash shares the top [`SERIES_BITS_0`] bits, over one
//! bucket width of time (1 day by default). Each deeper level keeps [`SERIES_BITS_STEP`] more
//! bits of the series hash and divides the time width by [`TIME_SPLIT`], so a bucket whose
//! digests differ splits into up to `2^8 × 8` smaller ones — until it is small enough to be
//! compared row by row, or cannot split any more (one series, one tick).
//!
//! Grouping series by hash prefix bounds the number of level-0 buckets (at most
//! `2^10 × days`) however many series the stream has.

use std::sync::Arc;

use tsmigrate_core::{Batch, Column, DataType, Schema};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use tsmigrate_core::digest::row_hashes;

/// Series-hash bits kept at level 0.
pub const SERIES_BITS_0: u32 = 10;
/// Series-hash bits added per level.
pub const SERIES_BITS_STEP: u32 = 8;
/// Factor the time width is divided by per level.
pub const TIME_SPLIT: i64 = 8;

/// Where a stream's rows keep their identity and time, in the target's columns.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Target columns identifying a row (the stream's key; every column when it has none).
    pub key: Vec<usize>,
    /// Key columns other than the time column.
    pub series: Vec<usize>,
    /// The time column and how many of its units make a second.
    pub time: Option<(usize, i64)>,
    /// Level-0 time width, in the time column's units.
    pub width0: i64,
}

impl Layout {
    /// The layout of a target schema: `key` names the key columns (empty: every column);
    /// `time` names the time column and its units per second.
    pub fn new(
        schema: &Schema,
        key: &[String],
        time: Option<(&str, i64)>,
        bucket_seconds: f64,
    ) -> Layout {
        let key: Vec<usize> = if key.is_empty() {
            (0..schema.fields.len()).collect()
        } else {
            key.iter().filter_map(|k| schema.index_of(k)).collect()
        };
        let time = time.and_then(|(c, per)| schema.index_of(c).map(|i| (i, per)));
        let series = key
            .iter()
            .copied()
            .filter(|i| time.is_none_or(|(t, _)| t != *i))
            .collect();
        let width0 = time
            .map(|(_, per)| ((bucket_seconds * per as f64) as i64).max(1))
            .unwrap_or(1);
        Layout {
            key,
            series,
            time,
            width0,
        }
    }

    /// Series bits and time width of level `level`.
    fn shape(&self, level: u32) -> (u32, i64) {
        let bits = (SERIES_BITS_0 + SERIES_BITS_STEP * level).min(64);
        let div = TIME_SPLIT.checked_pow(level).unwrap_or(i64::MAX);
        (bits, (self.width0 / div).max(1))
    }

    /// True when buckets of `level` can still be split.
    pub fn splittable(&self, level: u32) -> bool {
        let (bits, width) = self.shape(level);
        bits < 64 || (self.time.is_some() && width > 1)
    }

    /// The id of the bucket of `level` holding a row with this series hash and time.
    #[inline]
    pub fn bucket(&self, level: u32, series: u64, time: i64) -> u64 {
        let (bits, width) = self.shape(level);
        let prefix = if bits >= 64 {
            series
        } else {
            series >> (64 - bits)
        };
        let slot = if self.time.is_some() {
            time.div_euclid(width)
        } else {
            0
        };
        let mut buf = [0u8; 20];
        buf[..8].copy_from_slice(&prefix.to_le_bytes());
        buf[8..16].copy_from_slice(&slot.to_le_bytes());
        buf[16..].copy_from_slice(&level.to_le_bytes());
        xxh3_64_with_seed(&buf, 0x7473_6d69_6772_6174)
    }

    /// Per row: the series hash, the time (0 without a time column; `i64::MIN` when NULL)
    /// and the row hash; the key hash too when `with_key`.
    pub fn coordinates(&self, batch: &Batch, with_key: bool) -> Coordinates {
        let rows = row_hashes(batch);
        let series = if self.series.len() == batch.columns.len() {
            rows.clone()
        } else {
            pick_hashes(batch, &self.series)
        };
        let key = if !with_key {
            Vec::new()
        } else if self.key == self.series {
            series.clone()
        } else if self.key.len() == batch.columns.len() {
            rows.clone()
        } else {
            pick_hashes(batch, &self.key)
        };
        let time = match self.time.and_then(|(i, _)| batch.columns.get(i)) {
            Some(c) => match c.ints() {
                Some(v) => (0..batch.len())
                    .map(|r| if c.is_valid(r) { v[r] } else { i64::MIN })
                    .collect(),
                None => vec![0; batch.len()],
            },
            None => vec![0; batch.len()],
        };
        Coordinates {
            series,
            time,
            key,
            rows,
        }
    }
}

/// Row hashes of the columns `cols` of `batch` (zeros when `cols` is empty).
pub fn pick_hashes(batch: &Batch, cols: &[usize]) -> Vec<u64> {
    let columns: Vec<Arc<Column>> = cols
        .iter()
        .filter_map(|i| batch.columns.get(*i).cloned())
        .collect();
    let fields = cols
        .iter()
        .filter_map(|i| batch.schema.fields.get(*i).cloned())
        .collect();
    match Batch::new(Arc::new(Schema::new(fields)), columns) {
        Some(b) if !cols.is_empty() => row_hashes(&b),
        _ => vec![0; batch.len()],
    }
}

/// Per-row hashes and times of a batch (see [`Layout::coordinates`]).
pub struct Coordinates {
    /// Hash of the series columns.
    pub series: Vec<u64>,
    /// Time in the time column's units.
    pub time: Vec<i64>,
    /// Hash of the key columns (empty unless asked for).
    pub key: Vec<u64>,
    /// Hash of the whole row (as in [`tsmigrate_core::digest`]).
    pub rows: Vec<u64>,
}

/// True when a time column of this type can place rows in time buckets.
pub fn is_time_type(dt: DataType) -> bool {
    matches!(dt, DataType::Timestamp(_)) || dt.is_integer()
}

/// Converts a bound in microseconds since the epoch to a column's units (`per_second`),
/// rounding up, so `t >= bound` in column units means `t_us >= us`.
pub fn us_to_ticks_ceil(us: i64, per_second: i64) -> i64 {
    let (num, den) = (per_second as i128, 1_000_000i128);
    let v = (us as i128) * num;
    let q = v.div_euclid(den) + i128::from(v.rem_euclid(den) != 0);
    q.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::{Field, TimeUnit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("device", DataType::Text),
            Field::new("ts", DataType::Timestamp(TimeUnit::Micros)),
            Field::new("value", DataType::Float64),
        ])
    }

    #[test]
    fn key_series_and_time_columns() {
        let l = Layout::new(
            &schema(),
            &["device".into(), "ts".into()],
            Some(("ts", 1_000_000)),
            86_400.0,
        );
        assert_eq!(l.key, vec![0, 1]);
        assert_eq!(l.series, vec![0]);
        assert_eq!(l.time, Some((1, 1_000_000)));
        assert_eq!(l.width0, 86_400_000_000);
        let r = Layout::new(&schema(), &[], None, 86_400.0);
        assert_eq!(r.key, vec![0, 1, 2]);
        assert_eq!(r.series, vec![0, 1, 2]);
        assert!(r.time.is_none());
    }

    #[test]
    fn buckets_split_until_one_series_and_one_tick() {
        let l = Layout::new(
            &schema(),
            &["device".into(), "ts".into()],
            Some(("ts", 1_000)),
            86_400.0,
        );
        // Same day, same series prefix: same level-0 bucket; different at a deeper level.
        let s = 0xabcd_ef01_2345_6789;
        assert_eq!(l.bucket(0, s, 1_000), l.bucket(0, s, 2_000_000));
        assert_ne!(l.bucket(3, s, 1_000), l.bucket(3, s, 2_000_000));
        assert_ne!(l.bucket(0, s, 0), l.bucket(0, s, 86_400_000));
        assert_ne!(l.bucket(0, s, 5), l.bucket(1, s, 5));
        // Negative times fall into their own (earlier) bucket.
        assert_ne!(l.bucket(0, s, -1), l.bucket(0, s, 0));
        let mut level = 0;
        while l.splittable(level) {
            level += 1;
        }
        assert!((7..20).contains(&level), "{level}");
        assert_eq!(l.shape(level), (64, 1));
    }

    #[test]
    fn bounds_round_up_to_the_column_unit() {
        assert_eq!(us_to_ticks_ceil(1_500, 1_000), 2);
        assert_eq!(us_to_ticks_ceil(2_000, 1_000), 2);
        assert_eq!(us_to_ticks_ceil(-1_500, 1_000), -1);
        assert_eq!(us_to_ticks_ceil(7, 1_000_000_000), 7_000);
        assert_eq!(us_to_ticks_ceil(i64::MAX, 1_000_000_000), i64::MAX);
    }
}
