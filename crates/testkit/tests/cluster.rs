//! Tests of the throwaway cluster: it starts, runs SQL, reports errors,
//! honours its options, and is really gone after drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use tsmigrate_testkit::{ClusterOptions, PgCluster, TestkitError};

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn port_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok()
}

#[test]
fn runs_sql_reports_errors_and_disappears_on_drop() {
    let cluster = PgCluster::start().unwrap();
    let port = cluster.port();
    let root: PathBuf = cluster.dir().to_path_buf();

    assert!(port > 0);
    assert_eq!(cluster.host(), "127.0.0.1");
    assert_eq!(
        cluster.url("thingsboard"),
        format!("postgres://postgres@127.0.0.1:{port}/thingsboard")
    );
    assert!(port_accepts(port));
    assert!(cluster.is_running());

    // Output conventions: -At, final newline stripped, NULL as empty.
    assert_eq!(cluster.psql("postgres", "SELECT 1 + 1").unwrap(), "2");
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT 1, 'a'; SELECT NULL::int, 'b' UNION ALL SELECT 3, 'c'"
            )
            .unwrap(),
        "1|a\n|b\n3|c"
    );
    assert_eq!(
        cluster.psql("postgres", "SHOW server_encoding").unwrap(),
        "UTF8"
    );
    assert_eq!(cluster.psql("postgres", "SHOW fsync").unwrap(), "off");
    assert_eq!(cluster.psql("postgres", "SHOW lc_collate").unwrap(), "C");
    assert_eq!(
        cluster.psql("postgres", "SHOW max_connections").unwrap(),
        "100"
    );

    // Databases, including an awkward name.
    cluster.create_database("other").unwrap();
    assert_eq!(
        cluster.psql("other", "SELECT current_database()").unwrap(),
        "other"
    );
    let odd = "odd name-ü'\"";
    cluster.create_database(odd).unwrap();
    assert_eq!(cluster.psql(odd, "SELECT current_database()").unwrap(), odd);
    assert!(cluster.url(odd).ends_with("/odd%20name-%C3%BC%27%22"));
    cluster.drop_database(odd).unwrap();
    assert_eq!(
        cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                    odd.replace('\'', "''")
                )
            )
            .unwrap(),
        "0"
    );

    // Errors carry psql's stderr, and ON_ERROR_STOP stops the script.
    let err = cluster
        .psql(
            "other",
            "CREATE TABLE t (x int); SELECT * FROM no_such_table; CREATE TABLE u (x int);",
        )
        .unwrap_err();
    match &err {
        TestkitError::Command { stderr, .. } => {
            assert!(stderr.contains("no_such_table"), "{stderr}")
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(
        cluster
            .psql(
                "other",
                "SELECT to_regclass('t') IS NOT NULL, to_regclass('u') IS NULL"
            )
            .unwrap(),
        "t|t"
    );
    assert!(cluster.psql("no_such_db", "SELECT 1").is_err());

    // Long SQL (a 1 MB statement) works the same way.
    let long_sql = format!("SELECT length('{}')", "x".repeat(1_000_000));
    assert_eq!(cluster.psql("other", &long_sql).unwrap(), "1000000");

    // psql_file.
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "CREATE TABLE f (x int);\nINSERT INTO f VALUES (7);\nSELECT x FROM f;\n",
    )
    .unwrap();
    assert_eq!(cluster.psql_file("other", script.path()).unwrap(), "7");

    // Server binaries.
    let pg_dump = cluster.bin("pg_dump");
    assert!(pg_dump.is_file(), "{}", pg_dump.display());
    let version = std::process::Command::new(&pg_dump)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("PostgreSQL"));
    assert_eq!(cluster.bin("no-such-tool"), PathBuf::from("no-such-tool"));

    assert!(root.is_dir());
    drop(cluster);
    assert!(!port_accepts(port), "server still listening on {port}");
    assert!(!root.exists(), "{} still exists", root.display());
}

#[test]
fn stop_and_restart_keep_committed_data() {
    // Durable, so that a commit survives even the immediate (crash-like) stop.
    let mut cluster = PgCluster::start_with(ClusterOptions::default().durable(true)).unwrap();
    let port = cluster.port();
    cluster
        .psql(
            "postgres",
            "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2);",
        )
        .unwrap();

    cluster.stop().unwrap();
    assert!(!cluster.is_running());
    assert!(!port_accepts(port));
    assert!(cluster.psql("postgres", "SELECT 1").is_err());
    cluster.stop().unwrap(); // idempotent

    cluster.restart().unwrap();
    assert_eq!(cluster.port(), port);
    assert_eq!(
        cluster.psql("postgres", "SELECT sum(x) FROM kept").unwrap(),
        "3"
    );

    cluster
        .psql("postgres", "INSERT INTO kept VALUES (3)")
        .unwrap();
    cluster.stop_immediately().unwrap();
    assert!(!port_accepts(port));
    cluster.restart().unwrap();
    assert_eq!(
        cluster.psql("postgres", "SELECT sum(x) FROM kept").unwrap(),
        "6"
    );
}

#[test]
fn options_are_applied_and_keep_leaves_the_directory() {
    let options = ClusterOptions::default()
        .durable(true)
        .setting("work_mem", "77MB")
        .setting("cluster_name", "it's a test")
        .keep(true);
    let cluster = PgCluster::start_with(options).unwrap();
    let port = cluster.port();
    let root = cluster.dir().to_path_buf();
    assert_eq!(cluster.psql("postgres", "SHOW fsync").unwrap(), "on");
    assert_eq!(
        cluster.psql("postgres", "SHOW synchronous_commit").unwrap(),
        "on"
    );
    assert_eq!(
        cluster.psql("postgres", "SHOW full_page_writes").unwrap(),
        "on"
    );
    assert_eq!(cluster.psql("postgres", "SHOW work_mem").unwrap(), "77MB");
    assert_eq!(
        cluster.psql("postgres", "SHOW cluster_name").unwrap(),
        "it's a test"
    );

    drop(cluster);
    assert!(!port_accepts(port));
    assert!(root.join("data").join("PG_VERSION").is_file());
    assert!(root.join("server.log").is_file());
    std::fs::remove_dir_all(&root).unwrap();
}
