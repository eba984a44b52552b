//! `copy_text::CopyDecoder` over arbitrary COPY text, with one column of every `FieldKind`
//! (field i fills column i) and 7-row batches, driven the way `read::read_section` drives
//! it (decode, take full batches, `decode_last` on a final line without newline). After a
//! bad row the failing line is skipped and decoding goes on, as the decoder allows (its
//! columns are truncated back to the batch's rows).
//!
//! Checked: no panic; every batch it hands out has exactly the rows decoded since the
//! previous one, with every column that long and of the schema's type; no decoded row is
//! lost (`take_batch` returns a batch whenever rows are pending).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tsmigrate_core::{Batch, DataType, Field, Schema, TimeUnit};
use tsmigrate_pgdump::copy_text::{CopyDecoder, FieldKind};

const BATCH_ROWS: usize = 7;

/// (column name, SQL type as pg_dump declares it, kind expected, logical type expected)
const COLUMNS: [(&str, &str, FieldKind, DataType); 12] = [
    ("b", "boolean", FieldKind::Bool, DataType::Bool),
    ("i2", "smallint", FieldKind::Int(16), DataType::Int16),
    ("i4", "integer", FieldKind::Int(32), DataType::Int32),
    ("i8", "bigint", FieldKind::Int(64), DataType::Int64),
    ("f4", "real", FieldKind::Float32, DataType::Float32),
    (
        "f8",
        "double precision",
        FieldKind::Float64,
        DataType::Float64,
    ),
    ("n", "numeric(10,2)", FieldKind::Numeric, DataType::Numeric),
    (
        "t",
        "character varying(255)",
        FieldKind::Text,
        DataType::Text,
    ),
    ("u", "uuid", FieldKind::Uuid, DataType::Uuid),
    ("by", "bytea", FieldKind::Bytes, DataType::Bytes),
    (
        "tz",
        "timestamp(3) with time zone",
        FieldKind::Timestamptz,
        DataType::Timestamp(TimeUnit::Micros),
    ),
    (
        "ts",
        "timestamp without time zone",
        FieldKind::Timestamp,
        DataType::Timestamp(TimeUnit::Micros),
    ),
];

fn decoder() -> CopyDecoder {
    let mut fields = Vec::new();
    let mut kinds = Vec::new();
    for (name, sql, kind, dtype) in COLUMNS {
        let (k, d) = FieldKind::for_sql_type(sql);
        assert_eq!((k, d), (kind, dtype), "for_sql_type({sql:?})");
        fields.push(Field::new(name, d));
        kinds.push(k);
    }
    let targets = (0..COLUMNS.len()).map(Some).collect();
    CopyDecoder::new(Arc::new(Schema::new(fields)), targets, kinds, BATCH_ROWS)
}

/// Checks a batch against the rows decoded since the previous one.
fn check(batch: Option<Batch>, pending: u64) {
    let Some(b) = batch else {
        assert_eq!(
            pending, 0,
            "take_batch gave nothing while {pending} rows were decoded"
        );
        return;
    };
    assert!(
        pending > 0 && pending <= BATCH_ROWS as u64,
        "batch with {pending} pending rows"
    );
    assert_eq!(b.len() as u64, pending, "batch length vs rows decoded");
    assert_eq!(b.columns.len(), COLUMNS.len());
    for (c, (name, _, _, dtype)) in b.columns.iter().zip(COLUMNS) {
        assert_eq!(c.len(), b.len(), "column {name} length");
        assert_eq!(c.dtype(), dtype, "column {name} type");
        if let Some(v) = c.validity() {
            assert_eq!(v.len(), c.len(), "column {name} validity length");
        }
    }
}

/// Index just past the `n`-th newline (1-based) of `buf`, if there are that many.
fn after_lines(buf: &[u8], n: u64) -> Option<usize> {
    let mut seen = 0;
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return Some(i + 1);
            }
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let mut d = decoder();
    let mut taken = 0u64; // rows handed out in batches so far
    let mut at = 0usize;
    let mut faults = 0u32;
    let mut tail_ok = true;
    loop {
        if d.finished() || at >= data.len() {
            break;
        }
        let before = d.rows();
        match d.decode(&data[at..]) {
            Ok(used) => {
                assert!(used <= data.len() - at);
                at += used;
                if d.batch_full() {
                    let pending = d.rows() - taken;
                    check(d.take_batch(), pending);
                    taken = d.rows();
                } else if used == 0 {
                    break;
                }
            }
            Err(fault) => {
                faults += 1;
                assert_eq!(fault.row, d.rows() + 1);
                // Lines before the bad one were decoded (one row each); skip the bad one.
                let good = d.rows() - before;
                match after_lines(&data[at..], good + 1) {
                    Some(skip) => at += skip,
                    None => panic!("decode failed on a line that has no newline"),
                }
                if d.batch_full() {
                    let pending = d.rows() - taken;
                    check(d.take_batch(), pending);
                    taken = d.rows();
                }
            }
        }
    }
    if !d.finished() && at < data.len() {
        let rest = &data[at..];
        assert!(
            !rest.contains(&b'\n') || d.batch_full(),
            "decode left a complete line"
        );
        if d.batch_full() {
            let pending = d.rows() - taken;
            check(d.take_batch(), pending);
            taken = d.rows();
        }
        tail_ok = d.decode_last(rest).is_ok();
    }
    let pending = d.rows() - taken;
    check(d.take_batch(), pending);
    let _ = (faults, tail_ok);
});
