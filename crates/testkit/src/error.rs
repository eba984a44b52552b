//! The error type of the test kit.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while starting a throwaway cluster, running
/// SQL against it or building a fixture database.
///
/// Every variant carries enough context (the command line, the captured
/// stderr, the tail of the server log) to diagnose a failing test without
/// re-running it.
#[derive(Debug)]
pub enum TestkitError {
    /// No directory holding the PostgreSQL server binaries (`initdb`,
    /// `pg_ctl`, `postgres`) was found. `searched` lists what was tried.
    BinariesNotFound {
        /// The places that were looked at, in order, with the reason each was
        /// rejected.
        searched: Vec<String>,
    },
    /// A file-system or process-spawning operation failed.
    Io {
        /// What the kit was doing, e.g. "creating the cluster directory".
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external command (initdb, pg_ctl, psql, ...) exited unsuccessfully.
    Command {
        /// The command line, for copy-pasting into a shell.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error (trimmed), where PostgreSQL puts the reason.
        stderr: String,
    },
    /// The server did not come up. `log` is the tail of the server log.
    ServerStart {
        /// The port the server was asked to listen on.
        port: u16,
        /// The data directory.
        data_dir: PathBuf,
        /// The last lines of the server log file.
        log: String,
    },
    /// A command printed something that is not UTF-8.
    NotUtf8 {
        /// The command line.
        command: String,
    },
    /// A fixture specification or argument that cannot be honoured, e.g. a
    /// month 13 or a database name with a NUL byte.
    InvalidSpec(String),
}

impl fmt::Display for TestkitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestkitError::BinariesNotFound { searched } => {
                write!(
                    f,
                    "PostgreSQL server binaries (initdb, pg_ctl) not found; set TSM_PG_BIN to their \
                     directory. Looked at: {}",
                    searched.join("; ")
                )
            }
            TestkitError::Io { context, source } => write!(f, "{context}: {source}"),
            TestkitError::Command {
                command,
                status,
                stderr,
            } => {
                write!(f, "command failed ({status}): {command}")?;
                if !stderr.is_empty() {
                    write!(f, "\n{stderr}")?;
                }
                Ok(())
            }
            TestkitError::ServerStart {
                port,
                data_dir,
                log,
            } => write!(
                f,
                "PostgreSQL server in {} did not start on port {port}; server log tail:\n{log}",
                data_dir.display()
            ),
            TestkitError::NotUtf8 { command } => {
                write!(f, "command printed output that is not UTF-8: {command}")
            }
            TestkitError::InvalidSpec(message) => write!(f, "invalid specification: {message}"),
        }
    }
}

impl std::error::Error for TestkitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TestkitError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl TestkitError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TestkitError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The result type of the test kit.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
