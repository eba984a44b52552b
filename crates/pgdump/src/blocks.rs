//! Table data inside a custom-format archive: blocks of length-prefixed chunks that together
//! form one (possibly compressed) stream of COPY text, and decompression of such streams.
//!
//! A block is a type byte (1 data, 3 large objects), the entry's dump id, then chunks
//! `Int length + bytes`, ended by a zero length. Large-object blocks hold, per object, an
//! oid and such a chunk list, ended by oid 0.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::archive::{le_u64, ArchiveReader, Compression};
use crate::error::{DumpError, Result};

/// Block type of table data.
pub const BLK_DATA: u8 = 1;
/// Block type of large objects.
pub const BLK_BLOBS: u8 = 3;

/// Read buffer for archive files.
const BUF: usize = 256 * 1024;

/// Where each data block starts, found by walking the data area from its first block (for
/// archives written to a pipe, whose TOC has no offsets).
#[derive(Debug, Default)]
pub struct BlockIndex {
    /// Dump id → offset of its block.
    pub offsets: HashMap<i64, u64>,
    /// Set when the walk hit the end of the file inside a block: the file's length, and the
    /// block's dump id (0 when the file ends inside a block header).
    pub truncated_at: Option<(u64, i64)>,
}

/// Walks the data area of a custom archive from `data_start`, skipping (not reading) each
/// chunk, and records every block's offset.
pub fn scan_blocks(path: &Path, data_start: u64, int_size: u8) -> Result<BlockIndex> {
    let io_err = |e| DumpError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    file.seek(SeekFrom::Start(data_start)).map_err(io_err)?;
    let mut r = ArchiveReader::new(BufReader::with_capacity(BUF, file), path, data_start);
    r.set_sizes(int_size, 8);
    let mut index = BlockIndex::default();
    loop {
        let start = r.pos();
        let Some(kind) = r.read_byte_or_eof()? else {
            break;
        };
        let id = match r.read_int("a data block header") {
            Ok(id) => id,
            Err(_) => {
                index.truncated_at = Some((len, 0));
                break;
            }
        };
        match kind {
            BLK_DATA | BLK_BLOBS => {}
            other => {
                return Err(DumpError::Format {
                    path: path.to_path_buf(),
                    offset: start,
                    message: format!("unknown data block type {other} (block of entry {id})"),
                })
            }
        }
        index.offsets.insert(id, start);
        let walked = if kind == BLK_DATA {
            skip_chunks(&mut r, len)
        } else {
            skip_blobs(&mut r, len)
        };
        match walked {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                index.truncated_at = Some((len, id));
                break;
            }
        }
    }
    Ok(index)
}

/// Skips a chunk list; `Ok(false)` when the file ends inside it.
fn skip_chunks<R: Read + Seek>(r: &mut ArchiveReader<'_, BufReader<R>>, len: u64) -> Result<bool> {
    loop {
        let n = r.read_int("a chunk length")?;
        if n == 0 {
            return Ok(true);
        }
        if n < 0 {
            return Err(r.error(format!("negative chunk length {n}")));
        }
        let n = n as u64;
        if r.pos().saturating_add(n) > len {
            return Ok(false);
        }
        r.skip(n)?;
    }
}

fn skip_blobs<R: Read + Seek>(r: &mut ArchiveReader<'_, BufReader<R>>, len: u64) -> Result<bool> {
    loop {
        if r.read_int("a large object oid")? == 0 {
            return Ok(true);
        }
        if !skip_chunks(r, len)? {
            return Ok(false);
        }
    }
}

/// The bytes of one data block's chunks, in order, as one stream; ends at the zero length.
/// Errors name the byte offset in the archive.
pub struct ChunkReader<R> {
    inner: R,
    pos: u64,
    /// The file's length, when known: where a truncated file ends.
    file_len: Option<u64>,
    int_size: usize,
    left: u64,
    done: bool,
}

impl ChunkReader<BufReader<File>> {
    /// Opens the block of entry `dump_id` at `offset` in `path`, checking its header.
    pub fn open(path: &Path, offset: u64, dump_id: i64, int_size: u8) -> Result<Self> {
        let io_err = |e| DumpError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut file = File::open(path).map_err(io_err)?;
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let mut r = ArchiveReader::new(BufReader::with_capacity(BUF, file), path, offset);
        r.set_sizes(int_size, 8);
        let kind = r.read_byte("a data block header")?;
        let id = r.read_int("a data block header")?;
        if kind != BLK_DATA || id != dump_id {
            return Err(DumpError::Format {
                path: path.to_path_buf(),
                offset,
                message: format!(
                    "expected the data block of entry {dump_id}, found a block of type {kind} for entry {id}: the TOC's offset is wrong or the file is damaged"
                ),
            });
        }
        let pos = r.pos();
        let mut reader = ChunkReader::from_reader(r.into_inner(), pos, int_size);
        reader.file_len = std::fs::metadata(path).ok().map(|m| m.len());
        Ok(reader)
    }
}

impl<R: Read> ChunkReader<R> {
    /// A reader of the chunks that follow a block header already read from `inner`, which
    /// is at byte `pos` of the archive (for messages).
    pub fn from_reader(inner: R, pos: u64, int_size: u8) -> Self {
        ChunkReader {
            inner,
            pos,
            file_len: None,
            int_size: usize::from(int_size),
            left: 0,
            done: false,
        }
    }

    fn truncated(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the file ends at byte {} inside {what}: the dump is truncated",
                self.file_len.unwrap_or(self.pos)
            ),
        )
    }

    fn next_len(&mut self) -> io::Result<i64> {
        let mut buf = [0u8; 33];
        let n = 1 + self.int_size;
        if let Err(e) = self.inner.read_exact(&mut buf[..n]) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                self.truncated("a chunk length")
            } else {
                e
            });
        }
        let at = self.pos;
        self.pos += n as u64;
        match buf[0] {
            0 => le_u64(&buf[1..n])
                .and_then(|v| i64::try_from(v).ok())
                .ok_or_else(|| invalid(at, "chunk length too large")),
            _ => Err(invalid(at, "negative chunk length")),
        }
    }
}

fn invalid(at: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("byte {at}: {what}: the dump is damaged"),
    )
}

impl<R: Read> Read for ChunkReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            let n = self.next_len()?;
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = n as u64;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..want])?;
        if got == 0 {
            return Err(self.truncated("a data chunk"));
        }
        self.left -= got as u64;
        self.pos += got as u64;
        Ok(got)
    }
}

/// The decompressed stream of `raw`. `gzip_files` selects gzip framing (directory dumps'
/// `.gz` files) over zlib streams (custom dumps' blocks).
pub fn decompress(
    raw: Box<dyn Read + Send>,
    compression: Compression,
    gzip_files: bool,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(match compression {
        Compression::None => raw,
        Compression::Gzip if gzip_files => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Gzip => Box::new(flate2::read::ZlibDecoder::new(raw)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
    })
}

/// Compression of a stream, told by its first bytes (for plain dumps and data files).
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Compression::Lz4
    } else {
        Compression::None
    }
}

/// Opens `path` decompressed by what its first bytes say.
pub fn open_sniffed(path: &Path) -> Result<(Box<dyn Read + Send>, Compression)> {
    let io_err = |e| DumpError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut file = BufReader::with_capacity(BUF, File::open(path).map_err(io_err)?);
    let compression = sniff(file.fill_buf().map_err(io_err)?);
    let stream = decompress(Box::new(file), compression, true).map_err(io_err)?;
    Ok((stream, compression))
}
