//! How the CLI shows the engine's events: on standard error, in the words the commands have
//! always used, with the progress display running while partitions move.

use async_trait::async_trait;
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{Event, Events, PreparedStream};

use crate::output::estimate;
use crate::progress::{Progress, ProgressMode};

/// Prints events; shows progress during a run.
pub struct CliEvents {
    /// The plan's id, named when a run starts.
    plan_id: String,
    /// How progress is shown; `None` for a sync (its rounds print a line each instead).
    progress: Option<ProgressMode>,
    shown: tokio::sync::Mutex<Option<Progress>>,
}

impl CliEvents {
    /// The events of a run of plan `plan_id`, with progress shown as `progress` says.
    pub fn run(plan_id: String, progress: ProgressMode) -> CliEvents {
        CliEvents {
            plan_id,
            progress: Some(progress),
            shown: tokio::sync::Mutex::new(None),
        }
    }

    /// The events of a command that prints its own lines (sync, rollback, verify, check).
    pub fn quiet(plan_id: String) -> CliEvents {
        CliEvents {
            plan_id,
            progress: None,
            shown: tokio::sync::Mutex::new(None),
        }
    }

    /// What a run prints when its streams are prepared.
    fn prepared(
        &self,
        run_id: Option<i64>,
        dry_run: bool,
        streams: &[std::sync::Arc<PreparedStream>],
    ) {
        if dry_run {
            eprintln!("dry run: reading and mapping everything, writing nothing (the ledger is not consulted)");
        }
        if let Some(id) = run_id {
            eprintln!("run {id} of plan {:?}", self.plan_id);
        }
        for s in streams {
            eprintln!("{}", stream_line(s));
        }
        let nothing = run_id.is_some()
            && streams
                .iter()
                .all(|s| s.partitions.is_empty() && s.partitions_skipped > 0);
        if nothing {
            eprintln!(
                "nothing to do: every partition is done. `tsmigrate sync` copies rows added since; `--restart` migrates again from scratch"
            );
        }
    }
}

/// A stream's line when a run starts: resuming, or what it will do.
fn stream_line(s: &PreparedStream) -> String {
    let est = estimate(&s.partitions);
    if s.partitions_skipped > 0 || s.partitions_redone > 0 {
        format!(
            "{}: resuming: {} partition(s) already done ({} rows), {} left of which {} redone (started or failed by an earlier run), {est} → {}",
            s.spec.name,
            s.partitions_skipped,
            thousands(s.rows_before),
            s.partitions.len(),
            s.partitions_redone,
            s.target.table
        )
    } else {
        format!(
            "{}: {} partition(s), {est} → {} (write = {})",
            s.spec.name,
            s.partitions.len(),
            s.target.table,
            s.target.write.name()
        )
    }
}

#[async_trait]
impl Events for CliEvents {
    async fn event(&self, event: Event<'_>) {
        match event {
            Event::Setup { phase, line } => eprintln!("setup ({}): {line}", phase.name()),
            Event::Prepared {
                run_id,
                dry_run,
                streams,
            } => {
                if let Some(mode) = self.progress {
                    self.prepared(run_id, dry_run, streams);
                    *self.shown.lock().await = Some(Progress::start(streams.to_vec(), mode));
                }
            }
            Event::Executed => {
                if let Some(p) = self.shown.lock().await.take() {
                    p.stop().await;
                }
            }
            Event::Retrying {
                what,
                error,
                delay,
                attempt,
                retries,
            } => eprintln!(
                "{what}: {error}; retrying in {:.1}s ({attempt} of {retries} retries)",
                delay.as_secs_f64()
            ),
            Event::RetryingPartition {
                stream,
                partition,
                error,
                delay,
                attempt,
                retries,
            } => eprintln!(
                "stream `{stream}`, partition {partition}: attempt {attempt} failed ({error}); everything it wrote was rolled back; retrying in {:.1}s ({attempt} of {retries} retries)",
                delay.as_secs_f64()
            ),
            Event::Isolating {
                stream,
                partition,
                error,
            } => eprintln!(
                "stream `{stream}`, partition {partition}: {error}; writing the partition again, isolating the rows the target refuses"
            ),
            Event::CommittedBeforeLoss { stream, partition } => eprintln!(
                "stream `{stream}`, partition {partition}: the connection was lost at commit, and the ledger shows the partition committed; it is not written again"
            ),
            Event::Warning(w) => eprintln!("warning: {w}"),
        }
    }
}
