//! Throwaway PostgreSQL clusters for tests and benchmarks.
//!
//! A [`PgCluster`] is a private `initdb` + `postgres` in a temporary
//! directory, listening on a free TCP port of 127.0.0.1 with `trust`
//! authentication for the `postgres` role. It is stopped and deleted when
//! dropped, so every test gets a clean server and nothing leaks between runs.
//!
//! SQL is run through the `psql` command-line tool rather than a Rust driver,
//! so this crate stays free of async runtimes and of the code under test.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use crate::error::{Result, TestkitError};

/// The address every cluster listens on.
const HOST: &str = "127.0.0.1";
/// The superuser role created by `initdb -U`.
const SUPERUSER: &str = "postgres";
/// The operating-system account that owns the server when we run as root
/// (PostgreSQL refuses to run as root).
const SERVER_OS_USER: &str = "postgres";
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "120";
/// How many lines of the server log are quoted in start-up errors.
const LOG_TAIL_LINES: usize = 40;

/// How to configure a [`PgCluster`]. `Default` gives a fast, non-durable
/// server that is deleted on drop — what tests want.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// When `false` (the default) the server runs with `fsync=off`,
    /// `synchronous_commit=off` and `full_page_writes=off`: much faster, and
    /// crash safety is irrelevant for a throwaway cluster. Set it to `true`
    /// for benchmarks, so that write throughput is measured against a server
    /// configured the way production servers are.
    pub durable: bool,
    /// Extra server settings, each passed as `-c name=value` after the
    /// built-in ones (so they win), e.g. `("work_mem", "64MB")`.
    pub settings: Vec<(String, String)>,
    /// When `true`, dropping the cluster stops the server but leaves its
    /// directory (data, socket and `server.log`) in place for inspection; its
    /// path is printed on stderr.
    pub keep: bool,
}

impl ClusterOptions {
    /// Sets [`ClusterOptions::durable`].
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Adds one server setting (see [`ClusterOptions::settings`]).
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Sets [`ClusterOptions::keep`].
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }
}

/// A private, temporary PostgreSQL server.
///
/// Start one per test with [`PgCluster::start`]; connect with
/// [`PgCluster::url`] or run SQL with [`PgCluster::psql`]. Dropping it stops
/// the server (`pg_ctl -m immediate stop`) and removes its directory, unless
/// [`ClusterOptions::keep`] was set.
///
/// When the test process runs as root, `initdb` and `pg_ctl` are run as the
/// `postgres` operating-system user through `runuser`, and the cluster
/// directory is handed to that user.
#[derive(Debug)]
pub struct PgCluster {
    /// Directory of the server binaries (`initdb`, `pg_ctl`, `pg_dump`, ...).
    bin_dir: PathBuf,
    /// The temporary directory holding everything; `None` only during drop.
    root: Option<TempDir>,
    /// `root`'s path, kept separately so it stays available during drop.
    root_path: PathBuf,
    /// `root/data`, the data directory created by initdb.
    data_dir: PathBuf,
    /// `root/socket`, where the Unix-domain socket lives.
    socket_dir: PathBuf,
    /// `root/server.log`.
    log_path: PathBuf,
    /// The TCP port the server listens on.
    port: u16,
    /// Whether server commands go through `runuser -u postgres`.
    as_server_user: bool,
    /// The options the cluster was started with.
    options: ClusterOptions,
    /// Whether the server is currently running (as far as we know).
    running: bool,
}

impl PgCluster {
    /// Starts a fast, non-durable throwaway cluster (see
    /// [`ClusterOptions::default`]).
    pub fn start() -> Result<PgCluster> {
        PgCluster::start_with(ClusterOptions::default())
    }

    /// Starts a throwaway cluster configured by `options`.
    ///
    /// Finds the server binaries (see [`find_bin_dir`]), runs `initdb` into a
    /// new temporary directory and starts the server on a free port. If the
    /// port was taken by someone else between choosing and binding it, the
    /// start is retried once on another port.
    pub fn start_with(options: ClusterOptions) -> Result<PgCluster> {
        let bin_dir = find_bin_dir()?;
        let as_server_user = running_as_root();

        let root = tempfile::Builder::new()
            .prefix("tsm-pg-")
            .tempdir()
            .map_err(|e| TestkitError::io("creating the cluster directory", e))?;
        let root_path = root.path().to_path_buf();
        let socket_dir = root_path.join("socket");
        std::fs::create_dir(&socket_dir)
            .map_err(|e| TestkitError::io("creating the socket directory", e))?;
        if as_server_user {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{SERVER_OS_USER}:"))
                .arg(&root_path))?;
        }

        let mut cluster = PgCluster {
            data_dir: root_path.join("data"),
            log_path: root_path.join("server.log"),
            socket_dir,
            root_path,
            root: Some(root),
            bin_dir,
            port: 0,
            as_server_user,
            options,
            running: false,
        };
        cluster.initdb()?;

        cluster.port = free_port()?;
        cluster.start_server_on_free_port()?;
        Ok(cluster)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: always `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// A connection URL for database `db` as the superuser, e.g.
    /// `postgres://postgres@127.0.0.1:54321/thingsboard`. No password is
    /// needed (`trust` authentication). Characters of `db` that are not
    /// URL-safe are percent-encoded.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@{HOST}:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// The cluster's temporary directory, holding `data/` (the data
    /// directory), `socket/` and `server.log`.
    pub fn dir(&self) -> &Path {
        &self.root_path
    }

    /// The directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The path of the server program `name` (e.g. `"pg_dump"`,
    /// `"pg_restore"`, `"psql"`) in the cluster's binary directory, so that
    /// client tools match the server version. If no such file exists there,
    /// returns `name` unchanged so that it is looked up on `PATH`.
    pub fn bin(&self, name: &str) -> PathBuf {
        let candidate = self.bin_dir.join(name);
        if candidate.is_file() {
            candidate
        } else {
            PathBuf::from(name)
        }
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file; handy when a test fails in an unexpected way.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the server is running (it is, unless [`PgCluster::stop`] or
    /// [`PgCluster::stop_immediately`] was called without a later
    /// [`PgCluster::restart`]).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Creates database `name` (UTF-8, C locale, owned by `postgres`).
    pub fn create_database(&self, name: &str) -> Result<()> {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)?),
        )
        .map(drop)
    }

    /// Drops database `name` if it exists, disconnecting its sessions.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        self.psql(
            "postgres",
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(name)?
            ),
        )
        .map(drop)
    }

    /// Runs `sql` in database `db` with `psql` and returns what it printed.
    ///
    /// The SQL is run as a script (it is written to a temporary file passed
    /// with `-f`), whatever its length, so that behaviour does not depend on
    /// size: statements run one after the other, each in its own transaction
    /// unless the script says `BEGIN`/`COMMIT`, and the first error stops the
    /// script (`ON_ERROR_STOP=1`) and is returned with psql's stderr.
    ///
    /// Output is unaligned and tuples-only (`-At`): one line per row, columns
    /// separated by `|`, NULL printed as an empty string; the final newline is
    /// removed, so `SELECT count(*) FROM t` gives e.g. `"42"`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let mut file = tempfile::Builder::new()
            .prefix("tsm-sql-")
            .suffix(".sql")
            .tempfile()
            .map_err(|e| TestkitError::io("creating a temporary SQL file", e))?;
        file.write_all(sql.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| TestkitError::io("writing a temporary SQL file", e))?;
        self.psql_file(db, file.path())
    }

    /// Runs the SQL script at `path` in database `db` with `psql -f`; see
    /// [`PgCluster::psql`] for the execution and output conventions.
    pub fn psql_file(&self, db: &str, path: &Path) -> Result<String> {
        let mut command = self.psql_command(db)?;
        command.arg("-f").arg(path);
        let output = run(&mut command)?;
        let mut text = String::from_utf8(output.stdout).map_err(|_| TestkitError::NotUtf8 {
            command: describe(&command),
        })?;
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    /// A `psql` command connected to database `db`, with the kit's standard
    /// options (`-X -v ON_ERROR_STOP=1 -q -At`) and a clean environment, for
    /// tests that need to drive psql themselves (e.g. feed it stdin).
    pub fn psql_command(&self, db: &str) -> Result<Command> {
        if db.contains('\0') {
            return Err(TestkitError::InvalidSpec(
                "database name contains a NUL byte".into(),
            ));
        }
        let mut command = Command::new(self.bin("psql"));
        command
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-q", "-At", "-h", HOST])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d"])
            .arg(format!("dbname={}", conninfo_quote(db)))
            .env("PGCLIENTENCODING", "UTF8")
            .env("PGTZ", "UTC")
            .env("PGCONNECT_TIMEOUT", "10");
        for var in [
            "PGOPTIONS",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSSLMODE",
            "PGAPPNAME",
            "PGTARGETSESSIONATTRS",
        ] {
            command.env_remove(var);
        }
        Ok(command)
    }

    /// Stops the server cleanly (`pg_ctl -m fast stop`), keeping its data so
    /// that [`PgCluster::restart`] can bring it back. Does nothing if it is
    /// not running. Useful to test behaviour when a database goes away.
    pub fn stop(&mut self) -> Result<()> {
        self.pg_ctl_stop("fast")
    }

    /// Stops the server abruptly (`pg_ctl -m immediate stop`), as a crash
    /// would: uncommitted work is lost and the next start runs crash
    /// recovery. Does nothing if it is not running. Unless the cluster is
    /// [durable](ClusterOptions::durable), the last fraction of a second of
    /// *committed* work may be lost too (`synchronous_commit=off`).
    pub fn stop_immediately(&mut self) -> Result<()> {
        self.pg_ctl_stop("immediate")
    }

    /// Starts the server again on the same port and data directory after
    /// [`PgCluster::stop`] or [`PgCluster::stop_immediately`]; if it is
    /// running, stops it (fast) first.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_server()
    }

    /// Runs `initdb` into `data_dir`.
    fn initdb(&self) -> Result<()> {
        let mut command = self.server_command("initdb");
        command
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"])
            .arg("--locale=C")
            .arg("-D")
            .arg(&self.data_dir);
        run(&mut command).map(drop)
    }

    /// Starts the server on `self.port`; if that port turns out to be taken
    /// (someone grabbed it since [`free_port`] chose it), retries once on a
    /// new free port.
    fn start_server_on_free_port(&mut self) -> Result<()> {
        match self.start_server() {
            Err(_) if self.port_was_taken() => {
                self.port = free_port()?;
                self.start_server()
            }
            other => other,
        }
    }

    /// Starts the server with `pg_ctl -w start` on `self.port`.
    fn start_server(&mut self) -> Result<()> {
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), HOST.into()),
            ("max_connections".into(), "100".into()),
            ("shared_buffers".into(), "128MB".into()),
        ];
        if !self.options.durable {
            for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                settings.push((name.into(), "off".into()));
            }
        }
        settings.extend(self.options.settings.iter().cloned());

        // pg_ctl hands `-o` to a shell, so every piece is shell-quoted.
        let mut server_args = format!(
            "-p {} -k {}",
            self.port,
            shell_quote(&self.socket_dir.to_string_lossy())
        );
        for (name, value) in &settings {
            let _ = write!(
                server_args,
                " -c {}",
                shell_quote(&format!("{name}={value}"))
            );
        }

        let mut command = self.server_command("pg_ctl");
        command
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_path)
            .arg("-o")
            .arg(server_args)
            .arg("start");
        match run(&mut command) {
            Ok(_) => {
                self.running = true;
                Ok(())
            }
            Err(_) => {
                // If pg_ctl gave up waiting, a server may still be coming
                // up; make sure it does not outlive this failed start.
                kill_postmaster(&self.data_dir);
                Err(TestkitError::ServerStart {
                    port: self.port,
                    data_dir: self.data_dir.clone(),
                    log: self.log_tail(),
                })
            }
        }
    }

    /// `pg_ctl -m MODE stop`, if the server is running.
    fn pg_ctl_stop(&mut self, mode: &str) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let mut command = self.server_command("pg_ctl");
        command
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
            .arg(&self.data_dir)
            .args(["-m", mode, "stop"]);
        run(&mut command)?;
        self.running = false;
        Ok(())
    }

    /// Whether the server log says the last start failed on a taken port.
    fn port_was_taken(&self) -> bool {
        let log = self.log_tail();
        log.contains("Address already in use") || log.contains("could not bind")
    }

    /// The last lines of the server log, or a note saying why there are none.
    fn log_tail(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(no server log at {}: {e})", self.log_path.display()),
        }
    }

    /// A command running server binary `program` as the server's OS user,
    /// with the cluster directory as working directory (the `postgres` user
    /// may not be allowed into the caller's current directory).
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut command = if self.as_server_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_OS_USER, "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.current_dir(&self.root_path);
        command
    }
}

impl Drop for PgCluster {
    /// Stops the server immediately and deletes the cluster directory
    /// (unless [`ClusterOptions::keep`]). Failures are reported on stderr,
    /// since `drop` cannot return them.
    fn drop(&mut self) {
        if self.running {
            if let Err(err) = self.pg_ctl_stop("immediate") {
                eprintln!("tsmigrate-testkit: could not stop the cluster: {err}");
                kill_postmaster(&self.data_dir);
            }
        }
        if let Some(mut root) = self.root.take() {
            if self.options.keep {
                root.disable_cleanup(true);
                eprintln!(
                    "tsmigrate-testkit: kept cluster directory {}",
                    self.root_path.display()
                );
            }
        }
    }
}

/// Last resort when `pg_ctl stop` failed: send SIGQUIT (immediate shutdown)
/// to the postmaster named in `postmaster.pid`.
fn kill_postmaster(data_dir: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return;
    };
    if let Some(pid) = pid_file.lines().next().map(str::trim) {
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
            let _ = Command::new("kill")
                .args(["-QUIT", pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// True when the server binaries in use have the shared library of extension `name`
/// (`<bindir>/../lib/<name>.so`, the Debian/Ubuntu and source-build layout), so a cluster
/// may preload it. Tests of an optional extension (TimescaleDB) skip when it is absent.
pub fn has_extension_library(name: &str) -> bool {
    find_bin_dir()
        .ok()
        .and_then(|b| b.parent().map(|p| p.join("lib").join(format!("{name}.so"))))
        .is_some_and(|p| p.is_file())
}

/// Finds the directory of the PostgreSQL server binaries, trying in order:
///
/// 1. the `TSM_PG_BIN` environment variable;
/// 2. `pg_config --bindir`;
/// 3. the newest `/usr/lib/postgresql/<version>/bin` (Debian/Ubuntu layout);
/// 4. the directory on `PATH` that contains `initdb`.
///
/// A candidate is accepted only if it contains both `initdb` and `pg_ctl`.
pub fn find_bin_dir() -> Result<PathBuf> {
    let mut searched = Vec::new();
    fn accept(searched: &mut Vec<String>, label: &str, dir: PathBuf) -> Option<PathBuf> {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            Some(dir)
        } else {
            searched.push(format!("{label} {} (no initdb/pg_ctl)", dir.display()));
            None
        }
    }

    if let Some(dir) = std::env::var_os("TSM_PG_BIN") {
        // An explicit setting that is wrong is an error, not something to
        // silently route around.
        return match accept(&mut searched, "TSM_PG_BIN", PathBuf::from(dir)) {
            Some(dir) => Ok(dir),
            None => Err(TestkitError::BinariesNotFound { searched }),
        };
    }

    match Command::new("pg_config").arg("--bindir").output() {
        Ok(output) if output.status.success() => {
            let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
            if let Some(dir) = accept(&mut searched, "pg_config --bindir", PathBuf::from(dir)) {
                return Ok(dir);
            }
        }
        Ok(output) => searched.push(format!("pg_config --bindir (failed: {})", output.status)),
        Err(e) => searched.push(format!("pg_config --bindir ({e})")),
    }

    let debian_root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let version = name
                .split('.')
                .map(str::parse::<u32>)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => {
            if let Some(dir) = accept(&mut searched, "newest of /usr/lib/postgresql/*/bin:", dir) {
                return Ok(dir);
            }
        }
        None => searched.push(format!("{} (no versions)", debian_root.display())),
    }

    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    searched.push("PATH (no directory with initdb and pg_ctl)".into());
    Err(TestkitError::BinariesNotFound { searched })
}

/// Whether this process runs with effective user id 0. Reads
/// `/proc/self/status` (no libc needed) and falls back to `id -u`.
fn running_as_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            // "Uid:\treal\teffective\tsaved\tfs"
            if let Some(effective) = line.split_whitespace().nth(2) {
                return effective == "0";
            }
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A TCP port on 127.0.0.1 that was free a moment ago: bind port 0, read the
/// port the kernel chose, release it.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| TestkitError::io("choosing a free TCP port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| TestkitError::io("choosing a free TCP port", e))?
        .port();
    Ok(port)
}

/// Runs `command` to completion with stdin closed, capturing its output;
/// fails with its stderr if it exits unsuccessfully.
pub(crate) fn run(command: &mut Command) -> Result<Output> {
    command.stdin(Stdio::null());
    let output = command
        .output()
        .map_err(|e| TestkitError::io(format!("running {}", describe(command)), e))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(TestkitError::Command {
            command: describe(command),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// A readable rendering of a command line for error messages.
fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().to_string();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&shell_quote(&OsStr::to_string_lossy(arg)));
    }
    text
}

/// Quotes `s` for a POSIX shell, leaving plain words alone.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Quotes a value for a libpq connection string (`key='value'`).
fn conninfo_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

/// Quotes an SQL identifier (`"name"`, with embedded quotes doubled).
/// Rejects NUL bytes, which PostgreSQL cannot store.
pub fn quote_ident(name: &str) -> Result<String> {
    if name.contains('\0') {
        return Err(TestkitError::InvalidSpec(format!(
            "identifier {name:?} contains a NUL byte"
        )));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_moves_to_another_port_when_its_port_is_taken() {
        let mut cluster = PgCluster::start().unwrap();
        let first_port = cluster.port();
        cluster.stop().unwrap();
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, first_port)).unwrap();

        cluster.start_server_on_free_port().unwrap();
        assert_ne!(cluster.port(), first_port);
        assert!(cluster.log_tail().contains("could not bind"));
        assert_eq!(cluster.psql("postgres", "SELECT 1").unwrap(), "1");
        drop(squatter);
    }

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("fsync=off"), "fsync=off");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn identifiers_and_urls_are_escaped() {
        assert_eq!(quote_ident("tb").unwrap(), "\"tb\"");
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(quote_ident("a\0b").is_err());
        assert_eq!(percent_encode("tb_3.6"), "tb_3.6");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
        assert_eq!(conninfo_quote(r"a'b\c"), r"'a\'b\\c'");
    }
}
