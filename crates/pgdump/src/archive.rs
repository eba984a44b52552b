//! The archive header and table of contents shared by the custom (`-Fc`) and directory
//! (`-Fd`, its `toc.dat`) formats, read as pg_dump's `pg_backup_archiver.c` writes them.
//!
//! Integers are sign–magnitude: one sign byte then `intSize` little-endian bytes. Strings
//! are an integer length (−1 = NULL) then the bytes. Offsets are a flag byte then `offSize`
//! little-endian bytes. Fields appear by archive version; versions 1.12 (PostgreSQL 9.0) to
//! 1.16 (PostgreSQL 17 and 18) are read.

use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::error::{DumpError, Result};

/// The magic bytes every archive starts with.
pub const MAGIC: &[u8; 5] = b"PGDMP";

/// Oldest archive version read (pg_dump of PostgreSQL 9.0).
pub const MIN_VERSION: (u8, u8) = (1, 12);
/// Newest archive version read (pg_dump of PostgreSQL 17 and 18).
pub const MAX_VERSION: (u8, u8) = (1, 16);

/// Longest string accepted in a header or TOC entry; anything longer is a corrupt length.
const MAX_STR: usize = 1 << 30;
/// Most TOC entries accepted; anything more is a corrupt count.
const MAX_ENTRIES: i64 = 50_000_000;

/// How table data is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// zlib streams in custom archives, gzip files in directory archives.
    Gzip,
    /// LZ4 frames (archive 1.15+).
    Lz4,
    /// Zstandard frames (archive 1.15+).
    Zstd,
}

impl Compression {
    /// The name pg_dump's `--compress` uses.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// The archive's layout facts.
#[derive(Clone, Debug)]
pub struct Header {
    /// Archive version (major, minor, revision).
    pub version: (u8, u8, u8),
    /// Bytes in an integer's magnitude.
    pub int_size: u8,
    /// Bytes in an offset.
    pub off_size: u8,
    /// The format byte (1 custom; 3 or 5 in a directory archive's `toc.dat`).
    pub format: u8,
    /// How table data is compressed.
    pub compression: Compression,
    /// Name of the dumped database.
    pub database: Option<String>,
    /// Version of the server that was dumped.
    pub server_version: Option<String>,
    /// Version of the pg_dump that wrote the archive.
    pub dump_version: Option<String>,
    /// When pg_dump wrote it: `struct tm` fields as pg_dump's `WriteHead` writes them, in the
    /// local time of the machine it ran on (sec, min, hour, mday, mon, year − 1900, isdst).
    pub created_tm: [i64; 7],
}

impl Header {
    /// When pg_dump wrote the archive, in seconds since the epoch: the header's local time
    /// read as `pg_restore` reads it (`mktime` in this machine's time zone), so it is exact
    /// when both machines share a time zone (UTC on most servers). `None` when the fields do
    /// not form a time.
    pub fn created_at(&self) -> Option<i64> {
        let [sec, min, hour, mday, mon, year, isdst] = self.created_tm;
        let field = |v: i64| libc::c_int::try_from(v).ok();
        let mut tm = libc::tm {
            tm_sec: field(sec)?,
            tm_min: field(min)?,
            tm_hour: field(hour)?,
            tm_mday: field(mday)?,
            tm_mon: field(mon)?,
            tm_year: field(year)?,
            tm_wday: 0,
            tm_yday: 0,
            tm_isdst: field(isdst)?,
            tm_gmtoff: 0,
            tm_zone: std::ptr::null(),
        };
        // SAFETY: `tm` is a fully initialised struct owned by this frame; mktime only reads
        // and normalises it and reads the process's time-zone settings.
        let t = unsafe { libc::mktime(&mut tm) };
        (t != -1).then_some(t)
    }
}

impl Header {
    fn at_least(&self, minor: u8) -> bool {
        (self.version.0, self.version.1) >= (1, minor)
    }
}

/// Where an entry's data is, as the format's TOC trailer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataPos {
    /// The entry has no data.
    None,
    /// Custom format: the data block starts at this byte of the file.
    Offset(u64),
    /// Custom format written to a pipe: the block is somewhere in the data area, in order.
    Unknown,
    /// Directory format: the entry's file name (`3354.dat`).
    File(String),
}

/// One entry of the table of contents.
#[derive(Clone, Debug)]
pub struct TocEntry {
    /// The entry's id; data blocks name it.
    pub dump_id: i64,
    /// True when the entry has data (a data block or file).
    pub had_dumper: bool,
    /// Object name (`ts_kv`).
    pub tag: String,
    /// Object kind (`TABLE`, `TABLE DATA`, `TABLE ATTACH`, …).
    pub desc: String,
    /// SQL that creates the object.
    pub defn: String,
    /// For `TABLE DATA`: `COPY schema.table (cols) FROM stdin;`.
    pub copy_stmt: String,
    /// Schema of the object.
    pub namespace: String,
    /// Where the data is.
    pub data: DataPos,
    /// Byte offset of the entry's trailer (custom format: its data offset field), so tools
    /// that rewrite an archive can patch it.
    pub trailer_at: u64,
}

/// Header and entries of an archive, plus where its data area starts.
#[derive(Clone, Debug)]
pub struct Toc {
    /// The header.
    pub header: Header,
    /// The entries, in file order.
    pub entries: Vec<TocEntry>,
    /// Byte offset just after the TOC (custom format: the first data block).
    pub data_start: u64,
}

/// The little-endian number in `bytes` (any length; pg_dump's integer and offset sizes are
/// per archive), `None` when it does not fit 64 bits.
pub fn le_u64(bytes: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b != 0 {
            if i >= 8 {
                return None;
            }
            v |= u64::from(*b) << (8 * i);
        }
    }
    Some(v)
}

/// Reads the primitive values of an archive, counting bytes for error messages.
pub struct ArchiveReader<'p, R> {
    inner: R,
    pos: u64,
    path: &'p Path,
    int_size: u8,
    off_size: u8,
}

impl<'p, R: Read> ArchiveReader<'p, R> {
    /// A reader at byte `pos` of `path` (used in messages only).
    pub fn new(inner: R, path: &'p Path, pos: u64) -> Self {
        ArchiveReader {
            inner,
            pos,
            path,
            int_size: 4,
            off_size: 8,
        }
    }

    /// Uses the sizes a header declared.
    pub fn set_sizes(&mut self, int_size: u8, off_size: u8) {
        self.int_size = int_size;
        self.off_size = off_size;
    }

    /// Bytes consumed so far (absolute, from the `pos` given to [`ArchiveReader::new`]).
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// A format error at the current position.
    pub fn error(&self, message: impl Into<String>) -> DumpError {
        DumpError::Format {
            path: self.path.to_path_buf(),
            offset: self.pos,
            message: message.into(),
        }
    }

    /// Fills `buf`, or fails naming the offset where the file ended.
    pub fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(self.error(format!(
                "the file ends inside {what}: the dump is truncated"
            ))),
            Err(e) => Err(DumpError::Io {
                path: self.path.to_path_buf(),
                source: e,
            }),
        }
    }

    /// One byte; `None` at a clean end of file.
    pub fn read_byte_or_eof(&mut self) -> Result<Option<u8>> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.pos += 1;
                    return Ok(Some(b[0]));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DumpError::Io {
                        path: self.path.to_path_buf(),
                        source: e,
                    })
                }
            }
        }
    }

    /// One byte.
    pub fn read_byte(&mut self, what: &str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b, what)?;
        Ok(b[0])
    }

    /// A sign–magnitude integer.
    pub fn read_int(&mut self, what: &str) -> Result<i64> {
        let start = self.pos;
        let sign = self.read_byte(what)?;
        let mut buf = [0u8; 32];
        let n = usize::from(self.int_size);
        self.read_exact(&mut buf[..n], what)?;
        let v = le_u64(&buf[..n])
            .and_then(|m| i64::try_from(m).ok())
            .ok_or_else(|| DumpError::Format {
                path: self.path.to_path_buf(),
                offset: start,
                message: format!("{what}: integer too large"),
            })?;
        match sign {
            0 => Ok(v),
            1 => Ok(-v),
            other => Err(DumpError::Format {
                path: self.path.to_path_buf(),
                offset: start,
                message: format!("{what}: bad integer sign byte {other}"),
            }),
        }
    }

    /// A string; `None` for the NULL string.
    pub fn read_str(&mut self, what: &str) -> Result<Option<String>> {
        let start = self.pos;
        let len = self.read_int(what)?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_STR)
            .ok_or_else(|| DumpError::Format {
                path: self.path.to_path_buf(),
                offset: start,
                message: format!("{what}: string length {len} is not plausible"),
            })?;
        let mut bytes = Vec::new();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| DumpError::Io {
                path: self.path.to_path_buf(),
                source: e,
            })?;
        self.pos += got as u64;
        if got < len {
            return Err(self.error(format!(
                "the file ends inside {what}: the dump is truncated"
            )));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| DumpError::Format {
                path: self.path.to_path_buf(),
                offset: start,
                message: format!("{what} is not UTF-8"),
            })
    }

    /// A string, NULL read as empty.
    pub fn read_str_or_empty(&mut self, what: &str) -> Result<String> {
        Ok(self.read_str(what)?.unwrap_or_default())
    }

    /// An offset: `Some(Some(n))` set, `Some(None)` not set, `None` no data.
    pub fn read_offset(&mut self, what: &str) -> Result<Option<Option<u64>>> {
        let start = self.pos;
        let flag = self.read_byte(what)?;
        let mut buf = [0u8; 32];
        let n = usize::from(self.off_size);
        self.read_exact(&mut buf[..n], what)?;
        let v = le_u64(&buf[..n]).ok_or_else(|| DumpError::Format {
            path: self.path.to_path_buf(),
            offset: start,
            message: format!("{what}: offset too large"),
        })?;
        match flag {
            1 => Ok(Some(None)),
            2 => Ok(Some(Some(v))),
            3 => Ok(None),
            other => Err(DumpError::Format {
                path: self.path.to_path_buf(),
                offset: start,
                message: format!("{what}: bad offset flag {other}"),
            }),
        }
    }
}

impl<S: Read + Seek> ArchiveReader<'_, BufReader<S>> {
    /// Skips `n` bytes without reading them.
    pub fn skip(&mut self, n: u64) -> Result<()> {
        let by = i64::try_from(n).map_err(|_| self.error("skip too large"))?;
        self.inner.seek_relative(by).map_err(|e| DumpError::Io {
            path: self.path.to_path_buf(),
            source: e,
        })?;
        self.pos += n;
        Ok(())
    }
}

/// Which trailer follows each TOC entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trailer {
    /// Custom format: a data offset.
    Offset,
    /// Directory format: a file name.
    FileName,
}

/// Reads the header and the table of contents.
pub fn read_toc<R: Read>(input: R, path: &Path, trailer: Trailer) -> Result<Toc> {
    let mut r = ArchiveReader::new(input, path, 0);
    let header = read_header(&mut r)?;
    let count = r.read_int("the TOC entry count")?;
    if !(0..=MAX_ENTRIES).contains(&count) {
        return Err(r.error(format!("TOC entry count {count} is not plausible")));
    }
    let mut entries = Vec::with_capacity(count.min(100_000) as usize);
    for i in 0..count {
        entries.push(read_entry(&mut r, &header, trailer, i)?);
    }
    Ok(Toc {
        header,
        entries,
        data_start: r.pos(),
    })
}

fn read_header<R: Read>(r: &mut ArchiveReader<'_, R>) -> Result<Header> {
    let mut magic = [0u8; 5];
    r.read_exact(&mut magic, "the header")?;
    if &magic != MAGIC {
        return Err(DumpError::Format {
            path: r.path.to_path_buf(),
            offset: 0,
            message: "not a pg_dump archive (no PGDMP magic)".into(),
        });
    }
    let vmaj = r.read_byte("the header")?;
    let vmin = r.read_byte("the header")?;
    let vrev = r.read_byte("the header")?;
    if (vmaj, vmin) < MIN_VERSION || (vmaj, vmin) > MAX_VERSION {
        return Err(DumpError::Unsupported {
            path: r.path.to_path_buf(),
            message: format!(
                "archive version {vmaj}.{vmin} is not read (versions {}.{} to {}.{}: pg_dump of PostgreSQL 9.0 to 18); \
                 convert it with that version's pg_restore -f plain.sql, then read the plain dump",
                MIN_VERSION.0, MIN_VERSION.1, MAX_VERSION.0, MAX_VERSION.1
            ),
        });
    }
    let int_size = r.read_byte("the header")?;
    let off_size = r.read_byte("the header")?;
    if !(1..=32).contains(&int_size) || !(1..=32).contains(&off_size) {
        return Err(r.error(format!(
            "integer size {int_size} / offset size {off_size} are not plausible"
        )));
    }
    r.set_sizes(int_size, off_size);
    let format = r.read_byte("the header")?;
    let mut header = Header {
        version: (vmaj, vmin, vrev),
        int_size,
        off_size,
        format,
        compression: Compression::None,
        database: None,
        server_version: None,
        dump_version: None,
        created_tm: [0; 7],
    };
    header.compression = if header.at_least(15) {
        match r.read_byte("the compression algorithm")? {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Lz4,
            3 => Compression::Zstd,
            other => {
                return Err(r.error(format!(
                    "unknown compression algorithm {other} (known: 0 none, 1 gzip, 2 lz4, 3 zstd)"
                )))
            }
        }
    } else {
        // Up to 1.14 the header holds a zlib level: 0 none, −1 or 1–9 gzip.
        match r.read_int("the compression level")? {
            0 => Compression::None,
            _ => Compression::Gzip,
        }
    };
    for field in header.created_tm.iter_mut() {
        *field = r.read_int("the creation time")?;
    }
    header.database = r.read_str("the database name")?;
    header.server_version = r.read_str("the server version")?;
    header.dump_version = r.read_str("the pg_dump version")?;
    Ok(header)
}

fn read_entry<R: Read>(
    r: &mut ArchiveReader<'_, R>,
    header: &Header,
    trailer: Trailer,
    index: i64,
) -> Result<TocEntry> {
    let what = format!("TOC entry {}", index + 1);
    let dump_id = r.read_int(&what)?;
    if dump_id <= 0 {
        return Err(r.error(format!("{what}: entry id {dump_id} out of range")));
    }
    let had_dumper = r.read_int(&what)? != 0;
    r.read_str(&what)?; // table oid
    r.read_str(&what)?; // oid
    let tag = r.read_str_or_empty(&what)?;
    let desc = r.read_str_or_empty(&what)?;
    r.read_int(&what)?; // section (1.11+)
    let defn = r.read_str_or_empty(&what)?;
    r.read_str(&what)?; // drop statement
    let copy_stmt = r.read_str_or_empty(&what)?;
    let namespace = r.read_str_or_empty(&what)?;
    r.read_str(&what)?; // tablespace
    if header.at_least(14) {
        r.read_str(&what)?; // table access method
    }
    if header.at_least(16) {
        r.read_int(&what)?; // relkind
    }
    r.read_str(&what)?; // owner
    r.read_str(&what)?; // "false": WITH OIDS
    while r.read_str(&what)?.is_some() {} // dependencies, ended by a NULL string
    let trailer_at = r.pos();
    let data = match trailer {
        Trailer::Offset => match r.read_offset(&what)? {
            None => DataPos::None,
            Some(None) => DataPos::Unknown,
            Some(Some(off)) => DataPos::Offset(off),
        },
        Trailer::FileName => match r.read_str(&what)? {
            Some(f) if !f.is_empty() => DataPos::File(f),
            _ => DataPos::None,
        },
    };
    Ok(TocEntry {
        dump_id,
        had_dumper,
        tag,
        desc,
        defn,
        copy_stmt,
        namespace,
        data,
        trailer_at,
    })
}
