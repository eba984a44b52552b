//! `tsmigrate verify`: compares source and target and prints what differs.

use std::time::Instant;

use tsmigrate_core::{parse_duration, parse_time_us, Error};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::verify::{RowDiff, StreamVerify, VerifyOptions, VerifyReport};
use tsmigrate_engine::{verify_plan, Cancel, EngineError};

use crate::args::VerifyArgs;
use crate::connectors::{open_sink, open_source};
use crate::exit::{self, fail};
use crate::output::write_report;
use crate::plan_setup::{default_jobs, load_plan, on_ctrl_c, plan_id};

fn options(args: &VerifyArgs, plan: &tsmigrate_core::Plan) -> Result<VerifyOptions, EngineError> {
    let since_us = parse_time_us(args.since.as_deref(), "--since")?;
    let until_us = parse_time_us(args.until.as_deref(), "--until")?;
    if let (Some(a), Some(b)) = (since_us, until_us) {
        if a >= b {
            return Err(Error::Plan("--since must be before --until".into()).into());
        }
    }
    let bucket = parse_duration(&args.bucket, "--bucket")?;
    if bucket.is_zero() {
        return Err(Error::Plan("--bucket must be longer than 0s".into()).into());
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
    });
    let partition_rows = args.partition_rows.unwrap_or(plan.run.partition_rows);
    tsmigrate_core::check_run_sizes(args.jobs, plan.run.batch_rows, partition_rows, "--")?;
    Ok(VerifyOptions {
        // Both sides are read at once, and a reader mostly waits for its server: twice the
        // jobs of `run` keeps both servers and the comparison busy (measured in bench/).
        jobs: args.jobs.unwrap_or_else(|| 2 * default_jobs(plan)).max(1),
        batch_rows: plan.run.batch_rows,
        partition_rows,
        only_streams: args.streams.clone(),
        since_us,
        until_us,
        use_horizon: !args.no_horizon,
        bucket_seconds: bucket.as_secs_f64(),
        max_diffs: args.max_diffs,
        sample: args.sample,
        seed,
        ..VerifyOptions::default()
    })
}

/// Warns when the ledger records a run of the plan as running: rows it commits while verify
/// reads show up as missing or extra, and the totals of the two sides do not add up.
async fn warn_of_running(ledger: Option<&dyn tsmigrate_core::Ledger>) {
    let Some(l) = ledger else { return };
    if !l.exists().await.unwrap_or(false) {
        return;
    }
    let Ok(runs) = l.runs().await else { return };
    for r in runs.iter().filter(|r| r.state == "running") {
        eprintln!(
            "warning: {} {} of this plan (started {}) is recorded as running — in progress, or killed without recording its end. \
             Rows it commits while verify reads show as missing or extra; verify again once it finished",
            r.command, r.id, r.started_at
        );
    }
}

fn row_text(cols: &[(String, String)]) -> String {
    cols.iter()
        .map(|(c, v)| format!("{c}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_diff(d: &RowDiff) {
    let dup = if d.duplicate_key {
        " (the source holds this key more than once)"
    } else {
        ""
    };
    println!("    {:<9} {}{dup}", d.kind, row_text(&d.key));
    match (&d.source, &d.target) {
        (Some(s), Some(t)) => {
            for c in &d.columns {
                let sv = s.iter().find(|(n, _)| n == c).map(|(_, v)| v.as_str());
                let tv = t.iter().find(|(n, _)| n == c).map(|(_, v)| v.as_str());
                println!(
                    "              {c}: source {} | target {}",
                    sv.unwrap_or("?"),
                    tv.unwrap_or("?")
                );
            }
        }
        (Some(s), None) => println!("              source: {}", row_text(s)),
        (None, Some(t)) => println!("              target: {}", row_text(t)),
        (None, None) => {}
    }
}

fn print_stream(s: &StreamVerify) {
    let verdict = if s.equal {
        "EQUAL".to_string()
    } else {
        format!("{} DIFFERENCE(S)", thousands(s.differences()))
    };
    println!("{} → {}: {verdict}", s.name, s.table);
    println!(
        "  rows: source {}, target {}; {} bucket(s) compared, {} differed; {} pass(es); {:.1} s ({:.0} rows/s)",
        thousands(s.source_rows),
        thousands(s.target_rows),
        thousands(s.buckets),
        thousands(s.buckets_differing),
        s.passes,
        s.seconds,
        s.rows_per_second
    );
    println!("  compared: {}", s.window);
    if s.differences() > 0 {
        println!(
            "  missing from the target: {}, extra in the target: {}, different values: {}",
            thousands(s.missing),
            thousands(s.extra),
            thousands(s.different)
        );
        for d in &s.diffs {
            print_diff(d);
        }
        if s.diffs_truncated {
            println!(
                "    … {} more (raise --max-diffs to list them)",
                thousands(s.differences() - s.diffs.len() as u64)
            );
        }
    }
    if let Some(sample) = &s.sample {
        println!(
            "  sample (seed {}): {} source row(s) looked up by key: {} equal, {} missing, {} different",
            sample.seed, sample.checked, sample.equal, sample.missing, sample.different
        );
        for d in &sample.diffs {
            print_diff(d);
        }
    }
    for n in &s.notes {
        println!("  note: {n}");
    }
}

/// `tsmigrate verify`.
pub async fn run(args: VerifyArgs) -> u8 {
    let t0 = Instant::now();
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let mut opts = match options(&args, &plan) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let (source, sink) = match (open_source(&plan.source), open_sink(&plan.target)) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return fail(&e.into()),
    };
    let id = plan_id(&plan, &args.plan);
    opts.ledger = match sink.ledger(&id, &plan.ledger) {
        Ok(l) => l,
        Err(e) => return fail(&e.into()),
    };
    eprintln!(
        "verifying plan {id:?}: {} against {}",
        source.describe(),
        sink.describe()
    );
    warn_of_running(opts.ledger.as_deref()).await;
    let cancel = Cancel::new();
    let ctrl_c = on_ctrl_c(&cancel, "stopping verification…");
    let result = verify_plan(&plan, source, sink, &opts, &cancel, print_stream).await;
    ctrl_c.abort();
    let mut report = VerifyReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        plan: args.plan.display().to_string(),
        seconds: t0.elapsed().as_secs_f64(),
        ..VerifyReport::default()
    };
    let code = match result {
        Ok(streams) => {
            let equal = streams.iter().all(|s| s.equal);
            report.status = if equal { "equal" } else { "differences" }.to_string();
            report.streams = streams;
            if equal {
                println!("verify: source and target hold the same rows");
                exit::OK
            } else {
                println!(
                    "verify: differences found (exit code {})",
                    exit::DIFFERENCES
                );
                exit::DIFFERENCES
            }
        }
        Err(e) => {
            report.status = "failed".to_string();
            report.error = Some(e.to_string());
            fail(&e)
        }
    };
    if let Some(path) = &args.report {
        if let Err(c) = write_report(&report, path, code == exit::OK) {
            return c;
        }
    }
    code
}
