//! `tsmigrate`: move IoT telemetry between time-series stores, fast, resumably and provably
//! complete. See `tsmigrate --help` and docs/plan.md.

mod args;
mod cmd;
mod connectors;
mod events;
mod exit;
mod output;
mod plan_setup;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::{CheckArgs, RollbackArgs, RunArgs, SyncArgs, VerifyArgs, ViewArgs};

const AFTER_HELP: &str = "\
Exit codes:
  0    success
  1    a store, connection or file operation failed
  2    invalid plan or command line (nothing was written)
  3    more rows were rejected than --max-rejects allows
  4    verify: source and target differ (the differing rows are listed)
  130  interrupted (Ctrl-C); committed partitions stay, partitions in flight were rolled back;
       `tsmigrate run PLAN` again resumes where it stopped

Plan files are documented option by option in docs/plan.md; examples are in examples/.";

/// Move IoT telemetry between time-series stores (ThingsBoard, PostgreSQL, …) at COPY speed,
/// with every row accounted for.
#[derive(Parser, Debug)]
#[command(name = "tsmigrate", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Migrate: read every stream of the plan, map it and write it to the target.
    ///
    /// Each partition is written in one transaction together with its entry in the ledger
    /// (schema `tsmigrate` of the target), so a crash, kill -9 or Ctrl-C never leaves a
    /// half-written partition, and running the same command again resumes: done partitions
    /// are skipped, the rest are written exactly once. Transient errors (lost connection,
    /// server restart) retry the partition with backoff. Rows that cannot be converted to the
    /// target's types are written to <stream>.rejects.csv with their key and the reason; the
    /// run stops when more than --max-rejects rows are rejected.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// Copy what is new since the last run or sync, from per-series watermarks.
    ///
    /// Each series (ThingsBoard: device and key) is read from its newest copied time minus
    /// the overlap window, so rows that arrive late are not missed; rows already in the
    /// target are skipped by key, so nothing is written twice. With --follow, syncs every
    /// interval until Ctrl-C, printing the lag after each round.
    #[command(after_help = AFTER_HELP)]
    Sync(SyncArgs),
    /// Show the ledger: per stream, partitions done / total, rows, failures, last sync, lag.
    #[command(after_help = AFTER_HELP)]
    Status(ViewArgs),
    /// List the plan's runs, syncs and rollbacks with their time, rows and state.
    #[command(after_help = AFTER_HELP)]
    Runs(ViewArgs),
    /// Delete exactly the rows one run or sync wrote (found by their transaction ids) and
    /// mark its partitions pending again. Rows written before it, by other runs or by other
    /// programs are not touched. Asks for a typed `yes` unless --yes.
    #[command(after_help = AFTER_HELP)]
    Rollback(RollbackArgs),
    /// Prove the target holds the same rows as the source, or list exactly which differ.
    ///
    /// Reads both sides once in parallel partitions: the source through the plan's mapping
    /// (the rows `run` writes, in the target's types) and the target table. Compares row
    /// counts and order-independent digests per bucket (series group × --bucket of time);
    /// buckets that differ are read again and split until their rows can be compared one by
    /// one, which lists every missing, extra and different row (up to --max-diffs, with exact
    /// totals). Floats compare by bit pattern, timestamps at the target's precision, JSON
    /// normalised. By default leaves out rows stamped after the time the last run or sync
    /// covered (the ledger's horizon) and before now — they may have arrived after it —
    /// compares all others, future-dated ones included, and records the result in the ledger
    /// for `status`.
    #[command(after_help = AFTER_HELP)]
    Verify(VerifyArgs),
    /// Pre-flight: reach both ends, find the tables and the key-dictionary variant, check the
    /// target tables fit the mappings, and estimate rows per stream. Writes nothing.
    #[command(after_help = AFTER_HELP)]
    Check(CheckArgs),
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when stdout is a closed pipe (`tsmigrate runs | head`)
    // instead of failing on the write.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => cmd::run::run(args).await,
            Command::Check(args) => cmd::check::run(args).await,
            Command::Sync(args) => cmd::sync::run(args).await,
            Command::Status(args) => cmd::status::status(args).await,
            Command::Runs(args) => cmd::status::runs(args).await,
            Command::Rollback(args) => cmd::rollback::run(args).await,
            Command::Verify(args) => cmd::verify::run(args).await,
        }
    });
    // Do not wait for connection tasks still draining.
    runtime.shutdown_background();
    ExitCode::from(code)
}
