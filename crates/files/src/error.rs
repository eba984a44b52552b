//! Errors of the file connectors, naming the file (and column or row) they are about.

use std::fmt::Display;
use std::path::Path;

use tsmigrate_core::{End, Error};

/// An I/O error on `path`.
pub fn file_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// A file of the source or target (`end`) that cannot be read or written as its format says;
/// `context` names the file and where in it.
pub fn parquet_error(end: End, context: &str, e: &dyn Display) -> Error {
    Error::Decode {
        end,
        context: context.to_string(),
        message: e.to_string(),
    }
}
