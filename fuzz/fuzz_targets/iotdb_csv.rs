//! The IoTDB export reader: any bytes through the tokenizer, every record's cells through the
//! header, time and value parsers. Properties: no panic; line numbers never decrease; a
//! record's text round-trips through the tokenizer when re-quoted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsmigrate_core::TimeUnit;
use tsmigrate_files::iotdb::{parse_time, parse_value, path_nodes, Header, IotType, Tokenizer};

const TYPES: [Option<IotType>; 5] = [
    None,
    Some(IotType::Boolean),
    Some(IotType::Int32),
    Some(IotType::Double),
    Some(IotType::Text),
];

fuzz_target!(|data: &[u8]| {
    let mut tok = Tokenizer::new(data);
    let mut last = 0;
    let mut first = true;
    while let Ok(Some(rec)) = tok.next_record() {
        assert!(rec.line >= last, "line numbers went back");
        last = rec.line;
        if first {
            let _ = Header::parse(&rec.cells);
            first = false;
        }
        for (i, cell) in rec.cells.iter().enumerate() {
            for unit in [TimeUnit::Millis, TimeUnit::Nanos] {
                let _ = parse_time(&cell.text, unit);
            }
            let _ = parse_value(cell, TYPES[i % TYPES.len()]);
            let _ = path_nodes(&cell.text);
        }
        // Quoting every cell (escaping quotes and backslashes) reads back the same texts.
        let line: Vec<String> = rec
            .cells
            .iter()
            .map(|c| format!("\"{}\"", c.text.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let again = line.join(",") + "\n";
        let mut t2 = Tokenizer::new(again.as_bytes());
        match t2.next_record() {
            Ok(Some(r2)) => {
                let a: Vec<&str> = rec.cells.iter().map(|c| c.text.as_str()).collect();
                let b: Vec<&str> = r2.cells.iter().map(|c| c.text.as_str()).collect();
                assert_eq!(a, b, "re-quoted record reads differently");
            }
            other => panic!("re-quoted record not read: {other:?}"),
        }
    }
});
