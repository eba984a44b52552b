//! `tsmigrate rollback`: one run or sync of the plan undone — exactly its rows deleted, its
//! partitions pending again — after a typed `yes`.

use std::sync::Arc;

use tsmigrate_core::{Error, RollbackOutcome, RunRecord};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::rollback::{rollback, rollback_candidate};
use tsmigrate_engine::{open_ledger, Events};

use crate::args::RollbackArgs;
use crate::connectors::open_sink;
use crate::events::CliEvents;
use crate::exit::{self, fail};
use crate::plan_setup::{confirm, load_plan, plan_id, retry_policy};

/// `tsmigrate rollback`.
pub async fn run(args: RollbackArgs) -> u8 {
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let sink = match open_sink(&plan.target) {
        Ok(s) => s,
        Err(e) => return fail(&e.into()),
    };
    let id = plan_id(&plan, &args.plan);
    let events: Arc<dyn Events> = Arc::new(CliEvents::quiet(id.clone()));
    let retry = match retry_policy(&plan) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let ledger = match open_ledger(sink.as_ref(), &plan, &id, &retry, events.as_ref()).await {
        Ok(Some(l)) => l,
        Ok(None) => return fail(&Error::Unsupported("the target keeps no ledger".into()).into()),
        Err(e) => return fail(&e),
    };
    let run = match rollback_candidate(ledger.as_ref(), &id, args.run, args.force).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    println!(
        "run {} ({}, started {}, {}) wrote {} row(s) in {} partition(s); rollback deletes exactly those rows and marks the partitions pending again.",
        run.id,
        run.command,
        run.started_at,
        run.state,
        thousands(run.rows),
        run.partitions
    );
    if !args.yes && !confirm(&format!("Type yes to roll back run {}:", run.id), "yes") {
        eprintln!("rollback cancelled; nothing was changed");
        return exit::USAGE;
    }
    match rollback(ledger.as_ref(), &run, &retry, events.as_ref()).await {
        Ok(outcome) => {
            print_outcome(&run, &outcome);
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

/// What a rollback deleted, and a warning when it is not what the run wrote.
fn print_outcome(run: &RunRecord, outcome: &RollbackOutcome) {
    let deleted: u64 = outcome.deleted.iter().map(|(_, n)| n).sum();
    for (table, n) in &outcome.deleted {
        println!("{table}: {} row(s) deleted", thousands(*n));
    }
    println!(
        "run {} rolled back: {} row(s) deleted, {} partition(s) pending again (run `tsmigrate run` to write them again)",
        run.id,
        thousands(deleted),
        outcome.partitions
    );
    if deleted != outcome.expected {
        eprintln!(
            "warning: the ledger says run {} wrote {} row(s) but {} were found: rows were deleted or updated since (an UPDATE gives a row a new transaction id, which rollback does not touch)",
            run.id,
            thousands(outcome.expected),
            thousands(deleted)
        );
    }
}
