//! The `telemetry` stream of a live ThingsBoard database: the SQL that reads one partition
//! of `ts_kv`, and the discovery a sync round plans from.
//!
//! Every number put into SQL goes through [`int8_literal`] (a bare `-9223372036854775808`
//! is parsed as the negation of an out-of-range `int8`) and every id through
//! [`quote_literal`]; table names come from the catalog and are quoted.

use std::collections::{BTreeSet, HashMap};

use tsmigrate_core::{SyncFloors, ValueRef};
use tsmigrate_postgres::{int8_literal, quote_literal, PgType};

use crate::catalog::quote_table_name;
use crate::keys::KeyNames;
use crate::partitioning::{SeriesFloor, TelemetrySpec};

/// The columns a telemetry partition reads from `ts_kv` (key still an id), qualified by `t`.
pub const SQL_COLUMNS: &str =
    "t.entity_id, t.key, t.ts, t.bool_v, t.str_v, t.long_v, t.dbl_v, t.json_v";

/// Wire types of [`SQL_COLUMNS`].
pub const WIRE: [PgType; 8] = [
    PgType::Uuid,
    PgType::Int4,
    PgType::Int8,
    PgType::Bool,
    PgType::Text,
    PgType::Int8,
    PgType::Float8,
    PgType::Json,
];

/// The query reading the partition `spec`, keeping only keys `key_ids` (`None`: every key;
/// an empty list: none).
pub fn query(spec: &TelemetrySpec, key_ids: Option<&[i32]>) -> String {
    let mut conds = Vec::new();
    let mut join = String::new();
    if !spec.series.is_empty() {
        // A sync round: each series from its own floor, by the primary key.
        let values: Vec<String> = spec
            .series
            .iter()
            .map(|s| {
                format!(
                    "({}::uuid, {}, {})",
                    quote_literal(&s.entity),
                    s.key,
                    int8_literal(s.from.unwrap_or(i64::MIN))
                )
            })
            .collect();
        join = format!(
            " JOIN (VALUES {}) AS tsm_series(e, k, f) ON t.entity_id = tsm_series.e AND t.key = tsm_series.k AND t.ts >= tsm_series.f",
            values.join(", ")
        );
    } else if !spec.floors.is_empty() {
        // A sync round planned before per-series floors: each entity from its floor.
        let values: Vec<String> = spec
            .entities
            .iter()
            .zip(&spec.floors)
            .map(|(e, f)| {
                format!(
                    "({}::uuid, {})",
                    quote_literal(e),
                    int8_literal(f.unwrap_or(i64::MIN))
                )
            })
            .collect();
        join = format!(
            " JOIN (VALUES {}) AS tsm_floor(entity, since) ON t.entity_id = tsm_floor.entity",
            values.join(", ")
        );
        conds.push("t.ts >= tsm_floor.since".to_string());
    } else if !spec.entities.is_empty() {
        let list: Vec<String> = spec.entities.iter().map(|e| quote_literal(e)).collect();
        conds.push(format!("t.entity_id IN ({})", list.join(", ")));
    }
    if let Some(f) = spec.ts_from {
        conds.push(format!("t.ts >= {}", int8_literal(f)));
    }
    if let Some(to) = spec.ts_to {
        conds.push(format!("t.ts < {}", int8_literal(to)));
    }
    match key_ids {
        None => {}
        Some([]) => conds.push("false".into()),
        Some(ids) => {
            let list: Vec<String> = ids.iter().map(|k| k.to_string()).collect();
            conds.push(format!("t.key IN ({})", list.join(", ")));
        }
    }
    let mut q = format!(
        "SELECT {SQL_COLUMNS} FROM {} t{join}",
        quote_table_name(&spec.table)
    );
    if !conds.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conds.join(" AND "));
    }
    if let Some(limit) = spec.limit {
        q.push_str(&format!(" ORDER BY t.ts, t.key LIMIT {limit}"));
    }
    q
}

/// Watermarks of a sync round by (entity id, key name), from the ledger's series names
/// (`["<entity id>","<key name>"]`).
pub fn floors_by_series(floors: &SyncFloors) -> HashMap<(String, String), i64> {
    floors
        .series
        .iter()
        .filter_map(|(series, floor)| {
            let v: Vec<Option<String>> = serde_json::from_str(series).ok()?;
            match v.as_slice() {
                [Some(e), Some(k)] => Some(((e.clone(), k.clone()), *floor)),
                _ => None,
            }
        })
        .collect()
}

/// The floors of the series found in the source: a series copied before is read from its
/// watermark minus the overlap (`floors`), never below `since`; a new one from `since`.
pub fn series_floors(
    found: &BTreeSet<(String, i32)>,
    keys: &KeyNames,
    floors: &HashMap<(String, String), i64>,
    since: Option<i64>,
) -> Vec<SeriesFloor> {
    found
        .iter()
        .map(|(entity, key)| {
            let name = keys
                .name(i64::from(*key))
                .map(|n| n.to_string())
                .unwrap_or_else(|| key.to_string());
            let from = match floors.get(&(entity.clone(), name)) {
                Some(f) => Some(since.map_or(*f, |s| s.max(*f))),
                None => since,
            };
            SeriesFloor {
                entity: entity.clone(),
                key: *key,
                from,
            }
        })
        .collect()
}

/// The text of a uuid value, for entity filters.
pub fn uuid_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Uuid(_) => Some(tsmigrate_core::convert::value_to_string(v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> TelemetrySpec {
        TelemetrySpec {
            table: "ts_kv".into(),
            entities: vec![],
            ts_from: None,
            ts_to: Some(1_000),
            limit: None,
            floors: vec![],
            series: vec![
                SeriesFloor {
                    entity: "e1".into(),
                    key: 3,
                    from: None,
                },
                SeriesFloor {
                    entity: "e'2".into(),
                    key: 4,
                    from: Some(-5),
                },
            ],
        }
    }

    #[test]
    fn a_new_series_floor_is_a_literal_postgresql_accepts() {
        let q = query(&spec(), None);
        assert!(
            q.contains("('e1'::uuid, 3, '-9223372036854775808'::int8)"),
            "{q}"
        );
        assert!(q.contains("('e''2'::uuid, 4, '-5'::int8)"), "{q}");
        assert!(q.ends_with("WHERE t.ts < '1000'::int8"), "{q}");
        assert!(!q.contains("-9223372036854775808::"), "{q}");
    }

    #[test]
    fn key_filters_that_match_nothing_read_nothing() {
        assert!(query(&spec(), Some(&[])).contains("AND false"));
        assert!(query(&spec(), Some(&[1, 2])).contains("t.key IN (1, 2)"));
    }

    #[test]
    fn legacy_entity_floors_use_safe_literals() {
        let s = TelemetrySpec {
            entities: vec!["e1".into()],
            floors: vec![None],
            series: vec![],
            ..spec()
        };
        let q = query(&s, None);
        assert!(
            q.contains("('e1'::uuid, '-9223372036854775808'::int8)"),
            "{q}"
        );
    }

    #[test]
    fn floors_follow_watermarks_renames_and_since() {
        let dict: BTreeMap<i32, String> = [(3, "146".to_string()), (4, "temp".to_string())].into();
        let renames: BTreeMap<String, String> = [("146".to_string(), "level".to_string())].into();
        let keys = KeyNames::new(&dict, &renames);
        let found: BTreeSet<(String, i32)> = [
            ("e1".to_string(), 3),
            ("e1".to_string(), 4),
            ("e2".to_string(), 9),
        ]
        .into();
        let mut floors = SyncFloors::default();
        floors.series.insert(r#"["e1","level"]"#.into(), 500);
        floors.series.insert(r#"["e1","temp"]"#.into(), 50);
        let by = floors_by_series(&floors);
        let out = series_floors(&found, &keys, &by, Some(100));
        let got: Vec<(String, i32, Option<i64>)> =
            out.into_iter().map(|s| (s.entity, s.key, s.from)).collect();
        assert_eq!(
            got,
            [
                ("e1".to_string(), 3, Some(500)),
                ("e1".to_string(), 4, Some(100)),
                ("e2".to_string(), 9, Some(100)),
            ]
        );
    }
}
