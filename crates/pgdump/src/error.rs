//! Errors of the dump reader. Each names what failed and where: the file, the byte offset in
//! it, and for table data the table and the row.

use std::path::PathBuf;

use thiserror::Error;

/// Why a dump could not be read.
#[derive(Debug, Error)]
pub enum DumpError {
    /// The file system refused (missing file, permissions, …).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The archive's structure is not what pg_dump writes (or the file is cut short).
    #[error("{path}: byte {offset}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in the file the problem was found.
        offset: u64,
        /// What was expected.
        message: String,
    },
    /// A table's data could not be read or decoded.
    #[error("{path}: table {table}: {message}")]
    Data {
        /// The file (for a directory dump, the table's data file).
        path: PathBuf,
        /// The table, schema-qualified.
        table: String,
        /// What failed and where (byte offset, row, column).
        message: String,
    },
    /// The dump uses something this reader does not handle.
    #[error("{path}: {message}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What and why.
        message: String,
    },
}

/// Results of the dump reader.
pub type Result<T, E = DumpError> = std::result::Result<T, E>;
