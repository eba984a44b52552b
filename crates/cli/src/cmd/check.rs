//! `tsmigrate check`: the pre-flight — both ends reached, the setup files and the streams
//! checked against the target without writing anything, rows estimated.

use std::path::PathBuf;
use std::sync::Arc;

use tsmigrate_core::{Error, ReadOptions, SetupPhase};
use tsmigrate_engine::{prepare, retry_phase, Cancel, EngineError, EngineOptions};

use crate::args::CheckArgs;
use crate::connectors::{open_sink, open_source};
use crate::events::CliEvents;
use crate::exit::{self, fail};
use crate::output::estimate;
use crate::plan_setup::{load_plan, plan_id, retry_policy};

/// `tsmigrate check`.
pub async fn run(args: CheckArgs) -> u8 {
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
        events: Arc::new(CliEvents::quiet(plan_id(&plan, &args.plan))),
    };
    let prepared = retry_phase(
        &opts.retry,
        &Cancel::new(),
        opts.events.as_ref(),
        "preparing the streams",
        || prepare(&plan, source.as_ref(), sink.as_ref(), &opts),
    )
    .await;
    let streams: Vec<Arc<_>> = match prepared {
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
