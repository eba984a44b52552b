//! `tsmigrate run`: the plan migrated (or, with `--dry-run`, read and mapped without
//! writing), then the summary printed.

use std::sync::Arc;

use tsmigrate_core::Error;
use tsmigrate_engine::{Cancel, Events, Outcome};

use crate::args::RunArgs;
use crate::events::CliEvents;
use crate::exit::{self, fail};
use crate::output::{print_dry_run, print_stream_notes, write_report};
use crate::plan_setup::{confirm_production, engine_options, on_ctrl_c, open_migration, plan_id};

/// `tsmigrate run`.
pub async fn run(args: RunArgs) -> u8 {
    let mut m = match open_migration(&args.plan, args.work.compress) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if args.limit == Some(0) {
        return fail(&Error::Plan("--limit must be at least 1".into()).into());
    }
    let id = plan_id(m.plan(), &args.plan);
    let events: Arc<dyn Events> = Arc::new(CliEvents::run(id.clone(), args.progress));
    let sizes = (args.batch_rows, args.partition_rows);
    let mut opts = match engine_options(m.plan(), &args.work, sizes, events.clone()) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    opts.dry_run = args.dry_run;
    opts.limit = args.limit;
    opts.preview_rows = args.preview;
    opts.restart = args.restart;
    if !opts.dry_run {
        if let Err(code) = confirm_production(m.plan(), &args.work, m.sink().as_ref()) {
            return code;
        }
        if let Err(e) = m.open_ledger(&id, &opts.retry, events.as_ref()).await {
            return fail(&e);
        }
    }
    let cancel = Cancel::new();
    let ctrl_c = on_ctrl_c(&cancel, "rolling back the partitions in flight…");
    let outcome = m.run(opts, cancel).await;
    ctrl_c.abort();
    let Outcome {
        report: rep,
        result,
        ..
    } = match outcome {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    if rep.dry_run {
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
    if result.is_err() && rep.run_id.is_some() {
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
