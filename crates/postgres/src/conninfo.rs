//! Connection parameters the way libpq (and so `psql`) resolves them: the connection string
//! (URL or `key=value`), then the `PG*` environment variables for what it leaves out, then
//! libpq's defaults (the local Unix socket, port 5432, the OS user), and the password from
//! the password file (`~/.pgpass` or `PGPASSFILE`) when none was given.
//!
//! tokio-postgres parses the connection string; the TLS parameters it does not know
//! (`sslmode` beyond `require`, `sslrootcert`, `sslcert`, `sslkey`) and `passfile` are taken
//! out first and handled here and in [`crate::tls`].

use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

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

/// A connection string resolved for connecting.
pub struct Resolved {
    /// The driver's configuration (hosts, user, password, database, options, …).
    pub config: Config,
    /// TLS parameters.
    pub tls: TlsParams,
    /// Where the password came from, for messages (`the connection string`, `PGPASSWORD`,
    /// `~/.pgpass`); `None` when there is none.
    pub password_from: Option<String>,
    /// Facts worth adding to a failure message (an ignored password file, …).
    pub notes: Vec<String>,
}

/// Parameters taken out of the connection string before tokio-postgres parses it.
const OURS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "passfile"];

/// Splits a connection string into the part tokio-postgres parses and our parameters.
fn split_ours(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let t = s.trim();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        let Some((base, query)) = t.split_once('?') else {
            return Ok((t.to_string(), Vec::new()));
        };
        let mut kept = Vec::new();
        let mut ours = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k)?;
            if OURS.contains(&key.as_str()) {
                ours.push((key, percent_decode(v)?));
            } else {
                kept.push(pair);
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rebuilt, ours))
    } else {
        let mut kept = Vec::new();
        let mut ours = Vec::new();
        for (k, v) in keyword_pairs(t)? {
            if OURS.contains(&k.as_str()) {
                ours.push((k, v));
            } else {
                kept.push(format!(
                    "{k}='{}'",
                    v.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        Ok((kept.join(" "), ours))
    }
}

/// `%xx` decoding of a URL component.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a `%` in the URL is not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL decodes to invalid UTF-8".to_string())
}

/// The `key = value` pairs of a libpq keyword string (values optionally single-quoted, with
/// `\'` and `\\` escapes).
fn keyword_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("`{key}` in the connection string has no `=` value"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("the quoted value of `{key}` is not closed")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
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
pub fn resolve(conn: &str, env: &dyn Env) -> Result<Resolved, String> {
    let (rest, ours) = split_ours(conn)?;
    let rest = if rest.trim() == "postgres://" || rest.trim() == "postgresql://" {
        String::new()
    } else {
        rest
    };
    let mut config = Config::from_str(&rest).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let ours_get = |k: &str| {
        ours.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };

    // The environment fills what the string leaves out.
    if config.get_hosts().is_empty() {
        match env.var("PGHOST") {
            Some(h) => {
                for host in h.split(',') {
                    config.host(host);
                }
            }
            None => {
                config.host(default_socket_dir());
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(p) = env.var("PGPORT") {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("PGPORT={p:?} is not a port number"))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env
            .var("PGUSER")
            .or_else(|| env.var("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env.var("PGDATABASE") {
            config.dbname(&db);
        }
    }
    if config.get_options().is_none() {
        if let Some(o) = env.var("PGOPTIONS") {
            config.options(&o);
        }
    }
    if config.get_application_name().is_none() {
        config.application_name(env.var("PGAPPNAME").unwrap_or_else(|| "tsmigrate".into()));
    }
    if config.get_connect_timeout().is_none() {
        let secs = match env.var("PGCONNECT_TIMEOUT") {
            Some(t) => t
                .parse::<u64>()
                .map_err(|_| format!("PGCONNECT_TIMEOUT={t:?} is not a number of seconds"))?,
            None => 30,
        };
        config.connect_timeout(std::time::Duration::from_secs(secs.max(2)));
    }
    let mut password_from = config
        .get_password()
        .map(|_| "the connection string".to_string());
    if password_from.is_none() {
        if let Some(pw) = env.var("PGPASSWORD") {
            config.password(pw);
            password_from = Some("PGPASSWORD".into());
        }
    }
    if password_from.is_none() {
        let file = ours_get("passfile")
            .or_else(|| env.var("PGPASSFILE"))
            .map(PathBuf::from)
            .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".pgpass")));
        if let Some(file) = file {
            match password_from_file(&file, &config) {
                Ok(Some(pw)) => {
                    config.password(pw);
                    password_from = Some(file.display().to_string());
                }
                Ok(None) => {}
                Err(note) => notes.push(note),
            }
        }
    }
    let mode_text = ours_get("sslmode").or_else(|| env.var("PGSSLMODE"));
    let mode = match &mode_text {
        None => SslMode::Prefer,
        Some(m) => SslMode::parse(m).ok_or_else(|| {
            format!("sslmode={m:?}: use disable, allow, prefer, require, verify-ca or verify-full")
        })?,
    };
    let path = |k: &str, var: &str| ours_get(k).or_else(|| env.var(var)).map(PathBuf::from);
    let tls = TlsParams {
        mode,
        root_cert: path("sslrootcert", "PGSSLROOTCERT"),
        cert: path("sslcert", "PGSSLCERT"),
        key: path("sslkey", "PGSSLKEY"),
    };
    Ok(Resolved {
        config,
        tls,
        password_from,
        notes,
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

/// The password for the connection's first host from a libpq password file: lines
/// `host:port:database:user:password`, `*` matching anything, `\:` and `\\` escaped; a
/// Unix-socket host matches `localhost`. A file others may read is ignored, as libpq does
/// (`Err` says so).
fn password_from_file(file: &Path, config: &Config) -> Result<Option<String>, String> {
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
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(_)) => "localhost".into(),
        None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("").to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let hit = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if hit(&fields[0], &host)
            && hit(&fields[1], &port)
            && hit(&fields[2], &db)
            && hit(&fields[3], &user)
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

    #[test]
    fn tls_parameters_are_taken_out_of_urls_and_keyword_strings() {
        let r = resolve(
            "postgres://u:p%40ss@db.example.com:6432/tb?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
            &env(&[]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tls.mode, SslMode::VerifyFull);
        assert_eq!(r.tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(r.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(r.config.get_application_name(), Some("x"));
        assert_eq!(r.password_from.as_deref(), Some("the connection string"));
        let k = resolve(
            "host=h dbname='my db' sslmode = require sslcert='/c d.pem' password='it\\'s'",
            &env(&[]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.tls.mode, SslMode::Require);
        assert_eq!(k.tls.cert, Some(PathBuf::from("/c d.pem")));
        assert_eq!(k.config.get_dbname(), Some("my db"));
        assert_eq!(k.config.get_password(), Some(&b"it's"[..]));
        assert!(resolve("postgres://h/db?sslmode=sometimes", &env(&[])).is_err());
    }

    #[test]
    fn the_environment_fills_what_the_string_leaves_out() {
        let r = resolve(
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
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.config.get_hosts(), &[Host::Tcp("tb-host".into())]);
        assert_eq!(r.config.get_ports(), &[6543]);
        assert_eq!(r.config.get_user(), Some("tb"));
        assert_eq!(r.config.get_dbname(), Some("thingsboard"));
        assert_eq!(r.password_from.as_deref(), Some("PGPASSWORD"));
        assert_eq!(r.tls.mode, SslMode::VerifyCa);
        assert_eq!(r.config.get_application_name(), Some("tsmigrate"));
        // The string wins over the environment.
        let r = resolve(
            "postgres://other@h2/db2?sslmode=disable",
            &env(&[("PGUSER", "tb"), ("PGSSLMODE", "require")]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.config.get_user(), Some("other"));
        assert_eq!(r.tls.mode, SslMode::Disable);
        // libpq's default mode.
        let r = resolve("postgres://h/db", &env(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tls.mode, SslMode::Prefer);
    }

    #[test]
    fn the_password_file_is_matched_field_by_field_and_must_be_private() {
        let dir = std::env::temp_dir().join(format!("tsm-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:tb:wrong\ntb-host:5432:thingsboard:tb:pa\\:ss:word\n*:*:*:*:fallback\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let f = file.to_string_lossy().to_string();
        let r = resolve(
            "postgres://tb@tb-host/thingsboard",
            &env(&[("PGPASSFILE", &f)]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.config.get_password(), Some(&b"pa:ss:word"[..]));
        assert_eq!(r.password_from.as_deref(), Some(f.as_str()));
        let r = resolve("postgres://x@elsewhere/db", &env(&[("PGPASSFILE", &f)]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.config.get_password(), Some(&b"fallback"[..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
                .unwrap_or_else(|e| panic!("{e}"));
            let r = resolve(
                "postgres://tb@tb-host/thingsboard",
                &env(&[("PGPASSFILE", &f)]),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.config.get_password(), None);
            assert!(r.notes[0].contains("chmod 0600"), "{:?}", r.notes);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
