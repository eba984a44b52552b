//! Network faults between tsmigrate and real PostgreSQL servers (issue 30 G), made by the
//! testkit's fault proxy on loopback in front of a throwaway cluster:
//!
//! - a black hole (accepts TCP, never answers): `check` and `run` give up after
//!   `connect_timeout` (from the string or `PGCONNECT_TIMEOUT`) with an error naming the end
//!   and the timeout;
//! - a source that stalls mid-COPY (no data, no reset), a source connection dropped
//!   mid-COPY, and a target whose answers stall mid-COPY: the attempt fails after
//!   `--stall-timeout`, is retried, and the run completes with every row exactly once
//!   (count and md5 of the rows, computed by the server on both sides);
//! - the target session left behind by the stalled attempt is ended by the server
//!   (`idle_in_transaction_session_timeout`), so no `idle in transaction` session of
//!   tsmigrate remains and its locks do not block the load's end.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tsmigrate_testkit::{Direction, Fault, FaultProxy, PgCluster};

/// Rows of the source table: about 12 MB of COPY data, in several partitions.
const ROWS: u64 = 200_000;

/// A cluster with `src.readings` (ROWS rows) and an empty database `dst`.
fn cluster() -> PgCluster {
    let c = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    for db in ["src", "dst"] {
        c.create_database(db).unwrap_or_else(|e| panic!("{e}"));
    }
    c.psql(
        "src",
        &format!(
            "CREATE TABLE readings (id bigint, device text, ts timestamptz, v double precision);
             INSERT INTO readings SELECT g, 'device-' || (g % 97), timestamptz '2024-01-01' + g * interval '1 second', g / 7.0
             FROM generate_series(1, {ROWS}) g;
             ANALYZE readings;"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    c
}

fn url(port: u16, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{db}")
}

/// A plan copying `readings` from `${SRC}` to `${DST}` (created, keyed by id), in partitions
/// of 50,000 rows, two at a time, retrying after 200 ms.
fn plan(dir: &Path) -> String {
    let p = dir.join("faults.toml");
    std::fs::write(
        &p,
        "[source]\nkind = \"postgres\"\nurl = \"${SRC}\"\n\n[target]\nkind = \"postgres\"\nurl = \"${DST}\"\n\n\
         [run]\njobs = 2\npartition_rows = 50000\nretry_delay = \"200ms\"\n\n\
         [[streams]]\nname = \"readings\"\ncreate = true\nkey = [\"id\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p.display().to_string()
}

/// Runs tsmigrate and waits at most `deadline` (then kills it and fails): its output and
/// how long it took.
fn tsmigrate(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> (Output, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsmigrate"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running tsmigrate: {e}"));
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => (out.unwrap_or_else(|e| panic!("{e}")), t0.elapsed()),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            let out = rx.recv().ok().and_then(|o| o.ok());
            panic!(
                "tsmigrate {args:?} still running after {deadline:?} (killed): {}",
                out.map(|o| text(&o)).unwrap_or_default()
            );
        }
    }
}

/// Count and md5 of every row of `readings` in `db`, in id order, computed by the server.
fn fingerprint(c: &PgCluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT count(*), count(DISTINCT id), md5(string_agg(format('%s|%s|%s|%s', id, device, ts, v), ';' ORDER BY id)) FROM readings",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_black_hole_fails_check_and_run_within_connect_timeout() {
    let c = cluster();
    let hole = FaultProxy::start(c.port(), Fault::BlackHole).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let p = plan(d);
    let good_src = url(c.port(), "src");
    let hole_dst = format!("{}?connect_timeout=3", url(hole.port(), "dst"));

    // check: the target takes TCP and never answers; connect_timeout from the string.
    let env = [("SRC", good_src.as_str()), ("DST", hole_dst.as_str())];
    let (out, took) = tsmigrate(d, &["check", &p], &env, Duration::from_secs(60));
    assert_exit(&out, 1);
    let all = text(&out);
    assert!(all.contains("cannot connect to the target"), "{all}");
    assert!(
        all.contains(&format!(
            "no answer from `127.0.0.1:{}` within connect_timeout (3 s)",
            hole.port()
        )),
        "{all}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "check took {took:?}"
    );

    // run: the source is the black hole; connect_timeout from PGCONNECT_TIMEOUT.
    let hole_src = url(hole.port(), "src");
    let good_dst = url(c.port(), "dst");
    let env = [
        ("SRC", hole_src.as_str()),
        ("DST", good_dst.as_str()),
        ("PGCONNECT_TIMEOUT", "3"),
    ];
    // One retry: the run tries twice (preparing the streams is retried like a partition).
    let text_of_plan = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&p, text_of_plan.replace("[run]\n", "[run]\nretries = 1\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (out, took) = tsmigrate(d, &["run", &p], &env, Duration::from_secs(60));
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("preparing the streams: ").count(),
        1,
        "one retry: {err}"
    );
    assert!(
        err.contains("cannot connect to the source"),
        "{}",
        text(&out)
    );
    assert!(
        err.contains("within connect_timeout (3 s)"),
        "{}",
        text(&out)
    );
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(12),
        "run took {took:?} (two attempts of 3 s)"
    );
    assert!(
        hole.connections() >= 2,
        "both commands reached the black hole"
    );
}

/// Runs the plan with `src_port`/`dst_port` as the two ends and `--stall-timeout 2s`; checks
/// it completed after retrying, with the target's rows equal to the source's.
fn run_through(c: &PgCluster, src_port: u16, dst_port: u16, proxy: &FaultProxy) -> Output {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let p = plan(d);
    let (src, dst) = (url(src_port, "src"), url(dst_port, "dst"));
    let env = [("SRC", src.as_str()), ("DST", dst.as_str())];
    let args = [
        "run",
        p.as_str(),
        "--stall-timeout",
        "2s",
        "--progress",
        "off",
    ];
    let (out, _) = tsmigrate(d, &args, &env, Duration::from_secs(90));
    assert_exit(&out, 0);
    assert!(
        proxy.fired(),
        "the fault struck a connection: {}",
        text(&out)
    );
    let all = text(&out);
    assert!(
        all.contains("partition attempt(s) retried after transient errors"),
        "{all}"
    );
    let expected = fingerprint(c, "src");
    assert!(
        expected.starts_with(&format!("{ROWS}|{ROWS}|")),
        "{expected}"
    );
    assert_eq!(fingerprint(c, "dst"), expected, "every row exactly once");
    out
}

#[test]
fn a_source_stalled_mid_copy_is_retried_and_every_row_arrives_once() {
    let c = cluster();
    // The first connection to carry 1 MB of COPY data to tsmigrate goes silent, open.
    let stall = Fault::Stall {
        trigger: Direction::ToClient,
        after: 1_000_000,
        stall: Direction::ToClient,
    };
    let proxy = FaultProxy::start(c.port(), stall).unwrap_or_else(|e| panic!("{e}"));
    let out = run_through(&c, proxy.port(), c.port(), &proxy);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("error:"), "{}", text(&out));
}

#[test]
fn a_source_connection_dropped_mid_copy_is_retried() {
    let c = cluster();
    let drop = Fault::Drop {
        direction: Direction::ToClient,
        after: 1_000_000,
    };
    let proxy = FaultProxy::start(c.port(), drop).unwrap_or_else(|e| panic!("{e}"));
    run_through(&c, proxy.port(), c.port(), &proxy);
}

#[test]
fn a_target_stalled_mid_copy_is_retried_and_its_session_does_not_linger() {
    let c = cluster();
    // Once 1 MB of COPY data went to the server, its answers stop: tsmigrate's COPY finish
    // waits in vain while the server, done with the COPY, sits idle in the transaction.
    let stall = Fault::Stall {
        trigger: Direction::ToServer,
        after: 1_000_000,
        stall: Direction::ToClient,
    };
    let proxy = FaultProxy::start(c.port(), stall).unwrap_or_else(|e| panic!("{e}"));
    // The stalled session holds a lock on `readings` that the key added after the load
    // waits for: the run can only finish once the server ended that session.
    run_through(&c, c.port(), proxy.port(), &proxy);
    let lingering = c
        .psql(
            "dst",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tsmigrate' AND state LIKE 'idle in transaction%'",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        lingering.trim(),
        "0",
        "a stalled session of tsmigrate lingers"
    );
    let key = c
        .psql(
            "dst",
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'readings'::regclass AND contype = 'p'",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(key.trim(), "1", "the key was added after the load");
}
