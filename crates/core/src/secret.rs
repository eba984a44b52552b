//! Secrets: `${ENV}` expansion in plans and masking of passwords in connection strings.
//!
//! Every connection string that reaches a message, log line or report goes through
//! [`redact`] first; [`ConnString`] cannot be printed any other way. Masking and connecting
//! share one parser, [`conninfo`] (libpq's rules): a string is shown only as rebuilt from
//! its parsed parts with the password replaced by `***`, and one that does not parse is not
//! shown at all.

pub mod conninfo;

use std::fmt;

pub use conninfo::{ConnInfo, ConnInfoError};

use crate::error::{Error, Result};

/// A connection string (URL or `key=value` form) that may hold a password.
/// `Debug` and `Display` show it with the password masked; [`ConnString::expose`] gives the
/// real text (a SQLite path, or to parse it with [`ConnString::parse`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnString(String);

impl ConnString {
    /// Wraps a connection string.
    pub fn new(s: impl Into<String>) -> ConnString {
        ConnString(s.into())
    }

    /// The real connection string, to be handed to a driver and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The string parsed by libpq's rules (see [`conninfo`]).
    pub fn parse(&self) -> std::result::Result<ConnInfo, ConnInfoError> {
        ConnInfo::parse(&self.0)
    }

    /// The connection string with its password masked.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl fmt::Debug for ConnString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnString({})", self.redacted())
    }
}

impl fmt::Display for ConnString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// What is shown in place of a connection string that does not parse.
pub const UNPARSABLE: &str = "<connection string not shown: it cannot be parsed>";

/// A connection string as it may be shown: rebuilt from its parsed parts with every
/// password replaced by `***` (`postgres://user:secret@host` → `postgres://user:***@host`,
/// `password = 'secret'` → `password=***`), or [`UNPARSABLE`] when it does not parse.
pub fn redact(s: &str) -> String {
    match ConnInfo::parse(s) {
        Ok(c) => c.redacted(),
        Err(_) => UNPARSABLE.to_string(),
    }
}

/// Expands `${NAME}` and `${NAME:-default}` from the environment, and `${file:PATH}` with the
/// content of a file (one trailing newline removed: secrets mounted as files, such as
/// `/run/secrets/db_password`). `field` names the plan field for the error message when a
/// variable is missing or a file cannot be read. `$${` stands for a literal `${`.
pub fn expand_env(s: &str, field: &str) -> Result<String> {
    expand_with(s, field, |k| std::env::var(k).ok())
}

/// The content of a secret file, without one trailing newline.
fn read_secret_file(path: &str, field: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Plan(format!(
            "{field} uses ${{file:{path}}}, which cannot be read: {e}"
        ))
    })?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(text.to_string())
}

fn expand_with(s: &str, field: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('$') {
        out.push_str(&rest[..p]);
        let after = &rest[p..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| Error::Plan(format!("{field}: `${{` without a closing `}}`")))?;
            let expr = &body[..end];
            if let Some(path) = expr.strip_prefix("file:") {
                out.push_str(&read_secret_file(path, field)?);
                rest = &body[end + 1..];
                continue;
            }
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(Error::Plan(format!(
                    "{field}: `${{{expr}}}` is not a valid variable reference"
                )));
            }
            match lookup(name).or_else(|| default.map(str::to_string)) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(Error::Plan(format!(
                        "{field} uses ${{{name}}}, which is not set in the environment (export {name}=... or write ${{{name}:-default}})"
                    )))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_urls_and_keyvalue_strings() {
        assert_eq!(
            redact("postgres://tb:s3cr%40t@db:5432/tb"),
            "postgres://tb:***@db:5432/tb"
        );
        // libpq would read `t@db` as the host; a raw `@` there is refused, not shown.
        assert_eq!(redact("postgres://tb:s3cr@t@db:5432/tb"), UNPARSABLE);
        assert_eq!(redact("postgresql://tb@db/tb"), "postgresql://tb@db/tb");
        assert_eq!(
            redact("postgres://db/tb?user=x&password=hunter2&sslmode=require"),
            "postgres://db/tb?user=x&password=***&sslmode=require"
        );
        assert_eq!(
            redact("host=db password='a b\\' c' user=x"),
            "host=db password=*** user=x"
        );
        assert_eq!(redact("host=db password=pw"), "host=db password=***");
        assert!(!format!("{:?}", ConnString::new("postgres://u:pw@h/d")).contains("pw@"));
        // Nothing of a string that does not parse is shown.
        assert_eq!(redact("postgres:/u:pw@h/d"), UNPARSABLE);
        assert_eq!(
            ConnString::new("postgresql//u:pw@h/d").to_string(),
            UNPARSABLE
        );
    }

    #[test]
    fn expands_variables() {
        let env = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(
            expand_with("p://${A}/${B:-d}", "f", env).ok(),
            Some("p://x/d".into())
        );
        assert_eq!(
            expand_with("$${A} $5", "f", env).ok(),
            Some("${A} $5".into())
        );
        let e = expand_with("${MISSING}", "source.url", env)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("source.url uses ${MISSING}")));
    }

    #[test]
    fn expands_secret_files_without_showing_them() {
        let dir = std::env::temp_dir().join(format!("tsm-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("pw");
        std::fs::write(&file, "s3cr3t-from-file\n").unwrap_or_else(|e| panic!("{e}"));
        let url = format!("postgres://u:${{file:{}}}@h/db", file.display());
        let got = expand_env(&url, "target.url").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, "postgres://u:s3cr3t-from-file@h/db");
        assert_eq!(redact(&got), "postgres://u:***@h/db");
        let missing = format!("${{file:{}}}", dir.join("nope").display());
        let e = expand_env(&missing, "target.url")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("cannot be read") && m.contains("target.url")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
