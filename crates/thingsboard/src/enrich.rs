//! Turning rows as ThingsBoard stores them into the streams' rows: key ids into names (after
//! `rename_keys`), the `entity_type` column from which entity table holds the id, attribute
//! scope ids into names, and — when the plan asks — ThingsBoard's "no entity" `NULL_UUID`
//! into NULL.
//!
//! Pure: an [`Enricher`] is a snapshot of what the source knows (dictionary, entity types);
//! when a batch holds a key id or an entity id it does not know, the caller (the live source)
//! looks them up in the database and asks again.

use std::collections::BTreeSet;
use std::sync::Arc;

use tsmigrate_core::{Batch, Column, DataType, End, Error, Result, Schema};

use crate::entity_types::EntityTypes;
use crate::keys::KeyNames;
use crate::streams::scope_name;

/// ThingsBoard's "no entity" id (`EntityId.NULL_UUID`).
pub const NULL_UUID: [u8; 16] = [
    0x13, 0x81, 0x40, 0x00, 0x1d, 0xd2, 0x11, 0xb2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
];

/// What a batch needs before it can be enriched: keys or entities the snapshot lacks.
#[derive(Debug, Default, PartialEq)]
pub struct Missing {
    /// A key id not in the dictionary snapshot.
    pub keys: bool,
    /// Entity ids whose type is not known.
    pub entities: Vec<[u8; 16]>,
}

/// A snapshot of the dictionary and the entity types, with the stream's options.
pub struct Enricher {
    /// Key names (renamed).
    pub keys: KeyNames,
    /// Entity types known.
    pub types: Arc<EntityTypes>,
    /// Write NULL for NULL_UUID in reference columns.
    pub null_uuid_as_null: bool,
    /// Keep only rows of these entity types (type indexes; `None`: all).
    pub entity_types: Option<BTreeSet<u8>>,
}

fn internal(m: &str) -> Error {
    Error::Decode {
        end: End::Source,
        context: "ThingsBoard".into(),
        message: format!("internal error: {m}"),
    }
}

impl Enricher {
    /// What `raw` (entity ids in column `entity`, key ids in column `key` when given) needs
    /// looked up first.
    pub fn missing(&self, raw: &Batch, entity: usize, key: Option<usize>) -> Missing {
        let entities = raw
            .columns
            .get(entity)
            .and_then(|c| c.uuids())
            .map(|ids| self.types.unknown(ids.iter()))
            .unwrap_or_default();
        let keys = key
            .and_then(|k| raw.columns.get(k))
            .and_then(|c| c.ints().map(|ids| (c, ids)))
            .is_some_and(|(c, ids)| {
                ids.iter()
                    .enumerate()
                    .any(|(i, id)| c.is_valid(i) && self.keys.name(*id).is_none())
            });
        Missing { keys, entities }
    }

    /// `telemetry` / `latest` rows: the raw columns with the key id (column 1) replaced by its
    /// name and `entity_type` appended, into `schema`; rows of unwanted entity types dropped.
    pub fn key_values(&self, raw: Batch, schema: &Arc<Schema>) -> Result<Batch> {
        let (names, _) = self.keys.resolve(
            raw.columns
                .get(1)
                .ok_or_else(|| internal("a batch without a key column"))?,
        );
        let types = self.types.column(
            raw.columns
                .first()
                .ok_or_else(|| internal("a batch without an entity column"))?,
        );
        let mut columns = raw.columns;
        columns[1] = Arc::new(names);
        columns.push(Arc::new(types));
        let batch = Batch::new(schema.clone(), columns)
            .ok_or_else(|| internal("enriched rows do not match the stream's schema"))?;
        Ok(self.keep_types(batch, schema.fields.len() - 1))
    }

    /// `attributes` rows of ThingsBoard ≥ 3.7 (`entity_id, scope id, key id, values…,
    /// last_update_ts, version`) as the stream's (`entity_id, entity_type, scope, key, …`).
    pub fn keyed_attributes(&self, raw: Batch, schema: &Arc<Schema>) -> Result<Batch> {
        let col = |i: usize| {
            raw.columns
                .get(i)
                .cloned()
                .ok_or_else(|| internal("an attribute batch with too few columns"))
        };
        let types = self.types.column(col(0)?.as_ref());
        let scope_ids = col(1)?;
        let mut scopes = Column::with_capacity(DataType::Text, raw.len());
        if let Some(ids) = scope_ids.ints() {
            for (i, id) in ids.iter().enumerate() {
                if !scope_ids.is_valid(i) {
                    scopes.push_null();
                } else {
                    match scope_name(*id) {
                        Some(n) => scopes.push_str(n),
                        None => scopes.push_str(&id.to_string()),
                    }
                }
            }
        }
        let (names, _) = self.keys.resolve(col(2)?.as_ref());
        let mut columns = vec![col(0)?, Arc::new(types), Arc::new(scopes), Arc::new(names)];
        columns.extend(raw.columns.iter().skip(3).cloned());
        let batch = Batch::new(schema.clone(), columns)
            .ok_or_else(|| internal("attribute rows do not match the stream's schema"))?;
        Ok(self.keep_types(batch, 1))
    }

    /// Rows whose entity type (text column `at`) is wanted.
    pub fn keep_types(&self, batch: Batch, at: usize) -> Batch {
        let (Some(wanted), Some(col)) = (&self.entity_types, batch.columns.get(at)) else {
            return batch;
        };
        let Some(strs) = col.strs() else {
            return batch;
        };
        // Rows come grouped by entity: decide once per run of equal names.
        let mut last: Option<(&[u8], bool)> = None;
        let keep: Vec<bool> = (0..batch.len())
            .map(|i| {
                let name = strs.get(i);
                match last {
                    Some((prev, k)) if prev == name => k,
                    _ => {
                        let k = std::str::from_utf8(name)
                            .ok()
                            .and_then(crate::entity_types::type_index)
                            .is_some_and(|t| wanted.contains(&t));
                        last = Some((name, k));
                        k
                    }
                }
            })
            .collect();
        if keep.iter().all(|k| *k) {
            batch
        } else {
            batch.filter(&keep)
        }
    }

    /// NULL for NULL_UUID in every uuid column of `batch` but `keep` (a stream's key
    /// columns), when the plan asks for it.
    pub fn null_uuids(&self, batch: Batch, keep: &[&str]) -> Result<Batch> {
        if !self.null_uuid_as_null {
            return Ok(batch);
        }
        let schema = batch.schema.clone();
        let mut columns = batch.columns;
        for (i, f) in schema.fields.iter().enumerate() {
            if f.dtype != DataType::Uuid || keep.contains(&f.name.as_str()) {
                continue;
            }
            let col = &columns[i];
            let Some(ids) = col.uuids() else { continue };
            if !ids.contains(&NULL_UUID) {
                continue;
            }
            let mut out = Column::with_capacity(DataType::Uuid, ids.len());
            for (r, id) in ids.iter().enumerate() {
                if !col.is_valid(r) || *id == NULL_UUID {
                    out.push_null();
                } else {
                    out.push_uuid(*id);
                }
            }
            columns[i] = Arc::new(out);
        }
        Batch::new(schema, columns).ok_or_else(|| internal("NULL_UUID mapping changed the schema"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tsmigrate_core::Field;

    #[test]
    fn null_uuid_is_the_thingsboard_constant() {
        let text = "13814000-1dd2-11b2-8080-808080808080".replace('-', "");
        let bytes: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        assert_eq!(bytes, NULL_UUID);
    }

    #[test]
    fn null_uuids_become_null_outside_key_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Uuid),
            Field::new("customer_id", DataType::Uuid),
        ]));
        let mut id = Column::with_capacity(DataType::Uuid, 2);
        let mut customer = Column::with_capacity(DataType::Uuid, 2);
        id.push_uuid(NULL_UUID);
        id.push_uuid([1; 16]);
        customer.push_uuid(NULL_UUID);
        customer.push_uuid([2; 16]);
        let batch = Batch::new(schema, vec![Arc::new(id), Arc::new(customer)]);
        let Some(batch) = batch else { panic!("batch") };
        let e = Enricher {
            keys: KeyNames::new(&BTreeMap::new(), &BTreeMap::new()),
            types: Arc::new(EntityTypes::default()),
            null_uuid_as_null: true,
            entity_types: None,
        };
        let out = match e.null_uuids(batch, &["id"]) {
            Ok(b) => b,
            Err(err) => panic!("{err}"),
        };
        assert!(out.columns[0].is_valid(0), "the key column keeps NULL_UUID");
        assert!(!out.columns[1].is_valid(0));
        assert!(out.columns[1].is_valid(1));
    }
}
