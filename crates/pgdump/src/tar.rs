//! The members of a tar archive (`pg_dump -Ft`): 512-byte headers, each followed by its
//! member's bytes padded to a multiple of 512, ended by zero blocks. Only names, sizes and
//! offsets are read; the members (`toc.dat`, `<id>.dat`) are then read in place.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{DumpError, Result};

/// Where a member's bytes are in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Offset of the first byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// True when `head` (at least 262 bytes of a file) is a ustar header.
pub fn is_tar(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// The size field of a header: octal ASCII, or base-256 (high bit set) for large members.
fn size_field(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let t = text.trim();
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(t, 8).ok()
}

/// Lists the members of the tar archive at `path` by name.
pub fn members(path: &Path) -> Result<HashMap<String, Member>> {
    let io_err = |e| DumpError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let mut out = HashMap::new();
    let mut at: u64 = 0;
    let mut header = [0u8; 512];
    while at + 512 <= len {
        file.seek(SeekFrom::Start(at)).map_err(io_err)?;
        file.read_exact(&mut header).map_err(io_err)?;
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let name: String = header[..100]
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| *b as char)
            .collect();
        let size = size_field(&header[124..136]).ok_or_else(|| DumpError::Format {
            path: path.to_path_buf(),
            offset: at + 124,
            message: format!("the tar header of {name:?} has an unreadable size"),
        })?;
        let data = at + 512;
        if data.saturating_add(size) > len {
            return Err(DumpError::Format {
                path: path.to_path_buf(),
                offset: len,
                message: format!(
                    "the file ends at byte {len} inside tar member {name:?} ({size} bytes from byte {data}): the dump is truncated"
                ),
            });
        }
        out.insert(
            name,
            Member {
                offset: data,
                len: size,
            },
        );
        at = data + size.div_ceil(512) * 512;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_octal_and_base_256() {
        assert_eq!(size_field(b"00000003175\0"), Some(0o3175));
        assert_eq!(size_field(b"\0\0\0\0\0\0\0\0\0\0\0\0"), Some(0));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[7] = 0x02; // 2 << 32
        assert_eq!(size_field(&big), Some(2u64 << 32));
        assert_eq!(size_field(b"0000000x\0\0\0\0"), None);
    }
}
