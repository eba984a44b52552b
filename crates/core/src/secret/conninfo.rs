//! libpq connection strings, parsed once, by the rules of PostgreSQL's own parser
//! (`src/interfaces/libpq/fe-connect.c`: `conninfo_parse` for `key=value` words;
//! `conninfo_uri_parse_options`, `conninfo_uri_parse_params` and `conninfo_uri_decode` for
//! `postgres://` and `postgresql://` URLs).
//!
//! The parsed form is the only one used: connections are made from [`ConnInfo::params`]
//! (`tsmigrate-postgres` builds its driver configuration from them) and connection strings
//! are printed only as [`ConnInfo::redacted`], rebuilt from the parts with every secret
//! replaced by `***`. A string that does not parse is refused with a [`ConnInfoError`] that
//! says what is wrong and where, and never quotes the string (it may hold a password).
//!
//! Two rules are stricter than libpq's, both to keep a password out of sight: a URL may hold
//! a raw `@` only where it ends the user and password (a password holding `@` or `/` must
//! be percent-encoded, `%40` and `%2F`; libpq would read the rest as a host or a database
//! name, and print it), and a URL's ports must be numbers.

use std::fmt;

/// libpq's connection parameters (PostgreSQL 18's `PQconninfoOptions`), the only keywords a
/// connection string may use (plus `requiressl`, read as `sslmode`, as libpq does).
pub const KEYWORDS: &[&str] = &[
    "service",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "dbname",
    "host",
    "hostaddr",
    "port",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslkeylogfile",
    "sslcertmode",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "require_auth",
    "min_protocol_version",
    "max_protocol_version",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
    "replication",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Parameters whose values are secrets, shown as `***`.
pub const SECRET_KEYWORDS: &[&str] = &[
    "password",
    "sslpassword",
    "scram_client_key",
    "scram_server_key",
    "oauth_client_secret",
];

/// Why a connection string was refused, and where (the string itself is never quoted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}; near character {at}")]
pub struct ConnInfoError {
    /// What is wrong.
    pub what: String,
    /// 1-based character position of the problem.
    pub at: usize,
}

/// How a connection string was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// `postgres://…` (`postgresql` false) or `postgresql://…` (true).
    Url {
        /// The long scheme, `postgresql://`.
        postgresql: bool,
    },
    /// libpq `key=value` words.
    Keywords,
}

/// A host of a URL and the port written after it (both percent-decoded).
#[derive(Clone, PartialEq, Eq)]
struct UrlHost {
    host: String,
    port: Option<String>,
}

/// A parsed connection string. `Debug` and `Display` show it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnInfo {
    syntax: Syntax,
    /// URL only: the user before `@` (empty: none).
    user: Option<String>,
    /// URL only: the password between `:` and `@` (empty: none).
    password: Option<String>,
    /// URL only: the hosts and ports of the authority.
    hosts: Vec<UrlHost>,
    /// URL only: the path, the database name (empty: none).
    dbname: Option<String>,
    /// The `key=value` words, or a URL's query parameters, in order, decoded.
    pairs: Vec<(String, String)>,
}

/// `isspace` of the C locale, which libpq uses.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The 1-based character position of byte offset `byte` of `s`.
fn char_pos(s: &str, byte: usize) -> usize {
    let mut b = byte.min(s.len());
    while !s.is_char_boundary(b) {
        b -= 1;
    }
    s[..b].chars().count() + 1
}

fn err(s: &str, byte: usize, what: impl Into<String>) -> ConnInfoError {
    ConnInfoError {
        what: what.into(),
        at: char_pos(s, byte),
    }
}

/// The message for a string that is neither a URL nor `key=value` words.
const NOT_A_CONNECTION_STRING: &str =
    "expected postgres:// or postgresql://, or key=value words (host=… dbname=…)";

impl ConnInfo {
    /// Parses a connection string as libpq does (see the module documentation).
    pub fn parse(s: &str) -> Result<ConnInfo, ConnInfoError> {
        for (designator, postgresql) in [("postgresql://", true), ("postgres://", false)] {
            if s.starts_with(designator) {
                return parse_url(s, designator.len(), postgresql);
            }
        }
        Ok(ConnInfo {
            syntax: Syntax::Keywords,
            user: None,
            password: None,
            hosts: Vec::new(),
            dbname: None,
            pairs: parse_keywords(s)?,
        })
    }

    /// How the string was written.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The parameters the string sets, as libpq stores them: a URL's user, password, hosts,
    /// ports and database first, then its query parameters; a later value of a keyword
    /// replaces an earlier one in place; `requiressl` and a URL's `ssl=true` become
    /// `sslmode`.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut store = |k: &str, v: &str| {
            let (k, v) = canonical(k, v);
            match out.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        };
        if let Some(u) = &self.user {
            store("user", u);
        }
        if let Some(p) = &self.password {
            store("password", p);
        }
        if !self.hosts.is_empty() {
            let hosts: Vec<&str> = self.hosts.iter().map(|h| h.host.as_str()).collect();
            let hosts = hosts.join(",");
            if !hosts.is_empty() {
                store("host", &hosts);
            }
            let ports: Vec<&str> = self
                .hosts
                .iter()
                .map(|h| h.port.as_deref().unwrap_or(""))
                .collect();
            let ports = ports.join(",");
            if !ports.is_empty() {
                store("port", &ports);
            }
        }
        if let Some(d) = &self.dbname {
            store("dbname", d);
        }
        for (k, v) in &self.pairs {
            store(k, v);
        }
        out
    }

    /// The value the string gives `keyword` (see [`ConnInfo::params`]).
    pub fn get(&self, keyword: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == keyword)
            .map(|(_, v)| v)
    }

    /// Every secret value the string holds (passwords), to scrub from messages.
    pub fn secrets(&self) -> Vec<String> {
        self.params()
            .into_iter()
            .filter(|(k, v)| SECRET_KEYWORDS.contains(&k.as_str()) && !v.is_empty())
            .map(|(_, v)| v)
            .collect()
    }

    /// The string rebuilt from its parts, in the syntax it was written in, with every secret
    /// shown as `***`: `postgres://tb:***@db:5432/tb?sslmode=require`,
    /// `host=db password=*** user=x`.
    pub fn redacted(&self) -> String {
        match self.syntax {
            Syntax::Keywords => {
                let words: Vec<String> = self
                    .pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", shown_word(k, v)))
                    .collect();
                words.join(" ")
            }
            Syntax::Url { postgresql } => self.redacted_url(postgresql),
        }
    }

    fn redacted_url(&self, postgresql: bool) -> String {
        let mut out = String::from(if postgresql {
            "postgresql://"
        } else {
            "postgres://"
        });
        if let Some(u) = &self.user {
            out.push_str(&encode(u, ""));
        }
        if self.password.is_some() {
            out.push_str(":***");
        }
        if self.user.is_some() || self.password.is_some() {
            out.push('@');
        }
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                let mut s = if h.host.contains(':') {
                    format!("[{}]", encode(&h.host, ":"))
                } else {
                    encode(&h.host, "")
                };
                if let Some(p) = &h.port {
                    s.push(':');
                    s.push_str(p);
                }
                s
            })
            .collect();
        out.push_str(&hosts.join(","));
        if let Some(d) = &self.dbname {
            out.push('/');
            out.push_str(&encode(d, ""));
        }
        if !self.pairs.is_empty() {
            let pairs: Vec<String> = self
                .pairs
                .iter()
                .map(|(k, v)| {
                    let v = if is_secret(k) {
                        "***".to_string()
                    } else {
                        encode(v, "/:,")
                    };
                    format!("{}={v}", encode(k, ""))
                })
                .collect();
            out.push('?');
            out.push_str(&pairs.join("&"));
        }
        out
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({})", self.redacted())
    }
}

impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn is_secret(keyword: &str) -> bool {
    SECRET_KEYWORDS.contains(&canonical(keyword, "").0.as_str())
}

/// libpq's renamings: `requiressl` (1 → `sslmode=require`, else `prefer`) and a URL's
/// `ssl=true` (→ `sslmode=require`, for JDBC's sake).
fn canonical(k: &str, v: &str) -> (String, String) {
    match k {
        "requiressl" if v.starts_with('1') => ("sslmode".into(), "require".into()),
        "requiressl" => ("sslmode".into(), "prefer".into()),
        "ssl" if v == "true" => ("sslmode".into(), "require".into()),
        _ => (k.to_string(), v.to_string()),
    }
}

/// A value of a `key=value` word as it is shown: `***` for secrets, quoted (with `\'` and
/// `\\`) when empty or holding blanks, quotes or backslashes.
fn shown_word(k: &str, v: &str) -> String {
    if is_secret(k) {
        return "***".into();
    }
    if !v.is_empty() && !v.bytes().any(|b| is_space(b) || b == b'\'' || b == b'\\') {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Percent-encodes every byte of `s` but unreserved characters and those in `keep`.
fn encode(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `key=value` words, as libpq's `conninfo_parse` reads them: blanks around `=` allowed;
/// a value in single quotes with `\'` and `\\` (any character after a backslash stands for
/// itself); an unquoted value ends at a blank, and a backslash escapes the next character
/// there too; `''` is an empty value.
fn parse_keywords(s: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        if is_space(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
            i += 1;
        }
        let name_end = i;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return Err(missing_equals(s, start, name_end));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let (value, next) = if b.get(i) == Some(&b'\'') {
            quoted_value(s, i)?
        } else {
            unquoted_value(s, i)
        };
        let key = &s[start..name_end];
        check_keyword(s, start, key, false)?;
        out.push((key.to_string(), value));
        i = next;
    }
    Ok(out)
}

/// An unquoted value starting at byte `i`: the value and where parsing goes on.
fn unquoted_value(s: &str, mut i: usize) -> (String, usize) {
    let b = s.as_bytes();
    let mut v = Vec::new();
    while i < b.len() {
        if is_space(b[i]) {
            i += 1;
            break;
        }
        if b[i] == b'\\' {
            i += 1;
            if i < b.len() {
                v.push(b[i]);
                i += 1;
            }
        } else {
            v.push(b[i]);
            i += 1;
        }
    }
    // Only ASCII backslashes were dropped from valid UTF-8, so this cannot fail.
    (String::from_utf8_lossy(&v).into_owned(), i)
}

/// A single-quoted value whose opening quote is at byte `open`.
fn quoted_value(s: &str, open: usize) -> Result<(String, usize), ConnInfoError> {
    let b = s.as_bytes();
    let mut v = Vec::new();
    let mut i = open + 1;
    loop {
        match b.get(i) {
            None => {
                return Err(err(
                    s,
                    open,
                    "a quoted value is not closed (a `'` is missing)",
                ))
            }
            Some(b'\\') => {
                i += 1;
                if let Some(&c) = b.get(i) {
                    v.push(c);
                    i += 1;
                }
            }
            Some(b'\'') => return Ok((String::from_utf8_lossy(&v).into_owned(), i + 1)),
            Some(&c) => {
                v.push(c);
                i += 1;
            }
        }
    }
}

/// The error for a word without `=` at bytes `start..end`, near its start; for a word that
/// looks like a URL with a mistyped scheme, near where it departs from `postgres://` or
/// `postgresql://`.
fn missing_equals(s: &str, start: usize, end: usize) -> ConnInfoError {
    if looks_like_url(&s[start..end]) {
        return scheme_error(s, start);
    }
    err(
        s,
        start,
        format!("{NOT_A_CONNECTION_STRING}: a word has no `=`"),
    )
}

fn looks_like_url(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    word.contains(":/")
        || word.contains("//")
        || word.contains('@')
        || lower.starts_with("postgres")
        || lower.starts_with("pg:")
}

/// A URL whose scheme is not `postgres://` or `postgresql://`, starting at byte `start`.
fn scheme_error(s: &str, start: usize) -> ConnInfoError {
    let word = &s.as_bytes()[start..];
    let common = |d: &[u8]| word.iter().zip(d).take_while(|(a, b)| a == b).count();
    let at = common(b"postgresql://").max(common(b"postgres://"));
    let lower = String::from_utf8_lossy(word).to_ascii_lowercase();
    let what = if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        format!("{NOT_A_CONNECTION_STRING}, in lower case")
    } else {
        NOT_A_CONNECTION_STRING.to_string()
    };
    err(s, start + at, what)
}

/// Refuses a keyword libpq does not know (naming only a known one it may have meant, never
/// the word itself: a mistyped string can put a piece of a password where a keyword goes).
fn check_keyword(s: &str, at: usize, key: &str, url_query: bool) -> Result<(), ConnInfoError> {
    if KEYWORDS.contains(&key) || key == "requiressl" {
        return Ok(());
    }
    if key.is_empty() {
        return Err(err(s, at, "a `=` has no parameter name before it"));
    }
    if !url_query && looks_like_url(key) {
        return Err(scheme_error(s, at));
    }
    let mut what = String::from("not a libpq connection parameter name");
    if let Some(k) = KEYWORDS.iter().find(|k| edit_distance(k, key) <= 2) {
        what.push_str(&format!(" (did you mean `{k}`?)"));
    }
    Err(err(s, at, what))
}

/// Levenshtein distance (ASCII-case-insensitive), for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<u8> = a.bytes().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<u8> = b.bytes().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `%xx` decoding of the URL part at bytes `from..to`, as libpq's `conninfo_uri_decode`
/// (`%00` refused).
fn decode(s: &str, from: usize, to: usize) -> Result<String, ConnInfoError> {
    let b = &s.as_bytes()[from..to];
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |k: usize| b.get(k).and_then(|c| (*c as char).to_digit(16));
        match (hex(i + 1), hex(i + 2)) {
            (Some(0), Some(0)) => return Err(err(s, from + i, "`%00` is not allowed in a URL")),
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => {
                return Err(err(
                    s,
                    from + i,
                    "a `%` is not followed by two hex digits (write `%25` for a `%`)",
                ))
            }
        }
        i += 3;
    }
    String::from_utf8(out).map_err(|_| err(s, from, "percent-encoded bytes that are not UTF-8"))
}

/// Percent-decodes bytes `from..to`, `None` when empty (libpq stores no empty user,
/// password or database name).
fn decode_nonempty(s: &str, from: usize, to: usize) -> Result<Option<String>, ConnInfoError> {
    if from >= to {
        return Ok(None);
    }
    decode(s, from, to).map(|v| (!v.is_empty()).then_some(v))
}

/// A URL, as libpq's `conninfo_uri_parse_options` reads it:
/// `postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]`, the
/// user and password found by looking ahead for `@` before any `/`; a host in `[]` is an
/// IPv6 address; every part percent-decoded.
fn parse_url(s: &str, prefix: usize, postgresql: bool) -> Result<ConnInfo, ConnInfoError> {
    let b = s.as_bytes();
    let mut info = ConnInfo {
        syntax: Syntax::Url { postgresql },
        user: None,
        password: None,
        hosts: Vec::new(),
        dbname: None,
        pairs: Vec::new(),
    };
    let mut p = prefix;
    let at = (prefix..b.len())
        .find(|&i| b[i] == b'@' || b[i] == b'/')
        .filter(|&i| b[i] == b'@');
    if let Some(at) = at {
        let colon = (prefix..at).find(|&i| b[i] == b':').unwrap_or(at);
        info.user = decode_nonempty(s, prefix, colon)?;
        if colon < at {
            info.password = decode_nonempty(s, colon + 1, at)?;
        }
        p = at + 1;
    }
    if let Some(stray) = (p..b.len()).find(|&i| b[i] == b'@') {
        return Err(err(
            s,
            stray,
            "a raw `@` after the user and password: percent-encode `@` as %40 and `/` as %2F in a password",
        ));
    }
    let (next, end) = parse_hosts(s, p, &mut info.hosts)?;
    p = next;
    let mut end = end;
    if end == Some(b'/') {
        let from = p + 1;
        let to = (from..b.len()).find(|&i| b[i] == b'?').unwrap_or(b.len());
        info.dbname = decode_nonempty(s, from, to)?;
        p = to;
        end = b.get(to).copied();
    }
    if end == Some(b'?') {
        info.pairs = parse_query(s, p + 1)?;
    }
    Ok(info)
}

/// The `host[:port]` list of a URL from byte `p`: where it ended and the byte that ended it
/// (`/`, `?` or the end).
fn parse_hosts(
    s: &str,
    mut p: usize,
    hosts: &mut Vec<UrlHost>,
) -> Result<(usize, Option<u8>), ConnInfoError> {
    let b = s.as_bytes();
    let ends_host = |c: u8| matches!(c, b':' | b'/' | b'?' | b',');
    loop {
        let host = if b.get(p) == Some(&b'[') {
            let open = p;
            let close = (open + 1..b.len()).find(|&i| b[i] == b']').ok_or_else(|| {
                err(
                    s,
                    open,
                    "an IPv6 address opened with `[` is not closed with `]`",
                )
            })?;
            if close == open + 1 {
                return Err(err(s, open, "an IPv6 address in `[]` is empty"));
            }
            p = close + 1;
            if b.get(p).is_some_and(|&c| !ends_host(c)) {
                return Err(err(s, p, "expected `:`, `/`, `?` or `,` after `]`"));
            }
            decode(s, open + 1, close)?
        } else {
            let from = p;
            while p < b.len() && !ends_host(b[p]) {
                p += 1;
            }
            decode(s, from, p)?
        };
        let mut end = b.get(p).copied();
        let mut port = None;
        if end == Some(b':') {
            let from = p + 1;
            p = from;
            while p < b.len() && !matches!(b[p], b'/' | b'?' | b',') {
                p += 1;
            }
            let text = &s[from..p];
            if !text.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err(s, from, "a port is not a number"));
            }
            port = Some(text.to_string());
            end = b.get(p).copied();
        }
        hosts.push(UrlHost { host, port });
        if end != Some(b',') {
            return Ok((p, end));
        }
        p += 1;
    }
}

/// A URL's `key=value&…` query from byte `p`, as libpq's `conninfo_uri_parse_params`.
fn parse_query(s: &str, mut p: usize) -> Result<Vec<(String, String)>, ConnInfoError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    while p < b.len() {
        let start = p;
        let mut eq = None;
        while p < b.len() && b[p] != b'&' {
            if b[p] == b'=' {
                if eq.is_some() {
                    return Err(err(
                        s,
                        p,
                        "a second `=` in a query parameter (write `%3D` for a `=` in a value)",
                    ));
                }
                eq = Some(p);
            }
            p += 1;
        }
        let eq = eq.ok_or_else(|| err(s, start, "a query parameter has no `=`"))?;
        let key = decode(s, start, eq)?;
        let value = decode(s, eq + 1, p)?;
        // `ssl=true` is libpq's one JDBC spelling (read as sslmode=require).
        if !(key == "ssl" && value == "true") {
            check_keyword(s, start, &key, true)?;
        }
        out.push((key, value));
        if p < b.len() {
            p += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
