//! Rows as DynamoDB items and items as rows: the type mapping of the DynamoDB target.
//!
//! | column type (after the sink's own conversions) | attribute |
//! |---|---|
//! | text (and timestamps, as ISO-8601 text; UUIDs) | `S` |
//! | integers, floats, numeric | `N`: at most 38 significant digits, magnitude 1E-130 to 1E+126; NaN, ±Infinity and values beyond are rejected, never rounded |
//! | boolean | `BOOL` |
//! | JSON | its value: object → `M`, array → `L`, string → `S`, number → `N`, true/false → `BOOL`, null → `NULL` |
//! | bytes | `B` |
//! | NULL | left out (`nulls = "omit"`, the default) or `NULL` (`nulls = "null"`) |
//!
//! An item larger than DynamoDB's 400 KB, a key attribute that is NULL or empty, and a key
//! attribute of the wrong type are rejected with the reason (DynamoDB would refuse the whole
//! batch of 25 otherwise).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use tsmigrate_core::decimal::Decimal;
use tsmigrate_core::{Batch, Column, DataType, Field, ValueRef};

use crate::options::{KeyType, Nulls};

/// DynamoDB's largest item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// An item as the SDK takes it.
pub type Item = HashMap<String, AttributeValue>;

/// The role of a column in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A plain attribute.
    Plain,
    /// A key attribute of the table (`table_key`) or of an index, of this type.
    Key {
        /// Its declared type.
        ty: KeyType,
        /// True for the table's own partition or sort key (must be present).
        table_key: bool,
    },
}

/// Turns rows of one prepared target into items.
#[derive(Clone, Debug)]
pub struct Encoder {
    names: Vec<String>,
    roles: Vec<Role>,
    nulls: Nulls,
    /// Column indexes of the table's partition key and sort key.
    key: Vec<usize>,
}

impl Encoder {
    /// An encoder for `fields`, whose roles and table key (column indexes) are given.
    pub fn new(fields: &[Field], roles: Vec<Role>, key: Vec<usize>, nulls: Nulls) -> Encoder {
        Encoder {
            names: fields.iter().map(|f| f.name.clone()).collect(),
            roles,
            nulls,
            key,
        }
    }

    /// Row `r` of `batch` as an item; `Err((column, reason))` when it cannot be one.
    pub fn item(&self, batch: &Batch, r: usize) -> Result<Item, (String, String)> {
        let mut item = Item::with_capacity(self.names.len());
        let mut size = 0usize;
        for (c, (name, role)) in self.names.iter().zip(&self.roles).enumerate() {
            let fail = |reason: String| (name.clone(), reason);
            let Some(col) = batch.columns.get(c) else {
                return Err(fail("internal error: the batch lacks the column".into()));
            };
            let value = col.get(r);
            let attr =
                match value {
                    ValueRef::Null => match role {
                        Role::Key {
                            table_key: true, ..
                        } => return Err(fail(
                            "is NULL, and it is a key attribute of the table: every item needs it"
                                .into(),
                        )),
                        // An index key left out: the item is simply not in that (sparse) index.
                        Role::Key { .. } => None,
                        Role::Plain => match self.nulls {
                            Nulls::Omit => None,
                            Nulls::Null => Some(AttributeValue::Null(true)),
                        },
                    },
                    v => Some(attribute(v, col.dtype()).map_err(fail)?),
                };
            let Some(attr) = attr else { continue };
            if let Role::Key { ty, .. } = role {
                check_key(&attr, *ty).map_err(fail)?;
            }
            size += name.len() + attr_size(&attr);
            item.insert(name.clone(), attr);
        }
        if size > MAX_ITEM_BYTES {
            return Err((
                "*".into(),
                format!(
                    "the item is about {size} bytes, larger than DynamoDB's limit of {MAX_ITEM_BYTES} bytes (400 KB)"
                ),
            ));
        }
        Ok(item)
    }

    /// A 128-bit hash of an item's table key: two items with the same hash would be the
    /// same item.
    pub fn key_hash(&self, item: &Item) -> u128 {
        let mut buf = Vec::with_capacity(64);
        for &k in &self.key {
            if let Some(a) = self.names.get(k).and_then(|n| item.get(n)) {
                key_bytes(a, &mut buf);
            }
            buf.push(0xff);
        }
        xxhash_rust::xxh3::xxh3_128(&buf)
    }

    /// The table key of an item, as `PK = …, SK = …` for messages.
    pub fn describe_key(&self, item: &Item) -> String {
        self.key
            .iter()
            .filter_map(|&k| self.names.get(k))
            .map(|n| {
                let v = item.get(n).map(describe_attr).unwrap_or_default();
                format!("{n} = {v}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn key_bytes(a: &AttributeValue, out: &mut Vec<u8>) {
    match a {
        AttributeValue::S(s) => {
            out.push(b'S');
            out.extend_from_slice(s.as_bytes());
        }
        AttributeValue::N(n) => {
            out.push(b'N');
            out.extend_from_slice(n.as_bytes());
        }
        AttributeValue::B(b) => {
            out.push(b'B');
            out.extend_from_slice(b.as_ref());
        }
        other => out.extend_from_slice(describe_attr(other).as_bytes()),
    }
}

/// A short text of an attribute for messages.
pub fn describe_attr(a: &AttributeValue) -> String {
    match a {
        AttributeValue::S(s) => format!("{s:?}"),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::B(b) => format!("<{} bytes>", b.as_ref().len()),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "NULL".into(),
        _ => "<map or list>".into(),
    }
}

fn check_key(a: &AttributeValue, ty: KeyType) -> Result<(), String> {
    let ok = match (a, ty) {
        (AttributeValue::S(s), KeyType::S) => {
            if s.is_empty() {
                return Err("is an empty string, which a key attribute cannot be".into());
            }
            true
        }
        (AttributeValue::B(b), KeyType::B) => {
            if b.as_ref().is_empty() {
                return Err("is empty, which a key attribute cannot be".into());
            }
            true
        }
        (AttributeValue::N(_), KeyType::N) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "is a key attribute of type {}, and the value {} is not one",
            ty.name(),
            describe_attr(a)
        ))
    }
}

/// Approximate stored size of an attribute value (DynamoDB's rules, rounded up).
fn attr_size(a: &AttributeValue) -> usize {
    match a {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len() / 2 + 2,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + 1 + attr_size(v))
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + attr_size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// One non-NULL value as an attribute.
pub fn attribute(v: ValueRef<'_>, dtype: DataType) -> Result<AttributeValue, String> {
    Ok(match v {
        ValueRef::Null => AttributeValue::Null(true),
        ValueRef::Bool(b) => AttributeValue::Bool(b),
        ValueRef::Int(i) => AttributeValue::N(i.to_string()),
        ValueRef::Float(x) => {
            if !x.is_finite() {
                return Err(format!(
                    "is {x}, and a DynamoDB number cannot be NaN or infinite"
                ));
            }
            // A float4 as the float4 it is (`0.1`), not the double it widens to.
            AttributeValue::N(number(&tsmigrate_core::convert::value_text(v, dtype))?)
        }
        ValueRef::Str(s) => match dtype {
            DataType::Numeric => AttributeValue::N(number(s)?),
            DataType::Json => {
                let v: Value =
                    serde_json::from_str(s).map_err(|e| format!("is not valid JSON ({e})"))?;
                json_attribute(&v)?
            }
            _ => AttributeValue::S(s.to_string()),
        },
        ValueRef::Bytes(b) => AttributeValue::B(Blob::new(b.to_vec())),
        ValueRef::Uuid(u) => AttributeValue::S(uuid_text(u)),
        ValueRef::Timestamp(..) => AttributeValue::S(tsmigrate_core::convert::value_to_string(v)),
    })
}

fn uuid_text(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A JSON value as an attribute (objects as maps, arrays as lists).
pub fn json_attribute(v: &Value) -> Result<AttributeValue, String> {
    Ok(match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(number(&n.to_string())?),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => {
            AttributeValue::L(a.iter().map(json_attribute).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), json_attribute(x)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// A decimal number's text as DynamoDB takes it: checked for DynamoDB's 38 significant digits
/// and its range (magnitudes 1E-130 to below 1E+126), in plain notation without zeros that do
/// not change the value. Never rounded: a number that does not fit is an error.
pub fn number(text: &str) -> Result<String, String> {
    let d = Decimal::parse(text).ok_or_else(|| {
        format!("{text:?} is not a number DynamoDB can store (NaN and infinities cannot be stored)")
    })?;
    if d.digits.len() > 38 {
        return Err(format!(
            "{text} has {} significant digits; a DynamoDB number holds at most 38, and tsmigrate does not round",
            d.digits.len()
        ));
    }
    if !d.digits.is_empty() && !(-129..=126).contains(&d.magnitude) {
        return Err(format!(
            "{text} is outside DynamoDB's number range (magnitudes from 1E-130 to below 1E+126)"
        ));
    }
    // Scientific notation far from 1: 126 plain digits for 1.2E+125 are valid for DynamoDB
    // but choke readers (boto3's, moto's).
    Ok(d.to_compact())
}

/// Builds the columns of a batch from items, one column per field, each in the field's type
/// where the attribute allows (a value that does not fit its column reads as NULL, which
/// verify then reports as different).
pub struct ColumnsBuilder {
    fields: Vec<Field>,
    columns: Vec<Column>,
}

impl ColumnsBuilder {
    /// Empty columns for `fields`.
    pub fn new(fields: &[Field], rows: usize) -> ColumnsBuilder {
        ColumnsBuilder {
            fields: fields.to_vec(),
            columns: fields
                .iter()
                .map(|f| Column::with_capacity(f.dtype, rows))
                .collect(),
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// True when the rows should go out as a batch: `batch_rows` of them, or
    /// [`tsmigrate_core::MAX_BATCH_BYTES`] of values (items reach 400 KB).
    pub fn full(&self, batch_rows: usize) -> bool {
        self.len() >= batch_rows
            || self.columns.iter().map(Column::byte_size).sum::<usize>()
                >= tsmigrate_core::MAX_BATCH_BYTES
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one item as a row.
    pub fn push(&mut self, item: &Item) {
        for (f, col) in self.fields.iter().zip(&mut self.columns) {
            push_attr(col, f.dtype, item.get(&f.name));
        }
    }

    /// The rows as a batch (and a fresh, empty builder in its place).
    pub fn take(&mut self) -> Option<Batch> {
        let rows = self.len();
        let cols = std::mem::replace(
            &mut self.columns,
            self.fields
                .iter()
                .map(|f| Column::with_capacity(f.dtype, rows))
                .collect(),
        );
        Batch::new(
            std::sync::Arc::new(tsmigrate_core::Schema::new(self.fields.clone())),
            cols.into_iter().map(std::sync::Arc::new).collect(),
        )
    }
}

fn push_attr(col: &mut Column, dtype: DataType, a: Option<&AttributeValue>) {
    let Some(a) = a else {
        col.push_null();
        return;
    };
    match (dtype, a) {
        (_, AttributeValue::Null(_)) if dtype != DataType::Json => col.push_null(),
        (DataType::Bool, AttributeValue::Bool(b)) => col.push_bool(*b),
        (DataType::Int16 | DataType::Int32 | DataType::Int64, AttributeValue::N(n)) => {
            match n.parse::<i64>() {
                Ok(i) => col.push_i64(i),
                Err(_) => col.push_null(),
            }
        }
        // A float4 read back as the float4 its text names (0.1 → 0.1f32), as it was written.
        (DataType::Float32, AttributeValue::N(n)) => match n.parse::<f32>() {
            Ok(x) => col.push_f64(f64::from(x)),
            Err(_) => col.push_null(),
        },
        (DataType::Float64, AttributeValue::N(n)) => match n.parse::<f64>() {
            Ok(x) => col.push_f64(x),
            Err(_) => col.push_null(),
        },
        (DataType::Numeric, AttributeValue::N(n)) => col.push_str(n),
        (DataType::Text, AttributeValue::S(s)) => col.push_str(s),
        (DataType::Text, AttributeValue::N(n)) => col.push_str(n),
        (DataType::Bytes, AttributeValue::B(b)) => col.push_bytes(b.as_ref()),
        (DataType::Json, a) => col.push_str(&attr_json(a).to_string()),
        _ => col.push_null(),
    }
}

/// An attribute as a JSON value (sets as arrays, binary as an array of byte values).
pub fn attr_json(a: &AttributeValue) -> Value {
    match a {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => serde_json::from_str::<serde_json::Number>(n)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), attr_json(v))).collect())
        }
        AttributeValue::L(l) => Value::Array(l.iter().map(attr_json).collect()),
        AttributeValue::Ss(s) => Value::Array(s.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => Value::Array(
            ns.iter()
                .map(|n| attr_json(&AttributeValue::N(n.clone())))
                .collect(),
        ),
        AttributeValue::B(b) => Value::Array(b.as_ref().iter().map(|x| Value::from(*x)).collect()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_never_rounded() {
        assert_eq!(number("1.50").unwrap(), "1.5");
        assert_eq!(number("-007").unwrap(), "-7");
        assert_eq!(number("-0.0").unwrap(), "0");
        assert_eq!(number("9007199254740993").unwrap(), "9007199254740993");
        assert_eq!(number("1e3").unwrap(), "1000");
        assert_eq!(number("0.000123").unwrap(), "0.000123");
        // Far from 1 in scientific notation, so readers (boto3, moto) take it.
        assert_eq!(number("1.5e40").unwrap(), "1.5E+40");
        assert_eq!(number("1e-31").unwrap(), format!("0.{}1", "0".repeat(30)));
        assert_eq!(number("1e-45").unwrap(), "1E-45");
        assert_eq!(number("1.2E+125").unwrap(), "1.2E+125");
        let digits38 = "12345678901234567890123456789012345678";
        assert_eq!(number(digits38).unwrap(), digits38);
        assert!(number(&format!("{digits38}9"))
            .unwrap_err()
            .contains("39 significant"));
        assert!(number(&format!("{digits38}000")).is_ok());
        assert!(number("1e126").unwrap_err().contains("range"));
        assert!(number("9.9e125").is_ok());
        assert!(number("1e-131").unwrap_err().contains("range"));
        assert!(number("1e-130").is_ok());
        for bad in ["NaN", "Infinity", "-inf", "", "1.2.3", "abc", "1e"] {
            assert!(number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_become_attributes() {
        let n = attribute(ValueRef::Float(f64::NAN), DataType::Float64).unwrap_err();
        assert!(n.contains("NaN"), "{n}");
        assert_eq!(
            attribute(ValueRef::Float(0.1), DataType::Float64).unwrap(),
            AttributeValue::N("0.1".into())
        );
        let j = attribute(
            ValueRef::Str(r#"{"a":[1,"x",null,true],"b":{"c":2.5}}"#),
            DataType::Json,
        )
        .unwrap();
        let AttributeValue::M(m) = &j else {
            panic!("{j:?}")
        };
        assert_eq!(
            m.get("a"),
            Some(&AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::S("x".into()),
                AttributeValue::Null(true),
                AttributeValue::Bool(true)
            ]))
        );
        assert_eq!(
            attr_json(&j),
            serde_json::json!({"a":[1,"x",null,true],"b":{"c":2.5}})
        );
        assert!(attribute(ValueRef::Str("{bad"), DataType::Json)
            .unwrap_err()
            .contains("not valid JSON"));
        assert_eq!(
            attribute(ValueRef::Uuid(&[0xab; 16]), DataType::Uuid).unwrap(),
            AttributeValue::S("abababab-abab-abab-abab-abababababab".into())
        );
    }
}
