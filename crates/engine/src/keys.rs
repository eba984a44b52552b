//! The key of a stream's target rows when the plan names none: the target columns its
//! source key is copied into.

use tsmigrate_core::mapping::Mapping;

/// The target columns a stream's source key is copied into, when the mapping copies each
/// source key column unchanged (or as `from_epoch_*(col)` / `col::type`) into one column.
pub fn infer_key(source_key: &[String], mapping: &Mapping) -> Option<Vec<String>> {
    if source_key.is_empty() {
        return None;
    }
    if mapping.is_identity() {
        return Some(source_key.to_vec());
    }
    let exprs = mapping.expression_sources();
    let copies = |sql: &str, col: &str| {
        let n: String = sql
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let c = col.to_ascii_lowercase();
        n == c
            || n == format!("\"{c}\"")
            || n.strip_prefix(&format!("{c}::")).is_some_and(|t| {
                !t.is_empty()
                    && t.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "_()".contains(ch))
            })
            || [
                "from_epoch_s",
                "from_epoch_ms",
                "from_epoch_us",
                "from_epoch_ns",
            ]
            .iter()
            .any(|f| n == format!("{f}({c})"))
    };
    source_key
        .iter()
        .map(|k| {
            exprs
                .iter()
                .find(|(_, sql)| copies(sql, k))
                .map(|(name, _)| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::{DataType, Field, Plan, Schema};

    #[test]
    fn key_is_inferred_from_plain_copies() {
        let plan = Plan::parse(
            r#"
[source]
kind = "thingsboard"
[target]
kind = "postgres"
[[streams]]
name = "telemetry"
columns = [
  { name = "device_id", type = "uuid", expr = "entity_id" },
  { name = "timestamp", type = "timestamptz", expr = "from_epoch_ms( ts )" },
  { name = "metric", expr = "KEY" },
  { name = "value", type = "float8", expr = "dbl_v" },
]
"#,
        );
        let plan = match plan {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let schema = Schema::new(vec![
            Field::new("entity_id", DataType::Uuid),
            Field::new("key", DataType::Text),
            Field::new("ts", DataType::Int64),
            Field::new("dbl_v", DataType::Float64),
        ]);
        let m = match Mapping::compile(&plan.streams[0], &schema) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        let key: Vec<String> = ["entity_id", "key", "ts"].map(String::from).to_vec();
        assert_eq!(
            infer_key(&key, &m),
            Some(vec![
                "device_id".into(),
                "metric".into(),
                "timestamp".into()
            ])
        );
        // Any bare copy counts; a column no target copies gives no key.
        assert_eq!(
            infer_key(&["dbl_v".to_string()], &m),
            Some(vec!["value".into()])
        );
        assert_eq!(infer_key(&["nope".to_string()], &m), None);
        assert!(copies_test("ts::varchar(32)", "ts"));
        assert!(!copies_test("ts::float8 / 1000", "ts"));
        assert!(!copies_test("entity_id::text || 'x'", "entity_id"));
    }

    /// Whether `infer_key` takes `sql` as a copy of `col` (the expression must compile).
    fn copies_test(sql: &str, col: &str) -> bool {
        let plan = format!(
            "[source]\nkind = \"x\"\n[target]\nkind = \"y\"\n[[streams]]\nname = \"s\"\ncolumns = [{{ name = \"out\", expr = \"{}\" }}]\n",
            sql.replace('"', "\\\"")
        );
        let plan = match Plan::parse(&plan) {
            Ok(p) => p,
            Err(e) => panic!("{sql}: {e}"),
        };
        let schema = Schema::new(vec![
            Field::new("entity_id", DataType::Uuid),
            Field::new("ts", DataType::Int64),
        ]);
        match Mapping::compile(&plan.streams[0], &schema) {
            Ok(m) => infer_key(&[col.to_string()], &m).is_some(),
            Err(e) => panic!("{sql} does not compile: {e}"),
        }
    }
}
