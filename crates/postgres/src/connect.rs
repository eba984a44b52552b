//! Connections: parse the connection string, connect, and turn driver errors into
//! [`tsmigrate_core::Error`]s that name the end and never contain the password.

use std::str::FromStr;

use tokio_postgres::config::{Host, SslMode as DriverSslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use tsmigrate_core::{ConnString, End, Endpoint, Error, Result};

use crate::conninfo::{resolve, ProcessEnv, Resolved, SslMode};

/// Opens a connection to `url` for `end`, running the connection task on the current runtime.
/// Parameters are resolved as libpq does ([`crate::conninfo`]: the string, then the `PG*`
/// environment, then `~/.pgpass`), TLS follows `sslmode` ([`crate::tls`]), and
/// `application_name` defaults to `tsmigrate` so DBAs can see the session in
/// `pg_stat_activity`.
pub async fn connect(url: &ConnString, end: End) -> Result<Client> {
    let fail = |message: String, transient: bool| Error::Connect {
        end,
        what: url.redacted(),
        message,
        transient,
    };
    let resolved = resolve(url.expose(), &ProcessEnv).map_err(|e| {
        fail(
            format!("invalid connection string: {}", scrub(&e, url)),
            false,
        )
    })?;
    let Resolved {
        mut config,
        tls,
        password_from,
        notes,
    } = resolved;
    let password = config.get_password().map(<[u8]>::to_vec);
    let timeout_secs = config
        .get_connect_timeout()
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let explain = |e: &tokio_postgres::Error| {
        let mut m = describe(e, url);
        // A TLS refusal (certificate, host name, TLS not offered) does not heal by retrying.
        let tls_hint = crate::tls::hint(&m, &tls, &host);
        let transient = is_transient(e) && tls_hint.is_none();
        if let Some(h) = tls_hint {
            m.push_str(" — ");
            m.push_str(&h);
        } else if m.contains("timed out") || m.contains("timeout") {
            m.push_str(&format!(
                " — no answer from `{host}` within connect_timeout ({} s): check the host, port and firewall, or raise connect_timeout",
                timeout_secs
            ));
        } else if m.contains("Connection refused") {
            m.push_str(&format!(
                " — nothing listens at `{host}` on that port: check the host and port, and that the server accepts TCP connections"
            ));
        }
        if e.code() == Some(&SqlState::INVALID_PASSWORD) {
            match &password_from {
                Some(from) => m.push_str(&format!(" (the password came from {from})")),
                None => m.push_str(
                    " (no password was given: set one in the URL, PGPASSWORD or ~/.pgpass)",
                ),
            }
        }
        for n in &notes {
            m.push_str("; ");
            m.push_str(n);
        }
        let m = match &password {
            Some(pw) => scrub_bytes(&m, pw),
            None => m,
        };
        fail(m, transient)
    };
    // libpq ignores sslmode on Unix-domain sockets: the connection never leaves the machine.
    #[cfg(unix)]
    let local = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, Host::Unix(_)));
    #[cfg(not(unix))]
    let local = false;
    // The connection task runs on the runtime; its errors surface on the client's next call.
    if tls.mode == SslMode::Disable || local {
        config.ssl_mode(DriverSslMode::Disable);
        let (client, connection) = config.connect(NoTls).await.map_err(|e| explain(&e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        return Ok(client);
    }
    config.ssl_mode(if tls.mode == SslMode::Prefer {
        DriverSslMode::Prefer
    } else {
        DriverSslMode::Require
    });
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let rustls = crate::tls::client_config(&tls, home.as_deref()).map_err(|m| fail(m, false))?;
    let (client, connection) = config
        .connect(MakeRustlsConnect::new(rustls))
        .await
        .map_err(|e| explain(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Removes `password` from `text`.
fn scrub_bytes(text: &str, password: &[u8]) -> String {
    match std::str::from_utf8(password) {
        Ok(p) if p.len() >= 3 => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

/// The connection string of a PostgreSQL `[source]` or `[target]` endpoint (`end` says which),
/// refusing any option but `url` and `allowed`.
pub(crate) fn endpoint_url(endpoint: &Endpoint, end: End, allowed: &[&str]) -> Result<ConnString> {
    let section = match end {
        End::Source => "source",
        End::Target => "target",
    };
    let url = endpoint.url.clone().ok_or_else(|| {
        Error::Plan(format!(
            "[{section}] kind = {:?} needs url = \"postgres://user@host/db\"",
            endpoint.kind
        ))
    })?;
    if let Some(k) = endpoint
        .options
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))
    {
        let known: Vec<&str> = std::iter::once("url")
            .chain(allowed.iter().copied())
            .collect();
        return Err(Error::Plan(format!(
            "[{section}] kind = {:?} has no option `{k}`; its options are: {}",
            endpoint.kind,
            known.join(", ")
        )));
    }
    Ok(url)
}

/// Converts a driver error raised while doing `context` at `end`.
pub fn store_error(
    end: End,
    context: impl Into<String>,
    e: &tokio_postgres::Error,
    url: &ConnString,
) -> Error {
    Error::Store {
        end,
        context: context.into(),
        message: describe(e, url),
        transient: is_transient(e),
    }
}

/// A one-paragraph description of a driver error: the server's message with its detail,
/// hint and context (COPY line numbers), or the I/O cause.
pub fn describe(e: &tokio_postgres::Error, url: &ConnString) -> String {
    let text = match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; detail: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            if let Some(w) = db.where_() {
                s.push_str(&format!("; where: {w}"));
            }
            if db.code() == &SqlState::INVALID_PASSWORD
                || db.code() == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                s.push_str(" — check the user and password in the connection string");
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(cause) = src {
                let c = cause.to_string();
                if !s.contains(&c) {
                    s.push_str(": ");
                    s.push_str(&c);
                }
                src = cause.source();
            }
            s
        }
    };
    scrub(&text, url)
}

/// Removes the password, should a driver ever echo it.
fn scrub(text: &str, url: &ConnString) -> String {
    match Config::from_str(url.expose())
        .ok()
        .and_then(|c| c.get_password().map(<[u8]>::to_vec))
    {
        Some(pw) if pw.len() >= 3 => match std::str::from_utf8(&pw) {
            Ok(p) => text.replace(p, "***"),
            Err(_) => text.to_string(),
        },
        _ => text.to_string(),
    }
}

/// True for errors that a retry may cure: lost connections, shutdowns, serialization failures.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || (c.starts_with("57P") && c != "57P04") // not "database dropped"
                || c == SqlState::T_R_SERIALIZATION_FAILURE.code()
                || c == SqlState::T_R_DEADLOCK_DETECTED.code()
                || c == SqlState::TOO_MANY_CONNECTIONS.code()
        }
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

/// Quotes an identifier for SQL (`my"table` → `"my""table"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a possibly schema-qualified table name: `public.t` → `"public"."t"`; a name that is
/// already quoted is kept as written.
pub fn quote_table(name: &str) -> String {
    split_table(name)
        .into_iter()
        .map(|p| quote_ident(&p))
        .collect::<Vec<_>>()
        .join(".")
}

/// Splits `schema.table` (honouring double quotes) into its parts, unquoted.
pub fn split_table(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// Quotes a string literal for SQL. A string holding a backslash is written as an escape
/// string (`E'…'`, backslashes doubled), so it means the same whatever the server's
/// `standard_conforming_strings`.
pub fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// An `int8` literal for SQL. Written as a quoted constant with a cast, because a bare
/// `-9223372036854775808::int8` is parsed as `-(9223372036854775808::int8)`, which overflows.
pub fn int8_literal(v: i64) -> String {
    format!("'{v}'::int8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_table("public.telemetry"), "\"public\".\"telemetry\"");
        assert_eq!(quote_table("\"My.Schema\".t"), "\"My.Schema\".\"t\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b'c"), r"E'a\\b''c'");
        assert_eq!(int8_literal(i64::MIN), "'-9223372036854775808'::int8");
        assert_eq!(int8_literal(42), "'42'::int8");
    }
}
