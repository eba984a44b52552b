use std::sync::Arc;
use std::time::Instant;
use tsmigrate_core::{Field, Schema};
use tsmigrate_pgdump::copy_text::FieldKind;
use tsmigrate_pgdump::*;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let table = std::env::args().nth(2).unwrap();
    let t = Instant::now();
    let dump = Arc::new(Dump::open(std::path::Path::new(&path)).unwrap());
    let def = dump.find_table(&table).unwrap().name.clone();
    let cols = dump.columns_of(&def);
    let mut fields = vec![];
    let mut kinds = vec![];
    for (n, ty) in &cols {
        let (k, d) = FieldKind::for_sql_type(ty);
        fields.push(Field::new(n.clone(), d));
        kinds.push(k);
    }
    let p = Projection {
        schema: Arc::new(Schema::new(fields)),
        kinds,
    };
    let mut rows = 0u64;
    for s in dump.sections_of(&def) {
        rows += read_section(&dump, s, &p, 16384, |_b| true).unwrap();
    }
    let e = t.elapsed().as_secs_f64();
    println!("{rows} rows in {e:.2}s = {:.0} rows/s", rows as f64 / e);
}
