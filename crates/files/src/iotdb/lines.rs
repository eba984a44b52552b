//! Splitting an IoTDB export into lines of fields, as Commons CSV with escape `\` and
//! `QuoteMode.NONE` prints them (IoTDB's exporter in every release; Commons CSV 1.9.0/1.10.0
//! `CSVFormat.printWithEscapes`): a record is exactly one physical line (CRLF, or LF), fields
//! are separated by unescaped commas, and `\,` `\\` `\r` `\n` are the escapes it writes.
//!
//! Reading also resolves the other escapes IoTDB's importer knows (`\t` `\b` `\f`, and `\`
//! before a backtick, TAB, BS or FF gives that character; Commons CSV 1.10.0 `Lexer.readEscape`)
//! and keeps an unknown `\c` as the two characters, as the importer does. A `"` or a backtick
//! is an ordinary character: the exporter never quotes a field.
//!
//! A line that cannot be what the exporter wrote — not UTF-8, a carriage return inside it, a
//! backslash with nothing after it — is a [`LineError`] for that line; reading goes on with the
//! next one.

use std::io::BufRead;

/// Why a line cannot be split into fields.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Bytes that are not UTF-8 (the exporter writes in the JVM's default charset).
    #[error(
        "byte {at} of the line is not UTF-8: IoTDB's exporter writes in its JVM's default charset, \
         convert the file to UTF-8 first (iconv -f GBK -t UTF-8 for a Chinese-locale Windows export)"
    )]
    NotUtf8 {
        /// 1-based byte offset of the first bad byte in the line.
        at: usize,
    },
    /// A raw CR that does not end the line.
    #[error(
        "a carriage return at byte {at} inside the line: IoTDB's exporter writes one as \\r, \
         so the line is not as it wrote it"
    )]
    CarriageReturn {
        /// 1-based byte offset of the CR in the line.
        at: usize,
    },
    /// A single backslash at the end of the line.
    #[error(
        "the line ends in an escape with nothing after it (a lone backslash; IoTDB's exporter \
         writes a backslash as \\\\ and never continues a record on the next line)"
    )]
    EscapeAtEnd,
}

/// The fields of one line, escapes resolved, in one buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    text: String,
    ends: Vec<usize>,
}

impl Fields {
    /// Fields holding exactly `cells` (for tests and callers that have them already).
    pub fn from_cells<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> Fields {
        let mut f = Fields::default();
        for c in cells {
            f.text.push_str(c.as_ref());
            f.end_field();
        }
        f
    }

    fn end_field(&mut self) {
        self.ends.push(self.text.len());
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i` (0-based).
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = i
            .checked_sub(1)
            .and_then(|p| self.ends.get(p))
            .copied()
            .unwrap_or(0);
        self.text.get(start..end)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// One non-blank line of an export: its number (1-based) and its fields, or why it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The line's number in the file.
    pub number: u64,
    /// Its fields.
    pub fields: Result<Fields, LineError>,
}

/// Reads an export file line by line.
pub struct ExportReader<R> {
    input: R,
    line: u64,
    buf: Vec<u8>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<R: BufRead> ExportReader<R> {
    /// A reader over `input`, starting at line 1.
    pub fn new(input: R) -> Self {
        ExportReader {
            input,
            line: 0,
            buf: Vec::new(),
        }
    }

    /// The next line that is not blank (IoTDB's importer skips blank lines, and the exporter
    /// writes none), `Ok(None)` at the end of the input. A UTF-8 byte-order mark at the start
    /// of the file is not part of the first line. `Err` is an I/O error only.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            self.buf.clear();
            if self.input.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.line == 1 && self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
            let body = without_line_end(&self.buf);
            if body.is_empty() {
                continue;
            }
            return Ok(Some(Line {
                number: self.line,
                fields: split_line(body),
            }));
        }
    }

    /// The text of the line last read, without its line end (bytes that are not UTF-8
    /// replaced by U+FFFD): what a rejected line shows.
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(without_line_end(&self.buf)).into_owned()
    }
}

/// A line without its LF, CRLF, or (at the end of the file) CR.
fn without_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits one line (without its line end) into fields, resolving escapes.
pub fn split_line(line: &[u8]) -> Result<Fields, LineError> {
    let text = std::str::from_utf8(line).map_err(|e| LineError::NotUtf8 {
        at: e.valid_up_to() + 1,
    })?;
    let bytes = text.as_bytes();
    let mut out = Fields {
        text: String::with_capacity(text.len()),
        ends: Vec::new(),
    };
    // `start` is where the run of plain characters not yet copied begins. Every byte matched
    // below is ASCII, so `start` and `i` always fall on character boundaries.
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b',' => {
                out.text.push_str(&text[start..i]);
                out.end_field();
                i += 1;
                start = i;
            }
            b'\r' => return Err(LineError::CarriageReturn { at: i + 1 }),
            b'\\' => {
                out.text.push_str(&text[start..i]);
                let next = *bytes.get(i + 1).ok_or(LineError::EscapeAtEnd)?;
                match unescape(next) {
                    Some(c) => {
                        out.text.push(c);
                        i += 2;
                    }
                    None => {
                        // Unknown: the backslash stays, and the next character is read as
                        // an ordinary one.
                        out.text.push('\\');
                        i += 1;
                    }
                }
                start = i;
            }
            _ => i += 1,
        }
    }
    out.text.push_str(&text[start..]);
    out.end_field();
    Ok(out)
}

/// The character `\` + `next` stands for, as IoTDB's importer (Commons CSV 1.10.0
/// `Lexer.readEscape`) reads it; `None` for an escape it keeps as two characters.
fn unescape(next: u8) -> Option<char> {
    Some(match next {
        b',' => ',',
        b'\\' => '\\',
        b'r' => '\r',
        b'n' => '\n',
        b't' | b'\t' => '\t',
        b'b' | 0x08 => '\u{8}',
        b'f' | 0x0c => '\u{c}',
        b'`' => '`',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8]) -> Vec<(u64, Result<Vec<String>, LineError>)> {
        let mut r = ExportReader::new(bytes);
        let mut out = Vec::new();
        while let Ok(Some(l)) = r.next_line() {
            out.push((
                l.number,
                l.fields.map(|f| f.iter().map(str::to_string).collect()),
            ));
        }
        out
    }

    fn ok(cells: &[&str]) -> Result<Vec<String>, LineError> {
        Ok(cells.iter().map(|c| c.to_string()).collect())
    }

    /// Lines as Commons CSV 1.10.0 prints them for IoTDB (fact sheet §3, the verified output
    /// of `CSVFormat.DEFAULT` + escape `\` + `QuoteMode.NONE`): quotes are ordinary
    /// characters, `\,` `\\` `\r` `\n` are escapes, every line ends in CRLF.
    #[test]
    fn a_record_is_one_line_with_commons_csv_escapes_and_quotes_as_characters() {
        let got = lines(
            b"Time,root.sg.d1.s1(TEXT),root.sg.`a\\,b`.s2\r\n\
              1,\"a\\,b\",x\r\n\
              2,\"a\"b\",\"x\"\\,y\"\r\n\
              3,\"end\"\",\"\"\"\r\n\
              4,\"\",\r\n\
              5,\"back\\\\slash\",\"nl\\nx\"\r\n\
              6,\"crlf\\r\\nx\",\"tab\there\"\r\n\
              7,\"lit\\\\nNL\",root.sg.d1\r\n",
        );
        assert_eq!(
            got,
            [
                (1, ok(&["Time", "root.sg.d1.s1(TEXT)", "root.sg.`a,b`.s2"])),
                (2, ok(&["1", "\"a,b\"", "x"])),
                (3, ok(&["2", "\"a\"b\"", "\"x\",y\""])),
                (4, ok(&["3", "\"end\"\"", "\"\"\""])),
                (5, ok(&["4", "\"\"", ""])),
                (6, ok(&["5", "\"back\\slash\"", "\"nl\nx\""])),
                (7, ok(&["6", "\"crlf\r\nx\"", "\"tab\there\""])),
                (8, ok(&["7", "\"lit\\nNL\"", "root.sg.d1"])),
            ]
        );
    }

    /// The escapes IoTDB's importer knows beyond the exporter's (Commons CSV 1.10.0
    /// `Lexer.readEscape`, fact sheet §9.2 rule 4): `\t` `\b` `\f`, `\` before a backtick,
    /// TAB, BS or FF; any other `\c` keeps both characters.
    #[test]
    fn the_importers_other_escapes_and_unknown_ones_kept() {
        let got = lines("a\\tb\\bc\\fd,\\`,\\\t,\\\u{8}\\\u{c},\\\"q\\q\\é,\\\\\\,\n".as_bytes());
        assert_eq!(
            got,
            [(
                1,
                ok(&[
                    "a\tb\u{8}c\u{c}d",
                    "`",
                    "\t",
                    "\u{8}\u{c}",
                    "\\\"q\\q\\é",
                    "\\,"
                ])
            )]
        );
    }

    /// LF or CRLF ends a line, a blank line is skipped (the importer's ignoreEmptyLines), a
    /// BOM is not part of the first field, the last line may lack its line end.
    #[test]
    fn line_ends_blank_lines_bom_and_numbers() {
        let got = lines(b"\xEF\xBB\xBFTime,a\n\r\n\n1,x\r\n2,y");
        assert_eq!(
            got,
            [
                (1, ok(&["Time", "a"])),
                (4, ok(&["1", "x"])),
                (5, ok(&["2", "y"]))
            ]
        );
    }

    /// What the exporter cannot have written is an error for that line only.
    #[test]
    fn bad_lines_are_errors_of_their_own_and_reading_goes_on() {
        let got = lines(b"1,a\\\r\n2,\xC4\xE3\r\n3,b\rc\r\n4,\\\\\r\n5,end\\");
        assert_eq!(
            got,
            [
                (1, Err(LineError::EscapeAtEnd)),
                (2, Err(LineError::NotUtf8 { at: 3 })),
                (3, Err(LineError::CarriageReturn { at: 4 })),
                (4, ok(&["4", "\\"])),
                (5, Err(LineError::EscapeAtEnd)),
            ]
        );
        let mut r = ExportReader::new(&b"1,\xC4\xE3\r\n"[..]);
        assert!(r.next_line().is_ok());
        assert_eq!(r.raw(), "1,\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn fields_of_cells() {
        let f = Fields::from_cells(["", "a", ""]);
        assert_eq!(f.len(), 3);
        assert_eq!(f.iter().collect::<Vec<_>>(), ["", "a", ""]);
        assert_eq!(f.get(3), None);
    }
}
