//! The RFC 4180 CSV tokenizer `kind = "csv"` files are read with: fields separated by
//! commas, `"`-quoted fields (which may hold commas, quotes doubled as `""`, and newlines),
//! records ending at LF or CRLF, every record with the line it starts on.
//!
//! Unlike the `csv` crate it says whether a field was quoted, which is what tells NULL (an
//! empty field) from the empty string (`""`). It was the RFC 4180 mode of the IoTDB export
//! tokenizer; IoTDB's dialect is a different one ([`crate::iotdb`]), and this one is kept as
//! it was.

use std::io::BufRead;

/// One field of a record: its text (quotes removed) and whether it was quoted (a quoted
/// empty field is an empty string, not a null).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The value's text.
    pub text: String,
    /// True when the field was wrapped in double quotes.
    pub quoted: bool,
}

/// A record and the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Line number of the record's first line.
    pub line: u64,
    /// The fields.
    pub cells: Vec<Cell>,
}

/// Splits an RFC 4180 CSV file into records.
pub struct Tokenizer<R> {
    input: R,
    line: u64,
    buf: String,
}

impl<R: BufRead> Tokenizer<R> {
    /// A tokenizer of plain RFC 4180 CSV (fields quoted with `"`, `""` inside quotes is a
    /// quote, no backslash escapes), starting at line 1. Cells say whether they were quoted,
    /// so a quoted empty field (an empty string) differs from an empty one (NULL). A blank
    /// line is a record of one empty field.
    pub fn rfc4180(input: R) -> Self {
        Tokenizer {
            input,
            line: 0,
            buf: String::new(),
        }
    }

    /// The next record, `Ok(None)` at the end. An `Err` is an I/O or encoding error, or a
    /// quoted field still open at the end of the file (with the line it started on).
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        let mut cells = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut start = 0;
        let mut any = false;
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_line(&mut self.buf)
                .map_err(|e| format!("line {}: {e}", self.line + 1))?;
            if n == 0 {
                if in_quotes {
                    return Err(format!(
                        "line {start}: a quoted value is not closed before the end of the file"
                    ));
                }
                if any {
                    cells.push(Cell { text: cur, quoted });
                    return Ok(Some(Record { line: start, cells }));
                }
                return Ok(None);
            }
            self.line += 1;
            if !any {
                start = self.line;
            }
            any = true;
            let mut chars = self.buf.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if in_quotes => {
                        if chars.peek() == Some(&'"') {
                            cur.push('"');
                            chars.next();
                        } else {
                            in_quotes = false;
                        }
                    }
                    '"' if cur.is_empty() && !quoted => {
                        in_quotes = true;
                        quoted = true;
                    }
                    ',' if !in_quotes => {
                        cells.push(Cell {
                            text: std::mem::take(&mut cur),
                            quoted,
                        });
                        quoted = false;
                    }
                    '\r' if !in_quotes && chars.peek() == Some(&'\n') => {}
                    '\n' if !in_quotes => {
                        cells.push(Cell {
                            text: std::mem::take(&mut cur),
                            quoted,
                        });
                        return Ok(Some(Record { line: start, cells }));
                    }
                    c => cur.push(c),
                }
            }
            if !in_quotes {
                // The last line of the file without a newline.
                cells.push(Cell {
                    text: std::mem::take(&mut cur),
                    quoted,
                });
                return Ok(Some(Record { line: start, cells }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<(u64, Vec<(String, bool)>)> {
        let mut t = Tokenizer::rfc4180(text.as_bytes());
        let mut out = Vec::new();
        while let Ok(Some(r)) = t.next_record() {
            out.push((
                r.line,
                r.cells.into_iter().map(|c| (c.text, c.quoted)).collect(),
            ));
        }
        out
    }

    #[test]
    fn quotes_doubled_quotes_newlines_and_backslashes_as_rfc_4180_says() {
        let got = records("a,\"b,\"\"c\"\"\r\nd\",\\n\\,\n\n,\"\"\nlast");
        let cell = |t: &str, q: bool| (t.to_string(), q);
        assert_eq!(
            got,
            [
                (
                    1,
                    vec![
                        cell("a", false),
                        cell("b,\"c\"\r\nd", true),
                        cell("\\n\\", false),
                        cell("", false)
                    ]
                ),
                (3, vec![cell("", false)]),
                (4, vec![cell("", false), cell("", true)]),
                (5, vec![cell("last", false)]),
            ]
        );
        let mut open = Tokenizer::rfc4180("1,\"never closed\n2,3\n".as_bytes());
        assert!(matches!(open.next_record(), Err(m) if m.contains("line 1")));
    }
}
