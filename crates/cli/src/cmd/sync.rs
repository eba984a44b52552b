//! `tsmigrate sync`: what is new since the last run or sync copied, once or every interval
//! with `--follow`, a line per stream and round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tsmigrate_core::{parse_duration, Error, Ledger, Plan};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{
    now_us, Cancel, EngineError, EngineOptions, Events, Migration, Outcome, SyncRound,
};

use crate::args::SyncArgs;
use crate::events::CliEvents;
use crate::exit::{self, fail};
use crate::output::{newest_text, newest_us, print_stream_notes, time_text, write_report};
use crate::plan_setup::{confirm_production, engine_options, on_ctrl_c, open_migration, plan_id};

/// `--overlap` and `--every`, from the command line or the plan's `[sync]`.
fn intervals(args: &SyncArgs, plan: &Plan) -> Result<(Duration, Duration), EngineError> {
    let overlap = parse_duration(
        args.overlap.as_deref().unwrap_or(&plan.sync.overlap),
        "--overlap",
    )?;
    let every = parse_duration(args.every.as_deref().unwrap_or(&plan.sync.every), "--every")?;
    if every.is_zero() {
        return Err(Error::Plan("--every must be longer than 0s".into()).into());
    }
    Ok((overlap, every))
}

/// `tsmigrate sync`.
pub async fn run(args: SyncArgs) -> u8 {
    let mut m = match open_migration(&args.plan, args.work.compress) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let (overlap, every) = match intervals(&args, m.plan()) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let id = plan_id(m.plan(), &args.plan);
    let events: Arc<dyn Events> = Arc::new(CliEvents::quiet(id.clone()));
    let base = match engine_options(m.plan(), &args.work, (None, None), events.clone()) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    if let Err(code) = confirm_production(m.plan(), &args.work, m.sink().as_ref()) {
        return code;
    }
    if let Err(e) = m.open_ledger(&id, &base.retry, events.as_ref()).await {
        return fail(&e);
    }
    if m.ledger().is_none() {
        let e = Error::Unsupported(format!(
            "sync needs a ledger, and the target ({}) keeps none",
            m.sink().describe()
        ));
        return fail(&e.into());
    }
    if let Err(e) = m.setup_before(&base).await {
        return fail(&e);
    }
    let cancel = Cancel::new();
    let ctrl_c = on_ctrl_c(
        &cancel,
        "stopping the sync (partitions in flight are rolled back)…",
    );
    let code = rounds(&m, &args, &base, overlap, every, &cancel).await;
    ctrl_c.abort();
    code
}

/// Sync rounds until one fails (without `--follow`), `--rounds` ran, or Ctrl-C; the exit
/// code of the last.
async fn rounds(
    m: &Migration,
    args: &SyncArgs,
    base: &EngineOptions,
    overlap: Duration,
    every: Duration,
    cancel: &Cancel,
) -> u8 {
    let mut round = 0u64;
    loop {
        round += 1;
        let t0 = Instant::now();
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
        let sync = SyncRound {
            overlap,
            horizon_us: now_us(),
        };
        let outcome = m.sync_round(base.clone(), sync, round_cancel).await;
        link.abort();
        let code = match outcome {
            Ok(o) => match round_done(m, args, round, o).await {
                Ok(code) => code,
                Err(code) => return code,
            },
            Err(e) if args.follow && !matches!(e, EngineError::Core(Error::Plan(_))) => {
                eprintln!("error: sync round {round} failed: {e}\nretrying at the next interval");
                exit::FAILURE
            }
            Err(e) => return fail(&e),
        };
        if !args.follow || args.rounds.is_some_and(|n| round >= n) || cancel.is_cancelled() {
            return code;
        }
        let wait = every.saturating_sub(t0.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = cancel.cancelled() => {
                eprintln!("sync stopped between rounds; nothing was in flight");
                return exit::OK;
            }
        }
    }
}

/// Prints a finished round; `Ok(code)` to go on (with `--follow`), `Err(code)` to stop.
async fn round_done(m: &Migration, args: &SyncArgs, round: u64, o: Outcome) -> Result<u8, u8> {
    let Some(ledger) = m.ledger() else {
        return Err(exit::FAILURE);
    };
    let Outcome {
        report: rep,
        result,
        ..
    } = o;
    for s in &rep.streams {
        let line = round_line(ledger.as_ref(), round, &rep, s, result.is_ok()).await;
        println!("{line}");
    }
    print_stream_notes(&rep);
    let mut code = exit::OK;
    if let Some(path) = &args.work.report {
        if let Err(c) = write_report(&rep, path, result.is_ok()) {
            code = c;
        }
    }
    match result {
        Ok(()) => Ok(code),
        Err(EngineError::Interrupted) => {
            eprintln!(
                "sync stopped; the next `tsmigrate sync` continues from the last committed partition"
            );
            Err(exit::INTERRUPTED)
        }
        Err(e) if args.follow => {
            eprintln!(
                "error: sync round {round} failed: {e}\nthe next round retries what this one did not commit"
            );
            Ok(exit::FAILURE)
        }
        Err(e) => Err(fail(&e)),
    }
}

/// A stream's line after a round: rows copied, and how far the target is complete.
async fn round_line(
    ledger: &dyn Ledger,
    round: u64,
    rep: &tsmigrate_engine::RunReport,
    s: &tsmigrate_engine::StreamReport,
    ok: bool,
) -> String {
    let newest = newest_us(ledger, &s.name)
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
    if !ok {
        return format!("{head}; FAILED: the round is not complete, the next round reads again what this one did not commit");
    }
    let horizon = ledger
        .stream(&s.name)
        .await
        .ok()
        .flatten()
        .and_then(|st| st.horizon_us)
        .map(time_text)
        .unwrap_or_default();
    format!("{head}; complete up to {horizon}{newest}")
}
