//! `tsmigrate status` and `tsmigrate runs`: what the ledger says about the plan — per
//! stream, partitions and rows, failures, the last sync and verify, the lag; and every run —
//! read without taking the plan (a run may be going).

use std::sync::Arc;

use serde::Serialize;
use tsmigrate_core::{Error, Ledger, PartitionState, Plan, Source};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{now_us, EngineError};

use crate::args::ViewArgs;
use crate::connectors::{open_sink, open_source};
use crate::exit::{self, fail};
use crate::output::{newest_text, time_text};
use crate::plan_setup::{load_plan, plan_id};

/// One stream in `status`.
#[derive(Serialize)]
struct StreamStatus {
    stream: String,
    table: String,
    partitions_total: u64,
    partitions_done: u64,
    partitions_pending: u64,
    partitions_running: u64,
    partitions_failed: u64,
    rows: u64,
    /// Rows the committed partitions rejected (listed in the stream's rejects file).
    rows_rejected: u64,
    planned_at: String,
    horizon: Option<String>,
    last_sync_at: Option<String>,
    newest_row: Option<String>,
    /// True when the newest row is stamped after now (a device clock ahead).
    newest_in_future: bool,
    /// Seconds from the newest row to now (negative when it is in the future).
    lag_seconds: Option<f64>,
    failed: Vec<FailedPartition>,
    /// The last `verify` of the stream.
    last_verified: Option<tsmigrate_core::VerificationRecord>,
}

#[derive(Serialize)]
struct FailedPartition {
    id: String,
    error: Option<String>,
    attempts: u32,
}

#[derive(Serialize)]
struct Status {
    plan_id: String,
    ledger: String,
    streams: Vec<StreamStatus>,
    never_run: Vec<String>,
    /// The latest sync round, when it failed: the next round reads again what it did not
    /// commit.
    last_sync_failed: Option<tsmigrate_core::RunRecord>,
}

/// Opens the plan's ledger for reading, without taking the plan's lock (a run may be going).
/// A plan with its ledger and source.
type Reader = (Plan, Arc<dyn Ledger>, Arc<dyn Source>);

/// Loads the plan and opens its ledger for reading, without taking the plan's lock (a run
/// may be going); `Err` is the exit code, the error already printed.
fn reader(path: &std::path::Path) -> Result<Reader, u8> {
    let plan = load_plan(path).map_err(|e| fail(&e))?;
    let (source, sink) = match (open_source(&plan.source), open_sink(&plan.target)) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return Err(fail(&e.into())),
    };
    match sink.ledger(&plan_id(&plan, path), &plan.ledger) {
        Ok(Some(l)) => Ok((plan, l, source)),
        Ok(None) => Err(fail(
            &Error::Unsupported(format!("the target ({}) keeps no ledger", sink.describe())).into(),
        )),
        Err(e) => Err(fail(&e.into())),
    }
}

/// Turns "the ledger tables do not exist" into a clear message.
fn no_ledger(e: Error, plan: &str) -> EngineError {
    let text = e.to_string();
    if text.contains("42P01") || text.contains("3F000") {
        Error::NotFound(format!(
            "no ledger for this plan in the target: `tsmigrate run {plan}` has not been run yet"
        ))
        .into()
    } else {
        e.into()
    }
}

/// `tsmigrate status`.
pub async fn status(args: ViewArgs) -> u8 {
    let (plan, ledger, _source) = match reader(&args.plan) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let plan_text = args.plan.display().to_string();
    let mut out = Status {
        plan_id: plan_id(&plan, &args.plan),
        ledger: ledger.describe(),
        streams: Vec::new(),
        never_run: Vec::new(),
        last_sync_failed: last_failed_sync(ledger.as_ref()).await,
    };
    // Ledgers written before verify existed have no verifications: nothing to show.
    let verifications = ledger.verifications().await.unwrap_or_default();
    for spec in &plan.streams {
        let st = match ledger.stream(&spec.name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                out.never_run.push(spec.name.clone());
                continue;
            }
            Err(e) => return fail(&no_ledger(e, &plan_text)),
        };
        let count = |state| st.partitions.iter().filter(|p| p.state == state).count() as u64;
        let newest = st.newest;
        out.streams.push(StreamStatus {
            stream: st.stream.clone(),
            table: st.table.clone(),
            partitions_total: st.partitions.len() as u64,
            partitions_done: count(PartitionState::Done),
            partitions_pending: count(PartitionState::Pending),
            partitions_running: count(PartitionState::Running),
            partitions_failed: count(PartitionState::Failed),
            rows: st
                .partitions
                .iter()
                .filter(|p| p.state == PartitionState::Done)
                .map(|p| p.rows)
                .sum(),
            rows_rejected: st
                .partitions
                .iter()
                .filter(|p| p.state == PartitionState::Done)
                .map(|p| p.rejected)
                .sum(),
            planned_at: st.planned_at.clone(),
            horizon: st.horizon_us.map(time_text),
            last_sync_at: st.last_sync_at.clone(),
            last_verified: verifications
                .iter()
                .find(|v| v.stream == st.stream)
                .cloned(),
            newest_row: newest.map(time_text),
            newest_in_future: newest.is_some_and(|n| n > now_us()),
            lag_seconds: newest.map(|n| (now_us() - n) as f64 / 1e6),
            failed: st
                .partitions
                .iter()
                .filter(|p| p.state == PartitionState::Failed)
                .map(|p| FailedPartition {
                    id: p.partition.id.clone(),
                    error: p.error.clone(),
                    attempts: p.attempts,
                })
                .collect(),
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return exit::OK;
    }
    println!("plan {:?} — ledger in {}", out.plan_id, out.ledger);
    for s in &out.streams {
        let state = if s.partitions_done == s.partitions_total {
            "complete".to_string()
        } else if s.partitions_running > 0 {
            format!("{} running (or interrupted)", s.partitions_running)
        } else {
            "incomplete".to_string()
        };
        println!(
            "{} → {}: {}/{} partitions done, {} rows{}; {state}",
            s.stream,
            s.table,
            s.partitions_done,
            s.partitions_total,
            thousands(s.rows),
            if s.rows_rejected > 0 {
                format!(", {} rejected", thousands(s.rows_rejected))
            } else {
                String::new()
            }
        );
        println!(
            "  planned {}, data up to {}; last sync: {}",
            s.planned_at,
            s.horizon.as_deref().unwrap_or("(no time bound)"),
            s.last_sync_at.as_deref().unwrap_or("never")
        );
        if let Some(l) = s.lag_seconds {
            let us = (l * 1e6) as i64;
            println!(
                "  {}",
                newest_text(now_us() - us).replacen("newest row", "newest row copied:", 1)
            );
        }
        if let Some(v) = &s.last_verified {
            let result = if v.equal {
                "equal".to_string()
            } else {
                format!(
                    "{} differences ({} missing, {} extra, {} different)",
                    thousands(v.missing + v.extra + v.different),
                    thousands(v.missing),
                    thousands(v.extra),
                    thousands(v.different)
                )
            };
            println!(
                "  last verified {}: {result} ({} source rows, {} target rows; {})",
                v.verified_at.as_deref().unwrap_or("?"),
                thousands(v.source_rows),
                thousands(v.target_rows),
                v.window
            );
        } else {
            println!("  never verified (`tsmigrate verify` compares source and target)");
        }
        if s.partitions_pending > 0 {
            println!("  {} partition(s) pending", s.partitions_pending);
        }
        for f in &s.failed {
            println!(
                "  FAILED partition {} after {} attempt(s): {}",
                f.id,
                f.attempts,
                f.error.as_deref().unwrap_or("(no error recorded)")
            );
        }
    }
    for n in &out.never_run {
        println!("{n}: never run");
    }
    if let Some(failed) = &out.last_sync_failed {
        println!(
            "last sync round (run {}, {}) FAILED: {}\n  the next `tsmigrate sync` reads again what it did not commit",
            failed.id,
            failed.started_at,
            failed.error.as_deref().unwrap_or("(no error recorded)").lines().next().unwrap_or("")
        );
    }
    exit::OK
}

/// The latest sync run, when it failed (or was interrupted) after the last successful one.
async fn last_failed_sync(ledger: &dyn Ledger) -> Option<tsmigrate_core::RunRecord> {
    let runs = ledger.runs().await.ok()?;
    let last = runs.into_iter().rev().find(|r| r.command == "sync")?;
    (last.state == "failed" || last.state == "interrupted").then_some(last)
}

/// `tsmigrate runs`.
pub async fn runs(args: ViewArgs) -> u8 {
    let (_, ledger, _) = match reader(&args.plan) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let runs = match ledger.runs().await {
        Ok(r) => r,
        Err(e) => return fail(&no_ledger(e, &args.plan.display().to_string())),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "runs": runs })).unwrap_or_default()
        );
        return exit::OK;
    }
    println!(
        "{:>5}  {:<8}  {:<12}  {:<24}  {:>12}  {:>10}  write",
        "run", "command", "state", "started", "rows", "partitions"
    );
    for r in &runs {
        println!(
            "{:>5}  {:<8}  {:<12}  {:<24}  {:>12}  {:>10}  {}",
            r.id,
            r.command,
            r.state,
            r.started_at,
            thousands(r.rows),
            r.partitions,
            r.write_modes.join(",")
        );
        if let Some(e) = &r.error {
            println!("       error: {}", e.lines().next().unwrap_or(""));
        }
    }
    exit::OK
}
