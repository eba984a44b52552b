//! Order-independent digests of rows.
//!
//! Each row is hashed from its values column by column; a set of rows is summarised by its
//! row count and the wrapping sum of its row hashes. Sums commute, so the digest of a
//! partition does not depend on the order rows were read or written, and the digests of two
//! disjoint sets add up to the digest of their union — which is what the ledger records per
//! partition and what verification compares per bucket.
//!
//! Canonical values: NULL hashes to its own tag; floats by bit pattern, with every NaN folded
//! to one pattern (`-0.0` and `0.0` stay different: they are different values to a store);
//! timestamps by their ticks in the column's unit (compare columns of the same type); text,
//! JSON text and bytes by their bytes.

use xxhash_rust::xxh3::xxh3_64;

use crate::batch::Batch;
use crate::column::{Column, ColumnData};

const NULL_TAG: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// Mixes a value hash into a row state (a multiply-fold, as in wyhash).
#[inline]
fn mix(state: u64, value: u64) -> u64 {
    let m = u128::from(state ^ value).wrapping_mul(u128::from(0xa076_1d64_78bd_642f_u64 ^ value));
    ((m >> 64) as u64) ^ (m as u64) ^ state.rotate_left(23)
}

/// Final avalanche (splitmix64's), so row hashes are well spread before they are summed.
#[inline]
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mixes column `col` into the per-row states (`states[i]` is row `i`'s state).
fn mix_column(col: &Column, states: &mut [u64]) {
    let valid = col.validity();
    let is_null = |i: usize| valid.is_some_and(|v| !v[i]);
    match col.data() {
        ColumnData::Bool(v) => {
            for (i, s) in states.iter_mut().enumerate() {
                let h = if is_null(i) {
                    NULL_TAG
                } else {
                    1 + u64::from(v[i])
                };
                *s = mix(*s, h);
            }
        }
        ColumnData::Int(v) => {
            for (i, s) in states.iter_mut().enumerate() {
                let h = if is_null(i) { NULL_TAG } else { v[i] as u64 };
                *s = mix(*s, h);
            }
        }
        ColumnData::Float(v) => {
            for (i, s) in states.iter_mut().enumerate() {
                let h = if is_null(i) {
                    NULL_TAG
                } else if v[i].is_nan() {
                    f64::NAN.to_bits()
                } else {
                    v[i].to_bits()
                };
                *s = mix(*s, h);
            }
        }
        ColumnData::Str(b) => {
            for (i, s) in states.iter_mut().enumerate() {
                let h = if is_null(i) {
                    NULL_TAG
                } else {
                    xxh3_64(b.get(i))
                };
                *s = mix(*s, h);
            }
        }
        ColumnData::Uuid(v) => {
            for (i, s) in states.iter_mut().enumerate() {
                let h = if is_null(i) { NULL_TAG } else { xxh3_64(&v[i]) };
                *s = mix(*s, h);
            }
        }
    }
}

/// Hash of every row of `batch` (the same values in the same columns give the same hash).
pub fn row_hashes(batch: &Batch) -> Vec<u64> {
    let mut states = vec![SEED; batch.len()];
    for col in &batch.columns {
        mix_column(col, &mut states);
    }
    states.into_iter().map(finish).collect()
}

/// Row count and sum of row hashes of a set of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    /// Rows added.
    pub rows: u64,
    /// Wrapping sum of their hashes.
    pub sum: u64,
}

impl Digest {
    /// Adds the rows of `batch` for which `keep` is true (all rows when `keep` is `None`).
    pub fn add_batch(&mut self, batch: &Batch, keep: Option<&[bool]>) {
        for (i, h) in row_hashes(batch).into_iter().enumerate() {
            if keep.is_none_or(|k| k.get(i).copied().unwrap_or(false)) {
                self.rows += 1;
                self.sum = self.sum.wrapping_add(h);
            }
        }
    }

    /// Adds another digest (the union of two disjoint sets).
    pub fn absorb(&mut self, other: &Digest) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// `rows:sum` with the sum in hex, as stored in the ledger.
    pub fn to_text(&self) -> String {
        format!("{}:{:016x}", self.rows, self.sum)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::batch::{Field, Schema};
    use crate::types::DataType;

    fn batch(rows: &[(i64, Option<&str>, f64)]) -> Batch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64),
            Field::new("b", DataType::Text),
            Field::new("c", DataType::Float64),
        ]));
        let mut a = Column::with_capacity(DataType::Int64, rows.len());
        let mut b = Column::with_capacity(DataType::Text, rows.len());
        let mut c = Column::with_capacity(DataType::Float64, rows.len());
        for (x, y, z) in rows {
            a.push_i64(*x);
            match y {
                Some(s) => b.push_str(s),
                None => b.push_null(),
            }
            c.push_f64(*z);
        }
        match Batch::new(schema, vec![Arc::new(a), Arc::new(b), Arc::new(c)]) {
            Some(b) => b,
            None => panic!("columns do not match the schema"),
        }
    }

    #[test]
    fn order_independent_and_value_sensitive() {
        let rows = [
            (1, Some("x"), 1.5),
            (2, None, f64::NAN),
            (3, Some(""), -0.0),
        ];
        let mut fwd = Digest::default();
        fwd.add_batch(&batch(&rows), None);
        let mut rev = Digest::default();
        let mut r = rows.to_vec();
        r.reverse();
        rev.add_batch(&batch(&r), None);
        assert_eq!(fwd, rev);
        assert_eq!(fwd.rows, 3);
        // NULL differs from the empty string, -0.0 from 0.0, any NaN equals any NaN.
        for changed in [
            [
                (1, Some("x"), 1.5),
                (2, Some(""), f64::NAN),
                (3, Some(""), -0.0),
            ],
            [(1, Some("x"), 1.5), (2, None, f64::NAN), (3, Some(""), 0.0)],
            [(1, Some("x"), 1.5), (2, None, f64::NAN), (3, None, -0.0)],
        ] {
            let mut d = Digest::default();
            d.add_batch(&batch(&changed), None);
            assert_ne!(d, fwd, "{changed:?}");
        }
        let mut nan = Digest::default();
        let other_nan = f64::from_bits(0x7ff8_0000_0000_0001);
        nan.add_batch(
            &batch(&[
                (1, Some("x"), 1.5),
                (2, None, other_nan),
                (3, Some(""), -0.0),
            ]),
            None,
        );
        assert_eq!(nan, fwd);
        // Swapping values between columns changes the digest.
        let mut a = Digest::default();
        a.add_batch(&batch(&[(1, Some("1"), 2.0)]), None);
        let mut b = Digest::default();
        b.add_batch(&batch(&[(2, Some("1"), 1.0)]), None);
        assert_ne!(a, b);
    }

    #[test]
    fn union_of_parts_equals_whole() {
        let rows = [
            (1, Some("a"), 0.1),
            (2, Some("b"), 0.2),
            (3, Some("c"), 0.3),
        ];
        let mut whole = Digest::default();
        whole.add_batch(&batch(&rows), None);
        let mut parts = Digest::default();
        let mut p1 = Digest::default();
        p1.add_batch(&batch(&rows), Some(&[true, false, true]));
        let mut p2 = Digest::default();
        p2.add_batch(&batch(&rows[1..2]), None);
        parts.absorb(&p1);
        parts.absorb(&p2);
        assert_eq!(parts, whole);
        assert_eq!(whole.to_text().split(':').next(), Some("3"));
    }
}
