//! Manual check of fixture build time.
//!
//! `cargo run -p tsmigrate-testkit --release --example fixture_timing -- [ROWS] [legacy|key_dictionary]`
//!
//! Starts a throwaway cluster, builds a ThingsBoard fixture of about ROWS
//! generated rows (default 2,000,000) with nasty rows on, and prints how long
//! each phase took (statements over half a second, from the server log).

use std::time::Instant;

use tsmigrate_testkit::thingsboard::{create_thingsboard, Dictionary, TbSpec};
use tsmigrate_testkit::{ClusterOptions, PgCluster};

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// Builds the fixture and prints the timings.
fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = match args.next() {
        Some(text) => text.parse()?,
        None => 2_000_000,
    };
    let dictionary = match args.next().as_deref() {
        Some("key_dictionary") => Dictionary::KeyDictionary,
        _ => Dictionary::Legacy,
    };

    let started = Instant::now();
    let cluster = PgCluster::start_with(
        ClusterOptions::default().setting("log_min_duration_statement", "500"),
    )?;
    let cluster_secs = started.elapsed().as_secs_f64();

    let building = Instant::now();
    let spec = TbSpec {
        dictionary,
        rows,
        ..TbSpec::default()
    };
    let fixture = create_thingsboard(&cluster, "thingsboard", &spec)?;
    let build_secs = building.elapsed().as_secs_f64();

    let size = cluster.psql(
        "thingsboard",
        "SELECT pg_size_pretty(pg_database_size(current_database()))",
    )?;
    println!("cluster start: {cluster_secs:.2} s");
    println!(
        "fixture: {} rows in ts_kv ({} generated) in {build_secs:.2} s ({:.0} rows/s), database size {size}",
        fixture.ts_kv_rows,
        fixture.generated_rows,
        fixture.ts_kv_rows as f64 / build_secs
    );
    println!("statements over 0.5 s (from the server log):");
    let log = std::fs::read_to_string(cluster.log_path())?;
    for line in log.lines().filter(|line| line.contains("duration:")) {
        println!("  {}", line.chars().take(160).collect::<String>());
    }
    Ok(())
}
