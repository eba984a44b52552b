//! What every subcommand starts with: the plan loaded and checked, its id, the engine's
//! options from the plan and the command line, the open ends, the questions asked before
//! writing into production, and Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tsmigrate_core::{check_run_sizes, parse_duration, Error, Plan, ReadOptions, Sink};
use tsmigrate_engine::{Cancel, EngineError, EngineOptions, Events, RetryPolicy};

use crate::args::WorkArgs;
use crate::exit;

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

/// Builds the engine options from the plan and the command line; the engine's events go to
/// `events`.
pub fn engine_options(
    plan: &Plan,
    c: &WorkArgs,
    (batch_rows, partition_rows): (Option<usize>, Option<u64>),
    events: Arc<dyn Events>,
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
        events,
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

/// The plan at `path` with its two ends open (`compress`: `--compress` asked the target to
/// compress), as a migration; `Err` is the exit code, the error printed.
pub fn open_migration(path: &Path, compress: bool) -> Result<tsmigrate_engine::Migration, u8> {
    let plan = load_plan(path).map_err(|e| exit::fail(&e))?;
    let (source, sink) = match (
        crate::connectors::open_source(&plan.source),
        crate::connectors::open_target(&plan, compress),
    ) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return Err(exit::fail(&e.into())),
    };
    Ok(tsmigrate_engine::Migration::new(
        plan,
        path.display().to_string(),
        source,
        sink,
    ))
}
