//! What the commands print beside the engine's events: the summary's notes, a dry run's
//! preview, estimates and times in words, and the JSON reports.

use std::path::Path;

use tsmigrate_core::Ledger;
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{now_us, RunReport};

use crate::exit;

/// Prints rejects, lossy conversions, rolled-back rows and compression per stream.
pub fn print_stream_notes(rep: &RunReport) {
    for s in &rep.streams {
        for n in &s.notes {
            println!("{}: note: {n}", s.name);
        }
        if let Some(c) = &s.compression {
            println!(
                "{}: hypertable {} compressed: {} of {} chunk(s), {} before, {} after ({:.1}% saved)",
                s.name,
                c.table,
                c.chunks_compressed,
                c.chunks_total,
                tsmigrate_core::human::bytes(c.bytes_before),
                tsmigrate_core::human::bytes(c.bytes_after),
                c.saved() * 100.0
            );
        }
        if let Some(f) = &s.rejects_file {
            println!(
                "{}: {} row(s) rejected, listed in {f}",
                s.name,
                thousands(s.rows_rejected)
            );
        }
        for (kind, n) in &s.lossy_conversions {
            println!(
                "{}: {} lossy conversion(s) of kind {kind}, allowed by the plan",
                s.name,
                thousands(*n)
            );
        }
        if s.rows_rolled_back > 0 {
            println!(
                "{}: {} row(s) of unfinished partitions were rolled back",
                s.name,
                thousands(s.rows_rolled_back)
            );
        }
        if s.retries > 0 {
            println!(
                "{}: {} partition attempt(s) retried after transient errors",
                s.name, s.retries
            );
        }
    }
}

/// Writes the JSON report; `Err(exit code)` when that fails and the run had succeeded.
pub fn write_report(rep: &impl serde::Serialize, path: &Path, ok: bool) -> Result<(), u8> {
    let json =
        serde_json::to_string_pretty(rep).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    if let Err(e) = std::fs::write(path, json + "\n") {
        eprintln!("error: cannot write the report {}: {e}", path.display());
        if ok {
            return Err(exit::FAILURE);
        }
    }
    Ok(())
}

pub fn print_dry_run(rep: &RunReport) {
    for s in &rep.streams {
        println!("stream {} → {}", s.name, s.table);
        if let Some(ddl) = &s.created_table {
            println!("  would create: {ddl}");
        }
        for n in &s.notes {
            println!("  note: {n}");
        }
        println!(
            "  would write {} row(s), reject {} of {} read",
            thousands(s.rows_written),
            thousands(s.rows_rejected),
            thousands(s.rows_read)
        );
        if !s.preview.is_empty() {
            println!("  first rows: ({})", s.columns.join(", "));
            for r in &s.preview {
                println!("    ({})", r.join(", "));
            }
        }
        for r in &s.sample_rejects {
            println!("  would reject {r}");
        }
    }
    println!();
}

/// RFC 3339 text of a time in µs since the epoch.
pub fn time_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| us.to_string())
}

/// The newest row of a stream the ledger records (µs; future-stamped rows included).
pub async fn newest_us(ledger: &dyn Ledger, stream: &str) -> Option<i64> {
    ledger.stream(stream).await.ok()??.newest
}

/// "newest row …, lag …" in words: a row stamped ahead of now says so instead of a negative
/// lag.
pub fn newest_text(newest: i64) -> String {
    let now = now_us();
    if newest > now {
        format!(
            "newest row {} — {} in the future (a device clock ahead?)",
            time_text(newest),
            tsmigrate_core::human::duration_us(newest - now)
        )
    } else {
        format!(
            "newest row {} (lag {})",
            time_text(newest),
            tsmigrate_core::human::duration_us(now - newest)
        )
    }
}

/// "~N rows" for partitions with estimates; "rows unknown until read" when the source could
/// not estimate any (a backup file: its rows are counted as they are read).
pub fn estimate(partitions: &[tsmigrate_core::Partition]) -> String {
    if partitions.iter().all(|p| p.estimated_rows.is_none()) && !partitions.is_empty() {
        return "rows unknown until read".to_string();
    }
    let est: u64 = partitions.iter().filter_map(|p| p.estimated_rows).sum();
    format!("~{} rows", thousands(est))
}
