//! `tsmigrate`: move IoT telemetry between time-series stores, fast, resumably and provably
//! complete. See `tsmigrate --help` and docs/plan.md.

mod commands;
mod connectors;
mod ledger_commands;
mod progress;
mod verify_command;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::progress::ProgressMode;

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    /// Everything went well.
    pub const OK: u8 = 0;
    /// A store or connection failed, or an I/O error occurred.
    pub const FAILURE: u8 = 1;
    /// The plan or the command line is invalid (nothing was written).
    pub const USAGE: u8 = 2;
    /// More rows were rejected than --max-rejects allows.
    pub const REJECTS: u8 = 3;
    /// `verify` found differences between source and target.
    pub const DIFFERENCES: u8 = 4;
    /// Interrupted by Ctrl-C; committed partitions stay, in-flight ones were rolled back.
    pub const INTERRUPTED: u8 = 130;
}

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

/// Settings `run` and `sync` share.
#[derive(Args, Debug)]
struct WorkArgs {
    /// Partitions processed at once [default: run.jobs from the plan, else the number of CPU cores].
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// Rejected rows tolerated before the run (or sync round) stops [default: run.max_rejects from the plan, else 0].
    #[arg(long, value_name = "N")]
    max_rejects: Option<u64>,
    /// Directory for <stream>.rejects.csv files [default: run.rejects_dir, else the current directory].
    #[arg(long, value_name = "DIR")]
    rejects_dir: Option<PathBuf>,
    /// Also write the figures as JSON to FILE (for sync: the last round's).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Only this stream (repeat for several).
    #[arg(long = "stream", value_name = "NAME")]
    streams: Vec<String>,
    /// Give up (and retry) a partition whose COPY makes no progress for this long, reading or
    /// writing; 0 waits for ever [default: run.stall_timeout, else 5m].
    #[arg(long, value_name = "DURATION")]
    stall_timeout: Option<String>,
    /// Do not ask for the typed YES a plan marked `production = true` needs before writing.
    #[arg(long)]
    yes: bool,
    /// TimescaleDB targets: when the load ends, compress the chunks of every hypertable of
    /// the plan that its compression policy would (older than `compress_after`, or all), and
    /// report the sizes (as `[target] compress = true`).
    #[arg(long)]
    compress: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The plan file (TOML).
    plan: PathBuf,
    #[command(flatten)]
    work: WorkArgs,
    /// Read and map everything, write nothing; print what would be written.
    #[arg(long)]
    dry_run: bool,
    /// At most N rows per device (overrides each stream's `limit`).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Rows per batch [default: run.batch_rows, else 16384].
    #[arg(long, value_name = "N")]
    batch_rows: Option<usize>,
    /// Target rows per partition [default: run.partition_rows, else 2000000].
    #[arg(long, value_name = "N")]
    partition_rows: Option<u64>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// Rows shown per stream by --dry-run.
    #[arg(long, value_name = "N", default_value_t = 5)]
    preview: usize,
    /// Forget the ledger's progress of the selected streams and plan them again from scratch
    /// (needed after the plan changed). Rows already written stay in the target: roll them
    /// back first (`tsmigrate rollback`) or empty the table.
    #[arg(long)]
    restart: bool,
}

#[derive(Args, Debug)]
struct SyncArgs {
    /// The plan file (TOML).
    plan: PathBuf,
    #[command(flatten)]
    work: WorkArgs,
    /// Re-read this much before each series' watermark [default: sync.overlap, else 5m].
    #[arg(long, value_name = "DURATION")]
    overlap: Option<String>,
    /// Keep syncing every interval until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Interval of --follow [default: sync.every, else 15m].
    #[arg(long, value_name = "DURATION")]
    every: Option<String>,
    /// With --follow: stop after N rounds.
    #[arg(long, value_name = "N")]
    rounds: Option<u64>,
}

/// Arguments of the commands that only read the ledger (`status`, `runs`).
#[derive(Args, Debug)]
struct ViewArgs {
    /// The plan file (TOML).
    plan: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RollbackArgs {
    /// The plan file (TOML).
    plan: PathBuf,
    /// The run (or sync) to roll back, as listed by `tsmigrate runs`.
    #[arg(long, value_name = "ID")]
    run: i64,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Also roll back a run that wrote with write = "upsert" (deleting the rows it updated).
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The plan file (TOML).
    plan: PathBuf,
    /// Only this stream (repeat for several).
    #[arg(long = "stream", value_name = "NAME")]
    streams: Vec<String>,
    /// Compare only rows at or after this time (RFC 3339), within the plan's own filter.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Compare only rows before this time (RFC 3339) [default: every row but those stamped
    /// between the time the last run or sync covered (from the ledger) and now].
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Compare every row, also those newer than the last run or sync (which a live source
    /// may hold and the target not yet).
    #[arg(long)]
    no_horizon: bool,
    /// Also look N random source rows up in the target by key and compare them value by
    /// value (the spot check), reported separately.
    #[arg(long, value_name = "N", default_value_t = 0)]
    sample: usize,
    /// Seed of the --sample draw (repeat a draw) [default: random].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Differing rows listed per stream (the totals are always exact).
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_diffs: usize,
    /// Time width of the buckets digests are compared in (per group of series).
    #[arg(long, value_name = "DURATION", default_value = "1d")]
    bucket: String,
    /// Partitions read at once, over both sides [default: twice run.jobs from the plan, else
    /// twice the number of CPU cores].
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// Rows per partition on each side [default: run.partition_rows, else 2000000].
    #[arg(long, value_name = "N")]
    partition_rows: Option<u64>,
    /// Also write the result as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The plan file (TOML).
    plan: PathBuf,
    /// Check only this stream (repeat for several).
    #[arg(long = "stream", value_name = "NAME")]
    streams: Vec<String>,
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
            Command::Run(args) => commands::run(args).await,
            Command::Check(args) => commands::check(args).await,
            Command::Sync(args) => ledger_commands::sync(args).await,
            Command::Status(args) => ledger_commands::status(args).await,
            Command::Runs(args) => ledger_commands::runs(args).await,
            Command::Rollback(args) => ledger_commands::rollback(args).await,
            Command::Verify(args) => verify_command::verify(args).await,
        }
    });
    // Do not wait for connection tasks still draining.
    runtime.shutdown_background();
    ExitCode::from(code)
}
