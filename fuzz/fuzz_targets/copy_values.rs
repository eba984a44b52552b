//! The free value parsers of `copy_text` on arbitrary bytes: the input is split at every
//! 0xFF byte (a byte valid UTF-8 never holds) and each piece goes through `unescape`,
//! `parse_timestamp` (with and without time zone), `parse_float`, `parse_int`, `parse_uuid`
//! and `parse_bytea`, raw and unescaped. Besides "no panic", a few properties are checked:
//! `unescape` never lengthens its input, `parse_int` agrees with `str::parse::<i64>`,
//! a parsed UUID prints back as the input's hex digits, hex bytea gives one byte per two
//! digits, and a parsed float is what Rust's own parser gives for that text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsmigrate_pgdump::copy_text::{
    parse_bytea, parse_float, parse_int, parse_timestamp, parse_uuid, unescape,
};

fn values(s: &[u8]) {
    let _ = parse_timestamp(s, true);
    let _ = parse_timestamp(s, false);

    let int = parse_int(s);
    let std_int = std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<i64>().ok());
    assert_eq!(int, std_int, "parse_int({:?})", String::from_utf8_lossy(s));

    if let Some(f) = parse_float(s) {
        match s {
            b"NaN" => assert!(f.is_nan()),
            b"Infinity" => assert_eq!(f, f64::INFINITY),
            b"-Infinity" => assert_eq!(f, f64::NEG_INFINITY),
            _ => {
                let t = std::str::from_utf8(s).expect("a parsed float is ASCII");
                assert!(!f.is_nan(), "NaN from {t:?}");
                assert_eq!(Some(f), t.parse::<f64>().ok());
            }
        }
    }

    if let Some(u) = parse_uuid(s) {
        let hex: String = s
            .iter()
            .filter(|b| **b != b'-')
            .map(|b| b.to_ascii_lowercase() as char)
            .collect();
        let printed: String = u.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(printed, hex);
    }

    let mut out = Vec::new();
    if parse_bytea(s, &mut out).is_some() {
        if let Some(hex) = s.strip_prefix(b"\\x") {
            assert_eq!(out.len() * 2, hex.len());
        } else {
            assert!(out.len() <= s.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    for piece in data.split(|b| *b == 0xff) {
        unescape(piece, &mut scratch);
        assert!(
            scratch.len() <= piece.len(),
            "unescape lengthened its input"
        );
        values(piece);
        let unescaped = scratch.clone();
        values(&unescaped);
    }
});
