//! Typed errors of the core crate and of connectors.

use thiserror::Error;

/// Which end of a migration an error comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The store data is read from.
    Source,
    /// The store data is written to.
    Target,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            End::Source => "source",
            End::Target => "target",
        })
    }
}

/// Errors raised by plans, mappings and connectors. Messages never contain passwords:
/// connection strings are passed through [`crate::secret::redact`] before they are put here.
#[derive(Debug, Error)]
pub enum Error {
    /// The plan file is malformed or inconsistent.
    #[error("plan: {0}")]
    Plan(String),
    /// A state tsmigrate's own code should never reach: a bug, not the user's or the store's
    /// doing (exit code 1, not 2).
    #[error(
        "internal error (a bug in tsmigrate: please report it with the command and the plan): {0}"
    )]
    Internal(String),
    /// A column expression of a stream's mapping cannot be compiled.
    #[error("stream `{stream}`, column `{column}`: {message}")]
    Mapping {
        /// Stream name.
        stream: String,
        /// Target column name.
        column: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A store could not be reached or refused the login.
    #[error("cannot connect to the {end} ({what}): {message}")]
    Connect {
        /// Source or target.
        end: End,
        /// The redacted connection string.
        what: String,
        /// The store's reason.
        message: String,
        /// True when retrying may help (network errors, server starting up).
        transient: bool,
    },
    /// A store failed an operation.
    #[error("{end}: {context}: {message}")]
    Store {
        /// Source or target.
        end: End,
        /// What was being done (stream, partition, statement).
        context: String,
        /// The store's message.
        message: String,
        /// True when retrying may help (dropped connection, serialization failure).
        transient: bool,
    },
    /// The target refused a row of the partition (a value or a constraint it would not take),
    /// which failed the partition's transaction; the partition is written again isolating the
    /// rows it refuses, which are then rejected one by one.
    #[error("{end}: {context}: the target refused a row: {message}")]
    RowRefused {
        /// Source or target.
        end: End,
        /// Stream / partition / table.
        context: String,
        /// The store's message.
        message: String,
    },
    /// Data that a store sent could not be decoded.
    #[error("{end}: {context}: malformed data: {message}")]
    Decode {
        /// Source or target.
        end: End,
        /// Stream / partition / byte offset.
        context: String,
        /// What was wrong.
        message: String,
    },
    /// A requested table, stream or feature does not exist at the store.
    #[error("{0}")]
    NotFound(String),
    /// The plan asks for something this connector does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The run was stopped (Ctrl-C, or another partition failed) before this work finished.
    #[error("cancelled")]
    Cancelled,
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when the failed work may succeed if retried (used by retry logic).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connect {
                transient: true,
                ..
            } | Error::Store {
                transient: true,
                ..
            }
        )
    }
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
