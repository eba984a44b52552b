//! Partitions of a TimescaleDB hypertable by its chunks. A hypertable's parent holds no rows
//! (they live in chunk tables), so the heap block ranges [`crate::reader`] cuts other tables
//! by do not apply; its chunks' time ranges do. Each partition is a time slice of the
//! hypertable, read through the hypertable itself (so compressed chunks are decompressed by
//! TimescaleDB and chunk exclusion reads only the slice's chunks).
//!
//! Slices are contiguous and the first and last are open-ended, so every row is read exactly
//! once — also rows in time ranges no chunk covered when the partitions were planned.
//! Consecutive chunks are merged until a slice holds about `partition_rows` rows.

use tokio_postgres::Client;
use tsmigrate_core::Partition;

/// One time slice `[lo, hi)` of the hypertable's time column, in its units (µs since the
/// epoch for timestamp columns), `None` = unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slice {
    /// The time column.
    pub column: String,
    /// Inclusive lower bound.
    pub lo: Option<i64>,
    /// Exclusive upper bound.
    pub hi: Option<i64>,
}

impl Slice {
    /// The partition spec of the slice.
    pub fn spec(&self) -> serde_json::Value {
        serde_json::json!({ "time_slice": { "column": self.column, "lo": self.lo, "hi": self.hi } })
    }

    /// A stable id: `chunks-<lo>-<hi>` (`start`/`end` when unbounded).
    pub fn id(&self) -> String {
        let b = |v: Option<i64>, open: &str| v.map(|x| x.to_string()).unwrap_or(open.into());
        format!("chunks-{}-{}", b(self.lo, "start"), b(self.hi, "end"))
    }

    /// The slice a partition spec describes, `None` when it is not a slice.
    pub fn parse(spec: &serde_json::Value) -> Option<Slice> {
        let s = spec.get("time_slice")?;
        let bound = |k: &str| match s.get(k) {
            None | Some(serde_json::Value::Null) => Some(None),
            Some(v) => v.as_i64().map(Some),
        };
        let slice = Slice {
            column: s.get("column")?.as_str()?.to_string(),
            lo: bound("lo")?,
            hi: bound("hi")?,
        };
        match (slice.lo, slice.hi) {
            (Some(lo), Some(hi)) if lo >= hi => None,
            _ => Some(slice),
        }
    }
}

/// A chunk's range on the time dimension and its estimated rows (the catalog's, or for a
/// compressed chunk TimescaleDB's `approximate_row_count`; unknown for a chunk never analyzed).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChunkRange {
    /// Start (inclusive), in the column's units.
    pub lo: i64,
    /// End (exclusive).
    pub hi: i64,
    /// Rows at the last ANALYZE, when known.
    pub rows: Option<u64>,
}

/// The time column and chunk ranges of table `oid` when it is a hypertable whose time column
/// is a timestamptz, timestamp or integer (`None` otherwise: not a hypertable, no TimescaleDB,
/// or a `date` time column, which block ranges read instead).
pub(crate) async fn hypertable_chunks(
    client: &Client,
    oid: u32,
) -> Result<Option<(String, Vec<ChunkRange>)>, tokio_postgres::Error> {
    let has_ext = crate::timescale::installed(client).await?;
    if !has_ext {
        return Ok(None);
    }
    let dim = client
        .query_opt(
            "SELECT d.column_name::text, format_type(d.column_type, NULL) FROM timescaledb_information.dimensions d \
             JOIN pg_class r ON r.relname = d.hypertable_name \
             JOIN pg_namespace n ON n.oid = r.relnamespace AND n.nspname = d.hypertable_schema \
             WHERE r.oid = $1 AND d.dimension_number = 1",
            &[&oid],
        )
        .await?;
    let Some(dim) = dim else {
        return Ok(None);
    };
    let (column, ty): (String, String) = (dim.get(0), dim.get(1));
    let integer = matches!(ty.as_str(), "bigint" | "integer" | "smallint");
    if !integer && !ty.starts_with("timestamp") {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT CASE WHEN $2 THEN c.range_start_integer \
                         ELSE (extract(epoch FROM c.range_start) * 1000000)::int8 END, \
                    CASE WHEN $2 THEN c.range_end_integer \
                         ELSE (extract(epoch FROM c.range_end) * 1000000)::int8 END, \
                    CASE WHEN bool_and(c.is_compressed OR k.reltuples >= 0) THEN \
                      sum(CASE WHEN c.is_compressed THEN approximate_row_count(k.oid) ELSE k.reltuples END) END::float8 \
             FROM timescaledb_information.chunks c \
             JOIN pg_class r ON r.relname = c.hypertable_name \
             JOIN pg_namespace n ON n.oid = r.relnamespace AND n.nspname = c.hypertable_schema \
             JOIN pg_namespace kn ON kn.nspname = c.chunk_schema \
             JOIN pg_class k ON k.relnamespace = kn.oid AND k.relname = c.chunk_name \
             WHERE r.oid = $1 GROUP BY 1, 2 ORDER BY 1, 2",
            &[&oid, &integer],
        )
        .await?;
    let mut chunks: Vec<ChunkRange> = Vec::new();
    for r in rows {
        let (lo, hi, tuples): (Option<i64>, Option<i64>, Option<f64>) =
            (r.get(0), r.get(1), r.get(2));
        let (Some(lo), Some(hi)) = (lo, hi) else {
            continue;
        };
        // Chunks of several space partitions share a time range: one slice for them all.
        let rows = tuples.filter(|t| *t >= 0.0).map(|t| t as u64);
        match chunks.last_mut() {
            Some(last) if last.lo == lo && last.hi == hi => {
                last.rows = match (last.rows, rows) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
            _ => chunks.push(ChunkRange { lo, hi, rows }),
        }
    }
    Ok(Some((column, chunks)))
}

/// Partitions of about `partition_rows` rows from consecutive chunks (one chunk each when
/// their rows are unknown); contiguous, the first starting and the last ending unbounded.
pub(crate) fn slice_partitions(
    column: &str,
    chunks: &[ChunkRange],
    partition_rows: u64,
) -> Vec<Partition> {
    let mut groups: Vec<(i64, Option<u64>)> = Vec::new(); // (start, rows)
    let mut open: Option<(i64, Option<u64>)> = None;
    for c in chunks {
        open = match open {
            None => Some((c.lo, c.rows)),
            Some((start, rows)) => {
                let full = match rows {
                    Some(r) => r >= partition_rows,
                    None => true,
                };
                if full || c.rows.is_none() {
                    groups.push((start, rows));
                    Some((c.lo, c.rows))
                } else {
                    Some((start, rows.zip(c.rows).map(|(a, b)| a + b)))
                }
            }
        };
    }
    groups.extend(open);
    if groups.is_empty() {
        groups.push((0, Some(0)));
    }
    let n = groups.len();
    (0..n)
        .map(|i| {
            let slice = Slice {
                column: column.to_string(),
                lo: (i > 0).then(|| groups[i].0),
                hi: groups.get(i + 1).map(|g| g.0),
            };
            Partition {
                id: slice.id(),
                estimated_rows: groups[i].1,
                spec: slice.spec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(lo: i64, hi: i64, rows: Option<u64>) -> ChunkRange {
        ChunkRange { lo, hi, rows }
    }

    #[test]
    fn slices_are_contiguous_open_ended_and_merged_up_to_the_partition_size() {
        let chunks = [
            chunk(0, 10, Some(40)),
            chunk(10, 20, Some(40)),
            chunk(20, 30, Some(40)),
            // A gap (no chunk for 30..50), then a chunk never analyzed.
            chunk(50, 60, None),
            chunk(60, 70, Some(5)),
        ];
        let parts = slice_partitions("ts", &chunks, 100);
        let slices: Vec<Slice> = parts.iter().filter_map(|p| Slice::parse(&p.spec)).collect();
        assert_eq!(slices.len(), parts.len());
        let bounds: Vec<(Option<i64>, Option<i64>)> = slices.iter().map(|s| (s.lo, s.hi)).collect();
        assert_eq!(
            bounds,
            vec![(None, Some(50)), (Some(50), Some(60)), (Some(60), None)]
        );
        assert_eq!(parts[0].estimated_rows, Some(120));
        assert_eq!(parts[1].estimated_rows, None);
        assert_eq!(parts[0].id, "chunks-start-50");
        assert_eq!(parts[2].id, "chunks-60-end");
        // No chunks at all: one slice reading everything.
        let none = slice_partitions("ts", &[], 100);
        assert_eq!(none.len(), 1);
        assert_eq!(
            Slice::parse(&none[0].spec).map(|s| (s.lo, s.hi)),
            Some((None, None))
        );
    }

    #[test]
    fn bad_slice_specs_are_refused() {
        assert!(Slice::parse(&serde_json::json!({"blocks": null})).is_none());
        assert!(Slice::parse(
            &serde_json::json!({"time_slice": {"column": "ts", "lo": 5, "hi": 5}})
        )
        .is_none());
        assert!(
            Slice::parse(&serde_json::json!({"time_slice": {"column": "ts", "lo": "x"}})).is_none()
        );
        assert_eq!(
            Slice::parse(&serde_json::json!({"time_slice": {"column": "ts", "lo": -5}})),
            Some(Slice {
                column: "ts".into(),
                lo: Some(-5),
                hi: None
            })
        );
    }
}
