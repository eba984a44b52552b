//! The IoTDB export reader: any bytes through `ExportReader`, the first line through
//! `Header::parse`, every cell through `parse_time`, `read_value` (untyped and every type) and
//! `path_nodes`. Properties: no panic; line numbers strictly increase; a line printed back as
//! IoTDB's exporter prints (Commons CSV with escape `\` and QuoteMode.NONE: `\` `,` CR LF
//! escaped, CRLF after the record) reads back as the same fields; any text, wrapped in one `"`
//! each side as the exporter wraps TEXT, reads back as that text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsmigrate_core::TimeUnit;
use tsmigrate_files::iotdb::{
    parse_time, path_nodes, read_value, split_line, ExportReader, Fields, Header, IotType, Value,
};

const TYPES: [Option<IotType>; 11] = [
    None,
    Some(IotType::Boolean),
    Some(IotType::Int32),
    Some(IotType::Int64),
    Some(IotType::Float),
    Some(IotType::Double),
    Some(IotType::Text),
    Some(IotType::String),
    Some(IotType::Blob),
    Some(IotType::Timestamp),
    Some(IotType::Date),
];

/// A record as Commons CSV prints it for IoTDB (without the line end).
fn print(fields: &Fields) -> String {
    fields
        .iter()
        .map(|f| {
            f.replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('\r', "\\r")
                .replace('\n', "\\n")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn cells(f: &Fields) -> Vec<&str> {
    f.iter().collect()
}

fuzz_target!(|data: &[u8]| {
    let mut lines = ExportReader::new(data);
    let mut last = 0;
    let mut first = true;
    while let Ok(Some(line)) = lines.next_line() {
        assert!(line.number > last, "line numbers must increase");
        last = line.number;
        let _ = lines.raw();
        let Ok(fields) = line.fields else { continue };
        if first {
            let _ = Header::parse(&fields);
            first = false;
        }
        for (i, cell) in fields.iter().enumerate() {
            for unit in [TimeUnit::Millis, TimeUnit::Nanos] {
                let _ = parse_time(cell, unit);
            }
            let _ = read_value(cell, TYPES[i % TYPES.len()], TimeUnit::Micros);
            let _ = read_value(cell, None, TimeUnit::Millis);
            let _ = path_nodes(cell);
            // The exporter's TEXT wrapping loses exactly its two quotes.
            let wrapped = format!("\"{cell}\"");
            match read_value(&wrapped, Some(IotType::Text), TimeUnit::Millis) {
                Ok(Some((Value::Text(t), IotType::Text))) => assert_eq!(t, cell),
                other => panic!("{wrapped:?} read as {other:?}"),
            }
        }
        // Printed back as the exporter prints, the line reads as the same fields.
        let again = print(&fields) + "\r\n";
        match split_line(again.trim_end_matches("\r\n").as_bytes()) {
            Ok(back) => assert_eq!(cells(&back), cells(&fields), "printed {again:?}"),
            Err(e) => panic!("printed {again:?} not read: {e}"),
        }
        // …also through the reader, as a second line (a BOM is only skipped on the first).
        let two = format!("h\r\n{again}");
        let mut reread = ExportReader::new(two.as_bytes());
        let _ = reread.next_line();
        let back = reread.next_line().ok().flatten().map(|l| l.fields);
        let blank = fields.len() == 1 && fields.get(0) == Some("");
        match back {
            Some(Ok(b)) => assert_eq!(cells(&b), cells(&fields), "printed {again:?}"),
            None => assert!(blank, "printed {again:?} not read"),
            Some(Err(e)) => panic!("printed {again:?} not read: {e}"),
        }
    }
});
