//! Tests of the connection-string parser against libpq's rules (PostgreSQL's
//! `src/interfaces/libpq/fe-connect.c`: `conninfo_parse`, `conninfo_uri_parse_options`,
//! `conninfo_uri_parse_params`, `conninfo_uri_decode`), and of the masking built on it:
//! every spelling of a password in the attack of issue 30 (F) must come out as `***`.

use super::*;

const PW: &str = "S3cr3t-pw";

fn parsed(s: &str) -> ConnInfo {
    ConnInfo::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(s: &str) -> ConnInfoError {
    match ConnInfo::parse(s) {
        Ok(c) => panic!("parsed where it must be refused: {c}"),
        Err(e) => e,
    }
}

fn params(s: &str) -> Vec<(String, String)> {
    parsed(s).params()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The masked form holds none of the secret, not even a piece of it.
fn assert_masked(s: &str, secret: &str) {
    let shown = parsed(s).redacted();
    assert!(!shown.contains(secret), "{s:?} shows {secret:?}: {shown}");
    for piece in secret.split(['-', ' ']).filter(|p| p.len() >= 3) {
        assert!(!shown.contains(piece), "{s:?} shows {piece:?}: {shown}");
    }
}

#[test]
fn keyword_values_follow_libpq_spacing_quoting_and_escapes() {
    // Blanks around `=` (any C isspace), quoted values with \' and \\, escaped blanks.
    assert_eq!(
        params("host = db\tport=\n5432   dbname= 'my db'  user ='it\\'s' options='a\\\\b'"),
        kv(&[
            ("host", "db"),
            ("port", "5432"),
            ("dbname", "my db"),
            ("user", "it's"),
            ("options", "a\\b"),
        ])
    );
    assert_eq!(params(r"password=a\ b\\c"), kv(&[("password", r"a b\c")]));
    assert_eq!(params("password= X"), kv(&[("password", "X")]));
    assert_eq!(
        params("password='' user=u"),
        kv(&[("password", ""), ("user", "u")])
    );
    // A quoted value ends at its quote; the next word may follow at once.
    assert_eq!(
        params("user='a'host=h"),
        kv(&[("user", "a"), ("host", "h")])
    );
    // An empty value at the end, and an empty string.
    assert_eq!(
        params("user=u password="),
        kv(&[("user", "u"), ("password", "")])
    );
    assert!(params("").is_empty() && params("   ").is_empty());
    // A later value wins, in place; requiressl is sslmode.
    assert_eq!(
        params("user=a host=h user=b requiressl=1"),
        kv(&[("user", "b"), ("host", "h"), ("sslmode", "require")])
    );
    assert_eq!(parsed("host=h").syntax(), Syntax::Keywords);
}

#[test]
fn urls_follow_libpq_hosts_ports_decoding_and_queries() {
    let c = parsed("postgres://u%40x:p%3Ass@db.example.com:6432/my%20db?sslmode=require&application_name=a%26b");
    assert_eq!(c.syntax(), Syntax::Url { postgresql: false });
    assert_eq!(
        c.params(),
        kv(&[
            ("user", "u@x"),
            ("password", "p:ss"),
            ("host", "db.example.com"),
            ("port", "6432"),
            ("dbname", "my db"),
            ("sslmode", "require"),
            ("application_name", "a&b"),
        ])
    );
    // Several hosts, each with or without its port; IPv6 in brackets.
    assert_eq!(
        params("postgresql://h1:5432,[::1]:5433,h3/db"),
        kv(&[
            ("host", "h1,::1,h3"),
            ("port", "5432,5433,"),
            ("dbname", "db")
        ])
    );
    assert_eq!(
        parsed("postgresql://[2001:db8::7]/d").syntax(),
        Syntax::Url { postgresql: true }
    );
    // Unix-socket directories, percent-encoded in the host part or as ?host=.
    assert_eq!(
        params("postgresql://%2Fvar%2Frun%2Fpostgresql/db"),
        kv(&[("host", "/var/run/postgresql"), ("dbname", "db")])
    );
    assert_eq!(
        params("postgresql:///db?host=/tmp/sock&port=5433"),
        kv(&[("dbname", "db"), ("host", "/tmp/sock"), ("port", "5433")])
    );
    // The query overrides the authority; ssl=true is sslmode=require (as libpq, for JDBC).
    assert_eq!(
        params("postgres://a@h/db?user=b&ssl=true"),
        kv(&[
            ("user", "b"),
            ("host", "h"),
            ("dbname", "db"),
            ("sslmode", "require")
        ])
    );
    // Empty parts are not stored; a bare scheme sets nothing.
    assert!(params("postgres://").is_empty());
    assert_eq!(params("postgres://:@/"), kv(&[]));
    assert_eq!(params("postgres://h?"), kv(&[("host", "h")]));
    // libpq reads `#` and `?` in a password literally (it looks for `@` before any `/`).
    assert_eq!(
        parsed("postgres://u:p#w?d@h/db").get("password").as_deref(),
        Some("p#w?d")
    );
}

#[test]
fn every_leak_of_the_attack_is_fully_masked() {
    let cases = [
        format!("host=db password = '{PW}' user=x"),
        format!("host=db password ={PW}"),
        format!("host=db password= {PW} user=x"),
        format!("host=db password=a\\ {PW}"),
        format!("host=db password='a b\\' {PW}' user=x"),
        format!("host=db\tpassword\n=\n{PW}"),
        format!("password='{PW}'"),
        format!("postgres://tb:{PW}@db:5432/tb"),
        format!("postgresql://tb:{}@db/tb", PW.replace('-', "%2D")),
        format!("postgres://db/tb?user=x&password={PW}&sslmode=require"),
        format!("postgres://db/tb?password={}", PW.replace('3', "%33")),
        format!("postgres://db/tb?sslpassword={PW}"),
        format!("sslpassword={PW} oauth_client_secret={PW}x"),
        format!("postgres://u:{PW}@[::1]:5432,h2:5433/db"),
        format!("requiressl=1 password={PW}"),
    ];
    for c in &cases {
        assert_masked(c, PW);
        assert!(parsed(c).secrets().iter().any(|s| s.contains(PW)), "{c}");
    }
    assert_eq!(
        parsed(&format!("host=db password = '{PW}' user=x")).redacted(),
        "host=db password=*** user=x"
    );
    assert_eq!(
        parsed(&format!("postgres://tb:{PW}@db:5432/tb")).redacted(),
        "postgres://tb:***@db:5432/tb"
    );
    assert_eq!(
        parsed(&format!(
            "postgres://db/tb?user=x&password={PW}&sslmode=require"
        ))
        .redacted(),
        "postgres://db/tb?user=x&password=***&sslmode=require"
    );
}

#[test]
fn unparsable_strings_are_refused_without_echoing_them() {
    let cases = [
        (format!("postgres:/u:{PW}@db/tb"), "postgres://", 11),
        (format!("postgresql//u:{PW}@db/tb"), "postgres://", 11),
        (format!("postgres;//u:{PW}@db/tb"), "postgres://", 9),
        (format!("Postgres://u:{PW}@db/tb"), "in lower case", 1),
        (format!("pg://u:{PW}@db/tb"), "postgres://", 2),
        (
            format!("postgres:/u:{PW}@db/tb?sslmode=require"),
            "postgres://",
            11,
        ),
        (format!("host=db password={PW} extra"), "has no `=`", 28),
        (format!("host=db password='{PW}"), "not closed", 18),
        (
            format!("host=db pasword={PW}"),
            "did you mean `password`",
            9,
        ),
        (
            format!("host=db {PW}=x"),
            "not a libpq connection parameter",
            9,
        ),
        (format!("=x password={PW}"), "no parameter name", 1),
        (format!("postgres://u:{PW}@d@b/tb"), "raw `@`", 25),
        (format!("postgres://u:a/{PW}@db/tb"), "raw `@`", 25),
        (format!("postgres://u:{PW}%4@db/tb"), "two hex digits", 23),
        (format!("postgres://u:{PW}%00@db/tb"), "%00", 23),
        (format!("postgres://u:{PW}@db:54x/tb"), "not a number", 27),
        (format!("postgres://u:{PW}@[::1/tb"), "not closed", 24),
        (format!("postgres://u:{PW}@[]/tb"), "empty", 24),
        (format!("postgres://u:{PW}@[::1]x/tb"), "after `]`", 29),
        (format!("postgres://h/db?password={PW}&x"), "has no `=`", 36),
        (format!("postgres://h/db?password={PW}=x"), "second `=`", 35),
        (
            format!("postgres://h/db?pasword={PW}"),
            "did you mean `password`",
            17,
        ),
        (
            format!("postgres://h/db?ssl=false&password={PW}"),
            "not a libpq",
            17,
        ),
    ];
    for (s, what, at) in &cases {
        let e = refused(s);
        let m = e.to_string();
        assert!(!m.contains(PW) && !m.contains("S3cr"), "{s}: echoed: {m}");
        assert!(m.contains(what), "{s}: {m}");
        assert_eq!(e.at, *at, "{s}: {m}");
    }
}

#[test]
fn the_masked_form_reads_back_as_the_same_parameters() {
    for s in [
        "postgres://u%40x:pw@h1:1,[::1]:2/d%2Fb?options=-c%20a%3Db&host=/tmp",
        "postgresql://%2Ftmp%2Fsock:5433/db?sslrootcert=/etc/ca.pem&application_name=a%26b",
        "postgres:///db",
        "host=/tmp dbname='my db' user='it\\'s' password= pw options='' application_name=a\\\\b",
    ] {
        let c = parsed(s);
        let back = parsed(&c.redacted());
        let masked: Vec<(String, String)> = c
            .params()
            .into_iter()
            .map(|(k, v)| {
                if k == "password" {
                    (k, "***".into())
                } else {
                    (k, v)
                }
            })
            .collect();
        assert_eq!(back.params(), masked, "{s} → {}", c.redacted());
    }
}

#[test]
fn positions_count_characters_not_bytes() {
    let e = refused("dbname=café pässword=x");
    assert_eq!(e.at, 13, "{e}");
}

#[test]
fn any_string_parses_or_is_refused_and_its_masked_form_reads_back_the_same() {
    // Pieces libpq's grammar cares about, glued at random (a fixed xorshift seed): parsing
    // never panics, and whatever parses reads back from its masked form with the same
    // parameters, secrets as ***.
    let pieces = [
        "postgres://",
        "postgresql://",
        "password",
        "user",
        "host",
        "dbname",
        "ssl",
        "=",
        "'",
        "\\",
        "@",
        ":",
        "/",
        "?",
        "&",
        "%",
        "%2F",
        "%25",
        "%40",
        "%4",
        "[",
        "]",
        ",",
        " ",
        "\t",
        "x",
        "é",
        "1",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut parsed_count, mut refused_count) = (0, 0);
    for _ in 0..20_000 {
        let n = 1 + next() % 12;
        let s: String = (0..n)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        let Ok(c) = ConnInfo::parse(&s) else {
            refused_count += 1;
            continue;
        };
        parsed_count += 1;
        let masked: Vec<(String, String)> = c
            .params()
            .into_iter()
            .map(|(k, v)| {
                if SECRET_KEYWORDS.contains(&k.as_str()) {
                    (k, "***".into())
                } else {
                    (k, v)
                }
            })
            .collect();
        let back = ConnInfo::parse(&c.redacted())
            .unwrap_or_else(|e| panic!("{s:?} → {} does not parse: {e}", c.redacted()));
        assert_eq!(back.params(), masked, "{s:?} → {}", c.redacted());
    }
    assert!(
        parsed_count > 500 && refused_count > 500,
        "{parsed_count} / {refused_count}"
    );
}
