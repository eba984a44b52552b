//! The engine's own logic against in-memory fakes (no server): a transient failure retried
//! and written once, retries running out, a commit whose answer was lost not written again,
//! a row the target refuses isolated and rejected, `--max-rejects` stopping the run with
//! whole partitions only, a dry run writing nothing. The fakes are of the connector
//! contract; each store's own behaviour is tested against the real store elsewhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tsmigrate_core::{Ledger, PartitionState, Plan, ReadOptions};
use tsmigrate_engine::{
    Cancel, EngineError, EngineOptions, Event, Events, Migration, Outcome, RetryPolicy,
};
use tsmigrate_testkit::mem::{Fault, MemSink, MemSource};

const PLAN: &str = r#"
[source]
kind = "mem"
[target]
kind = "mem"
[[streams]]
name = "readings"
create = true
columns = [
  { name = "series", type = "text", expr = "series" },
  { name = "ts", type = "timestamptz", expr = "from_epoch_ms(ts)" },
  { name = "value", type = "float8", expr = "value" },
]
"#;

/// 1,000 rows of 10 series, each value unique (i + 0.5), in 4 partitions of 250.
fn source() -> MemSource {
    let rows = (0..1000)
        .map(|i| {
            (
                format!("s{}", i % 10),
                1_700_000_000_000 + i * 1000,
                i as f64 + 0.5,
            )
        })
        .collect();
    MemSource::new(rows, 250)
}

/// The events, as short texts.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait]
impl Events for Recorder {
    async fn event(&self, event: Event<'_>) {
        let text = match event {
            Event::RetryingPartition { partition, .. } => format!("retry {partition}"),
            Event::Isolating { partition, .. } => format!("isolating {partition}"),
            Event::CommittedBeforeLoss { partition, .. } => format!("committed {partition}"),
            Event::Prepared { .. } => "prepared".into(),
            _ => return,
        };
        if let Ok(mut v) = self.0.lock() {
            v.push(text);
        }
    }
}

impl Recorder {
    fn texts(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

fn options(events: Arc<Recorder>, dir: &tempfile::TempDir) -> EngineOptions {
    EngineOptions {
        jobs: 2,
        dry_run: false,
        max_rejects: 0,
        rejects_dir: dir.path().to_path_buf(),
        read: ReadOptions {
            align_seconds: None,
            batch_rows: 100,
            partition_rows: 250,
            sync: None,
        },
        limit: None,
        only_streams: Vec::new(),
        preview_rows: 5,
        ledger: None,
        run_id: None,
        restart: false,
        sync: None,
        retry: RetryPolicy {
            retries: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        },
        events,
    }
}

/// Runs the plan into `sink` with `opts`.
async fn run(sink: &MemSink, opts: EngineOptions) -> Outcome {
    let plan = Plan::parse(PLAN).unwrap_or_else(|e| panic!("{e}"));
    let mut m = Migration::new(plan, "test", Arc::new(source()), Arc::new(sink.clone()));
    if !opts.dry_run {
        m.open_ledger("test", &opts.retry, opts.events.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    m.run(opts, Cancel::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The (series, value) of every row in the sink's table, sorted.
fn written(sink: &MemSink) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = sink
        .rows("readings")
        .into_iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    rows.sort();
    rows
}

/// The source's rows, as [`written`] gives them, but for the values in `except`.
fn expected(except: &[f64]) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = (0..1000)
        .filter(|i| !except.contains(&(*i as f64 + 0.5)))
        .map(|i| (format!("s{}", i % 10), (i as f64 + 0.5).to_string()))
        .collect();
    rows.sort();
    rows
}

fn stream_report(o: &Outcome) -> &tsmigrate_engine::StreamReport {
    &o.report.streams[0]
}

#[tokio::test]
async fn a_transient_write_failure_is_retried_and_written_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let events = Arc::new(Recorder::default());
    let sink = MemSink::new(vec![Fault::WriteFails {
        partition: "p001".into(),
        times: 2,
    }]);
    let o = run(&sink, options(events.clone(), &dir)).await;
    assert!(o.result.is_ok(), "{:?}", o.result);
    assert_eq!(written(&sink), expected(&[]));
    let s = stream_report(&o);
    assert_eq!((s.rows_read, s.rows_written, s.retries), (1000, 1000, 2));
    assert_eq!(
        events.texts().iter().filter(|t| *t == "retry p001").count(),
        2
    );
    let st = sink
        .mem_ledger()
        .stream("readings")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not planned"));
    assert!(st
        .partitions
        .iter()
        .all(|p| p.state == PartitionState::Done));
    let p1 = st.partitions.iter().find(|p| p.partition.id == "p001");
    assert_eq!(p1.map(|p| p.attempts), Some(3));
}

#[tokio::test]
async fn retries_that_run_out_fail_the_partition_and_the_run() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let events = Arc::new(Recorder::default());
    let sink = MemSink::new(vec![Fault::WriteFails {
        partition: "p002".into(),
        times: 10,
    }]);
    let mut opts = options(events, &dir);
    opts.jobs = 1;
    let o = run(&sink, opts).await;
    match &o.result {
        Err(EngineError::Core(e)) => assert!(e.is_transient(), "{e}"),
        other => panic!("expected the transient error, got {other:?}"),
    }
    // Partitions 0 and 1 committed, 2 failed after 3 retries, 3 was never started.
    assert_eq!(written(&sink).len(), 500);
    let st = sink
        .mem_ledger()
        .stream("readings")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not planned"));
    let p2 = st
        .partitions
        .iter()
        .find(|p| p.partition.id == "p002")
        .unwrap_or_else(|| panic!("no p002"));
    assert_eq!(p2.state, PartitionState::Failed);
    assert!(
        p2.error
            .as_deref()
            .unwrap_or("")
            .contains("(after 3 retries)"),
        "{:?}",
        p2.error
    );
    // The last attempt failed writing its first batch: those rows were read and rolled back.
    assert_eq!(stream_report(&o).rows_rolled_back, 100);
    assert_eq!(o.report.status, "failed");
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let events = Arc::new(Recorder::default());
    let sink = MemSink::new(vec![Fault::CommitAnswerLost {
        partition: "p002".into(),
        times: 1,
    }]);
    let o = run(&sink, options(events.clone(), &dir)).await;
    assert!(o.result.is_ok(), "{:?}", o.result);
    assert_eq!(sink.lost_answers(), 1);
    assert_eq!(written(&sink), expected(&[]), "every row once");
    assert!(events.texts().contains(&"committed p002".to_string()));
    let s = stream_report(&o);
    assert_eq!((s.rows_read, s.rows_written), (1000, 1000));
}

#[tokio::test]
async fn a_row_the_target_refuses_is_isolated_and_rejected() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let events = Arc::new(Recorder::default());
    let sink = MemSink::new(vec![Fault::RefuseValue(613.5)]);
    let mut opts = options(events.clone(), &dir);
    opts.max_rejects = 5;
    let o = run(&sink, opts).await;
    assert!(o.result.is_ok(), "{:?}", o.result);
    assert_eq!(written(&sink), expected(&[613.5]));
    let s = stream_report(&o);
    assert_eq!(
        (s.rows_read, s.rows_written, s.rows_rejected),
        (1000, 999, 1)
    );
    assert!(events.texts().contains(&"isolating p002".to_string()));
    let file = s
        .rejects_file
        .clone()
        .unwrap_or_else(|| panic!("no rejects file"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(
        text.contains("613.5") && text.contains("injected check constraint"),
        "{text}"
    );
}

#[tokio::test]
async fn more_rejects_than_allowed_stop_the_run_with_whole_partitions_only() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let events = Arc::new(Recorder::default());
    let sink = MemSink::new(vec![Fault::RefuseValue(613.5)]);
    let mut opts = options(events, &dir);
    opts.jobs = 1;
    let o = run(&sink, opts).await;
    assert!(
        matches!(o.result, Err(EngineError::TooManyRejects(_))),
        "{:?}",
        o.result
    );
    // p000 and p001 committed; p002 (which holds the refused row) rolled back.
    assert_eq!(written(&sink).len(), 500);
    assert_eq!(o.report.status, "rejects");
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_shows_the_first_rows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let events = Arc::new(Recorder::default());
    let sink = MemSink::new(Vec::new());
    let mut opts = options(events, &dir);
    opts.dry_run = true;
    let o = run(&sink, opts).await;
    assert!(o.result.is_ok(), "{:?}", o.result);
    assert!(sink.rows("readings").is_empty());
    let s = stream_report(&o);
    assert_eq!((s.rows_read, s.rows_written), (1000, 1000));
    assert_eq!(s.preview.len(), 5);
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .next()
            .is_none(),
        "a dry run leaves no rejects"
    );
}
