//! The lifecycle of the commands that write — a run, a sync round, a rollback — as a
//! library API: open the plan's ledger (taking the plan), record the run, apply the setup
//! files, prepare the streams, execute them, apply the setup files of after, record how the
//! run ended. The CLI parses arguments, calls these and prints; a Rust program can call them
//! the same way.

use std::sync::Arc;
use std::time::Instant;

use tsmigrate_core::{Error, Ledger, Plan, SetupPhase, Sink, Source};

use crate::cancel::Cancel;
use crate::error::EngineError;
use crate::events::{Event, Events};
use crate::execute::execute;
use crate::options::{now_rfc3339, EngineOptions, SyncRound};
use crate::prepare::prepare;
use crate::report::{report, run_report, RunReport};
use crate::retry::{retry_phase, RetryPolicy};
use crate::stream::PreparedStream;

/// A plan with its two ends, and its ledger once opened.
pub struct Migration {
    plan: Plan,
    /// How reports name the plan (its file).
    label: String,
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    ledger: Option<Arc<dyn Ledger>>,
}

/// What a run or sync round did: its streams (with their final counters), its report, and
/// how it ended once its streams were prepared.
pub struct Outcome {
    /// The prepared streams.
    pub streams: Vec<Arc<PreparedStream>>,
    /// The report (status and error filled in from `result`).
    pub report: RunReport,
    /// How the partitions (and the setup files of after) ended.
    pub result: Result<(), EngineError>,
}

impl Migration {
    /// The migration of `plan` from `source` to `sink`; `label` names the plan in reports.
    pub fn new(
        plan: Plan,
        label: impl Into<String>,
        source: Arc<dyn Source>,
        sink: Arc<dyn Sink>,
    ) -> Migration {
        Migration {
            plan,
            label: label.into(),
            source,
            sink,
            ledger: None,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The target.
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.sink
    }

    /// The plan's ledger, once [`Migration::open_ledger`] opened it.
    pub fn ledger(&self) -> Option<&Arc<dyn Ledger>> {
        self.ledger.as_ref()
    }

    /// Opens the plan's ledger in the target (`plan_id`) and takes the plan, retrying
    /// transient failures; a target that keeps no ledger leaves it `None`.
    pub async fn open_ledger(
        &mut self,
        plan_id: &str,
        retry: &RetryPolicy,
        events: &dyn Events,
    ) -> Result<(), EngineError> {
        self.ledger = open_ledger(self.sink.as_ref(), &self.plan, plan_id, retry, events).await?;
        Ok(())
    }

    /// The opened ledger, or an error naming `command`, which needs one.
    fn require_ledger(&self, command: &str) -> Result<&Arc<dyn Ledger>, EngineError> {
        self.ledger.as_ref().ok_or_else(|| {
            Error::Unsupported(format!(
                "{command} needs a ledger, and the target ({}) keeps none",
                self.sink.describe()
            ))
            .into()
        })
    }

    /// Runs the plan (`opts.dry_run`: reads and maps everything, writes nothing). `Err` when
    /// it failed before its streams were prepared (nothing was written); else the outcome,
    /// whose `result` says how the partitions ended.
    pub async fn run(&self, opts: EngineOptions, cancel: Cancel) -> Result<Outcome, EngineError> {
        self.round(opts, None, cancel).await
    }

    /// One sync round: what is new since the last run or sync, per series from its
    /// watermark minus `round.overlap`. Needs the ledger.
    pub async fn sync_round(
        &self,
        opts: EngineOptions,
        round: SyncRound,
        cancel: Cancel,
    ) -> Result<Outcome, EngineError> {
        self.require_ledger("sync")?;
        self.round(opts, Some(round), cancel).await
    }

    /// A run or a sync round.
    async fn round(
        &self,
        mut opts: EngineOptions,
        sync: Option<SyncRound>,
        cancel: Cancel,
    ) -> Result<Outcome, EngineError> {
        let started_at = now_rfc3339();
        let t0 = Instant::now();
        let command = if sync.is_some() { "sync" } else { "run" };
        opts.sync = sync;
        opts.ledger = self.ledger.clone().filter(|_| !opts.dry_run);
        opts.run_id = match &opts.ledger {
            Some(l) => {
                Some(begin_run(l.as_ref(), command, &opts.retry, opts.events.as_ref()).await?)
            }
            None => None,
        };
        let (mut setup, streams) = match self.start(&opts).await {
            Ok(started) => started,
            Err(e) => {
                self.record_end(&opts, Some(&e)).await;
                return Err(e);
            }
        };
        let events = opts.events.clone();
        let event = Event::Prepared {
            run_id: opts.run_id,
            dry_run: opts.dry_run,
            streams: &streams,
        };
        events.event(event).await;
        let mut result = execute(
            &streams,
            self.source.clone(),
            self.sink.clone(),
            &opts,
            cancel,
        )
        .await;
        events.event(Event::Executed).await;
        if result.is_ok() {
            result = self.after(&opts, &streams, &mut setup).await;
        }
        self.record_end(&opts, result.as_ref().err()).await;
        let mut rep = run_report(
            &self.label,
            &opts,
            report(&streams, opts.dry_run),
            t0.elapsed().as_secs_f64(),
            started_at,
        );
        rep.setup = setup;
        if let Err(e) = &result {
            rep.status = match e {
                EngineError::TooManyRejects(_) => "rejects",
                EngineError::Interrupted => "interrupted",
                _ => "failed",
            }
            .into();
            rep.error = Some(e.to_string());
        }
        Ok(Outcome {
            streams,
            report: rep,
            result,
        })
    }

    /// The setup files of before (for a run: a sync applies them once, before its first
    /// round, see [`Migration::setup_before`]), then the streams prepared.
    async fn start(
        &self,
        opts: &EngineOptions,
    ) -> Result<(Vec<String>, Vec<Arc<PreparedStream>>), EngineError> {
        let setup = match opts.sync {
            None => self.setup(SetupPhase::Before, opts).await?,
            Some(_) => Vec::new(),
        };
        let (plan, source, sink) = (&self.plan, self.source.as_ref(), self.sink.as_ref());
        let streams = retry_phase(
            &opts.retry,
            &Cancel::new(),
            opts.events.as_ref(),
            "preparing the streams",
            || prepare(plan, source, sink, opts),
        )
        .await?;
        Ok((setup, streams))
    }

    /// What follows a round whose partitions all committed: for a run, the setup files of
    /// after; for a sync round, the streams marked synced.
    async fn after(
        &self,
        opts: &EngineOptions,
        streams: &[Arc<PreparedStream>],
        setup: &mut Vec<String>,
    ) -> Result<(), EngineError> {
        match (&opts.sync, &opts.ledger) {
            (None, _) => setup.extend(self.setup(SetupPhase::After, opts).await?),
            (Some(_), Some(l)) => {
                for s in streams {
                    l.mark_synced(&s.spec.name).await?;
                }
            }
            (Some(_), None) => {}
        }
        Ok(())
    }

    /// Applies the target's setup files of before, as a sync does once before its rounds.
    pub async fn setup_before(&self, opts: &EngineOptions) -> Result<Vec<String>, EngineError> {
        self.setup(SetupPhase::Before, opts).await
    }

    /// Applies the target's setup files of `phase` (in a dry run, says what it would do).
    async fn setup(
        &self,
        phase: SetupPhase,
        opts: &EngineOptions,
    ) -> Result<Vec<String>, EngineError> {
        let lines = self.sink.setup(phase, opts.dry_run).await?;
        for line in &lines {
            opts.events.event(Event::Setup { phase, line }).await;
        }
        Ok(lines)
    }

    /// Records in the ledger how the run ended: `done` without an error, else
    /// `interrupted` or `failed` with the error. A failure to record it is a warning: the
    /// run's own outcome stands.
    async fn record_end(&self, opts: &EngineOptions, error: Option<&EngineError>) {
        let (Some(l), Some(id)) = (&opts.ledger, opts.run_id) else {
            return;
        };
        let (state, error) = match error {
            None => ("done", None),
            Some(EngineError::Interrupted) => ("interrupted", None),
            Some(e) => ("failed", Some(e.to_string())),
        };
        if let Err(e) = l.end_run(id, state, error.as_deref()).await {
            let warning = format!("could not record the end of run {id} in the ledger: {e}");
            opts.events.event(Event::Warning(warning)).await;
        }
    }
}

/// Opens the ledger of `plan` (`plan_id`) in `sink` and takes the plan, retrying transient
/// failures; `None` when the target keeps no ledger.
pub async fn open_ledger(
    sink: &dyn Sink,
    plan: &Plan,
    plan_id: &str,
    retry: &RetryPolicy,
    events: &dyn Events,
) -> Result<Option<Arc<dyn Ledger>>, EngineError> {
    let ledger = sink.ledger(plan_id, &plan.ledger)?;
    if let Some(l) = &ledger {
        retry_phase(
            retry,
            &Cancel::new(),
            events,
            "opening the ledger",
            || async { Ok(l.open().await?) },
        )
        .await?;
    }
    Ok(ledger)
}

/// Records the start of a `command` in the ledger, retrying transient failures.
pub(crate) async fn begin_run(
    ledger: &dyn Ledger,
    command: &str,
    retry: &RetryPolicy,
    events: &dyn Events,
) -> Result<i64, EngineError> {
    retry_phase(
        retry,
        &Cancel::new(),
        events,
        "recording the run",
        || async { Ok(ledger.begin_run(command).await?) },
    )
    .await
}
