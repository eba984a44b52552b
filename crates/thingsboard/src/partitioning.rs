//! Splitting ThingsBoard telemetry into partitions: physical `ts_kv` partitions × time windows
//! × groups of entities, each sized to about `partition_rows` rows.
//!
//! Pure functions over catalog facts, so the plan is testable without a database.

use serde_json::json;
use tsmigrate_core::Partition;

/// A physical table holding telemetry (a `ts_kv` partition, or `ts_kv` itself when it is not
/// declaratively partitioned).
#[derive(Clone, Debug, PartialEq)]
pub struct PhysicalTable {
    /// Table name (unqualified; ThingsBoard uses the `public` schema).
    pub name: String,
    /// Inclusive lower bound of `ts` (epoch ms); `None` = unbounded (default partition).
    pub from: Option<i64>,
    /// Exclusive upper bound of `ts` (epoch ms); `None` = unbounded.
    pub to: Option<i64>,
    /// Estimated rows in the table.
    pub est_rows: f64,
    /// Entity ids present in the table (sorted), after the device filter.
    pub entities: Vec<String>,
    /// True when `entities` is every entity of the table (no filter removed any), so a
    /// partition covering all of them can read the table without an entity predicate.
    pub unfiltered: bool,
}

/// What one telemetry partition reads (serialised into [`Partition::spec`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TelemetrySpec {
    /// Table to read.
    pub table: String,
    /// Entity ids to read (empty = every entity of the table).
    pub entities: Vec<String>,
    /// Inclusive lower bound of `ts`, epoch ms.
    pub ts_from: Option<i64>,
    /// Exclusive upper bound of `ts`, epoch ms.
    pub ts_to: Option<i64>,
    /// Rows at most, in `ts, key` order (the per-device `limit`).
    pub limit: Option<u64>,
    /// Sync rounds planned by tsmigrate before per-series floors: the lowest `ts` to read per
    /// entity, aligned with `entities` (`None` = the entity is new: read from `ts_from`).
    /// Still read, for ledgers that hold such partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floors: Vec<Option<i64>>,
    /// Sync rounds: the series to read, each from its own floor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<SeriesFloor>,
}

/// Intersects `[a_from, a_to)` with `[b_from, b_to)`; `None` bounds are unbounded.
fn intersect(
    a: (Option<i64>, Option<i64>),
    b: (Option<i64>, Option<i64>),
) -> Option<(Option<i64>, Option<i64>)> {
    let from = match (a.0, b.0) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    let to = match (a.1, b.1) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    match (from, to) {
        (Some(f), Some(t)) if f >= t => None,
        _ => Some((from, to)),
    }
}

/// Plans the partitions of the telemetry stream over `tables`, restricted to the time range
/// `[since, until)` (epoch ms). With `align_ms`, an entity's time range is cut only at
/// multiples of it (so time buckets of that width, or wide rows of one time, stay whole).
pub fn plan_telemetry(
    tables: &[PhysicalTable],
    since: Option<i64>,
    until: Option<i64>,
    partition_rows: u64,
    align_ms: Option<i64>,
) -> Vec<Partition> {
    let target = partition_rows.max(1) as f64;
    let mut out = Vec::new();
    for t in tables {
        if t.entities.is_empty() {
            continue;
        }
        let Some((from, to)) = intersect((t.from, t.to), (since, until)) else {
            continue;
        };
        let fraction = match (t.from, t.to, from, to) {
            (Some(a), Some(b), Some(c), Some(d)) if b > a => (d - c) as f64 / (b - a) as f64,
            _ => 1.0,
        };
        let per_entity = (t.est_rows.max(0.0) * fraction / t.entities.len() as f64).max(1.0);
        // Time windows: only when one entity alone is bigger than a partition and the range is finite.
        let windows = match (from, to) {
            (Some(f), Some(e)) if per_entity > target => {
                let k = ((per_entity / target).ceil() as i64).clamp(1, (e - f).max(1));
                let step = (e - f + k - 1) / k;
                let align = align_ms.unwrap_or(1).max(1);
                let mut cuts = vec![f];
                for i in 1..k {
                    let c = (f + i * step).div_euclid(align) * align;
                    if c > *cuts.last().unwrap_or(&f) && c < e {
                        cuts.push(c);
                    }
                }
                cuts.push(e);
                cuts.windows(2)
                    .map(|w| (Some(w[0]), Some(w[1])))
                    .collect::<Vec<_>>()
            }
            _ => vec![(from, to)],
        };
        let per_window = per_entity / windows.len() as f64;
        let group = ((target / per_window).floor() as usize).max(1);
        let whole_table = t.unfiltered && t.entities.len() <= group;
        for (wi, (wf, wt)) in windows.iter().enumerate() {
            for (gi, chunk) in t.entities.chunks(group).enumerate() {
                let spec = TelemetrySpec {
                    table: t.name.clone(),
                    // Every entity of the table: no entity predicate, a plain scan.
                    entities: if whole_table {
                        Vec::new()
                    } else {
                        chunk.to_vec()
                    },
                    ts_from: *wf,
                    ts_to: *wt,
                    limit: None,
                    floors: Vec::new(),
                    series: Vec::new(),
                };
                let id = if windows.len() == 1 && t.entities.len() <= group {
                    t.name.clone()
                } else {
                    format!("{}/w{wi}/g{gi}", t.name)
                };
                out.push(Partition {
                    id,
                    estimated_rows: Some((per_window * chunk.len() as f64).round() as u64),
                    spec: json!(spec),
                });
            }
        }
    }
    out
}

/// Plans the per-device `limit` read: one partition per entity reading the parent table in
/// `ts, key` order.
pub fn plan_limited(
    entities: &[String],
    since: Option<i64>,
    until: Option<i64>,
    limit: u64,
) -> Vec<Partition> {
    entities
        .iter()
        .map(|e| {
            let spec = TelemetrySpec {
                table: "ts_kv".into(),
                entities: vec![e.clone()],
                ts_from: since,
                ts_to: until,
                limit: Some(limit),
                floors: Vec::new(),
                series: Vec::new(),
            };
            Partition {
                id: format!("ts_kv/{e}/limit{limit}"),
                estimated_rows: Some(limit),
                spec: json!(spec),
            }
        })
        .collect()
}

/// Series per sync partition: one query joins them with their floors.
const SYNC_GROUP: usize = 1000;

/// One series a sync round reads, and from when.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct SeriesFloor {
    /// Entity id.
    pub entity: String,
    /// Key id.
    pub key: i32,
    /// Lowest `ts` to read (epoch ms); `None`: from the beginning.
    pub from: Option<i64>,
}

/// Plans a sync round: every series read from its own floor (its watermark minus the overlap,
/// or `since` for a series seen for the first time) up to `until`, through the `ts_kv` parent
/// table, joined with the series' floors so PostgreSQL reads each series by its primary key
/// `(entity_id, key, ts)` from its floor — rows older than the floor are never touched.
pub fn plan_sync(series: &[SeriesFloor], until: Option<i64>) -> Vec<Partition> {
    let mut series = series.to_vec();
    series.sort();
    series
        .chunks(SYNC_GROUP)
        .enumerate()
        .map(|(gi, chunk)| {
            let spec = TelemetrySpec {
                table: "ts_kv".into(),
                entities: Vec::new(),
                ts_from: None,
                ts_to: until,
                limit: None,
                floors: Vec::new(),
                series: chunk.to_vec(),
            };
            Partition {
                id: format!("ts_kv/s{gi}"),
                estimated_rows: None,
                spec: json!(spec),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, from: Option<i64>, to: Option<i64>, rows: f64, n: usize) -> PhysicalTable {
        PhysicalTable {
            name: name.into(),
            from,
            to,
            est_rows: rows,
            entities: (0..n).map(|i| format!("e{i}")).collect(),
            unfiltered: true,
        }
    }

    fn spec(p: &Partition) -> TelemetrySpec {
        serde_json::from_value(p.spec.clone()).unwrap_or_else(|_| TelemetrySpec {
            table: String::new(),
            entities: vec![],
            ts_from: None,
            ts_to: None,
            limit: None,
            floors: vec![],
            series: vec![],
        })
    }

    #[test]
    fn small_tables_are_one_partition_each() {
        let t = [
            table("ts_kv_2025_08", Some(0), Some(100), 1000.0, 7),
            table("ts_kv_indefinite", None, None, 5.0, 2),
        ];
        let parts = plan_telemetry(&t, None, None, 2_000_000, None);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].id, "ts_kv_2025_08");
        assert!(spec(&parts[0]).entities.is_empty());
        assert_eq!(spec(&parts[1]).ts_from, None);
    }

    #[test]
    fn filtered_entities_keep_their_predicate() {
        let mut t = table("p", Some(0), Some(100), 1000.0, 3);
        t.unfiltered = false;
        let parts = plan_telemetry(&[t], None, None, 2_000_000, None);
        assert_eq!(parts.len(), 1);
        assert_eq!(
            spec(&parts[0]).entities,
            vec!["e0".to_string(), "e1".into(), "e2".into()]
        );
    }

    #[test]
    fn aligned_windows_cut_only_at_multiples() {
        // 10M rows per entity, target 2M: 5 windows of 200 ms, cut at multiples of 300 ms.
        let t = [table("p", Some(0), Some(1000), 70_000_000.0, 7)];
        let parts = plan_telemetry(&t, None, None, 2_000_000, Some(300));
        let mut windows: Vec<(i64, i64)> = parts
            .iter()
            .map(spec)
            .filter(|s| s.entities == vec!["e0".to_string()])
            .map(|s| (s.ts_from.unwrap_or(-1), s.ts_to.unwrap_or(-1)))
            .collect();
        windows.sort();
        assert_eq!(windows, vec![(0, 300), (300, 600), (600, 1000)]);
    }

    #[test]
    fn big_tables_split_by_entity_then_time() {
        // 7M rows, 7 entities: 1M per entity, target 2M -> groups of 2 entities.
        let t = [table("p", Some(0), Some(1000), 7_000_000.0, 7)];
        let parts = plan_telemetry(&t, None, None, 2_000_000, None);
        assert_eq!(parts.len(), 4);
        assert_eq!(spec(&parts[3]).entities, vec!["e6".to_string()]);
        // 70M rows: 10M per entity, target 2M -> 5 windows per entity.
        let t = [table("p", Some(0), Some(1000), 70_000_000.0, 7)];
        let parts = plan_telemetry(&t, None, None, 2_000_000, None);
        assert_eq!(parts.len(), 35);
        let s = spec(&parts[0]);
        assert_eq!((s.ts_from, s.ts_to), (Some(0), Some(200)));
        // Windows cover the range exactly once.
        let mut covered: Vec<(i64, i64)> = parts
            .iter()
            .map(spec)
            .filter(|s| s.entities == vec!["e0".to_string()])
            .map(|s| (s.ts_from.unwrap_or(-1), s.ts_to.unwrap_or(-1)))
            .collect();
        covered.sort();
        assert_eq!(covered.first().map(|c| c.0), Some(0));
        assert_eq!(covered.last().map(|c| c.1), Some(1000));
        assert!(covered.windows(2).all(|w| w[0].1 == w[1].0));
    }

    #[test]
    fn time_filter_skips_and_clips_tables() {
        let t = [
            table("a", Some(0), Some(100), 10.0, 1),
            table("b", Some(100), Some(200), 10.0, 1),
            table("d", None, None, 10.0, 1),
        ];
        let parts = plan_telemetry(&t, Some(150), Some(160), 1000, None);
        let specs: Vec<_> = parts.iter().map(spec).collect();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            (specs[0].table.as_str(), specs[0].ts_from, specs[0].ts_to),
            ("b", Some(150), Some(160))
        );
        assert_eq!(
            (specs[1].table.as_str(), specs[1].ts_from, specs[1].ts_to),
            ("d", Some(150), Some(160))
        );
    }

    #[test]
    fn sync_partitions_carry_floors_per_series() {
        let series: Vec<SeriesFloor> = (0..1001)
            .rev()
            .map(|i| SeriesFloor {
                entity: format!("e{:04}", i / 3),
                key: i % 3,
                from: (i % 2 == 0).then_some(i64::from(i)),
            })
            .collect();
        let parts = plan_sync(&series, Some(100_000));
        assert_eq!(parts.len(), 2);
        let s = spec(&parts[0]);
        assert_eq!(s.series.len(), 1000);
        assert_eq!(
            s.series[0],
            SeriesFloor {
                entity: "e0000".into(),
                key: 0,
                from: Some(0)
            }
        );
        assert_eq!(
            s.series[1].from, None,
            "a new series is read from the beginning"
        );
        assert_eq!(s.ts_to, Some(100_000));
        assert_eq!(parts[1].id, "ts_kv/s1");
        assert_eq!(spec(&parts[1]).series.len(), 1);
    }
}
