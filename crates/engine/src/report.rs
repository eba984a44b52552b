//! The run report: per-stream figures that add up (read = written + skipped + rejected +
//! rolled back),
//! printed as a summary table and saved as JSON with `--report`.

use std::collections::BTreeMap;

use std::sync::Arc;

use serde::Serialize;
use tsmigrate_core::{CompressionSizes, Lossy};

use crate::counters::StreamCounters;
use crate::options::EngineOptions;
use crate::series_rows::{SeriesCounts, SeriesRows};
use crate::stream::PreparedStream;

/// Streams with at most this many series get their rows per series in the printed summary.
pub const SERIES_IN_SUMMARY: usize = 40;

/// Figures of one stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamReport {
    /// Plan stream name.
    pub name: String,
    /// Source stream read.
    pub source_stream: String,
    /// Target table written.
    pub table: String,
    /// Partitions planned.
    pub partitions: u64,
    /// Partitions committed by this run.
    pub partitions_done: u64,
    /// Partitions the ledger already had as done (committed by earlier runs; not read again).
    pub partitions_skipped: u64,
    /// Partitions an earlier run started or failed without committing, redone by this run.
    pub partitions_redone: u64,
    /// Partition attempts retried after transient errors.
    pub retries: u64,
    /// Rows not written because their key already was in the target (`skip`), or
    /// duplicates of a key within a partition (`skip`, `upsert`).
    pub rows_skipped: u64,
    /// Rows committed by earlier runs in the skipped partitions.
    pub rows_before: u64,
    /// Write mode used: `append`, `skip` or `upsert`.
    pub write: String,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Rows committed to the target by this run (in a dry run: rows that would be written).
    pub rows_written: u64,
    /// Rows rejected, with reasons in the rejects file.
    pub rows_rejected: u64,
    /// Values left out because their column or point has no match in a reshaping
    /// (`unmatched = "skip"` of an unpivot or a pivot).
    pub values_unmatched: u64,
    /// Rows read by partitions that were rolled back (failed or interrupted run).
    pub rows_rolled_back: u64,
    /// Bytes sent to the target.
    pub bytes_written: u64,
    /// Wall-clock seconds from the stream's first to its last partition.
    pub seconds: f64,
    /// rows_read / seconds.
    pub rows_per_second: f64,
    /// Lossy conversions performed because the plan allowed them, by kind.
    pub lossy_conversions: BTreeMap<String, u64>,
    /// The rejects file, when rows were rejected.
    pub rejects_file: Option<String>,
    /// The statement that created the target table (or would, in a dry run).
    pub created_table: Option<String>,
    /// Facts about source and target worth knowing.
    pub notes: Vec<String>,
    /// Target column names.
    pub columns: Vec<String>,
    /// The source column rows are counted by in `rows_by_series` (the first series column,
    /// such as `system_id`), when the source names series.
    pub series_column: Option<String>,
    /// Rows read and rejected per value of `series_column`, by this run's committed partitions.
    pub rows_by_series: BTreeMap<String, SeriesRows>,
    /// Dry run only: the first rows that would be written, as text.
    pub preview: Vec<Vec<String>>,
    /// Dry run only: the first rejection reasons.
    pub sample_rejects: Vec<String>,
    /// Sizes before and after compression, when the target compressed the table
    /// (TimescaleDB with `compress`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionSizes>,
}

/// Figures of a whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    /// tsmigrate version.
    pub version: String,
    /// Plan file.
    pub plan: String,
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// The run's id in the ledger (what `rollback --run` takes); `None` without a ledger.
    pub run_id: Option<i64>,
    /// `run` or `sync`.
    pub command: String,
    /// `ok`, `failed`, `rejects` (stopped by --max-rejects) or `interrupted`.
    pub status: String,
    /// The error that stopped the run.
    pub error: Option<String>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// One entry per stream, in plan order.
    pub streams: Vec<StreamReport>,
    /// What the target's setup files did (`[target] before` / `after`), one line per file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
}

/// Formats an integer with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl RunReport {
    /// The summary table printed at the end of a run.
    pub fn summary_table(&self) -> String {
        let header = [
            "stream",
            "partitions",
            "read",
            "written",
            "skipped",
            "rejected",
            "bytes",
            "time",
            "rows/s",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        for s in &self.streams {
            rows.push(vec![
                s.name.clone(),
                format!("{}/{}", s.partitions_done, s.partitions),
                thousands(s.rows_read),
                thousands(s.rows_written),
                thousands(s.rows_skipped),
                thousands(s.rows_rejected),
                tsmigrate_core::human::bytes(s.bytes_written),
                format!("{:.1}s", s.seconds),
                thousands(s.rows_per_second as u64),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (ri, r) in rows.iter().enumerate() {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, v)| {
                    if c == 0 {
                        format!("{v:<w$}", w = widths[c])
                    } else {
                        format!("{v:>w$}", w = widths[c])
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if ri == 0 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
                out.push('\n');
            }
        }
        out
    }
}

impl RunReport {
    /// Rows per series of each stream that counts them (`system_id 1: 158,345 rows`), for
    /// the printed summary; a stream with more than [`SERIES_IN_SUMMARY`] series gets one
    /// line pointing at the JSON report.
    pub fn series_summary(&self) -> String {
        let mut out = String::new();
        for s in &self.streams {
            let Some(col) = &s.series_column else {
                continue;
            };
            if s.rows_by_series.is_empty() {
                continue;
            }
            if s.rows_by_series.len() > SERIES_IN_SUMMARY {
                out.push_str(&format!(
                    "{}: rows of {} values of {col}; per value in the JSON report (--report), rows_by_series\n",
                    s.name,
                    thousands(s.rows_by_series.len() as u64)
                ));
                continue;
            }
            out.push_str(&format!("{}: rows read per {col}\n", s.name));
            for (k, v) in SeriesCounts::ordered(&s.rows_by_series) {
                let rejected = if v.rejected > 0 {
                    format!(" ({} rejected)", thousands(v.rejected))
                } else {
                    String::new()
                };
                out.push_str(&format!("  {col} {k}: {}{rejected}\n", thousands(v.read)));
            }
        }
        out
    }
}

/// Builds the report of the prepared streams from their counters.
pub fn report(streams: &[Arc<PreparedStream>], dry_run: bool) -> Vec<StreamReport> {
    streams
        .iter()
        .map(|s| {
            let c = &s.counters;
            let seconds = c.elapsed().as_secs_f64();
            let rows_read = StreamCounters::get(&c.rows_read);
            let lossy = s.lossy_total.lock().map(|l| l.clone()).unwrap_or_default();
            let mut notes = s.info.notes.clone();
            notes.extend(s.target.notes.iter().cloned());
            let finished = s.finished.lock().map(|f| f.clone()).unwrap_or_default();
            notes.extend(finished.notes);
            let unmatched = StreamCounters::get(&c.values_unmatched);
            if unmatched > 0 {
                notes.push(format!(
                    "{unmatched} value(s) matched no point or column and were left out (unmatched = \"skip\")"
                ));
            }
            StreamReport {
                name: s.spec.name.clone(),
                source_stream: s.spec.source_stream().to_string(),
                table: s.target.table.clone(),
                partitions: s.partitions.len() as u64,
                partitions_done: StreamCounters::get(&c.partitions_done),
                partitions_skipped: s.partitions_skipped,
                partitions_redone: s.partitions_redone,
                retries: StreamCounters::get(&c.retries),
                rows_skipped: StreamCounters::get(&c.rows_skipped),
                values_unmatched: StreamCounters::get(&c.values_unmatched),
                rows_before: s.rows_before,
                write: s.target.write.name().to_string(),
                rows_read,
                rows_written: StreamCounters::get(&c.rows_written),
                rows_rejected: StreamCounters::get(&c.rows_rejected),
                rows_rolled_back: StreamCounters::get(&c.rows_rolled_back),
                bytes_written: StreamCounters::get(&c.bytes_written),
                seconds,
                rows_per_second: if seconds > 0.0 {
                    rows_read as f64 / seconds
                } else {
                    0.0
                },
                lossy_conversions: Lossy::ALL
                    .iter()
                    .filter(|k| lossy.count(**k) > 0)
                    .map(|k| (k.name().to_string(), lossy.count(*k)))
                    .collect(),
                rejects_file: s
                    .rejects_file
                    .lock()
                    .ok()
                    .and_then(|f| f.as_ref().map(|p| p.display().to_string()))
                    .filter(|_| !dry_run),
                created_table: s.target.created.clone(),
                notes,
                columns: s.target.columns.iter().map(|f| f.name.clone()).collect(),
                series_column: s.series_column.clone(),
                rows_by_series: s
                    .series_rows
                    .lock()
                    .map(|r| r.rows.clone())
                    .unwrap_or_default(),
                preview: s.preview.lock().map(|p| p.clone()).unwrap_or_default(),
                sample_rejects: s
                    .sample_rejects
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default(),
                compression: finished.compression,
            }
        })
        .collect()
}

/// Assembles the run report.
pub fn run_report(
    plan: &str,
    opts: &EngineOptions,
    streams: Vec<StreamReport>,
    seconds: f64,
    started_at: String,
) -> RunReport {
    RunReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        plan: plan.to_string(),
        dry_run: opts.dry_run,
        run_id: opts.run_id,
        command: if opts.sync.is_some() { "sync" } else { "run" }.to_string(),
        status: "ok".into(),
        error: None,
        started_at,
        seconds,
        streams,
        setup: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(100), "100");
    }

    #[test]
    fn summary_has_a_row_per_stream() {
        let r = RunReport {
            streams: vec![StreamReport {
                name: "telemetry".into(),
                rows_read: 20_098_071,
                rows_written: 20_098_071,
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = r.summary_table();
        assert!(t.contains("telemetry"));
        assert!(t.contains("20,098,071"));
        assert_eq!(t.lines().count(), 3);
    }
}
