//! The subcommands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{Error, Plan, ReadOptions, TimeUnit, ValueRef};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{
    execute, prepare, report, run_report, Cancel, EngineError, EngineOptions, RunReport,
};

use crate::connectors::{open_sink, open_source};
use crate::exit;
use crate::progress::Progress;
use crate::{CheckArgs, RunArgs};

/// Exit code for a core error: plan and mapping problems are usage errors.
fn code_of(e: &EngineError) -> u8 {
    match e {
        EngineError::Core(Error::Plan(_) | Error::Mapping { .. }) => exit::USAGE,
        EngineError::TooManyRejects(_) => exit::REJECTS,
        EngineError::Interrupted => exit::INTERRUPTED,
        _ => exit::FAILURE,
    }
}

fn fail(e: &EngineError) -> u8 {
    eprintln!("error: {e}");
    code_of(e)
}

fn load_plan(path: &Path) -> Result<Plan, EngineError> {
    Plan::load(path)
        .map_err(|e| match e {
            Error::Io { path, source } => {
                Error::Plan(format!("cannot read the plan {path}: {source}"))
            }
            other => other,
        })
        .map_err(EngineError::from)
}

fn now_rfc3339() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    value_to_string(ValueRef::Timestamp(ms, TimeUnit::Millis))
}

/// `tsmigrate run`.
pub async fn run(args: RunArgs) -> u8 {
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let opts = EngineOptions {
        jobs: args
            .jobs
            .or(plan.run.jobs)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            })
            .max(1),
        dry_run: args.dry_run,
        max_rejects: args.max_rejects.unwrap_or(plan.run.max_rejects),
        rejects_dir: args
            .rejects_dir
            .clone()
            .or_else(|| plan.run.rejects_dir.clone())
            .unwrap_or_else(|| PathBuf::from(".")),
        read: ReadOptions {
            batch_rows: args.batch_rows.unwrap_or(plan.run.batch_rows).max(1),
            partition_rows: args
                .partition_rows
                .unwrap_or(plan.run.partition_rows)
                .max(1),
        },
        limit: args.limit,
        only_streams: args.streams.clone(),
        preview_rows: args.preview,
    };
    if args.limit == Some(0) {
        return fail(&Error::Plan("--limit must be at least 1".into()).into());
    }
    if !opts.rejects_dir.is_dir() {
        return fail(
            &Error::Plan(format!(
                "rejects directory {} does not exist",
                opts.rejects_dir.display()
            ))
            .into(),
        );
    }
    let started_at = now_rfc3339();
    let t0 = Instant::now();
    let (source, sink) = match (open_source(&plan.source), open_sink(&plan.target)) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return fail(&e.into()),
    };
    let streams = match prepare(&plan, source.as_ref(), sink.as_ref(), &opts).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if opts.dry_run {
        eprintln!("dry run: reading and mapping everything, writing nothing");
    }
    for s in &streams {
        eprintln!(
            "{}: {} partition(s), ~{} rows → {}",
            s.spec.name,
            s.partitions.len(),
            thousands(s.partitions.iter().filter_map(|p| p.estimated_rows).sum()),
            s.target.table
        );
    }
    let cancel = Cancel::new();
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: rolling back the partitions in flight…");
                cancel.cancel();
            }
        })
    };
    let progress = Progress::start(streams.clone(), args.progress);
    let result = execute(&streams, source.clone(), sink.clone(), &opts, cancel).await;
    progress.stop().await;
    ctrl_c.abort();
    let mut rep: RunReport = run_report(
        &args.plan.display().to_string(),
        opts.dry_run,
        report(&streams, opts.dry_run),
        t0.elapsed().as_secs_f64(),
        started_at,
    );
    if let Err(e) = &result {
        rep.status = match e {
            EngineError::TooManyRejects(_) => "rejects",
            EngineError::Interrupted => "interrupted",
            _ => "failed",
        }
        .into();
        rep.error = Some(e.to_string());
    }
    if opts.dry_run {
        print_dry_run(&rep);
    }
    println!("{}", rep.summary_table().trim_end());
    for s in &rep.streams {
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
    }
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&rep)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("error: cannot write the report {}: {e}", path.display());
            if result.is_ok() {
                return exit::FAILURE;
            }
        }
    }
    match result {
        Ok(()) => exit::OK,
        Err(e) => fail(&e),
    }
}

fn print_dry_run(rep: &RunReport) {
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

/// `tsmigrate check`.
pub async fn check(args: CheckArgs) -> u8 {
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let (source, sink) = match (open_source(&plan.source), open_sink(&plan.target)) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return fail(&e.into()),
    };
    let mut ok = true;
    for (label, facts) in [
        (
            format!("source: {}", source.describe()),
            source.check().await,
        ),
        (format!("target: {}", sink.describe()), sink.check().await),
    ] {
        println!("{label}");
        match facts {
            Ok(lines) => lines.iter().for_each(|l| println!("  ok  {l}")),
            Err(e) => {
                println!("  FAILED  {e}");
                ok = false;
            }
        }
    }
    if !ok {
        eprintln!("error: check failed");
        return exit::FAILURE;
    }
    let opts = EngineOptions {
        jobs: 1,
        dry_run: true,
        max_rejects: 0,
        rejects_dir: PathBuf::from("."),
        read: ReadOptions {
            batch_rows: plan.run.batch_rows,
            partition_rows: plan.run.partition_rows,
        },
        limit: None,
        only_streams: args.streams.clone(),
        preview_rows: 0,
    };
    let streams: Vec<Arc<_>> = match prepare(&plan, source.as_ref(), sink.as_ref(), &opts).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    for s in &streams {
        let est: u64 = s.partitions.iter().filter_map(|p| p.estimated_rows).sum();
        println!(
            "stream {}: {} → {}: {} partition(s), ~{} rows",
            s.spec.name,
            s.spec.source_stream(),
            s.target.table,
            s.partitions.len(),
            thousands(est)
        );
        for n in s.info.notes.iter().chain(&s.target.notes) {
            println!("  note: {n}");
        }
        match &s.target.created {
            Some(ddl) => println!("  the table will be created: {ddl}"),
            None => println!("  the table exists and fits the mapping"),
        }
    }
    println!("check passed");
    exit::OK
}
