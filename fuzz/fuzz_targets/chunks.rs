//! `blocks::ChunkReader` (length-prefixed chunks of a custom archive's data block) read to
//! the end, alone and under `blocks::decompress` for every compression. Damaged input must
//! give an `io::Error`, never a panic, a hang or an absurd allocation.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use tsmigrate_pgdump::blocks::{decompress, ChunkReader};
use tsmigrate_pgdump::Compression;

/// Reads `r` to its end (or first error) into a fixed buffer; returns the bytes read.
fn drain(mut r: impl Read) -> io::Result<u64> {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                assert!(n <= buf.len());
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The raw chunk stream: what it yields can never exceed the input.
    if let Ok(n) = drain(ChunkReader::from_reader(data, 0, 4)) {
        assert!(n <= data.len() as u64);
    }
    // Small reads too (a reader must cope with any buffer size).
    let mut r = ChunkReader::from_reader(data, 0, 4);
    let mut one = [0u8; 3];
    let mut got = 0usize;
    while let Ok(n) = r.read(&mut one) {
        if n == 0 {
            break;
        }
        got += n;
        assert!(got <= data.len());
    }
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        // `decompress` takes a `'static` reader: give it its own copy of the input.
        let chunks = ChunkReader::from_reader(io::Cursor::new(data.to_vec()), 0, 4);
        if let Ok(stream) = decompress(Box::new(chunks), c, false) {
            let _ = drain(stream);
        }
    }
    // Directory dumps' gzip files go through MultiGzDecoder (no chunk framing).
    if let Ok(stream) = decompress(
        Box::new(io::Cursor::new(data.to_vec())),
        Compression::Gzip,
        true,
    ) {
        let _ = drain(stream);
    }
});
