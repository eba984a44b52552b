//! Mapped rows as the target stores them: every column converted to the target column's
//! type within its limits. `run` writes what this returns and `verify` compares it, so both
//! see the same rows.

use std::sync::Arc;

use tsmigrate_core::convert::{convert, ConvertCtx};
use tsmigrate_core::mapping::Mapping;
use tsmigrate_core::{Batch, ColumnLimits, LossyCounts, RowErrors, Schema};

use crate::error::EngineError;
use crate::lookup::Lookups;

/// The target's column types and what each column can hold beyond its type.
pub type TargetTypes<'a> = (&'a Arc<Schema>, &'a [ColumnLimits]);

/// Maps a source batch and converts every column to the type the target holds it in, within
/// the column's limits (`target`): the rows as the target will store them. Rows that cannot
/// be mapped or converted stay in the batch (with placeholder values) and are listed in
/// `errors`. `run` writes what this returns and `verify` compares it, so both see the same
/// rows.
pub fn map_to_target(
    mapping: &Mapping,
    lookups: Option<&Lookups>,
    target: TargetTypes<'_>,
    stream: &str,
    batch: &Batch,
    errors: &mut RowErrors,
    lossy: &mut LossyCounts,
) -> Result<Batch, EngineError> {
    batch.reject_source_errors(errors);
    let mapped = mapping.apply(batch, errors, lossy)?;
    let mapped = match lookups {
        Some(l) => l.apply(&mapped, errors)?,
        None => mapped,
    };
    to_target_types(&mapped, target, stream, errors, lossy)
}

/// Converts every column of `mapped` (mapped rows, or an aggregate's rows) to the type the
/// target holds it in, within the column's limits; rows that cannot be converted, or do not
/// fit, are listed in `errors`.
pub fn to_target_types(
    mapped: &Batch,
    (target_schema, limits): TargetTypes<'_>,
    stream: &str,
    errors: &mut RowErrors,
    lossy: &mut LossyCounts,
) -> Result<Batch, EngineError> {
    let mut cols = Vec::with_capacity(target_schema.fields.len());
    for (i, (field, col)) in target_schema.fields.iter().zip(&mapped.columns).enumerate() {
        let mut ctx = ConvertCtx {
            errors: &mut *errors,
            lossy: &mut *lossy,
            column: Some(&field.name),
        };
        let col = if col.dtype() == field.dtype {
            col.clone()
        } else {
            Arc::new(convert(col, field.dtype, &mut ctx))
        };
        match limits.get(i).filter(|l| !l.is_none()) {
            Some(l) => cols.push(Arc::new(tsmigrate_core::limits::apply(&col, l, &mut ctx))),
            None => cols.push(col),
        }
    }
    Batch::new(target_schema.clone(), cols).ok_or_else(|| {
        tsmigrate_core::Error::Internal(format!(
            "stream `{stream}`: mapped columns do not match the target's"
        ))
        .into()
    })
}
