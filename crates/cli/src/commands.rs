//! The subcommands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{
    check_run_sizes, parse_duration, Error, Ledger, Plan, ReadOptions, SetupPhase, Sink, Source,
    TimeUnit, ValueRef,
};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{
    execute, prepare, report, retry_phase, run_report, Cancel, EngineError, EngineOptions,
    PreparedStream, RetryPolicy, RunReport,
};

use crate::connectors::{open_sink, open_source, open_target};
use crate::exit;
use crate::progress::Progress;
use crate::{CheckArgs, RunArgs, WorkArgs};

/// Exit code for a core error: plan and mapping problems are usage errors.
fn code_of(e: &EngineError) -> u8 {
    match e {
        EngineError::Core(Error::Plan(_) | Error::Mapping { .. }) => exit::USAGE,
        EngineError::TooManyRejects(_) => exit::REJECTS,
        EngineError::Interrupted => exit::INTERRUPTED,
        _ => exit::FAILURE,
    }
}

pub fn fail(e: &EngineError) -> u8 {
    eprintln!("error: {e}");
    code_of(e)
}

/// Asks on the terminal for the typed `word`; true when it was typed.
pub fn confirm(question: &str, word: &str) -> bool {
    use std::io::BufRead;
    println!("{question}");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == word
}

/// For a plan marked `production = true`: asks for a typed `YES` before writing into `sink`,
/// unless `--yes`. Returns the exit code to stop with when the answer is anything else.
pub fn confirm_production(plan: &Plan, work: &WorkArgs, sink: &dyn Sink) -> Result<(), u8> {
    if !plan.production || work.yes {
        return Ok(());
    }
    let question = format!(
        "The plan is marked production = true. It will write into {}.\nType YES to go on:",
        sink.describe()
    );
    if confirm(&question, "YES") {
        Ok(())
    } else {
        eprintln!("cancelled; nothing was written (pass --yes to skip this question)");
        Err(exit::USAGE)
    }
}

/// Loads the plan, refuses PostgreSQL table names that cannot be used as written, and sets
/// the stall timeout of PostgreSQL COPYs from `[run] stall_timeout` (`run` and `sync` then
/// apply `--stall-timeout`).
pub fn load_plan(path: &Path) -> Result<Plan, EngineError> {
    let plan = Plan::load(path).map_err(|e| match e {
        Error::Io { path, source } => Error::Plan(format!("cannot read the plan {path}: {source}")),
        other => other,
    })?;
    tsmigrate_postgres::check_plan_names(&plan)?;
    set_stall_timeout(&plan.run.stall_timeout, "run.stall_timeout")?;
    Ok(plan)
}

/// Sets the stall timeout of PostgreSQL COPYs from a duration (`0`: none).
fn set_stall_timeout(text: &str, what: &str) -> Result<(), EngineError> {
    let d = parse_duration(text, what)?;
    tsmigrate_postgres::set_stall_timeout((!d.is_zero()).then_some(d));
    Ok(())
}

pub fn now_rfc3339() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    value_to_string(ValueRef::Timestamp(ms, TimeUnit::Millis))
}

/// The plan's ledger id: `[ledger] id`, else the plan file's name without `.toml`.
pub fn plan_id(plan: &Plan, path: &Path) -> String {
    plan.ledger.id.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".into())
    })
}

/// Partitions processed at once unless the command line says: `[run] jobs`, else the number
/// of CPU cores.
pub fn default_jobs(plan: &Plan) -> usize {
    plan.run.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// The plan's retry policy (`[run] retries`, `retry_delay`, `retry_max_delay`).
pub fn retry_policy(plan: &Plan) -> Result<RetryPolicy, EngineError> {
    let dur = |t: &str, what: &str| parse_duration(t, what).map_err(EngineError::from);
    Ok(RetryPolicy {
        retries: plan.run.retries,
        first_delay: dur(&plan.run.retry_delay, "run.retry_delay")?,
        max_delay: dur(&plan.run.retry_max_delay, "run.retry_max_delay")?,
    })
}

/// Prepares the plan's streams ([`prepare`]), again after a transient failure (a dropped
/// connection while checking or planning) as the plan's retry policy allows.
pub async fn prepare_retrying(
    plan: &Plan,
    source: &dyn Source,
    sink: &dyn Sink,
    opts: &EngineOptions,
) -> Result<Vec<Arc<PreparedStream>>, EngineError> {
    retry_phase(&opts.retry, &Cancel::new(), "preparing the streams", || {
        prepare(plan, source, sink, opts)
    })
    .await
}

/// Builds the engine options from the plan and the command line.
pub fn engine_options(
    plan: &Plan,
    c: &WorkArgs,
    batch_rows: Option<usize>,
    partition_rows: Option<u64>,
) -> Result<EngineOptions, EngineError> {
    let batch_rows = batch_rows.unwrap_or(plan.run.batch_rows);
    let partition_rows = partition_rows.unwrap_or(plan.run.partition_rows);
    check_run_sizes(c.jobs, batch_rows, partition_rows, "--")?;
    if let Some(t) = &c.stall_timeout {
        set_stall_timeout(t, "--stall-timeout")?;
    }
    let opts = EngineOptions {
        jobs: c.jobs.unwrap_or_else(|| default_jobs(plan)).max(1),
        dry_run: false,
        max_rejects: c.max_rejects.unwrap_or(plan.run.max_rejects),
        rejects_dir: c
            .rejects_dir
            .clone()
            .or_else(|| plan.run.rejects_dir.clone())
            .unwrap_or_else(|| PathBuf::from(".")),
        read: ReadOptions {
            align_seconds: None,
            batch_rows,
            partition_rows,
            sync: None,
        },
        limit: None,
        only_streams: c.streams.clone(),
        preview_rows: 0,
        ledger: None,
        run_id: None,
        restart: false,
        sync: None,
        retry: retry_policy(plan)?,
    };
    if !opts.rejects_dir.is_dir() {
        return Err(Error::Plan(format!(
            "rejects directory {} does not exist",
            opts.rejects_dir.display()
        ))
        .into());
    }
    Ok(opts)
}

/// Opens the plan's ledger in the target and takes the plan's lock (again after a transient
/// failure, as the plan's retry policy allows).
pub async fn open_ledger(
    plan: &Plan,
    path: &Path,
    sink: &dyn Sink,
) -> Result<Option<Arc<dyn Ledger>>, EngineError> {
    let ledger = sink.ledger(&plan_id(plan, path), &plan.ledger)?;
    if let Some(l) = &ledger {
        retry_phase(
            &retry_policy(plan)?,
            &Cancel::new(),
            "opening the ledger",
            || async { Ok(l.open().await?) },
        )
        .await?;
    }
    Ok(ledger)
}

/// Records the start of a `command` in the ledger (again after a transient failure).
pub async fn begin_run(
    plan: &Plan,
    ledger: &dyn Ledger,
    command: &str,
) -> Result<i64, EngineError> {
    retry_phase(
        &retry_policy(plan)?,
        &Cancel::new(),
        "recording the run",
        || async { Ok(ledger.begin_run(command).await?) },
    )
    .await
}

/// A Ctrl-C handler that cancels `cancel` (and says what happens).
pub fn on_ctrl_c(cancel: &Cancel, what: &'static str) -> tokio::task::JoinHandle<()> {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: {what}");
            cancel.cancel();
        }
    })
}

/// Records in the ledger how run `run_id` ended: `done` without an error, else `interrupted`
/// or `failed` with the error. A failure to record it is only warned about: the run's own
/// outcome stands.
pub async fn record_end(
    ledger: Option<&Arc<dyn Ledger>>,
    run_id: Option<i64>,
    error: Option<&EngineError>,
) {
    let (Some(l), Some(id)) = (ledger, run_id) else {
        return;
    };
    let (state, error) = match error {
        None => ("done", None),
        Some(EngineError::Interrupted) => ("interrupted", None),
        Some(e) => ("failed", Some(e.to_string())),
    };
    if let Err(e) = l.end_run(id, state, error.as_deref()).await {
        eprintln!("warning: could not record the end of run {id} in the ledger: {e}");
    }
}

/// `tsmigrate run`.
pub async fn run(args: RunArgs) -> u8 {
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if args.limit == Some(0) {
        return fail(&Error::Plan("--limit must be at least 1".into()).into());
    }
    let mut opts = match engine_options(&plan, &args.work, args.batch_rows, args.partition_rows) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    opts.dry_run = args.dry_run;
    opts.limit = args.limit;
    opts.preview_rows = args.preview;
    opts.restart = args.restart;
    let started_at = now_rfc3339();
    let t0 = Instant::now();
    let (source, sink) = match (
        open_source(&plan.source),
        open_target(&plan, args.work.compress),
    ) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return fail(&e.into()),
    };
    if !opts.dry_run {
        if let Err(code) = confirm_production(&plan, &args.work, sink.as_ref()) {
            return code;
        }
        opts.ledger = match open_ledger(&plan, &args.plan, sink.as_ref()).await {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
        if let Some(l) = &opts.ledger {
            opts.run_id = match begin_run(&plan, l.as_ref(), "run").await {
                Ok(id) => Some(id),
                Err(e) => return fail(&e),
            };
        }
    }
    let run_id = opts.run_id;
    let mut setup_lines = match setup(sink.as_ref(), SetupPhase::Before, opts.dry_run).await {
        Ok(l) => l,
        Err(e) => {
            record_end(opts.ledger.as_ref(), run_id, Some(&e)).await;
            return fail(&e);
        }
    };
    let streams = match prepare_retrying(&plan, source.as_ref(), sink.as_ref(), &opts).await {
        Ok(s) => s,
        Err(e) => {
            record_end(opts.ledger.as_ref(), run_id, Some(&e)).await;
            return fail(&e);
        }
    };
    if opts.dry_run {
        eprintln!("dry run: reading and mapping everything, writing nothing (the ledger is not consulted)");
    }
    if let Some(id) = run_id {
        eprintln!("run {id} of plan {:?}", plan_id(&plan, &args.plan));
    }
    for s in &streams {
        let est = estimate(&s.partitions);
        if s.partitions_skipped > 0 || s.partitions_redone > 0 {
            eprintln!(
                "{}: resuming: {} partition(s) already done ({} rows), {} left of which {} redone (started or failed by an earlier run), {est} → {}",
                s.spec.name,
                s.partitions_skipped,
                thousands(s.rows_before),
                s.partitions.len(),
                s.partitions_redone,
                s.target.table
            );
        } else {
            eprintln!(
                "{}: {} partition(s), {est} → {} (write = {})",
                s.spec.name,
                s.partitions.len(),
                s.target.table,
                s.target.write.name()
            );
        }
    }
    if run_id.is_some()
        && streams
            .iter()
            .all(|s| s.partitions.is_empty() && s.partitions_skipped > 0)
    {
        eprintln!(
            "nothing to do: every partition is done. `tsmigrate sync` copies rows added since; `--restart` migrates again from scratch"
        );
    }
    let cancel = Cancel::new();
    let ctrl_c = on_ctrl_c(&cancel, "rolling back the partitions in flight…");
    let progress = Progress::start(streams.clone(), args.progress);
    let mut result = execute(&streams, source.clone(), sink.clone(), &opts, cancel).await;
    progress.stop().await;
    ctrl_c.abort();
    if result.is_ok() {
        match setup(sink.as_ref(), SetupPhase::After, opts.dry_run).await {
            Ok(l) => setup_lines.extend(l),
            Err(e) => result = Err(e),
        }
    }
    record_end(opts.ledger.as_ref(), run_id, result.as_ref().err()).await;
    let mut rep: RunReport = run_report(
        &args.plan.display().to_string(),
        &opts,
        report(&streams, opts.dry_run),
        t0.elapsed().as_secs_f64(),
        started_at,
    );
    rep.setup = setup_lines;
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
    print!("{}", rep.series_summary());
    print_stream_notes(&rep);
    if let Some(path) = &args.work.report {
        if let Err(code) = write_report(&rep, path, result.is_ok()) {
            return code;
        }
    }
    if result.is_err() && run_id.is_some() {
        eprintln!(
            "committed partitions are recorded in the ledger; run `tsmigrate run {}` again to resume where this run stopped",
            args.plan.display()
        );
    }
    match result {
        Ok(()) => exit::OK,
        Err(e) => fail(&e),
    }
}

/// Runs the target's setup files of `phase` ([`Sink::setup`]), printing what was done.
pub async fn setup(
    sink: &dyn Sink,
    phase: SetupPhase,
    dry_run: bool,
) -> Result<Vec<String>, EngineError> {
    let lines = sink.setup(phase, dry_run).await?;
    for l in &lines {
        eprintln!("setup ({}): {l}", phase.name());
    }
    Ok(lines)
}

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
    // The ledger's place names the schema of the setup steps' record. Read (not opened: no
    // lock, nothing created), it tells `check` what this plan wrote already, as it tells `run`.
    // Read after the checks, so an unreachable target costs one connect_timeout, not two.
    let ledger = match sink.ledger(&plan_id(&plan, &args.plan), &plan.ledger) {
        Ok(l) => l,
        Err(e) => return fail(&e.into()),
    };
    let ledger = match ledger {
        Some(l) if l.exists().await.unwrap_or(false) => Some(l),
        _ => None,
    };
    let mut pending_setup = false;
    for phase in [SetupPhase::Before, SetupPhase::After] {
        match sink.setup(phase, true).await {
            Ok(lines) => {
                for l in lines {
                    pending_setup |= phase == SetupPhase::Before && l.contains("not applied yet");
                    println!("setup ({}): {l}", phase.name());
                }
            }
            Err(e) => return fail(&e.into()),
        }
    }
    if pending_setup {
        println!(
            "  note: setup files not applied yet run at the start of `tsmigrate run`; tables they create are reported missing below until then"
        );
    }
    let opts = EngineOptions {
        jobs: 1,
        dry_run: true,
        max_rejects: 0,
        rejects_dir: PathBuf::from("."),
        read: ReadOptions {
            align_seconds: None,
            batch_rows: plan.run.batch_rows,
            partition_rows: plan.run.partition_rows,
            sync: None,
        },
        limit: None,
        only_streams: args.streams.clone(),
        preview_rows: 0,
        ledger,
        run_id: None,
        restart: false,
        sync: None,
        retry: match retry_policy(&plan) {
            Ok(r) => r,
            Err(e) => return fail(&e),
        },
    };
    let streams: Vec<Arc<_>> = match prepare_retrying(&plan, source.as_ref(), sink.as_ref(), &opts)
        .await
    {
        Ok(s) => s,
        Err(e @ EngineError::Core(Error::NotFound(_))) if pending_setup => {
            println!("  note: {e}");
            println!(
                "check passed as far as it could: the streams' target tables are checked once the pending setup files created them (tsmigrate run applies them first)"
            );
            return exit::OK;
        }
        Err(e) => return fail(&e),
    };
    for s in &streams {
        println!(
            "stream {}: {} → {}: {} partition(s), {}",
            s.spec.name,
            s.spec.source_stream(),
            s.target.table,
            s.partitions.len(),
            estimate(&s.partitions)
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

/// "~N rows" for partitions with estimates; "rows unknown until read" when the source could
/// not estimate any (a backup file: its rows are counted as they are read).
fn estimate(partitions: &[tsmigrate_core::Partition]) -> String {
    if partitions.iter().all(|p| p.estimated_rows.is_none()) && !partitions.is_empty() {
        return "rows unknown until read".to_string();
    }
    let est: u64 = partitions.iter().filter_map(|p| p.estimated_rows).sum();
    format!("~{} rows", thousands(est))
}
