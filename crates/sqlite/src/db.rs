//! Opening a SQLite file: the path from the plan, connections with the pragmas each use needs,
//! identifier quoting, the plan's lock, and turning driver errors into
//! [`tsmigrate_core::Error`]s that name the end, the file and what was being done.

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tsmigrate_core::{End, Endpoint, Error, Result};

/// How long a connection waits for another writer (another tsmigrate job, or a process
/// outside) before giving up with `database is locked`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// A SQLite database file, as one end of a migration.
#[derive(Clone, Debug)]
pub struct Db {
    path: PathBuf,
    end: End,
}

impl Db {
    /// The file named by the endpoint's `path` (or a `sqlite://` / `file:` url).
    pub fn from_endpoint(endpoint: &Endpoint, end: End) -> Result<Db> {
        let which = if end == End::Source {
            "source"
        } else {
            "target"
        };
        let path = match (endpoint.options.get("path"), &endpoint.url) {
            (Some(toml::Value::String(p)), _) => p.clone(),
            (Some(_), _) => return Err(Error::Plan(format!("{which}.path must be a string"))),
            (None, Some(url)) => {
                let u = url.expose();
                u.strip_prefix("sqlite://")
                    .or_else(|| u.strip_prefix("sqlite:"))
                    .or_else(|| u.strip_prefix("file:"))
                    .unwrap_or(u)
                    .to_string()
            }
            (None, None) => {
                return Err(Error::Plan(format!(
                    "[{which}] kind = \"{}\" needs path = \"file.db\" (the SQLite or libSQL database file)",
                    endpoint.kind
                )))
            }
        };
        if path.is_empty() {
            return Err(Error::Plan(format!("{which}.path is empty")));
        }
        Ok(Db {
            path: PathBuf::from(path),
            end,
        })
    }

    /// A database at `path` (tests, tools).
    pub fn new(path: impl Into<PathBuf>, end: End) -> Db {
        Db {
            path: path.into(),
            end,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which end of the migration the file is.
    pub fn end(&self) -> End {
        self.end
    }

    /// A one-line description (`SQLite file readings.db`).
    pub fn describe(&self) -> String {
        format!("SQLite file {}", self.path.display())
    }

    /// Opens a read-only connection; the file must exist.
    pub fn open_read(&self) -> Result<Connection> {
        if !self.path.exists() {
            return Err(Error::Connect {
                end: self.end,
                what: self.describe(),
                message: "the file does not exist".into(),
                transient: false,
            });
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| self.connect_error(&e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.connect_error(&e))?;
        // Large page cache and memory temp storage: reads of big tables sort and scan less.
        conn.execute_batch("PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;")
            .map_err(|e| self.connect_error(&e))?;
        Ok(conn)
    }

    /// Opens a read-write connection, creating the file when missing, in WAL mode with
    /// `synchronous = NORMAL`: the fastest settings that keep every committed transaction
    /// after a crash of the process (a power loss may lose the last transactions, never
    /// corrupt the file — and the ledger commits with the rows, so a resume stays exact).
    pub fn open_write(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| self.connect_error(&e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.connect_error(&e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY; \
             PRAGMA wal_autocheckpoint = 10000;",
        )
        .map_err(|e| self.connect_error(&e))?;
        Ok(conn)
    }

    /// Takes an exclusive advisory lock on the file for this process's life (released when
    /// the process exits, however it exits), so two tsmigrate processes never write one plan
    /// into the same file at once. Returns `Ok(None)` when another process holds it.
    pub fn try_lock(&self) -> Result<Option<std::fs::File>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .open(&self.path)
            .map_err(|e| Error::Io {
                path: self.path.display().to_string(),
                source: e,
            })?;
        // SAFETY: flock on a descriptor we own; no memory is shared with the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok((rc == 0).then_some(file))
    }

    /// A connection failure at this file.
    pub fn connect_error(&self, e: &rusqlite::Error) -> Error {
        Error::Connect {
            end: self.end,
            what: self.describe(),
            message: e.to_string(),
            transient: is_busy(e),
        }
    }

    /// A failure of an operation on this file; `context` says what was being done (stream,
    /// table, partition).
    pub fn error(&self, context: impl Into<String>, e: &rusqlite::Error) -> Error {
        Error::Store {
            end: self.end,
            context: format!("{}: {}", self.path.display(), context.into()),
            message: e.to_string(),
            transient: is_busy(e),
        }
    }
}

/// True for errors that go away when retried (another process held the write lock).
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Quotes an identifier for SQLite (`"name"`, inner quotes doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a table name that may be qualified by an attached schema (`main.readings`).
pub fn quote_table(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
            format!("{}.{}", quote_ident(schema), quote_ident(table))
        }
        _ => quote_ident(name),
    }
}

/// Runs blocking SQLite work off the async runtime's threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("a SQLite task failed: {e}")))?
}
