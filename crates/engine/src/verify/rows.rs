//! Row-by-row comparison of the buckets digests could not tell apart: the rows of both sides
//! kept (columnar, only the rows of those buckets), matched by key, the leftovers reported as
//! missing, extra or different.

use std::collections::HashMap;

use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::Batch;

use super::report::RowDiff;

/// One kept row: its key and row hashes and where its values are.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    row: u64,
    batch: u32,
    index: u32,
}

/// Rows kept from one side.
#[derive(Default)]
pub struct RowStore {
    batches: Vec<Batch>,
    entries: Vec<Entry>,
}

impl RowStore {
    /// Keeps the rows of `batch` marked in `keep`, with their key and row hashes.
    pub fn add(&mut self, batch: &Batch, keep: &[bool], keys: &[u64], rows: &[u64]) {
        let kept: Vec<usize> = (0..batch.len()).filter(|i| keep[*i]).collect();
        if kept.is_empty() {
            return;
        }
        let b = self.batches.len() as u32;
        self.batches.push(batch.filter(keep));
        for (j, i) in kept.into_iter().enumerate() {
            self.entries.push(Entry {
                key: keys[i],
                row: rows[i],
                batch: b,
                index: j as u32,
            });
        }
    }

    /// Moves the rows of `other` into this store.
    pub fn absorb(&mut self, other: RowStore) {
        let base = self.batches.len() as u32;
        self.batches.extend(other.batches);
        self.entries
            .extend(other.entries.into_iter().map(|e| Entry {
                batch: e.batch + base,
                ..e
            }));
    }

    /// True when no row is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn values(&self, e: &Entry) -> Vec<String> {
        match self.batches.get(e.batch as usize) {
            Some(b) => b
                .row(e.index as usize)
                .into_iter()
                .map(value_to_string)
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Differences found so far: exact totals, and the first rows up to a limit.
#[derive(Default)]
pub struct Differences {
    /// Source rows missing from the target.
    pub missing: u64,
    /// Target rows not in the source.
    pub extra: u64,
    /// Keys with different values.
    pub different: u64,
    /// Listed rows.
    pub listed: Vec<RowDiff>,
    /// More exist than listed.
    pub truncated: bool,
}

impl Differences {
    fn push(&mut self, d: RowDiff, max: usize) {
        if self.listed.len() < max {
            self.listed.push(d);
        } else {
            self.truncated = true;
        }
    }
}

/// Names of the target's columns and which of them form the key.
pub struct Columns<'a> {
    /// Every column, in order.
    pub names: &'a [String],
    /// Indexes of the key columns.
    pub key: &'a [usize],
}

impl Columns<'_> {
    /// A row's values paired with their column names.
    pub fn named(&self, values: &[String]) -> Vec<(String, String)> {
        self.names
            .iter()
            .cloned()
            .zip(values.iter().cloned())
            .collect()
    }

    /// The key columns of a row, with their names.
    pub fn key_of(&self, values: &[String]) -> Vec<(String, String)> {
        self.key
            .iter()
            .filter_map(|i| Some((self.names.get(*i)?.clone(), values.get(*i)?.clone())))
            .collect()
    }

    /// The names of the columns whose values differ between two rows.
    pub fn differing(&self, a: &[String], b: &[String]) -> Vec<String> {
        self.names
            .iter()
            .zip(a.iter().zip(b))
            .filter(|(_, (x, y))| x != y)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Compares the kept rows of both sides and adds what differs to `out` (listing at most
/// `max` rows in total).
pub fn compare(
    source: &RowStore,
    target: &RowStore,
    cols: &Columns<'_>,
    max: usize,
    out: &mut Differences,
) {
    let mut by_key: HashMap<u64, (Vec<usize>, Vec<usize>)> = HashMap::new();
    for (i, e) in source.entries.iter().enumerate() {
        by_key.entry(e.key).or_default().0.push(i);
    }
    for (i, e) in target.entries.iter().enumerate() {
        by_key.entry(e.key).or_default().1.push(i);
    }
    let mut keys: Vec<u64> = by_key.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let Some((mut s, mut t)) = by_key.remove(&k) else {
            continue;
        };
        let duplicate_key = s.len() > 1;
        // Take out the rows present on both sides (as a multiset, by row hash).
        s.sort_by_key(|i| source.entries[*i].row);
        t.sort_by_key(|i| target.entries[*i].row);
        let (mut ls, mut lt) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (0, 0);
        while a < s.len() && b < t.len() {
            let (x, y) = (source.entries[s[a]].row, target.entries[t[b]].row);
            match x.cmp(&y) {
                std::cmp::Ordering::Equal => {
                    a += 1;
                    b += 1;
                }
                std::cmp::Ordering::Less => {
                    ls.push(s[a]);
                    a += 1;
                }
                std::cmp::Ordering::Greater => {
                    lt.push(t[b]);
                    b += 1;
                }
            }
        }
        ls.extend_from_slice(&s[a..]);
        lt.extend_from_slice(&t[b..]);
        let pairs = ls.len().min(lt.len());
        for j in 0..ls.len().max(lt.len()) {
            let sv = ls.get(j).map(|i| source.values(&source.entries[*i]));
            let tv = lt.get(j).map(|i| target.values(&target.entries[*i]));
            let kind = if j < pairs {
                out.different += 1;
                "different"
            } else if sv.is_some() {
                out.missing += 1;
                "missing"
            } else {
                out.extra += 1;
                "extra"
            };
            if out.listed.len() >= max {
                out.truncated = true;
                continue;
            }
            let columns = match (&sv, &tv) {
                (Some(a), Some(b)) => cols.differing(a, b),
                _ => Vec::new(),
            };
            let key = sv
                .as_deref()
                .or(tv.as_deref())
                .map(|v| cols.key_of(v))
                .unwrap_or_default();
            out.push(
                RowDiff {
                    kind: kind.to_string(),
                    key,
                    source: sv.as_deref().map(|v| cols.named(v)),
                    target: tv.as_deref().map(|v| cols.named(v)),
                    columns,
                    duplicate_key,
                },
                max,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tsmigrate_core::digest::row_hashes;
    use tsmigrate_core::{Column, DataType, Field, Schema};

    use super::*;

    fn batch(rows: &[(i64, f64)]) -> Batch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64),
            Field::new("v", DataType::Float64),
        ]));
        let mut a = Column::with_capacity(DataType::Int64, rows.len());
        let mut b = Column::with_capacity(DataType::Float64, rows.len());
        for (i, v) in rows {
            a.push_i64(*i);
            b.push_f64(*v);
        }
        Batch::new(schema, vec![Arc::new(a), Arc::new(b)]).expect("batch")
    }

    fn store(rows: &[(i64, f64)]) -> RowStore {
        let b = batch(rows);
        let keys: Vec<u64> = rows.iter().map(|(i, _)| *i as u64).collect();
        let hashes = row_hashes(&b);
        let mut s = RowStore::default();
        s.add(&b, &vec![true; rows.len()], &keys, &hashes);
        s
    }

    #[test]
    fn finds_missing_extra_and_different_rows() {
        let src = store(&[(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]);
        let tgt = store(&[(1, 1.0), (3, 3.000_000_000_000_000_4), (4, 4.0), (5, 5.0)]);
        let names = vec!["id".to_string(), "v".to_string()];
        let cols = Columns {
            names: &names,
            key: &[0],
        };
        let mut d = Differences::default();
        compare(&src, &tgt, &cols, 100, &mut d);
        assert_eq!((d.missing, d.extra, d.different), (1, 1, 1));
        let mut kinds: Vec<(String, String)> = d
            .listed
            .iter()
            .map(|r| (r.kind.clone(), r.key[0].1.clone()))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                ("different".to_string(), "3".to_string()),
                ("extra".to_string(), "5".to_string()),
                ("missing".to_string(), "2".to_string()),
            ]
        );
        let diff = d
            .listed
            .iter()
            .find(|r| r.kind == "different")
            .expect("diff");
        assert_eq!(diff.columns, vec!["v".to_string()]);
        // Limited listing, exact totals.
        let mut d = Differences::default();
        compare(&src, &tgt, &cols, 1, &mut d);
        assert_eq!((d.missing + d.extra + d.different, d.listed.len()), (3, 1));
        assert!(d.truncated);
    }

    #[test]
    fn duplicate_keys_are_flagged() {
        let src = store(&[(7, 1.0), (7, 1.0)]);
        let tgt = store(&[(7, 1.0)]);
        let names = vec!["id".to_string(), "v".to_string()];
        let mut d = Differences::default();
        let cols = Columns {
            names: &names,
            key: &[0],
        };
        compare(&src, &tgt, &cols, 10, &mut d);
        assert_eq!(d.missing, 1);
        assert!(d.listed[0].duplicate_key);
    }
}
