//! `archive::read_toc` on arbitrary bytes, as a custom archive (offset trailers) and as a
//! directory archive's `toc.dat` (file-name trailers). It must return an error, never panic,
//! hang or allocate more than the input justifies; when it succeeds, the positions it
//! reports must lie inside the input.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tsmigrate_pgdump::archive::{read_toc, DataPos, Trailer};

fuzz_target!(|data: &[u8]| {
    for trailer in [Trailer::Offset, Trailer::FileName] {
        let Ok(toc) = read_toc(data, Path::new("fuzz.dump"), trailer) else {
            continue;
        };
        assert!(
            toc.data_start <= data.len() as u64,
            "data_start {} beyond the input's {} bytes",
            toc.data_start,
            data.len()
        );
        let h = &toc.header;
        assert!((1..=32).contains(&h.int_size) && (1..=32).contains(&h.off_size));
        let mut last = 0u64;
        for e in &toc.entries {
            assert!(e.dump_id > 0);
            assert!(e.trailer_at > last && e.trailer_at < toc.data_start);
            last = e.trailer_at;
            match (&e.data, trailer) {
                (DataPos::File(f), Trailer::FileName) => assert!(!f.is_empty()),
                (DataPos::File(_), Trailer::Offset) => panic!("file name from an offset trailer"),
                (DataPos::Offset(_) | DataPos::Unknown, Trailer::FileName) => {
                    panic!("offset from a file-name trailer")
                }
                _ => {}
            }
        }
    }
});
