//! CSV files as tsmigrate writes and reads them: RFC 4180 with a header row, `,` between
//! fields, `"` quoting, `\n` after every record, UTF-8.
//!
//! Values are written as their canonical text (what PostgreSQL prints: `NaN`, `Infinity`,
//! shortest round-trip floats, RFC 3339 UTC timestamps, `\x` hex bytes, hyphenated UUIDs).
//! A NULL is an empty field and an empty string is `""`, so the two stay apart; a field is
//! quoted when it is empty or holds a comma, quote, CR or LF. Reading keeps that distinction
//! (the `csv` crate does not report whether a field was quoted, so the reader is our own
//! RFC 4180 tokenizer, [`crate::rfc4180`]).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use tsmigrate_core::convert::write_value;
use tsmigrate_core::{Batch, Column, DataType, ValueRef};

use crate::error::file_error;
use crate::rfc4180::{Cell, Record, Tokenizer};

/// Appends `text` as one CSV field, quoted when it must be.
fn push_field(text: &str, out: &mut Vec<u8>) {
    let quote = text.is_empty()
        || text
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !quote {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    out.push(b'"');
    for part in text.split_inclusive('"') {
        out.extend_from_slice(part.as_bytes());
        if part.ends_with('"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// Appends the header record of `names`.
pub fn encode_header<'a>(names: impl IntoIterator<Item = &'a str>, out: &mut Vec<u8>) {
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(name, out);
    }
    out.push(b'\n');
}

/// Appends one record per row of `batch`.
pub fn encode_batch(batch: &Batch, out: &mut Vec<u8>) {
    let mut text = String::new();
    for row in 0..batch.len() {
        for (i, col) in batch.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let v = col.get(row);
            if v == ValueRef::Null {
                continue;
            }
            text.clear();
            write_value(v, col.dtype(), &mut text);
            push_field(&text, out);
        }
        out.push(b'\n');
    }
}

/// The records of a CSV file, after its header.
pub struct CsvFile {
    tokens: Tokenizer<BufReader<File>>,
    /// Column names of the header.
    pub header: Vec<String>,
}

impl CsvFile {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> tsmigrate_core::Result<CsvFile> {
        let file = File::open(path).map_err(|e| file_error(path, e))?;
        let mut tokens = Tokenizer::rfc4180(BufReader::with_capacity(1 << 20, file));
        let header = match tokens.next_record() {
            Ok(Some(r)) => r.cells.into_iter().map(|c| c.text).collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                return Err(tsmigrate_core::Error::Decode {
                    end: tsmigrate_core::End::Source,
                    context: path.display().to_string(),
                    message: format!("the header: {e}"),
                })
            }
        };
        let mut header: Vec<String> = header;
        if let Some(first) = header.first_mut() {
            if let Some(rest) = first.strip_prefix('\u{feff}') {
                *first = rest.to_string();
            }
        }
        Ok(CsvFile { tokens, header })
    }

    /// The next record (`Ok(None)` at the end); an `Err` names the line.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        self.tokens.next_record()
    }
}

/// Pushes a cell into a text column: an empty unquoted field is NULL.
pub fn push_cell(col: &mut Column, cell: Option<&Cell>) {
    match cell {
        Some(c) if c.quoted || !c.text.is_empty() => col.push_str(&c.text),
        _ => col.push_null(),
    }
}

/// A text column read from CSV as bytes: `\x`-prefixed hex (as tsmigrate and PostgreSQL
/// write bytes) is decoded, other text is taken as its UTF-8 bytes. `Err` names the row.
pub fn text_to_bytes(col: &Column) -> Result<Column, (usize, String)> {
    let mut out = Column::with_capacity(DataType::Bytes, col.len());
    for i in 0..col.len() {
        match col.get(i) {
            ValueRef::Str(s) => {
                match s.strip_prefix("\\x") {
                    Some(hex) => out.push_bytes(&decode_hex(hex).ok_or_else(|| {
                        (i, format!("{s:?} is not \\x followed by hex digit pairs"))
                    })?),
                    None => out.push_bytes(s.as_bytes()),
                }
            }
            _ => out.push_null(),
        }
    }
    Ok(out)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tsmigrate_core::{Field, Schema, TimeUnit};

    use super::*;

    #[test]
    fn values_survive_writing_and_reading() {
        let mut text = Column::with_capacity(DataType::Text, 6);
        for v in [
            Some("plain"),
            Some(""),
            None,
            Some("a,b \"q\"\nline\\"),
            Some("ünï\t"),
        ] {
            match v {
                Some(s) => text.push_str(s),
                None => text.push_null(),
            }
        }
        let mut float = Column::with_capacity(DataType::Float64, 5);
        for x in [f64::NAN, f64::INFINITY, -0.1, 1e300, 2.5] {
            float.push_f64(x);
        }
        let mut ts = Column::with_capacity(DataType::Timestamp(TimeUnit::Nanos), 5);
        for x in [0, 1, -1, 1_700_000_000_123_456_789, i64::MAX] {
            ts.push_i64(x);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Text),
            Field::new("f", DataType::Float64),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanos)),
        ]));
        let batch =
            Batch::new(schema, vec![Arc::new(text), Arc::new(float), Arc::new(ts)]).unwrap();
        let mut out = Vec::new();
        encode_header(["t", "f", "ts"], &mut out);
        encode_batch(&batch, &mut out);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, &out).unwrap();
        let mut file = CsvFile::open(&path).unwrap();
        assert_eq!(file.header, ["t", "f", "ts"]);
        let mut got = Vec::new();
        while let Some(r) = file.next_record().unwrap() {
            let mut col = Column::with_capacity(DataType::Text, 1);
            push_cell(&mut col, r.cells.first());
            got.push((
                col.get(0).to_owned_string(),
                r.cells[1].text.clone(),
                r.cells[2].text.clone(),
            ));
        }
        assert_eq!(got.len(), 5);
        assert_eq!(got[0].0, Some("plain".into()));
        assert_eq!(got[1].0, Some(String::new()));
        assert_eq!(got[2].0, None);
        assert_eq!(got[3].0, Some("a,b \"q\"\nline\\".into()));
        assert_eq!(got[4].0, Some("ünï\t".into()));
        assert_eq!(got[0].1, "NaN");
        assert_eq!(got[1].1, "Infinity");
        assert_eq!(got[3].1, "1e+300");
        assert_eq!(got[3].2, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(got[2].2, "1969-12-31T23:59:59.999999999Z");
    }

    trait Owned {
        fn to_owned_string(&self) -> Option<String>;
    }
    impl Owned for ValueRef<'_> {
        fn to_owned_string(&self) -> Option<String> {
            match self {
                ValueRef::Str(s) => Some(s.to_string()),
                _ => None,
            }
        }
    }

    #[test]
    fn hex_bytes() {
        let mut c = Column::with_capacity(DataType::Text, 3);
        c.push_str("\\x00ff41");
        c.push_str("raw");
        c.push_null();
        let b = text_to_bytes(&c).unwrap();
        assert_eq!(b.get(0), ValueRef::Bytes(&[0, 255, 65]));
        assert_eq!(b.get(1), ValueRef::Bytes(b"raw"));
        assert_eq!(b.get(2), ValueRef::Null);
        let mut bad = Column::with_capacity(DataType::Text, 1);
        bad.push_str("\\xzz");
        assert_eq!(text_to_bytes(&bad).unwrap_err().0, 0);
    }
}
