//! Running the prepared streams' partitions with `jobs` workers, then putting each
//! stream's rejects file together and finishing its target.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tsmigrate_core::{PartitionState, Sink, Source};

use crate::cancel::Cancel;
use crate::error::EngineError;
use crate::options::EngineOptions;
use crate::stream::PreparedStream;
use crate::worker::Worker;

/// Runs every partition of the prepared streams with `opts.jobs` workers.
pub async fn execute(
    streams: &[Arc<PreparedStream>],
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    opts: &EngineOptions,
    cancel: Cancel,
) -> Result<(), EngineError> {
    let mut queue = VecDeque::new();
    for (si, s) in streams.iter().enumerate() {
        if s.partitions.is_empty() {
            s.counters.mark_started();
            s.counters.mark_finished();
        }
        for p in &s.partitions {
            queue.push_back((si, p.clone()));
        }
    }
    let queue = Arc::new(Mutex::new(queue));
    let rejected_total = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..opts.jobs.max(1) {
        let w = Worker {
            queue: queue.clone(),
            streams: streams.to_vec(),
            source: source.clone(),
            sink: sink.clone(),
            opts: opts.clone(),
            cancel: cancel.clone(),
            rejected_total: rejected_total.clone(),
        };
        handles.push(tokio::spawn(w.run()));
    }
    let mut first_error: Option<EngineError> = None;
    for h in handles {
        let r = match h.await {
            Ok(r) => r,
            Err(e) => Err(EngineError::Core(tsmigrate_core::Error::Store {
                end: tsmigrate_core::End::Target,
                context: "worker".into(),
                message: format!("internal error: a worker stopped unexpectedly: {e}"),
                transient: false,
            })),
        };
        if let Err(e) = r {
            // Keep the root cause, not the "interrupted" of workers stopped because of it.
            match (&first_error, &e) {
                (None, _) | (Some(EngineError::Interrupted), _) => first_error = Some(e),
                _ => {}
            }
        }
    }
    // The stream's rejects file, from the parts of its committed partitions (a killed or
    // failed run's too: their parts were made durable before each commit).
    if !opts.dry_run {
        for s in streams {
            if let Err(e) = assemble_rejects(s, opts).await {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(EngineError::Interrupted);
    }
    if !opts.dry_run {
        for s in streams {
            let done = sink.finish(&s.target).await?;
            if let Ok(mut f) = s.finished.lock() {
                *f = done;
            }
        }
    }
    Ok(())
}

/// Writes a stream's rejects file from the parts of the partitions the ledger holds as done
/// (without a ledger, those this run committed).
async fn assemble_rejects(s: &PreparedStream, opts: &EngineOptions) -> Result<(), EngineError> {
    let done: Vec<String> = match &opts.ledger {
        Some(l) => l
            .stream(&s.spec.name)
            .await?
            .map(|st| {
                st.partitions
                    .into_iter()
                    .filter(|p| p.state == PartitionState::Done)
                    .map(|p| p.partition.id)
                    .collect()
            })
            .unwrap_or_default(),
        None => s.committed.lock().map(|c| c.clone()).unwrap_or_default(),
    };
    let file = s.rejects.assemble(&done)?;
    if let Ok(mut f) = s.rejects_file.lock() {
        *f = file;
    }
    Ok(())
}
