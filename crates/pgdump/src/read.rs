//! Reading one table's data as typed batches, with decompression and decoding on two threads.
//!
//! A reader thread reads and decompresses the section, cutting what it produces into buffers
//! of whole lines (about 1 MiB), and hands them over a small bounded channel; the calling
//! thread decodes them into batches. Memory stays at a few buffers and one batch, whatever the
//! table's size, and on two cores decompression and parsing overlap.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use tsmigrate_core::{Batch, DataType, Field, Schema};

use crate::copy_text::{CopyDecoder, FieldKind};
use crate::ddl::QualifiedName;
use crate::dump::{DataSection, Dump, Format};
use crate::error::{DumpError, Result};

/// Bytes per buffer handed from the reader thread to the decoder.
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the two threads.
const IN_FLIGHT: usize = 4;

/// How the columns of a section map onto the stream's schema.
#[derive(Clone, Debug)]
pub struct Projection {
    /// The stream's schema.
    pub schema: Arc<Schema>,
    /// How each schema column is parsed.
    pub kinds: Vec<FieldKind>,
}

impl Projection {
    /// Reads `columns` (name and the type wanted) of `table`, checking that the dump declares
    /// each with a type that decodes to the wanted one.
    pub fn named(
        dump: &Dump,
        table: &QualifiedName,
        columns: &[(&str, DataType)],
    ) -> std::result::Result<Projection, String> {
        let declared = dump.columns_of(table);
        let mut fields = Vec::new();
        let mut kinds = Vec::new();
        for (name, want) in columns {
            let (_, sql) = declared.iter().find(|(n, _)| n == name).ok_or_else(|| {
                let names: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
                format!(
                    "table {} has no column `{name}` (its columns: {})",
                    table.display(),
                    names.join(", ")
                )
            })?;
            let (kind, got) = FieldKind::for_sql_type(sql);
            if got != *want {
                return Err(format!(
                    "column `{name}` of {} is declared {sql}, which is read as {got}, not the expected {want}",
                    table.display()
                ));
            }
            fields.push(Field::new(*name, got));
            kinds.push(kind);
        }
        Ok(Projection {
            schema: Arc::new(Schema::new(fields)),
            kinds,
        })
    }

    /// For each COPY column of `section`, the schema column it fills; an error naming a
    /// schema column the section lacks.
    pub fn targets(
        &self,
        section: &DataSection,
    ) -> std::result::Result<Vec<Option<usize>>, String> {
        let targets: Vec<Option<usize>> = section
            .columns
            .iter()
            .map(|c| self.schema.index_of(c))
            .collect();
        for (i, f) in self.schema.fields.iter().enumerate() {
            if !targets.contains(&Some(i)) {
                return Err(format!(
                    "its COPY data has no column `{}` (it has: {})",
                    f.name,
                    section.columns.join(", ")
                ));
            }
        }
        Ok(targets)
    }
}

/// Reads `section` of `dump` into batches of at most `batch_rows` rows, calling `emit` with
/// each; `emit` returns false to stop early. Returns the rows read.
pub fn read_section(
    dump: &Arc<Dump>,
    section: &DataSection,
    projection: &Projection,
    batch_rows: usize,
    mut emit: impl FnMut(Batch) -> bool,
) -> Result<u64> {
    let table = section.table.display();
    let data_err = |message: String| DumpError::Data {
        path: dump.path().to_path_buf(),
        table: table.clone(),
        message,
    };
    let targets = projection.targets(section).map_err(&data_err)?;
    let mut decoder = CopyDecoder::new(
        projection.schema.clone(),
        targets,
        projection.kinds.clone(),
        batch_rows,
    );
    let chunks = spawn_reader(dump.clone(), section.clone());
    let mut tail: Vec<u8> = Vec::new();
    let fault = |decoder: &CopyDecoder, e: crate::copy_text::RowFault| {
        data_err(format!(
            "{} ({}; {} rows before it were read)",
            e,
            dump.describe_location(section),
            decoder.rows()
        ))
    };
    for chunk in chunks.iter() {
        let chunk = chunk.map_err(|e| {
            data_err(format!(
                "{} ({}; after {} rows)",
                e,
                dump.describe_location(section),
                decoder.rows()
            ))
        })?;
        let buf: &[u8] = if tail.is_empty() {
            &chunk
        } else {
            tail.extend_from_slice(&chunk);
            &tail
        };
        let mut at = 0;
        loop {
            at += decoder.decode(&buf[at..]).map_err(|e| fault(&decoder, e))?;
            if decoder.batch_full() {
                if let Some(b) = decoder.take_batch() {
                    if !emit(b) {
                        return Ok(decoder.rows());
                    }
                }
                continue;
            }
            break;
        }
        if decoder.finished() {
            break;
        }
        tail = buf[at..].to_vec();
    }
    if !decoder.finished() {
        // A plain dump's COPY data always ends with a `\.` line: without it the text was cut
        // (and its last line may be a fragment of a row, so it is not decoded).
        if dump.format() == Format::Plain {
            return Err(data_err(format!(
                "the text ends inside its COPY data after {} rows (no `\\.` line{}): the dump is truncated",
                decoder.rows(),
                if tail.is_empty() { "" } else { "; its last line is cut" }
            )));
        }
        decoder.decode_last(&tail).map_err(|e| fault(&decoder, e))?;
    }
    if let Some(b) = decoder.take_batch() {
        emit(b);
    }
    Ok(decoder.rows())
}

/// Starts the thread reading and decompressing `section`, sending buffers of whole lines
/// (the last one may end without a newline).
fn spawn_reader(
    dump: Arc<Dump>,
    section: DataSection,
) -> Receiver<std::result::Result<Vec<u8>, String>> {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    std::thread::spawn(move || {
        let mut stream = match dump.open_section(&section) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let mut buf = Vec::with_capacity(CHUNK + carry.len());
            buf.append(&mut carry);
            let start = buf.len();
            buf.resize(start + CHUNK, 0);
            let mut filled = start;
            let mut eof = false;
            while filled < buf.len() {
                match stream.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
            buf.truncate(filled);
            if !eof {
                // Keep a partial last line for the next buffer.
                match memchr::memrchr(b'\n', &buf) {
                    Some(nl) => carry = buf.split_off(nl + 1),
                    None => {
                        // A line longer than a buffer: keep reading into it.
                        carry = buf;
                        continue;
                    }
                }
            }
            if !buf.is_empty() && tx.send(Ok(buf)).is_err() {
                return;
            }
            if eof {
                return;
            }
        }
    });
    rx
}

/// Every row of `table` (its sections in order), for small tables read whole (dictionaries,
/// device lists).
pub fn read_table(
    dump: &Arc<Dump>,
    table: &QualifiedName,
    projection: &Projection,
) -> Result<Vec<Batch>> {
    let mut batches = Vec::new();
    for section in dump.sections_of(table) {
        read_section(dump, section, projection, 16_384, |b| {
            batches.push(b);
            true
        })?;
    }
    Ok(batches)
}
