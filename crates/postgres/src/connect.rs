//! Connections: parse the connection string, connect, and turn driver errors into
//! [`tsmigrate_core::Error`]s that name the end and never contain the password.

use std::str::FromStr;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use tsmigrate_core::{ConnString, End, Endpoint, Error, Result};

/// Opens a connection to `url` for `end`, running the connection task on the current runtime.
/// `application_name` is set to `tsmigrate` so DBAs can see the session in `pg_stat_activity`.
pub async fn connect(url: &ConnString, end: End) -> Result<Client> {
    let mut config = Config::from_str(url.expose()).map_err(|e| Error::Connect {
        end,
        what: url.redacted(),
        message: format!("invalid connection string: {}", scrub(&e.to_string(), url)),
        transient: false,
    })?;
    if config.get_application_name().is_none() {
        config.application_name("tsmigrate");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(30));
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| Error::Connect {
        end,
        what: url.redacted(),
        message: describe(&e, url),
        transient: is_transient(&e),
    })?;
    tokio::spawn(async move {
        // Errors surface on the client's next call; nothing to do with them here.
        let _ = connection.await;
    });
    Ok(client)
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

/// Quotes a string literal for SQL.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
    }
}
