//! The subcommands built on the ledger: `sync`, `status`, `runs` and `rollback`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tsmigrate_core::{parse_duration, Error, Ledger, PartitionState, Plan, SetupPhase, Source};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{execute, now_us, report, run_report, Cancel, EngineError, SyncRound};

use crate::commands::{
    begin_run, confirm, confirm_production, engine_options, fail, load_plan, now_rfc3339,
    on_ctrl_c, open_ledger, plan_id, prepare_retrying, print_stream_notes, record_end, setup,
    write_report,
};
use crate::connectors::{open_sink, open_source, open_target};
use crate::exit;
use crate::{RollbackArgs, SyncArgs, ViewArgs};

/// RFC 3339 text of a time in µs since the epoch.
fn time_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| us.to_string())
}

/// The newest row of a stream the ledger records (µs; future-stamped rows included).
async fn newest_us(ledger: &dyn Ledger, stream: &str) -> Option<i64> {
    ledger.stream(stream).await.ok()??.newest
}

/// "newest row …, lag …" in words: a row stamped ahead of now says so instead of a negative
/// lag.
fn newest_text(newest: i64) -> String {
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

/// `tsmigrate sync`.
pub async fn sync(args: SyncArgs) -> u8 {
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let durations = (
        parse_duration(
            args.overlap.as_deref().unwrap_or(&plan.sync.overlap),
            "--overlap",
        ),
        parse_duration(args.every.as_deref().unwrap_or(&plan.sync.every), "--every"),
    );
    let (overlap, every) = match durations {
        (Ok(o), Ok(e)) if !e.is_zero() => (o, e),
        (Err(e), _) | (_, Err(e)) => return fail(&e.into()),
        _ => return fail(&Error::Plan("--every must be longer than 0s".into()).into()),
    };
    let mut base = match engine_options(&plan, &args.work, None, None) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let (source, sink) = match (
        open_source(&plan.source),
        open_target(&plan, args.work.compress),
    ) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return fail(&e.into()),
    };
    if let Err(code) = confirm_production(&plan, &args.work, sink.as_ref()) {
        return code;
    }
    let ledger = match open_ledger(&plan, &args.plan, sink.as_ref()).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return fail(
                &Error::Unsupported(format!(
                    "sync needs a ledger, and the target ({}) keeps none",
                    sink.describe()
                ))
                .into(),
            )
        }
        Err(e) => return fail(&e),
    };
    base.ledger = Some(ledger.clone());
    if let Err(e) = setup(sink.as_ref(), SetupPhase::Before, false).await {
        return fail(&e);
    }
    let cancel = Cancel::new();
    let ctrl_c = on_ctrl_c(
        &cancel,
        "stopping the sync (partitions in flight are rolled back)…",
    );
    let mut round = 0u64;
    let mut code;
    loop {
        round += 1;
        let t0 = Instant::now();
        let started_at = now_rfc3339();
        code = exit::OK;
        let mut opts = base.clone();
        opts.sync = Some(SyncRound {
            overlap,
            horizon_us: now_us(),
        });
        let result: Result<_, EngineError> = async {
            let id = begin_run(&plan, ledger.as_ref(), "sync").await?;
            opts.run_id = Some(id);
            let streams = match prepare_retrying(&plan, source.as_ref(), sink.as_ref(), &opts).await
            {
                Ok(s) => s,
                Err(e) => {
                    record_end(Some(&ledger), Some(id), Some(&e)).await;
                    return Err(e);
                }
            };
            // A round's own flag: a failed partition stops its round, not the following ones;
            // Ctrl-C (the outer flag) stops both.
            let round_cancel = Cancel::new();
            let link = {
                let (outer, inner) = (cancel.clone(), round_cancel.clone());
                tokio::spawn(async move {
                    outer.cancelled().await;
                    inner.cancel();
                })
            };
            let r = execute(&streams, source.clone(), sink.clone(), &opts, round_cancel).await;
            link.abort();
            record_end(Some(&ledger), Some(id), r.as_ref().err()).await;
            if r.is_ok() {
                for s in &streams {
                    ledger.mark_synced(&s.spec.name).await?;
                }
            }
            Ok((streams, r))
        }
        .await;
        match result {
            Ok((streams, r)) => {
                let rep = run_report(
                    &args.plan.display().to_string(),
                    &opts,
                    report(&streams, false),
                    t0.elapsed().as_secs_f64(),
                    started_at,
                );
                for s in &rep.streams {
                    let newest = newest_us(ledger.as_ref(), &s.name)
                        .await
                        .map(|n| format!("; {}", newest_text(n)))
                        .unwrap_or_default();
                    let head = format!(
                        "sync round {round} (run {}): {}: {} new row(s) copied, {} already present (re-read in the overlap), {} of {} partition(s) in {:.1}s",
                        rep.run_id.unwrap_or(0),
                        s.name,
                        thousands(s.rows_written),
                        thousands(s.rows_skipped),
                        s.partitions_done,
                        s.partitions,
                        rep.seconds,
                    );
                    if r.is_ok() {
                        let horizon = ledger
                            .stream(&s.name)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|st| st.horizon_us)
                            .map(time_text)
                            .unwrap_or_default();
                        println!("{head}; complete up to {horizon}{newest}");
                    } else {
                        println!("{head}; FAILED: the round is not complete, the next round reads again what this one did not commit");
                    }
                }
                print_stream_notes(&rep);
                if let Some(path) = &args.work.report {
                    if let Err(c) = write_report(&rep, path, r.is_ok()) {
                        code = c;
                    }
                }
                match r {
                    Ok(()) => {}
                    Err(EngineError::Interrupted) => {
                        eprintln!("sync stopped; the next `tsmigrate sync` continues from the last committed partition");
                        code = exit::INTERRUPTED;
                        break;
                    }
                    Err(e) if args.follow => {
                        eprintln!("error: sync round {round} failed: {e}\nthe next round retries what this one did not commit");
                        code = exit::FAILURE;
                    }
                    Err(e) => {
                        code = fail(&e);
                        break;
                    }
                }
            }
            Err(e) if args.follow && !matches!(e, EngineError::Core(Error::Plan(_))) => {
                eprintln!("error: sync round {round} failed: {e}\nretrying at the next interval");
                code = exit::FAILURE;
            }
            Err(e) => {
                code = fail(&e);
                break;
            }
        }
        if !args.follow || args.rounds.is_some_and(|n| round >= n) || cancel.is_cancelled() {
            break;
        }
        let wait = every.saturating_sub(t0.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = cancel.cancelled() => {
                eprintln!("sync stopped between rounds; nothing was in flight");
                code = exit::OK;
                break;
            }
        }
    }
    ctrl_c.abort();
    code
}

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

/// `tsmigrate rollback`.
pub async fn rollback(args: RollbackArgs) -> u8 {
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let sink = match open_sink(&plan.target) {
        Ok(s) => s,
        Err(e) => return fail(&e.into()),
    };
    let ledger = match open_ledger(&plan, &args.plan, sink.as_ref()).await {
        Ok(Some(l)) => l,
        Ok(None) => return fail(&Error::Unsupported("the target keeps no ledger".into()).into()),
        Err(e) => return fail(&e),
    };
    let runs = match ledger.runs().await {
        Ok(r) => r,
        Err(e) => return fail(&e.into()),
    };
    let Some(run) = runs.iter().find(|r| r.id == args.run) else {
        let ids: Vec<String> = runs.iter().map(|r| r.id.to_string()).collect();
        return fail(
            &Error::Plan(format!(
                "plan {:?} has no run {}; its runs are: {} (see `tsmigrate runs`)",
                plan_id(&plan, &args.plan),
                args.run,
                if ids.is_empty() {
                    "none".into()
                } else {
                    ids.join(", ")
                }
            ))
            .into(),
        );
    };
    if run.command == "rollback" || run.state == "rolled back" {
        return fail(
            &Error::Plan(format!(
                "run {} is a {} that is {}: there is nothing to roll back",
                run.id, run.command, run.state
            ))
            .into(),
        );
    }
    if run.write_modes.iter().any(|m| m == "upsert") && !args.force {
        return fail(&Error::Plan(format!(
            "run {} wrote with write = \"upsert\": rows it updated existed before it, and their earlier values are not kept, \
             so a rollback would delete them instead of restoring them. Pass --force to delete every row the run inserted or updated",
            run.id
        ))
        .into());
    }
    println!(
        "run {} ({}, started {}, {}) wrote {} row(s) in {} partition(s); rollback deletes exactly those rows and marks the partitions pending again.",
        run.id,
        run.command,
        run.started_at,
        run.state,
        thousands(run.rows),
        run.partitions
    );
    if !args.yes && !confirm(&format!("Type yes to roll back run {}:", run.id), "yes") {
        eprintln!("rollback cancelled; nothing was changed");
        return exit::USAGE;
    }
    let id = match begin_run(&plan, ledger.as_ref(), "rollback").await {
        Ok(id) => id,
        Err(e) => return fail(&e),
    };
    match ledger.rollback_run(run.id, id).await {
        Ok(outcome) => {
            let _ = ledger.end_run(id, "done", None).await;
            let deleted: u64 = outcome.deleted.iter().map(|(_, n)| n).sum();
            for (table, n) in &outcome.deleted {
                println!("{table}: {} row(s) deleted", thousands(*n));
            }
            println!(
                "run {} rolled back: {} row(s) deleted, {} partition(s) pending again (run `tsmigrate run` to write them again)",
                run.id,
                thousands(deleted),
                outcome.partitions
            );
            if deleted != outcome.expected {
                eprintln!(
                    "warning: the ledger says run {} wrote {} row(s) but {} were found: rows were deleted or updated since (an UPDATE gives a row a new transaction id, which rollback does not touch)",
                    run.id,
                    thousands(outcome.expected),
                    thousands(deleted)
                );
            }
            exit::OK
        }
        Err(e) => {
            let _ = ledger.end_run(id, "failed", Some(&e.to_string())).await;
            fail(&e.into())
        }
    }
}
