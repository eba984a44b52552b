//! The DDL readers of `ddl` (`parse_create_table`, `parse_attach`, `parse_copy`,
//! `parse_primary_key`, `parse_name`) on arbitrary text (the input read as UTF-8, invalid
//! sequences replaced). Besides "no panic, no hang", every name they return must survive
//! `QualifiedName::display` → `parse_name` unchanged (display quotes what needs quoting).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsmigrate_pgdump::ddl::{
    parse_attach, parse_copy, parse_create_table, parse_name, parse_primary_key,
};
use tsmigrate_pgdump::QualifiedName;

fn round_trips(q: &QualifiedName) {
    let shown = q.display();
    let back = parse_name(&shown);
    // A name whose schema part is empty displays unqualified, so it reads back as itself.
    assert_eq!(
        back.as_ref(),
        Some(q),
        "display {shown:?} of {q:?} reads back as {back:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;
    if let Some(t) = parse_create_table(s) {
        round_trips(&t.name);
        if let Some(p) = &t.partition_of {
            round_trips(p);
        }
        t.inherits.iter().for_each(round_trips);
    }
    if let Some((parent, child)) = parse_attach(s) {
        round_trips(&parent);
        round_trips(&child);
    }
    if let Some((table, _cols)) = parse_copy(s) {
        round_trips(&table);
    }
    if let Some((table, _cols)) = parse_primary_key(s) {
        round_trips(&table);
    }
    if let Some(q) = parse_name(s) {
        round_trips(&q);
    }
});
