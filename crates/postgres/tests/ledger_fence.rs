//! The PostgreSQL ledger's guards against writing a partition twice, against a real cluster:
//! the fence that stops a process which lost its plan (its lock's connection died and another
//! process took the plan), the heartbeat that takes a lost lock back while nobody else took
//! it, a commit whose answer was lost recognised as this run's, and the claims that keep two
//! plans from appending into one table.
//!
//! A lock's connection is killed the way a server does it (`pg_terminate_backend`, as
//! `idle_session_timeout` or an administrator would), never simulated.

use std::time::Duration;

use tsmigrate_core::{ConnString, End, Ledger, Partition, PartitionCommit, WriteMode};
use tsmigrate_postgres::connect::connect;
use tsmigrate_postgres::ledger::{record_commit, LedgerPlace, Recorded};
use tsmigrate_postgres::PgLedger;
use tsmigrate_testkit::PgCluster;

fn start() -> PgCluster {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("target")
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
}

fn sql(cluster: &PgCluster, sql: &str) -> String {
    cluster
        .psql("target", sql)
        .unwrap_or_else(|e| panic!("{e}\nquery: {sql}"))
}

fn part(id: &str) -> Partition {
    Partition {
        id: id.into(),
        estimated_rows: Some(10),
        spec: serde_json::json!({ "id": id }),
    }
}

fn commit(partition: &str, run_id: i64) -> PartitionCommit {
    PartitionCommit {
        stream: "s".into(),
        partition_id: partition.into(),
        run_id,
        write: WriteMode::Append,
        digest: "d".into(),
        watermarks: vec![],
        newest: None,
        rejected: 0,
    }
}

/// Terminates the sessions holding advisory locks (the plans' lock connections); returns
/// how many.
fn terminate_lock_sessions(cluster: &PgCluster) -> u32 {
    let out = sql(
        cluster,
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM \
         (SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()) l",
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {out:?}"))
}

async fn opened(url: &ConnString, plan: &str) -> PgLedger {
    let l = PgLedger::new(url.clone(), "tsmigrate", plan);
    l.open()
        .await
        .unwrap_or_else(|e| panic!("opening {plan}: {e}"));
    l
}

/// Kills the lock connection of the plan's holder and opens the plan in its place. The
/// holder's heartbeat may take the lock back first (it beats every 5 s): then try again.
async fn take_over(cluster: &PgCluster, url: &ConnString, plan: &str) -> PgLedger {
    for _ in 0..5 {
        assert_eq!(terminate_lock_sessions(cluster), 1);
        let l = PgLedger::new(url.clone(), "tsmigrate", plan);
        match l.open().await {
            Ok(()) => return l,
            Err(e) if e.to_string().contains("another tsmigrate process") => continue,
            Err(e) => panic!("taking plan {plan} over: {e}"),
        }
    }
    panic!("the old holder's heartbeat took the lock back five times in a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_lost_its_plan_commits_nothing_more() {
    let cluster = start();
    let url = ConnString::new(cluster.url("target"));
    let old = opened(&url, "p").await;
    let run = old.begin_run("run").await.unwrap_or_else(|e| panic!("{e}"));
    old.plan_stream(
        "s",
        "t",
        "fp",
        None,
        &[part("p1"), part("p2"), part("p3")],
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    old.record_done(&commit("p1", run), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Its lock's connection dies, and another process takes the plan.
    let new = take_over(&cluster, &url, "p").await;
    assert_eq!(
        sql(
            &cluster,
            "SELECT epoch FROM tsmigrate.plans WHERE plan_id = 'p'"
        )
        .trim(),
        "2"
    );

    // The old process, still running, can record nothing more.
    let refused = |what: &str, r: tsmigrate_core::Result<()>| match r {
        Err(e) => assert!(e.to_string().contains("took this plan over"), "{what}: {e}"),
        Ok(()) => panic!("{what}: the old holder was not fenced off"),
    };
    refused(
        "a partition commit",
        old.record_done(&commit("p2", run), 10).await,
    );
    refused(
        "planning",
        old.plan_stream("s", "t", "fp", None, &[part("p9")], true)
            .await,
    );
    refused(
        "retiring partitions",
        old.retire_partitions("s", &["p3".into()]).await,
    );
    refused(
        "a sync round",
        old.add_sync_partitions("s", 5, &[part("sync-1")]).await,
    );
    assert_eq!(
        sql(
            &cluster,
            "SELECT string_agg(partition_id || ':' || state, ',' ORDER BY seq) FROM tsmigrate.partitions"
        )
        .trim(),
        "p1:done,p2:pending,p3:pending"
    );

    // The new holder carries on.
    let run2 = new.begin_run("run").await.unwrap_or_else(|e| panic!("{e}"));
    new.record_done(&commit("p2", run2), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sql(
            &cluster,
            "SELECT string_agg(partition_id || ':' || run_id, ',' ORDER BY seq) FROM tsmigrate.partitions WHERE state = 'done'"
        )
        .trim(),
        format!("p1:{run},p2:{run2}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_takes_a_lost_lock_back() {
    let cluster = start();
    let url = ConnString::new(cluster.url("target"));
    let holder = opened(&url, "p").await;
    let run = holder
        .begin_run("run")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    holder
        .plan_stream("s", "t", "fp", None, &[part("p1")], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(terminate_lock_sessions(&cluster), 1);
    // Two beats later the lock is held again, by a new connection.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let other = PgLedger::new(url.clone(), "tsmigrate", "p");
    match other.open().await {
        Err(e) => assert!(e.to_string().contains("another tsmigrate process"), "{e}"),
        Ok(()) => panic!("the plan's lock was not taken back after its connection died"),
    }
    holder
        .record_done(&commit("p1", run), 10)
        .await
        .unwrap_or_else(|e| panic!("the holder lost the plan: {e}"));
}

/// Records partition p1 for `run_id` in a transaction of its own, commits, and returns what
/// recording found.
async fn attempt(
    client: &mut tokio_postgres::Client,
    place: &LedgerPlace,
    run_id: i64,
) -> Recorded {
    let tx = client.transaction().await.unwrap_or_else(|e| panic!("{e}"));
    let found = record_commit(&tx, place, &commit("p1", run_id), "t", 42)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_was_lost_is_recognised() {
    let cluster = start();
    let url = ConnString::new(cluster.url("target"));
    let ledger = opened(&url, "p").await;
    let run = ledger
        .begin_run("run")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ledger
        .plan_stream("s", "t", "fp", None, &[part("p1")], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut client = connect(&url, End::Target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let place = ledger.place();
    assert_eq!(attempt(&mut client, place, run).await, Recorded::Fresh);
    // The retry of an attempt whose COMMIT landed (its answer lost on the way back).
    assert_eq!(
        attempt(&mut client, place, run).await,
        Recorded::DoneByThisRun(42)
    );
    // Another run: not its rows.
    assert_eq!(
        attempt(&mut client, place, run + 1).await,
        Recorded::DoneByOther
    );
    assert_eq!(
        sql(&cluster, "SELECT count(*) FROM tsmigrate.writes").trim(),
        "1"
    );
}

async fn claim(l: &PgLedger) -> tsmigrate_core::Result<()> {
    l.claim_table("public.t", "s").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plans_do_not_append_into_one_table() {
    let cluster = start();
    let url = ConnString::new(cluster.url("target"));
    sql(&cluster, "CREATE TABLE t (x int)");
    // A plan nobody holds, which never wrote a row, keeps no claim.
    let idle = PgLedger::new(url.clone(), "tsmigrate", "idle");
    idle.open().await.unwrap_or_else(|e| panic!("{e}"));
    claim(&idle).await.unwrap_or_else(|e| panic!("{e}"));
    idle.close().await;
    let a = opened(&url, "a").await;
    claim(&a).await.unwrap_or_else(|e| panic!("{e}"));
    claim(&a)
        .await
        .unwrap_or_else(|e| panic!("claiming twice: {e}"));

    // While plan a is held, b may not append into its table.
    let b = opened(&url, "b").await;
    let refused = |r: tsmigrate_core::Result<()>, why: &str| match r {
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("public.t is appended into by plan \"a\""),
                "{why}: {m}"
            );
            assert!(m.contains("roll plan \"a\" back first"), "{why}: {m}");
        }
        Ok(()) => panic!("{why}: plan b was let append into plan a's table"),
    };
    refused(claim(&b).await, "plan a held");

    // Plan a writes rows and lets go: its rows keep the claim.
    let run = a.begin_run("run").await.unwrap_or_else(|e| panic!("{e}"));
    a.plan_stream("s", "public.t", "fp", None, &[part("p1")], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.record_done(&commit("p1", run), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.close().await;
    refused(claim(&b).await, "plan a's rows in the table");

    // Rolled back, they no longer do.
    a.open().await.unwrap_or_else(|e| panic!("{e}"));
    let rb = a
        .begin_run("rollback")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.rollback_run(run, rb)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.close().await;
    claim(&b)
        .await
        .unwrap_or_else(|e| panic!("after the rollback: {e}"));
    assert_eq!(
        sql(
            &cluster,
            "SELECT plan_id || ':' || stream FROM tsmigrate.claims"
        )
        .trim(),
        "b:s"
    );
}
