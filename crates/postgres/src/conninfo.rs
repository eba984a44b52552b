//! Connection parameters the way libpq (and so `psql`) resolves them: the connection string
//! (URL or `key=value`), then the `PG*` environment variables for what it leaves out, then
//! libpq's defaults (the local Unix socket, port 5432, the OS user), and the password from
//! the password file (`~/.pgpass` or `PGPASSFILE`) when none was given.
//!
//! The string is parsed once, by [`tsmigrate_core::secret::conninfo`] (libpq's own rules,
//! the parser that also masks it for messages), and the driver's configuration is built
//! from the parsed parameters here: tokio-postgres never sees the string. The hosts are
//! kept apart ([`Target`]) so that [`crate::connect`] can bound each host's whole
//! connection start by `connect_timeout`, as libpq does. TLS parameters go to
//! [`crate::tls`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{ChannelBinding, Host, SslNegotiation, TargetSessionAttrs};
use tokio_postgres::Config;
use tsmigrate_core::secret::{ConnInfo, ConnInfoError};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (`allow` is read as this too), certificate not checked.
    Prefer,
    /// TLS or fail; the certificate is checked only when a root certificate is given.
    Require,
    /// TLS, certificate signed by the root certificate; host name not checked.
    VerifyCa,
    /// TLS, certificate signed by the root certificate and issued for the host name.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The name libpq uses.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS parameters of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsParams {
    /// `sslmode` (default `prefer`, as libpq).
    pub mode: SslMode,
    /// `sslrootcert`: PEM file of the certificate authorities to trust (`system`: the
    /// operating system's store).
    pub root_cert: Option<PathBuf>,
    /// `sslcert`: the client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's key (PEM).
    pub key: Option<PathBuf>,
}

/// `connect_timeout` when neither the string nor `PGCONNECT_TIMEOUT` gives one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keepalives when the string does not set them (libpq leaves the system's, two hours
/// on Linux): a dead peer on an idle connection is noticed after about two minutes.
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(60);
/// Seconds between unanswered keepalive probes (default).
pub const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the connection is dropped (default).
pub const DEFAULT_KEEPALIVES_COUNT: u32 = 6;

/// The libpq parameters tsmigrate connects with; a string giving any other libpq parameter
/// is refused, naming it.
const SUPPORTED: &[&str] = &[
    "user",
    "password",
    "passfile",
    "dbname",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslnegotiation",
    "sslcompression",
    "sslsni",
    "gssencmode",
    "client_encoding",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// One host to try: where to connect and with which password.
#[derive(Clone, Debug)]
pub struct Target {
    /// Host name, IP address or Unix-socket directory.
    pub host: Host,
    /// `hostaddr`: the IP address to connect to instead of looking `host` up.
    pub hostaddr: Option<IpAddr>,
    /// The port.
    pub port: u16,
    /// The password for this host: the string's, `PGPASSWORD`, or its password-file line.
    pub password: Option<String>,
    /// Where the password came from, for messages (`the connection string`, `PGPASSWORD`,
    /// the password file's path).
    pub password_from: Option<String>,
}

impl Target {
    /// `host:port`, or the socket directory and port, for messages.
    pub fn label(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Host::Tcp(h) => format!("{h}:{}", self.port),
            #[cfg(unix)]
            Host::Unix(p) => format!("{} (port {})", p.display(), self.port),
        }
    }

    /// True for a Unix-domain socket.
    pub fn is_local_socket(&self) -> bool {
        !matches!(self.host, Host::Tcp(_))
    }

    /// The driver's configuration for this host alone: `base` with its address, port and
    /// password.
    pub fn config(&self, base: &Config) -> Config {
        let mut c = base.clone();
        match &self.host {
            Host::Tcp(h) => c.host(h),
            #[cfg(unix)]
            Host::Unix(p) => c.host_path(p),
        };
        if let Some(a) = self.hostaddr {
            c.hostaddr(a);
        }
        c.port(self.port);
        if let Some(pw) = &self.password {
            c.password(pw.as_bytes());
        }
        c
    }
}

/// A connection string resolved for connecting.
pub struct Resolved {
    /// The driver's configuration without hosts, ports and password (user, database,
    /// options, application name, keepalives, …).
    pub base: Config,
    /// The hosts, in the order they are tried.
    pub targets: Vec<Target>,
    /// TLS parameters.
    pub tls: TlsParams,
    /// How long one host may take to connect, TLS and login included; `None`: no limit
    /// (`connect_timeout=0`, as libpq).
    pub connect_timeout: Option<Duration>,
    /// `load_balance_hosts=random`: try the hosts in a random order.
    pub random_order: bool,
    /// Facts worth adding to a failure message (an ignored password file, …).
    pub notes: Vec<String>,
}

/// Why a connection string cannot be used. Neither kind quotes the string or its values.
#[derive(Debug)]
pub enum ResolveError {
    /// It does not parse.
    Syntax(ConnInfoError),
    /// A parameter (from the string or the environment) is not usable.
    Param(String),
}

impl ResolveError {
    /// The message, naming the plan field the string came from (`source.url`).
    pub fn message(&self, field: &str) -> String {
        match self {
            ResolveError::Syntax(e) => format!("{field} is not a connection string: {e}"),
            ResolveError::Param(m) => format!("{field}: {m}"),
        }
    }
}

/// The string's parameters with the environment behind them.
struct Params<'a> {
    given: Vec<(String, String)>,
    env: &'a dyn Env,
}

impl Params<'_> {
    /// The string's value of `key`.
    fn given(&self, key: &str) -> Option<&str> {
        self.given
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The string's value of `key`, else the environment variable `var` (when set and not
    /// empty).
    fn get(&self, key: &str, var: &str) -> Option<String> {
        self.given(key)
            .map(str::to_string)
            .or_else(|| self.env.var(var))
    }
}

fn param(m: impl Into<String>) -> ResolveError {
    ResolveError::Param(m.into())
}

/// A whole number as libpq's `parse_int_param` reads one (blanks around it allowed).
fn int(value: &str, key: &str) -> Result<i64, ResolveError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| param(format!("{key} must be a whole number")))
}

/// Seconds, where 0 or less means "not set" (libpq's keepalive parameters).
fn secs(value: &str, key: &str) -> Result<Option<Duration>, ResolveError> {
    let n = int(value, key)?;
    Ok((n > 0).then(|| Duration::from_secs(n as u64)))
}

/// Where the environment comes from: the process environment, or a map in tests.
pub trait Env {
    /// The variable's value, when set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Resolves a connection string as libpq would.
pub fn resolve(conn: &str, env: &dyn Env) -> Result<Resolved, ResolveError> {
    let info = ConnInfo::parse(conn).map_err(ResolveError::Syntax)?;
    let p = Params {
        given: info.params(),
        env,
    };
    if let Some((k, _)) = p
        .given
        .iter()
        .find(|(k, _)| !SUPPORTED.contains(&k.as_str()))
    {
        return Err(param(format!(
            "the libpq parameter `{k}` is not supported by tsmigrate"
        )));
    }
    let mut base = Config::new();
    let mut notes = Vec::new();
    let user = p
        .get("user", "PGUSER")
        .or_else(|| env.var("USER"))
        .unwrap_or_else(|| "postgres".into());
    base.user(&user);
    if let Some(db) = p.get("dbname", "PGDATABASE") {
        base.dbname(&db);
    }
    if let Some(o) = p.get("options", "PGOPTIONS") {
        base.options(&o);
    }
    let app = p
        .get("application_name", "PGAPPNAME")
        .or_else(|| p.given("fallback_application_name").map(str::to_string))
        .unwrap_or_else(|| "tsmigrate".into());
    base.application_name(&app);
    keepalives(&p, &mut base)?;
    session_options(&p, &mut base)?;
    let connect_timeout = match p.get("connect_timeout", "PGCONNECT_TIMEOUT") {
        None => Some(DEFAULT_CONNECT_TIMEOUT),
        // libpq: zero or less waits for ever, and 1 is taken as 2.
        Some(t) => match int(&t, "connect_timeout (seconds)")? {
            n if n <= 0 => None,
            n => Some(Duration::from_secs(n.max(2) as u64)),
        },
    };
    let mut targets = targets(&p)?;
    passwords(
        &p,
        &mut targets,
        base.get_dbname().unwrap_or(&user),
        &user,
        &mut notes,
    );
    let random_order = match p.get("load_balance_hosts", "PGLOADBALANCEHOSTS").as_deref() {
        None | Some("disable") => false,
        Some("random") => true,
        Some(_) => return Err(param("load_balance_hosts: use disable or random")),
    };
    Ok(Resolved {
        base,
        targets,
        tls: tls_params(&p)?,
        connect_timeout,
        random_order,
        notes,
    })
}

/// TCP keepalives: on unless `keepalives=0`; idle time, interval and count from the
/// string, else tsmigrate's defaults. `tcp_user_timeout` in milliseconds, as libpq.
fn keepalives(p: &Params, c: &mut Config) -> Result<(), ResolveError> {
    let on = match p.given("keepalives") {
        Some(v) => int(v, "keepalives (0 or 1)")? != 0,
        None => true,
    };
    c.keepalives(on);
    let idle = match p.given("keepalives_idle") {
        Some(v) => secs(v, "keepalives_idle (seconds)")?,
        None => None,
    };
    c.keepalives_idle(idle.unwrap_or(DEFAULT_KEEPALIVES_IDLE));
    let interval = match p.given("keepalives_interval") {
        Some(v) => secs(v, "keepalives_interval (seconds)")?,
        None => None,
    };
    c.keepalives_interval(interval.unwrap_or(DEFAULT_KEEPALIVES_INTERVAL));
    let count = match p.given("keepalives_count") {
        Some(v) => u32::try_from(int(v, "keepalives_count")?)
            .ok()
            .filter(|n| *n > 0),
        None => None,
    };
    c.keepalives_retries(count.unwrap_or(DEFAULT_KEEPALIVES_COUNT));
    if let Some(v) = p.given("tcp_user_timeout") {
        let ms = int(v, "tcp_user_timeout (milliseconds)")?;
        if ms > 0 {
            c.tcp_user_timeout(Duration::from_millis(ms as u64));
        }
    }
    Ok(())
}

/// The session parameters tokio-postgres implements (`target_session_attrs`,
/// `channel_binding`, `sslnegotiation`), and the libpq ones that change nothing here but are
/// accepted at the values that mean what tsmigrate does anyway.
fn session_options(p: &Params, c: &mut Config) -> Result<(), ResolveError> {
    match p
        .get("target_session_attrs", "PGTARGETSESSIONATTRS")
        .as_deref()
    {
        None | Some("any") => {}
        Some("read-write") => {
            c.target_session_attrs(TargetSessionAttrs::ReadWrite);
        }
        Some("read-only") => {
            c.target_session_attrs(TargetSessionAttrs::ReadOnly);
        }
        Some(_) => {
            return Err(param(
                "target_session_attrs: tsmigrate supports any, read-write and read-only",
            ))
        }
    }
    match p.get("channel_binding", "PGCHANNELBINDING").as_deref() {
        None | Some("prefer") => {}
        Some("disable") => {
            c.channel_binding(ChannelBinding::Disable);
        }
        Some("require") => {
            c.channel_binding(ChannelBinding::Require);
        }
        Some(_) => return Err(param("channel_binding: use disable, prefer or require")),
    }
    match p.get("sslnegotiation", "PGSSLNEGOTIATION").as_deref() {
        None | Some("postgres") => {}
        Some("direct") => {
            c.ssl_negotiation(SslNegotiation::Direct);
        }
        Some(_) => return Err(param("sslnegotiation: use postgres or direct")),
    }
    let accepted: [(&str, &str, &[&str], &str); 4] = [
        (
            "client_encoding",
            "PGCLIENTENCODING",
            &["UTF8", "utf8", "UTF-8", "utf-8", "auto"],
            "tsmigrate always talks UTF8",
        ),
        (
            "gssencmode",
            "PGGSSENCMODE",
            &["disable", "allow", "prefer"],
            "tsmigrate does not do GSSAPI encryption",
        ),
        (
            "sslcompression",
            "PGSSLCOMPRESSION",
            &["0", "1"],
            "use 0 or 1",
        ),
        (
            "sslsni",
            "PGSSLSNI",
            &["1"],
            "tsmigrate always sends the host name (SNI)",
        ),
    ];
    for (key, var, ok, why) in accepted {
        if p.get(key, var).is_some_and(|v| !ok.contains(&v.as_str())) {
            return Err(param(format!("{key}: {}: {why}", ok.join(", "))));
        }
    }
    Ok(())
}

/// The hosts to try: `host` (string, else `PGHOST`, else the local socket directory),
/// `hostaddr`, and `port` (one for all hosts, or one each; empty entries are 5432).
fn targets(p: &Params) -> Result<Vec<Target>, ResolveError> {
    let split = |v: Option<String>| -> Vec<String> {
        v.map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let addrs: Vec<IpAddr> = split(p.get("hostaddr", "PGHOSTADDR"))
        .iter()
        .map(|a| {
            IpAddr::from_str(a.trim()).map_err(|_| param("hostaddr must be numeric IP addresses"))
        })
        .collect::<Result<_, _>>()?;
    let mut hosts = split(p.get("host", "PGHOST"));
    if hosts.is_empty() {
        hosts = match addrs.is_empty() {
            true => vec![String::new()],
            false => addrs.iter().map(IpAddr::to_string).collect(),
        };
    }
    if !addrs.is_empty() && addrs.len() != hosts.len() {
        return Err(param(format!(
            "{} host(s) but {} hostaddr(s): give one hostaddr per host",
            hosts.len(),
            addrs.len()
        )));
    }
    let ports = split(p.get("port", "PGPORT"))
        .iter()
        .map(|t| match t.trim() {
            "" => Ok(5432),
            t => t
                .parse::<u16>()
                .map_err(|_| param("port must be a port number (1-65535)")),
        })
        .collect::<Result<Vec<u16>, _>>()?;
    if ports.len() > 1 && ports.len() != hosts.len() {
        return Err(param(format!(
            "{} host(s) but {} ports: give one port for all hosts, or one per host",
            hosts.len(),
            ports.len()
        )));
    }
    Ok(hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Target {
            host: host_of(h),
            hostaddr: addrs.get(i).copied(),
            port: ports.get(i).or(ports.first()).copied().unwrap_or(5432),
            password: None,
            password_from: None,
        })
        .collect())
}

/// A host name, or a Unix-socket directory when it starts with `/` (or is empty: the
/// default directory).
fn host_of(h: &str) -> Host {
    #[cfg(unix)]
    {
        if h.is_empty() {
            return Host::Unix(PathBuf::from(default_socket_dir()));
        }
        if h.starts_with('/') {
            return Host::Unix(PathBuf::from(h));
        }
    }
    Host::Tcp(h.to_string())
}

/// The password of each host: the string's, else `PGPASSWORD`, else the host's line of the
/// password file (`passfile`, `PGPASSFILE`, `~/.pgpass`).
fn passwords(p: &Params, targets: &mut [Target], db: &str, user: &str, notes: &mut Vec<String>) {
    let (given, from) = match (p.given("password"), p.env.var("PGPASSWORD")) {
        (Some(pw), _) => (Some(pw.to_string()), "the connection string"),
        (None, Some(pw)) => (Some(pw), "PGPASSWORD"),
        (None, None) => (None, ""),
    };
    if let Some(pw) = given {
        for t in targets.iter_mut() {
            t.password = Some(pw.clone());
            t.password_from = Some(from.into());
        }
        return;
    }
    let file = p
        .get("passfile", "PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| p.env.var("HOME").map(|h| Path::new(&h).join(".pgpass")));
    let Some(file) = file else {
        return;
    };
    for t in targets.iter_mut() {
        match password_from_file(&file, t, db, user) {
            Ok(Some(pw)) => {
                t.password = Some(pw);
                t.password_from = Some(file.display().to_string());
            }
            Ok(None) => {}
            Err(note) => {
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
    }
}

/// `sslmode` (string, else `PGSSLMODE`, else `prefer`) and the certificate files.
fn tls_params(p: &Params) -> Result<TlsParams, ResolveError> {
    let mode = match p.get("sslmode", "PGSSLMODE") {
        None => SslMode::Prefer,
        Some(m) => SslMode::parse(&m).ok_or_else(|| {
            param("sslmode: use disable, allow, prefer, require, verify-ca or verify-full")
        })?,
    };
    let path = |k: &str, var: &str| p.get(k, var).map(PathBuf::from);
    Ok(TlsParams {
        mode,
        root_cert: path("sslrootcert", "PGSSLROOTCERT"),
        cert: path("sslcert", "PGSSLCERT"),
        key: path("sslkey", "PGSSLKEY"),
    })
}

/// libpq's default Unix socket directory: Debian's `/var/run/postgresql`, else `/tmp`.
fn default_socket_dir() -> &'static str {
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql"
    } else {
        "/tmp"
    }
}

/// The password for `target` from a libpq password file: lines
/// `host:port:database:user:password`, `*` matching anything, `\:` and `\\` escaped; a
/// Unix-socket host matches `localhost`. A file others may read is ignored, as libpq does
/// (`Err` says so).
fn password_from_file(
    file: &Path,
    target: &Target,
    db: &str,
    user: &str,
) -> Result<Option<String>, String> {
    let Ok(meta) = std::fs::metadata(file) else {
        return Ok(None);
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "the password file {} was ignored: group or others may read it (chmod 0600 {})",
                file.display(),
                file.display()
            ));
        }
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "the password file {} could not be read: {e}",
            file.display()
        )
    })?;
    let host = match &target.host {
        Host::Tcp(h) => h.as_str(),
        #[cfg(unix)]
        Host::Unix(_) => "localhost",
    };
    let port = target.port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let hit = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if hit(&fields[0], host)
            && hit(&fields[1], &port)
            && hit(&fields[2], db)
            && hit(&fields[3], user)
        {
            return Ok(Some(fields[4..].join(":")));
        }
    }
    Ok(None)
}

/// The `:`-separated fields of a password file line, with `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> MapEnv {
        MapEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    fn ok(conn: &str, e: &MapEnv) -> Resolved {
        resolve(conn, e).unwrap_or_else(|e| panic!("{}", e.message("url")))
    }

    fn refused(conn: &str) -> String {
        match resolve(conn, &env(&[])) {
            Ok(_) => panic!("resolved where it must be refused"),
            Err(e) => e.message("target.url"),
        }
    }

    fn password(r: &Resolved, i: usize) -> Option<&str> {
        r.targets[i].password.as_deref()
    }

    #[test]
    fn tls_parameters_come_from_urls_and_keyword_strings() {
        let r = ok(
            "postgres://u:p%40ss@db.example.com:6432/tb?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
            &env(&[]),
        );
        assert_eq!(r.tls.mode, SslMode::VerifyFull);
        assert_eq!(r.tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(password(&r, 0), Some("p@ss"));
        assert_eq!(r.base.get_application_name(), Some("x"));
        assert_eq!(
            r.targets[0].password_from.as_deref(),
            Some("the connection string")
        );
        assert_eq!(r.targets[0].label(), "db.example.com:6432");
        let k = ok(
            "host=h dbname='my db' sslmode = require sslcert='/c d.pem' password='it\\'s'",
            &env(&[]),
        );
        assert_eq!(k.tls.mode, SslMode::Require);
        assert_eq!(k.tls.cert, Some(PathBuf::from("/c d.pem")));
        assert_eq!(k.base.get_dbname(), Some("my db"));
        assert_eq!(password(&k, 0), Some("it's"));
    }

    #[test]
    fn the_driver_config_is_built_from_the_parsed_parameters() {
        let r = ok(
            "postgresql://u@h1:5433,[::1],%2Ftmp%2Fsock:5435/db?target_session_attrs=read-write&options=-c%20x%3D1",
            &env(&[]),
        );
        let labels: Vec<String> = r.targets.iter().map(Target::label).collect();
        assert_eq!(labels, ["h1:5433", "[::1]:5432", "/tmp/sock (port 5435)"]);
        assert!(r.targets[2].is_local_socket());
        let c = r.targets[0].config(&r.base);
        assert_eq!(c.get_hosts(), &[Host::Tcp("h1".into())]);
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_dbname(), Some("db"));
        assert_eq!(c.get_options(), Some("-c x=1"));
        assert_eq!(c.get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
        // One port for every host; hostaddr beside host names.
        let r = ok("host=a,b port=6000 hostaddr=10.0.0.1,10.0.0.2", &env(&[]));
        assert_eq!(r.targets[1].port, 6000);
        assert_eq!(r.targets[1].hostaddr, "10.0.0.2".parse().ok());
        // A Unix socket as ?host=, the libpq way.
        let r = ok("postgresql:///db?host=/var/run/pg&port=5434", &env(&[]));
        assert!(r.targets[0].is_local_socket());
        assert_eq!(r.targets[0].port, 5434);
    }

    #[test]
    fn timeouts_and_keepalives_have_defaults_and_follow_libpq() {
        let r = ok("host=h", &env(&[]));
        assert_eq!(r.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
        assert!(r.base.get_keepalives());
        assert_eq!(r.base.get_keepalives_idle(), DEFAULT_KEEPALIVES_IDLE);
        assert_eq!(
            r.base.get_keepalives_interval(),
            Some(DEFAULT_KEEPALIVES_INTERVAL)
        );
        assert_eq!(
            r.base.get_keepalives_retries(),
            Some(DEFAULT_KEEPALIVES_COUNT)
        );
        let r = ok(
            "host=h connect_timeout=5 keepalives_idle=7 keepalives_interval=3 keepalives_count=2 tcp_user_timeout=1500",
            &env(&[("PGCONNECT_TIMEOUT", "9")]),
        );
        assert_eq!(r.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(r.base.get_keepalives_idle(), Duration::from_secs(7));
        assert_eq!(
            r.base.get_keepalives_interval(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(r.base.get_keepalives_retries(), Some(2));
        assert_eq!(
            r.base.get_tcp_user_timeout(),
            Some(&Duration::from_millis(1500))
        );
        // The environment when the string is silent; 1 s is 2 s and 0 waits for ever (libpq).
        let e = env(&[("PGCONNECT_TIMEOUT", "9")]);
        assert_eq!(
            ok("host=h", &e).connect_timeout,
            Some(Duration::from_secs(9))
        );
        assert_eq!(
            ok("host=h connect_timeout=1", &e).connect_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(ok("host=h connect_timeout=0", &e).connect_timeout, None);
        assert!(!ok("host=h keepalives=0", &e).base.get_keepalives());
    }

    #[test]
    fn unusable_parameters_are_refused_naming_the_parameter_not_the_value() {
        for (conn, what) in [
            ("host=h service=x", "`service` is not supported"),
            ("host=h sslmode=sometimes", "sslmode: use"),
            ("host=h port=5x432", "port must be a port number"),
            (
                "host=h connect_timeout=soon",
                "connect_timeout (seconds) must be a whole number",
            ),
            ("host=a,b,c port=1,2", "3 host(s) but 2 ports"),
            (
                "host=h target_session_attrs=standby",
                "target_session_attrs",
            ),
            ("host=h client_encoding=LATIN1", "always talks UTF8"),
            (
                "postgres:/u:pw@h/db",
                "target.url is not a connection string: expected postgres://",
            ),
        ] {
            let m = refused(conn);
            assert!(m.contains(what), "{conn}: {m}");
            for value in ["sometimes", "5x432", "soon", "standby", "LATIN1", "pw@"] {
                assert!(!m.contains(value), "{conn}: the value is echoed: {m}");
            }
        }
    }

    #[test]
    fn the_environment_fills_what_the_string_leaves_out() {
        let r = ok(
            "postgres://",
            &env(&[
                ("PGHOST", "tb-host"),
                ("PGPORT", "6543"),
                ("PGUSER", "tb"),
                ("PGPASSWORD", "secret"),
                ("PGDATABASE", "thingsboard"),
                ("PGSSLMODE", "verify-ca"),
                ("PGSSLROOTCERT", "/ca.pem"),
            ]),
        );
        assert_eq!(r.targets[0].host, Host::Tcp("tb-host".into()));
        assert_eq!(r.targets[0].port, 6543);
        assert_eq!(r.base.get_user(), Some("tb"));
        assert_eq!(r.base.get_dbname(), Some("thingsboard"));
        assert_eq!(r.targets[0].password_from.as_deref(), Some("PGPASSWORD"));
        assert_eq!(r.tls.mode, SslMode::VerifyCa);
        assert_eq!(r.base.get_application_name(), Some("tsmigrate"));
        // The string wins over the environment.
        let r = ok(
            "postgres://other@h2/db2?sslmode=disable",
            &env(&[("PGUSER", "tb"), ("PGSSLMODE", "require")]),
        );
        assert_eq!(r.base.get_user(), Some("other"));
        assert_eq!(r.tls.mode, SslMode::Disable);
        // libpq's default mode; with no host, the local socket.
        let r = ok("dbname=x", &env(&[]));
        assert_eq!(r.tls.mode, SslMode::Prefer);
        assert!(r.targets[0].is_local_socket());
    }

    #[test]
    fn the_password_file_is_matched_field_by_field_per_host_and_must_be_private() {
        let dir = std::env::temp_dir().join(format!("tsm-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:tb:other-pass\ntb-host:5432:thingsboard:tb:pa\\:ss:word\n*:*:*:*:fallback\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let f = file.to_string_lossy().to_string();
        let r = ok(
            "postgres://tb@tb-host,other/thingsboard",
            &env(&[("PGPASSFILE", &f)]),
        );
        assert_eq!(password(&r, 0), Some("pa:ss:word"));
        assert_eq!(r.targets[0].password_from.as_deref(), Some(f.as_str()));
        // Each host its own line, as libpq; the first line that matches wins.
        assert_eq!(password(&r, 1), Some("other-pass"));
        let r = ok("postgres://x@elsewhere/db", &env(&[("PGPASSFILE", &f)]));
        assert_eq!(password(&r, 0), Some("fallback"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
                .unwrap_or_else(|e| panic!("{e}"));
            let r = ok(
                "postgres://tb@tb-host/thingsboard",
                &env(&[("PGPASSFILE", &f)]),
            );
            assert_eq!(password(&r, 0), None);
            assert!(r.notes[0].contains("chmod 0600"), "{:?}", r.notes);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
