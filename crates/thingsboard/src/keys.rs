//! Key ids to key names: ThingsBoard stores a telemetry (and, from 3.7, attribute) key as its
//! id in the key dictionary; the streams carry its name, after the stream's `rename_keys`.
//!
//! ThingsBoard adds keys to the dictionary while it runs, so a name a plan renames may not be
//! there yet (a note, not an error: the rename applies when the key appears), and a read may
//! meet an id the source has not loaded yet ([`KeyNames::resolve`] says so, and the caller
//! loads the dictionary again).

use std::collections::BTreeMap;
use std::sync::Arc;

use tsmigrate_core::{Column, DataType};

/// Key id → name (after renaming), indexed by id.
#[derive(Clone, Debug, Default)]
pub struct KeyNames {
    names: Vec<Option<Arc<str>>>,
}

impl KeyNames {
    /// The names of `dictionary`'s keys with `renames` applied.
    pub fn new(dictionary: &BTreeMap<i32, String>, renames: &BTreeMap<String, String>) -> Self {
        let max = dictionary
            .keys()
            .copied()
            .filter(|k| *k >= 0)
            .max()
            .unwrap_or(0) as usize;
        let mut names = vec![None; max + 1];
        for (id, name) in dictionary {
            if let Some(slot) = usize::try_from(*id).ok().and_then(|i| names.get_mut(i)) {
                let n = renames.get(name).unwrap_or(name);
                *slot = Some(Arc::from(n.as_str()));
            }
        }
        KeyNames { names }
    }

    /// The name of key `id`.
    pub fn name(&self, id: i64) -> Option<&Arc<str>> {
        usize::try_from(id)
            .ok()
            .and_then(|k| self.names.get(k))
            .and_then(Option::as_ref)
    }

    /// A text column of the names of the key ids in `ids`, and whether every id was known;
    /// an unknown id keeps its number as its name.
    pub fn resolve(&self, ids: &Column) -> (Column, bool) {
        let mut out = Column::with_capacity(DataType::Text, ids.len());
        let mut all_known = true;
        let Some(raw) = ids.ints() else {
            for _ in 0..ids.len() {
                out.push_null();
            }
            return (out, false);
        };
        for (i, id) in raw.iter().enumerate() {
            if !ids.is_valid(i) {
                out.push_null();
                continue;
            }
            match self.name(*id) {
                Some(n) => out.push_str(n),
                None => {
                    all_known = false;
                    out.push_str(&id.to_string());
                }
            }
        }
        (out, all_known)
    }

    /// Ids whose name (after renaming) is `name`: several when renames merge keys.
    pub fn ids_named(&self, name: &str) -> Vec<i32> {
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_deref() == Some(name))
            .filter_map(|(i, _)| i32::try_from(i).ok())
            .collect()
    }
}

/// The keys `renames` renames that the dictionary does not have (yet), for a note.
pub fn missing_renames(
    dictionary: &BTreeMap<i32, String>,
    renames: &BTreeMap<String, String>,
) -> Vec<String> {
    renames
        .keys()
        .filter(|from| !dictionary.values().any(|n| n == *from))
        .cloned()
        .collect()
}

/// Ids of the keys `wanted` names (source names, before renaming); names the dictionary does
/// not have select nothing (yet). `None` when `wanted` is empty (every key).
pub fn key_filter(dictionary: &BTreeMap<i32, String>, wanted: &[String]) -> Option<Vec<i32>> {
    if wanted.is_empty() {
        return None;
    }
    Some(
        dictionary
            .iter()
            .filter(|(_, n)| wanted.contains(n))
            .map(|(id, _)| *id)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> BTreeMap<i32, String> {
        [(1, "temperature"), (3, "146"), (4, "147")]
            .into_iter()
            .map(|(i, n)| (i, n.to_string()))
            .collect()
    }

    #[test]
    fn renames_apply_and_unknown_ids_are_reported() {
        let renames: BTreeMap<String, String> = [("146", "level"), ("999", "later")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let k = KeyNames::new(&dict(), &renames);
        let mut ids = Column::with_capacity(DataType::Int32, 4);
        for id in [1, 3, 7] {
            ids.push_i64(id);
        }
        ids.push_null();
        let (names, all) = k.resolve(&ids);
        assert!(!all);
        let text: Vec<String> = (0..names.len())
            .map(|i| tsmigrate_core::convert::value_to_string(names.get(i)))
            .collect();
        assert_eq!(text, ["temperature", "level", "7", "NULL"]);
        assert_eq!(missing_renames(&dict(), &renames), ["999"]);
        assert_eq!(k.ids_named("level"), [3]);
        assert_eq!(key_filter(&dict(), &[]), None);
        assert_eq!(
            key_filter(&dict(), &["147".into(), "nope".into()]),
            Some(vec![4])
        );
        assert_eq!(key_filter(&dict(), &["nope".into()]), Some(vec![]));
    }
}
