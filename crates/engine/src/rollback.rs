//! Rolling back one run or sync of a plan: the run found and checked (it exists, wrote rows
//! still there, did not update rows it cannot restore), then exactly its rows deleted and its
//! partitions returned to pending, recorded as a `rollback` run of its own.

use tsmigrate_core::{Error, Ledger, RollbackOutcome, RunRecord};

use crate::error::EngineError;
use crate::events::{Event, Events};
use crate::migration::begin_run;
use crate::retry::RetryPolicy;

/// The run `run_id` of the plan `plan_id`, checked for a rollback (`force`: also a run that
/// wrote with `upsert`).
pub async fn rollback_candidate(
    ledger: &dyn Ledger,
    plan_id: &str,
    run_id: i64,
    force: bool,
) -> Result<RunRecord, EngineError> {
    let runs = ledger.runs().await?;
    let Some(run) = runs.iter().find(|r| r.id == run_id) else {
        let ids: Vec<String> = runs.iter().map(|r| r.id.to_string()).collect();
        return Err(Error::Plan(format!(
            "plan {plan_id:?} has no run {run_id}; its runs are: {} (see `tsmigrate runs`)",
            if ids.is_empty() {
                "none".into()
            } else {
                ids.join(", ")
            }
        ))
        .into());
    };
    if run.command == "rollback" || run.state == "rolled back" {
        return Err(Error::Plan(format!(
            "run {} is a {} that is {}: there is nothing to roll back",
            run.id, run.command, run.state
        ))
        .into());
    }
    if run.write_modes.iter().any(|m| m == "upsert") && !force {
        return Err(Error::Plan(format!(
            "run {} wrote with write = \"upsert\": rows it updated existed before it, and their earlier values are not kept, \
             so a rollback would delete them instead of restoring them. Pass --force to delete every row the run inserted or updated",
            run.id
        ))
        .into());
    }
    Ok(run.clone())
}

/// Rolls back `run`, recorded as a `rollback` run (starting it is retried as `retry` says).
pub async fn rollback(
    ledger: &dyn Ledger,
    run: &RunRecord,
    retry: &RetryPolicy,
    events: &dyn Events,
) -> Result<RollbackOutcome, EngineError> {
    let id = begin_run(ledger, "rollback", retry, events).await?;
    let result = ledger
        .rollback_run(run.id, id)
        .await
        .map_err(EngineError::from);
    let (state, error) = match &result {
        Ok(_) => ("done", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    if let Err(e) = ledger.end_run(id, state, error.as_deref()).await {
        let warning = format!("could not record the end of rollback {id} in the ledger: {e}");
        events.event(Event::Warning(warning)).await;
    }
    result
}
