//! Connections: resolve the connection string ([`crate::conninfo`]), connect within
//! `connect_timeout` with TCP keepalives, and turn driver errors into
//! [`tsmigrate_core::Error`]s that name the end and never contain the password. Also the
//! quoting of identifiers and literals, and reading the table names a plan gives.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode as DriverSslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use tsmigrate_core::{ConnString, End, Endpoint, Error, Result};

use crate::conninfo::{resolve, Env, ProcessEnv, Resolved, SslMode, Target};

/// Opens a connection to `url` for `end`, running the connection task on the current runtime.
/// Parameters are resolved as libpq does ([`crate::conninfo`]: the string, then the `PG*`
/// environment, then `~/.pgpass`), TLS follows `sslmode` ([`crate::tls`]), and
/// `application_name` defaults to `tsmigrate` so DBAs can see the session in
/// `pg_stat_activity`. The hosts are tried in turn (in a random order with
/// `load_balance_hosts=random`); each must finish its whole start — TCP connect, TLS
/// handshake, login, session settings — within `connect_timeout`. Target sessions get
/// `idle_in_transaction_session_timeout` (see [`crate::stall`]).
pub async fn connect(url: &ConnString, end: End) -> Result<Client> {
    let resolved = resolve(url.expose(), &ProcessEnv)
        .map_err(|e| Error::Plan(e.message(&format!("{end}.url"))))?;
    let fail = |message: String, transient: bool| Error::Connect {
        end,
        what: url.redacted(),
        message,
        transient,
    };
    let all_local = resolved.targets.iter().all(Target::is_local_socket);
    let rustls = if resolved.tls.mode == SslMode::Disable || all_local {
        None
    } else {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        Some(
            crate::tls::client_config(&resolved.tls, home.as_deref())
                .map_err(|m| fail(m, false))?,
        )
    };
    let mut failures = Vec::new();
    for i in host_order(resolved.targets.len(), resolved.random_order) {
        let target = &resolved.targets[i];
        match start(&resolved, target, rustls.as_ref(), end).await {
            Ok(client) => return Ok(client),
            Err(Failure::Driver(e)) => failures.push(explain(&e, url, &resolved, target)),
            Err(Failure::Timeout(limit)) => failures.push(timed_out(target, limit)),
        }
    }
    let transient = failures.iter().all(|f| f.transient);
    let message = match failures.as_slice() {
        [one] => one.message.clone(),
        many => many
            .iter()
            .map(|f| format!("`{}`: {}", f.host, f.message))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Err(fail(message, transient))
}

/// Why one host could not be connected to.
enum Failure {
    /// The driver or the server said why.
    Driver(tokio_postgres::Error),
    /// The start did not finish within `connect_timeout`.
    Timeout(Duration),
}

/// One host's failure, explained.
struct HostFailure {
    host: String,
    message: String,
    transient: bool,
}

/// Connects to one host: TCP (or the Unix socket), TLS as `sslmode` says, login, and the
/// session settings of [`session_setup`], all within `connect_timeout`.
async fn start(
    r: &Resolved,
    target: &Target,
    rustls: Option<&rustls::ClientConfig>,
    end: End,
) -> std::result::Result<Client, Failure> {
    let mut config = target.config(&r.base);
    let started = async {
        // libpq ignores sslmode on Unix-domain sockets: the connection never leaves the
        // machine. The connection task runs on the runtime; its errors surface on the
        // client's next call.
        let client = match rustls {
            Some(tls) if !target.is_local_socket() => {
                config.ssl_mode(if r.tls.mode == SslMode::Prefer {
                    DriverSslMode::Prefer
                } else {
                    DriverSslMode::Require
                });
                let (client, connection) =
                    config.connect(MakeRustlsConnect::new(tls.clone())).await?;
                tokio::spawn(connection);
                client
            }
            _ => {
                config.ssl_mode(DriverSslMode::Disable);
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(connection);
                client
            }
        };
        session_setup(&client, end).await?;
        Ok(client)
    };
    match r.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, started)
            .await
            .map_err(|_| Failure::Timeout(limit))?
            .map_err(Failure::Driver),
        None => started.await.map_err(Failure::Driver),
    }
}

/// Session settings after login: on the target, `idle_in_transaction_session_timeout`
/// ([`crate::stall::idle_in_transaction_timeout`]) so the server ends a session of a client
/// that vanished inside a transaction, freeing its locks (a server before 9.6, without the
/// setting, is left as it is).
async fn session_setup(
    client: &Client,
    end: End,
) -> std::result::Result<(), tokio_postgres::Error> {
    let Some(idle) = crate::stall::idle_in_transaction_timeout().filter(|_| end == End::Target)
    else {
        return Ok(());
    };
    let sql = format!(
        "SET idle_in_transaction_session_timeout = {}",
        idle.as_millis()
    );
    match client.batch_execute(&sql).await {
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(()),
        other => other,
    }
}

/// The order the hosts are tried in: as written, or shuffled for `load_balance_hosts=random`.
fn host_order(n: usize, random: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if random {
        let mut seed = RandomState::new().build_hasher().finish() | 1;
        for i in (1..n).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
    }
    order
}

/// The failure of a host that did not finish its start within `connect_timeout`.
fn timed_out(target: &Target, limit: Duration) -> HostFailure {
    let host = target.label();
    HostFailure {
        message: format!(
            "no answer from `{host}` within connect_timeout ({} s): the TCP connection, TLS handshake and login did not finish in time; \
             check the host, port and firewall, and that a PostgreSQL server answers there, or raise connect_timeout",
            limit.as_secs()
        ),
        host,
        transient: true,
    }
}

/// One host's driver error as a message: the server's or driver's words, a hint for TLS
/// refusals, refused connections and passwords (saying where it came from), the notes of
/// resolving, and no password.
fn explain(
    e: &tokio_postgres::Error,
    url: &ConnString,
    r: &Resolved,
    target: &Target,
) -> HostFailure {
    let mut m = describe(e, url);
    let name = match &target.host {
        Host::Tcp(h) => h.clone(),
        #[cfg(unix)]
        Host::Unix(p) => p.display().to_string(),
    };
    // A TLS refusal (certificate, host name, TLS not offered) does not heal by retrying.
    let tls_hint = crate::tls::hint(&m, &r.tls, &name);
    let transient = is_transient(e) && tls_hint.is_none();
    if let Some(h) = tls_hint {
        m.push_str(" — ");
        m.push_str(&h);
    } else if m.contains("timed out") || m.contains("timeout") {
        m.push_str(&format!(
            " — no answer from `{}`: check the host, port and firewall",
            target.label()
        ));
    } else if m.contains("Connection refused") {
        m.push_str(&format!(
            " — nothing listens at `{name}` on port {}: check the host and port, and that the server accepts TCP connections",
            target.port
        ));
    }
    if e.code() == Some(&SqlState::INVALID_PASSWORD) {
        match &target.password_from {
            Some(from) => m.push_str(&format!(" (the password came from {from})")),
            None => {
                m.push_str(" (no password was given: set one in the URL, PGPASSWORD or ~/.pgpass)")
            }
        }
    }
    for n in &r.notes {
        m.push_str("; ");
        m.push_str(n);
    }
    if let Some(pw) = &target.password {
        m = scrub_secret(&m, pw);
    }
    HostFailure {
        host: target.label(),
        message: m,
        transient,
    }
}

/// Removes `secret` from `text` (not a secret of under 3 characters: that would mask
/// ordinary words).
fn scrub_secret(text: &str, secret: &str) -> String {
    if secret.len() >= 3 {
        text.replace(secret, "***")
    } else {
        text.to_string()
    }
}

/// The connection string of a PostgreSQL `[source]` or `[target]` endpoint (`end` says which),
/// refusing any option but `url` and `allowed`, and a string that cannot be used (it does not
/// parse, or sets a parameter tsmigrate does not support): a plan error, before anything
/// connects.
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
    check_url(&url, section)?;
    Ok(url)
}

/// Refuses, as a plan error naming `{section}.url` and never echoing the string, a
/// connection string that cannot be used (see [`crate::conninfo::resolve`]).
pub fn check_url(url: &ConnString, section: &str) -> Result<()> {
    resolve(url.expose(), &ProcessEnv)
        .map(drop)
        .map_err(|e| Error::Plan(e.message(&format!("{section}.url"))))
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

/// Removes the secrets of the connection string, and `PGPASSWORD`, should a driver ever
/// echo them.
fn scrub(text: &str, url: &ConnString) -> String {
    let mut secrets = url.parse().map(|c| c.secrets()).unwrap_or_default();
    secrets.extend(ProcessEnv.var("PGPASSWORD"));
    secrets
        .iter()
        .fold(text.to_string(), |t, s| scrub_secret(&t, s))
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

/// Quotes a possibly schema-qualified table name: `public.t` → `"public"."t"`; a part that
/// is already quoted is kept as written (`"My.Schema".t` → `"My.Schema"."t"`). A name
/// [`parse_table`] refuses is quoted whole, as one identifier, never altered: names from a
/// plan are checked with [`check_table`] (or [`check_plan_names`]) before they get here.
pub fn quote_table(name: &str) -> String {
    match parse_table(name) {
        Ok(parts) => parts
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join("."),
        Err(_) => quote_ident(name),
    }
}

/// [`quote_table`] of a name checked by [`check_table`]; `what` names where the plan gives it.
pub fn quote_table_checked(name: &str, what: &str) -> Result<String> {
    check_table(name, what)?;
    Ok(quote_table(name))
}

/// Refuses a table name that cannot be used as written, naming it and `what` (the plan
/// field that gives it).
pub fn check_table(name: &str, what: &str) -> Result<()> {
    parse_table(name).map(|_| ()).map_err(|why| {
        Error::Plan(format!(
            "{what}: the table name {name:?} cannot be used as written: {why}"
        ))
    })
}

/// Splits `schema.table` into its parts, unquoted (see [`parse_table`]); a name it refuses is
/// one part, as written.
pub fn split_table(name: &str) -> Vec<String> {
    parse_table(name).unwrap_or_else(|_| vec![name.to_string()])
}

/// The parts of a possibly schema-qualified table name, unquoted: parts are separated by
/// `.`, and each is either plain (no `"` in it) or wholly in double quotes, `""` standing
/// for a quote inside. `Err` says why the name cannot be read that way: a `"` inside a plain
/// part, a quote never closed, text after a closing quote, an empty part.
pub fn parse_table(name: &str) -> std::result::Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = name.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a double quote is not closed".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                }
            }
            if chars.peek().is_some_and(|c| *c != '.') {
                return Err("text follows a closing double quote (quote the whole part)".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    '.' => break,
                    '"' => {
                        return Err(
                            "a double quote inside an unquoted part (quote the whole part and double the quote: \"a\"\"b\")"
                                .into(),
                        )
                    }
                    c => part.push(c),
                }
                chars.next();
            }
        }
        if part.is_empty() {
            return Err("an empty part (before, between or after the dots)".into());
        }
        parts.push(part);
        if chars.next().is_none() {
            return Ok(parts);
        }
    }
}

/// Refuses, before anything is written, the table names of the plan that cannot be used as
/// written: every stream's target table and lookup tables for a PostgreSQL or TimescaleDB
/// target, every stream's table and `[source.tables]` name for a PostgreSQL source.
pub fn check_plan_names(plan: &tsmigrate_core::Plan) -> Result<()> {
    let pg = |kind: &str| matches!(kind, "postgres" | "postgresql" | "timescaledb");
    for s in &plan.streams {
        if pg(&plan.target.kind) {
            check_table(s.target_table(), &format!("stream `{}`: table", s.name))?;
            for (column, l) in &s.lookup {
                check_table(&l.table, &format!("streams.lookup.{column}: table"))?;
            }
        }
        if matches!(plan.source.kind.as_str(), "postgres" | "postgresql") {
            check_table(
                s.source_stream(),
                &format!("stream `{}`: source table", s.name),
            )?;
        }
    }
    if matches!(plan.source.kind.as_str(), "postgres" | "postgresql") {
        if let Some(toml::Value::Table(t)) = plan.source.options.get("tables") {
            for name in t.keys() {
                check_table(name, &format!("[source.tables.{name:?}]"))?;
            }
        }
    }
    Ok(())
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
        assert_eq!(quote_table("\"a\"\"b\".\"c\""), "\"a\"\"b\".\"c\"");
        assert_eq!(split_table("s.\"T.x\""), ["s", "T.x"]);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b'c"), r"E'a\\b''c'");
        assert_eq!(int8_literal(i64::MIN), "'-9223372036854775808'::int8");
        assert_eq!(int8_literal(42), "'42'::int8");
    }

    #[test]
    fn table_names_that_cannot_be_used_as_written_are_plan_errors_naming_them() {
        for (name, why) in [
            ("x\"; DROP TABLE t; --", "inside an unquoted part"),
            ("public.x\"y", "inside an unquoted part"),
            ("\"unclosed", "not closed"),
            ("\"a\"\"", "not closed"),
            ("\"a\"b", "text follows a closing double quote"),
            ("a..b", "empty part"),
            (".t", "empty part"),
            ("t.", "empty part"),
            ("", "empty part"),
            ("\"\"", "empty part"),
        ] {
            let e = check_table(name, "stream `s`: table")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{name:?} was accepted"));
            assert!(e.starts_with("plan: stream `s`: table"), "{e}");
            assert!(e.contains(&format!("{name:?}")), "names it: {e}");
            assert!(e.contains(why), "{name:?}: {e}");
        }
        // A plan naming one is refused before anything connects.
        let plan = |table: &str, lookup: &str| {
            tsmigrate_core::Plan::parse(&format!(
                "[source]\nkind = \"postgres\"\nurl = \"host=h\"\n[target]\nkind = \"postgres\"\nurl = \"host=h\"\n\
                 [[streams]]\nname = \"s\"\ntable = '{table}'\n[streams.lookup.d]\ntable = '{lookup}'\nmatch = \"n\"\nvalue = \"id\"\n"
            ))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(check_plan_names(&plan("public.t", "devices")).is_ok());
        let e = check_plan_names(&plan("x\"; DROP TABLE t", "devices")).err();
        assert!(e.is_some_and(|e| e.to_string().contains("stream `s`: table")));
        let e = check_plan_names(&plan("t", "a\"b")).err();
        assert!(e.is_some_and(|e| e.to_string().contains("streams.lookup.d: table")));
        // Never silently altered: quoted whole when it gets this far unchecked.
        assert_eq!(quote_table("x\"; DROP"), "\"x\"\"; DROP\"");
        assert_eq!(
            quote_table_checked("s.t", "f").ok().as_deref(),
            Some("\"s\".\"t\"")
        );
    }
}
