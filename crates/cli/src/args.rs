//! The command line's arguments, one struct per subcommand (and the settings `run` and
//! `sync` share), with the help text each flag shows.

use std::path::PathBuf;

use clap::Args;

use crate::progress::ProgressMode;

/// Settings `run` and `sync` share.
#[derive(Args, Debug)]
pub(crate) struct WorkArgs {
    /// Partitions processed at once [default: run.jobs from the plan, else the number of CPU cores].
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Rejected rows tolerated before the run (or sync round) stops [default: run.max_rejects from the plan, else 0].
    #[arg(long, value_name = "N")]
    pub(crate) max_rejects: Option<u64>,
    /// Directory for <stream>.rejects.csv files [default: run.rejects_dir, else the current directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) rejects_dir: Option<PathBuf>,
    /// Also write the figures as JSON to FILE (for sync: the last round's).
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Only this stream (repeat for several).
    #[arg(long = "stream", value_name = "NAME")]
    pub(crate) streams: Vec<String>,
    /// Give up (and retry) a partition whose COPY makes no progress for this long, reading or
    /// writing; 0 waits for ever [default: run.stall_timeout, else 5m].
    #[arg(long, value_name = "DURATION")]
    pub(crate) stall_timeout: Option<String>,
    /// Do not ask for the typed YES a plan marked `production = true` needs before writing.
    #[arg(long)]
    pub(crate) yes: bool,
    /// TimescaleDB targets: when the load ends, compress the chunks of every hypertable of
    /// the plan that its compression policy would (older than `compress_after`, or all), and
    /// report the sizes (as `[target] compress = true`).
    #[arg(long)]
    pub(crate) compress: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The plan file (TOML).
    pub(crate) plan: PathBuf,
    #[command(flatten)]
    pub(crate) work: WorkArgs,
    /// Read and map everything, write nothing; print what would be written.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// At most N rows per device (overrides each stream's `limit`).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
    /// Rows per batch [default: run.batch_rows, else 16384].
    #[arg(long, value_name = "N")]
    pub(crate) batch_rows: Option<usize>,
    /// Target rows per partition [default: run.partition_rows, else 2000000].
    #[arg(long, value_name = "N")]
    pub(crate) partition_rows: Option<u64>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub(crate) progress: ProgressMode,
    /// Rows shown per stream by --dry-run.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) preview: usize,
    /// Forget the ledger's progress of the selected streams and plan them again from scratch
    /// (needed after the plan changed). Rows already written stay in the target: roll them
    /// back first (`tsmigrate rollback`) or empty the table.
    #[arg(long)]
    pub(crate) restart: bool,
}

#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    /// The plan file (TOML).
    pub(crate) plan: PathBuf,
    #[command(flatten)]
    pub(crate) work: WorkArgs,
    /// Re-read this much before each series' watermark [default: sync.overlap, else 5m].
    #[arg(long, value_name = "DURATION")]
    pub(crate) overlap: Option<String>,
    /// Keep syncing every interval until Ctrl-C.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Interval of --follow [default: sync.every, else 15m].
    #[arg(long, value_name = "DURATION")]
    pub(crate) every: Option<String>,
    /// With --follow: stop after N rounds.
    #[arg(long, value_name = "N")]
    pub(crate) rounds: Option<u64>,
}

/// Arguments of the commands that only read the ledger (`status`, `runs`).
#[derive(Args, Debug)]
pub(crate) struct ViewArgs {
    /// The plan file (TOML).
    pub(crate) plan: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RollbackArgs {
    /// The plan file (TOML).
    pub(crate) plan: PathBuf,
    /// The run (or sync) to roll back, as listed by `tsmigrate runs`.
    #[arg(long, value_name = "ID")]
    pub(crate) run: i64,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub(crate) yes: bool,
    /// Also roll back a run that wrote with write = "upsert" (deleting the rows it updated).
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The plan file (TOML).
    pub(crate) plan: PathBuf,
    /// Only this stream (repeat for several).
    #[arg(long = "stream", value_name = "NAME")]
    pub(crate) streams: Vec<String>,
    /// Compare only rows at or after this time (RFC 3339), within the plan's own filter.
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Compare only rows before this time (RFC 3339) [default: every row but those stamped
    /// between the time the last run or sync covered (from the ledger) and now].
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// Compare every row, also those newer than the last run or sync (which a live source
    /// may hold and the target not yet).
    #[arg(long)]
    pub(crate) no_horizon: bool,
    /// Also look N random source rows up in the target by key and compare them value by
    /// value (the spot check), reported separately.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) sample: usize,
    /// Seed of the --sample draw (repeat a draw) [default: random].
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Differing rows listed per stream (the totals are always exact).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) max_diffs: usize,
    /// Time width of the buckets digests are compared in (per group of series).
    #[arg(long, value_name = "DURATION", default_value = "1d")]
    pub(crate) bucket: String,
    /// Partitions read at once, over both sides [default: twice run.jobs from the plan, else
    /// twice the number of CPU cores].
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Rows per partition on each side [default: run.partition_rows, else 2000000].
    #[arg(long, value_name = "N")]
    pub(crate) partition_rows: Option<u64>,
    /// Also write the result as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The plan file (TOML).
    pub(crate) plan: PathBuf,
    /// Check only this stream (repeat for several).
    #[arg(long = "stream", value_name = "NAME")]
    pub(crate) streams: Vec<String>,
}
