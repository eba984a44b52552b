//! `[target] kind = "dynamodb"`: the options of a DynamoDB target, checked before anything
//! is reached.
//!
//! ```toml
//! [target]
//! kind = "dynamodb"
//! table = "iot"                 # the table every stream writes (a stream's `table` overrides)
//! region = "eu-west-1"          # else AWS_REGION / AWS_DEFAULT_REGION
//! endpoint_url = "http://127.0.0.1:8000"   # a DynamoDB-API server; omit (or "") for AWS
//! partition_key = "PK"
//! sort_key = "SK"
//! attribute_types = { PK = "S" }   # S (default), N or B, for key attributes
//! billing = "on_demand"         # or "provisioned" with read_capacity / write_capacity
//! ttl = "ttl"                   # enables TTL on this attribute
//! nulls = "omit"                # or "null": NULL attributes written as such
//! concurrency = 8               # BatchWriteItem requests in flight per partition
//! max_writes_per_second = 0     # items per second over the whole run (0: no cap)
//! state = "tsmigrate-state.sqlite"  # the ledger (a local SQLite file)
//!
//! [target.indexes.GSI1]
//! partition_key = "GSI1PK"
//! sort_key = "GSI1SK"
//! projection = "all"            # "keys_only", or a list of attributes to include
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use tsmigrate_core::{Endpoint, Error, Result};

/// The type of a key attribute (DynamoDB's scalar attribute types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

impl KeyType {
    /// The type's name in DynamoDB's API (`S`, `N`, `B`).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }

    fn parse(s: &str, what: &str) -> Result<KeyType> {
        match s {
            "S" | "s" => Ok(KeyType::S),
            "N" | "n" => Ok(KeyType::N),
            "B" | "b" => Ok(KeyType::B),
            other => Err(Error::Plan(format!(
                "{what} = {other:?}: a key attribute is \"S\" (string), \"N\" (number) or \"B\" (binary)"
            ))),
        }
    }
}

/// Which attributes a global secondary index copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Projection {
    /// Every attribute.
    All,
    /// The table's and the index's keys only.
    KeysOnly,
    /// The keys and these attributes.
    Include(Vec<String>),
}

/// A global secondary index of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    /// Index name.
    pub name: String,
    /// Its partition key attribute.
    pub partition_key: String,
    /// Its sort key attribute, if any.
    pub sort_key: Option<String>,
    /// What it copies.
    pub projection: Projection,
    /// Provisioned capacity (read, write), for a provisioned table.
    pub capacity: Option<(i64, i64)>,
}

/// How the table is billed when tsmigrate creates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Billing {
    /// PAY_PER_REQUEST.
    OnDemand,
    /// PROVISIONED with read and write capacity units.
    Provisioned {
        /// Read capacity units.
        read: i64,
        /// Write capacity units.
        write: i64,
    },
}

/// What to do with a NULL value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nulls {
    /// Leave the attribute out (DynamoDB's custom; a sparse index then skips the item).
    Omit,
    /// Write a NULL attribute.
    Null,
}

/// A DynamoDB target's options.
#[derive(Clone, Debug)]
pub struct DynamoOptions {
    /// The table streams write to unless they name their own.
    pub table: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// A DynamoDB-API endpoint other than AWS's.
    pub endpoint_url: Option<String>,
    /// Partition key attribute.
    pub partition_key: String,
    /// Sort key attribute.
    pub sort_key: Option<String>,
    /// Types of key attributes (default S).
    pub attribute_types: BTreeMap<String, KeyType>,
    /// Global secondary indexes.
    pub indexes: Vec<IndexSpec>,
    /// Billing when the table is created.
    pub billing: Billing,
    /// TTL attribute to enable.
    pub ttl: Option<String>,
    /// NULL handling.
    pub nulls: Nulls,
    /// BatchWriteItem requests in flight per partition writer.
    pub concurrency: usize,
    /// Items written per second over the whole run (`None`: as fast as the table takes).
    pub max_writes_per_second: Option<f64>,
    /// The ledger's state file.
    pub state: PathBuf,
}

/// The ledger file when the plan names none.
pub const DEFAULT_STATE: &str = "tsmigrate-state.sqlite";

const OPTIONS: &[&str] = &[
    "table",
    "region",
    "endpoint_url",
    "partition_key",
    "sort_key",
    "attribute_types",
    "indexes",
    "billing",
    "read_capacity",
    "write_capacity",
    "ttl",
    "nulls",
    "concurrency",
    "max_writes_per_second",
    "state",
];

fn string(t: &toml::Table, key: &str, what: &str) -> Result<Option<String>> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(Error::Plan(format!(
            "{what}{key} must be a non-empty string"
        ))),
    }
}

fn positive(t: &toml::Table, key: &str, what: &str) -> Result<Option<i64>> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(n)) if *n >= 1 => Ok(Some(*n)),
        Some(_) => Err(Error::Plan(format!(
            "{what}{key} must be a positive integer"
        ))),
    }
}

impl DynamoOptions {
    /// Reads and checks `[target]`.
    pub fn parse(endpoint: &Endpoint) -> Result<DynamoOptions> {
        let t = &endpoint.options;
        if endpoint.url.is_some() {
            return Err(Error::Plan(
                "[target] kind = \"dynamodb\" takes no url: give region = \"…\" (and endpoint_url = \"http://…\" for a server other than AWS); \
                 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
                    .into(),
            ));
        }
        if let Some(k) = t.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(Error::Plan(format!(
                "[target] kind = \"dynamodb\" has no option `{k}`; its options are {}",
                OPTIONS.join(", ")
            )));
        }
        let w = "[target] ";
        let partition_key = string(t, "partition_key", w)?.ok_or_else(|| {
            Error::Plan(
                "[target] kind = \"dynamodb\" needs partition_key = \"…\": the table's partition key attribute (such as \"PK\")"
                    .into(),
            )
        })?;
        let sort_key = string(t, "sort_key", w)?;
        let mut attribute_types = BTreeMap::new();
        match t.get("attribute_types") {
            None => {}
            Some(toml::Value::Table(m)) => {
                for (k, v) in m {
                    let s = v.as_str().ok_or_else(|| {
                        Error::Plan(format!(
                            "[target] attribute_types.{k} must be \"S\", \"N\" or \"B\""
                        ))
                    })?;
                    attribute_types.insert(
                        k.clone(),
                        KeyType::parse(s, &format!("[target] attribute_types.{k}"))?,
                    );
                }
            }
            Some(_) => {
                return Err(Error::Plan(
                    "[target] attribute_types must be a table: { PK = \"S\", ts = \"N\" }".into(),
                ))
            }
        }
        let billing = match string(t, "billing", w)?.as_deref() {
            None | Some("on_demand") | Some("pay_per_request") => {
                if t.contains_key("read_capacity") || t.contains_key("write_capacity") {
                    return Err(Error::Plan(
                        "[target] read_capacity/write_capacity apply to billing = \"provisioned\"; an on-demand table (the default) has none"
                            .into(),
                    ));
                }
                Billing::OnDemand
            }
            Some("provisioned") => Billing::Provisioned {
                read: positive(t, "read_capacity", w)?.ok_or_else(|| {
                    Error::Plan("[target] billing = \"provisioned\" needs read_capacity = N".into())
                })?,
                write: positive(t, "write_capacity", w)?.ok_or_else(|| {
                    Error::Plan(
                        "[target] billing = \"provisioned\" needs write_capacity = N".into(),
                    )
                })?,
            },
            Some(other) => {
                return Err(Error::Plan(format!(
                    "[target] billing = {other:?}: use \"on_demand\" or \"provisioned\""
                )))
            }
        };
        let mut indexes = Vec::new();
        match t.get("indexes") {
            None => {}
            Some(toml::Value::Table(m)) => {
                for (name, v) in m {
                    indexes.push(parse_index(name, v, billing)?);
                }
            }
            Some(_) => return Err(Error::Plan(
                "[target] indexes must be tables: [target.indexes.GSI1] partition_key = \"GSI1PK\""
                    .into(),
            )),
        }
        let nulls = match string(t, "nulls", w)?.as_deref() {
            None | Some("omit") => Nulls::Omit,
            Some("null") => Nulls::Null,
            Some(other) => {
                return Err(Error::Plan(format!(
                    "[target] nulls = {other:?}: use \"omit\" (leave the attribute out) or \"null\" (a NULL attribute)"
                )))
            }
        };
        let concurrency = positive(t, "concurrency", w)?.unwrap_or(8);
        let max_writes_per_second = match t.get("max_writes_per_second") {
            None => None,
            Some(toml::Value::Integer(0)) => None,
            Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as f64),
            Some(toml::Value::Float(x)) if *x > 0.0 && x.is_finite() => Some(*x),
            Some(_) => {
                return Err(Error::Plan(
                    "[target] max_writes_per_second must be a positive number of items per second (0: no cap)"
                        .into(),
                ))
            }
        };
        let opts = DynamoOptions {
            table: string(t, "table", w)?,
            region: string(t, "region", w)?,
            // Empty is AWS itself, so a plan can say endpoint_url = "${DYNAMODB_ENDPOINT:-}".
            endpoint_url: match t.get("endpoint_url") {
                Some(toml::Value::String(s)) if s.trim().is_empty() => None,
                _ => string(t, "endpoint_url", w)?,
            },
            partition_key,
            sort_key,
            attribute_types,
            indexes,
            billing,
            ttl: string(t, "ttl", w)?,
            nulls,
            concurrency: usize::try_from(concurrency.min(256)).unwrap_or(8),
            max_writes_per_second,
            state: PathBuf::from(string(t, "state", w)?.unwrap_or_else(|| DEFAULT_STATE.into())),
        };
        if let Some(url) = &opts.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Plan(format!(
                    "[target] endpoint_url = {url:?} must start with http:// or https://"
                )));
            }
        }
        for name in opts.attribute_types.keys() {
            if !opts.key_attributes().contains(&name.as_str()) {
                return Err(Error::Plan(format!(
                    "[target] attribute_types.{name}: `{name}` is not a key attribute of the table or of an index; \
                     only key attributes have declared types (the others take the type of their values)"
                )));
            }
        }
        if opts
            .ttl
            .as_deref()
            .is_some_and(|a| opts.key_attributes().contains(&a))
        {
            return Err(Error::Plan(
                "[target] ttl names a key attribute; the TTL attribute is a plain Number attribute"
                    .into(),
            ));
        }
        Ok(opts)
    }

    /// Every key attribute of the table and its indexes, once each.
    pub fn key_attributes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec![self.partition_key.as_str()];
        out.extend(self.sort_key.as_deref());
        for ix in &self.indexes {
            out.push(&ix.partition_key);
            out.extend(ix.sort_key.as_deref());
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|a| seen.insert(*a));
        out
    }

    /// The declared type of key attribute `name` (S unless `attribute_types` says otherwise).
    pub fn key_type(&self, name: &str) -> KeyType {
        self.attribute_types
            .get(name)
            .copied()
            .unwrap_or(KeyType::S)
    }

    /// The table's own key attributes: partition key, then sort key.
    pub fn table_key(&self) -> Vec<String> {
        let mut k = vec![self.partition_key.clone()];
        k.extend(self.sort_key.clone());
        k
    }
}

fn parse_index(name: &str, v: &toml::Value, billing: Billing) -> Result<IndexSpec> {
    let what = format!("[target.indexes.{name}] ");
    let t = v.as_table().ok_or_else(|| {
        Error::Plan(format!(
            "{what}must be a table with partition_key = \"…\" (and sort_key, projection)"
        ))
    })?;
    if let Some(k) = t.keys().find(|k| {
        ![
            "partition_key",
            "sort_key",
            "projection",
            "read_capacity",
            "write_capacity",
        ]
        .contains(&k.as_str())
    }) {
        return Err(Error::Plan(format!(
            "{what}has no option `{k}`; its options are partition_key, sort_key, projection, read_capacity, write_capacity"
        )));
    }
    let partition_key = string(t, "partition_key", &what)?
        .ok_or_else(|| Error::Plan(format!("{what}needs partition_key = \"…\"")))?;
    let projection = match t.get("projection") {
        None => Projection::All,
        Some(toml::Value::String(s)) if s == "all" => Projection::All,
        Some(toml::Value::String(s)) if s == "keys_only" => Projection::KeysOnly,
        Some(toml::Value::Array(a)) => Projection::Include(
            a.iter()
                .map(|x| {
                    x.as_str().map(str::to_string).ok_or_else(|| {
                        Error::Plan(format!("{what}projection lists attribute names (strings)"))
                    })
                })
                .collect::<Result<_>>()?,
        ),
        Some(_) => {
            return Err(Error::Plan(format!(
                "{what}projection is \"all\", \"keys_only\" or a list of attribute names"
            )))
        }
    };
    let capacity = match billing {
        Billing::OnDemand => {
            if t.contains_key("read_capacity") || t.contains_key("write_capacity") {
                return Err(Error::Plan(format!(
                    "{what}read_capacity/write_capacity apply to a provisioned table ([target] billing = \"provisioned\")"
                )));
            }
            None
        }
        Billing::Provisioned { read, write } => Some((
            positive(t, "read_capacity", &what)?.unwrap_or(read),
            positive(t, "write_capacity", &what)?.unwrap_or(write),
        )),
    };
    Ok(IndexSpec {
        name: name.to_string(),
        partition_key,
        sort_key: string(t, "sort_key", &what)?,
        projection,
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> Endpoint {
        let options: toml::Table = toml::from_str(text).unwrap();
        Endpoint {
            kind: "dynamodb".into(),
            url: None,
            options,
        }
    }

    #[test]
    fn a_single_table_design_parses() {
        let o = DynamoOptions::parse(&endpoint(
            r#"
            table = "iot"
            partition_key = "PK"
            sort_key = "SK"
            ttl = "ttl"
            attribute_types = { GSI2SK = "N" }
            [indexes.GSI1]
            partition_key = "GSI1PK"
            sort_key = "GSI1SK"
            [indexes.GSI2]
            partition_key = "GSI2PK"
            sort_key = "GSI2SK"
            projection = ["name"]
            "#,
        ))
        .unwrap();
        assert_eq!(o.table.as_deref(), Some("iot"));
        assert_eq!(
            o.key_attributes(),
            ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"]
        );
        assert_eq!(o.key_type("GSI2SK"), KeyType::N);
        assert_eq!(o.key_type("PK"), KeyType::S);
        assert_eq!(
            o.indexes[1].projection,
            Projection::Include(vec!["name".into()])
        );
        assert_eq!(o.billing, Billing::OnDemand);
        assert_eq!(o.nulls, Nulls::Omit);
        assert_eq!(o.state, PathBuf::from(DEFAULT_STATE));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, wanted) in [
            ("sort_key = \"SK\"", "needs partition_key"),
            (
                "partition_key = \"PK\"\nbilling = \"provisioned\"",
                "needs read_capacity",
            ),
            ("partition_key = \"PK\"\nread_capacity = 5", "provisioned"),
            (
                "partition_key = \"PK\"\nattribute_types = { x = \"S\" }",
                "not a key attribute",
            ),
            (
                "partition_key = \"PK\"\nattribute_types = { PK = \"X\" }",
                "\"S\" (string)",
            ),
            ("partition_key = \"PK\"\nttl = \"PK\"", "TTL attribute"),
            (
                "partition_key = \"PK\"\nendpoint_url = \"localhost:8000\"",
                "http://",
            ),
            ("partition_key = \"PK\"\ntabel = \"x\"", "no option `tabel`"),
            (
                "partition_key = \"PK\"\n[indexes.G]\nsort_key = \"x\"",
                "needs partition_key",
            ),
        ] {
            let e = DynamoOptions::parse(&endpoint(text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }
}
