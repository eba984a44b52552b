//! TLS against a real PostgreSQL server with a certificate from a throwaway certificate
//! authority made by `openssl` here: each `sslmode` connects or fails as libpq's does, and
//! the server's own view (`pg_stat_ssl`) says whether the session is encrypted.

use std::path::{Path, PathBuf};
use std::process::Command;

use tsmigrate_core::{ConnString, End, Error};
use tsmigrate_postgres::connect::connect;
use tsmigrate_testkit::{ClusterOptions, PgCluster};

/// Runs `openssl` in `dir` with the whitespace-separated `args`.
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `ca`, a server certificate it signed for `localhost` only (no IP
/// address), and an unrelated authority `other`.
fn make_certificates(dir: &Path) {
    for ca in ["ca", "other"] {
        openssl(
            dir,
            &format!(
                "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=tsmigrate-test-{ca} -keyout {ca}.key -out {ca}.crt"
            ),
        );
    }
    openssl(
        dir,
        "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr",
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName = DNS:localhost\n")
        .unwrap_or_else(|e| panic!("{e}"));
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt",
    );
}

/// Gives the certificates to the server's OS user (when running as root) and keeps the key
/// private, as PostgreSQL requires.
fn prepare_for_server(dir: &Path, key: &Path) {
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if as_root {
        let ok = Command::new("chown")
            .arg("-R")
            .arg("postgres:")
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "chown of the certificates to the server's user");
        let _ = Command::new("chmod").arg("755").arg(dir).status();
        if let Some(parent) = dir.parent() {
            let _ = Command::new("chmod").arg("755").arg(parent).status();
        }
    }
    let _ = Command::new("chmod").arg("600").arg(key).status();
}

/// A cluster serving TLS with the server certificate.
fn tls_cluster(dir: &Path) -> PgCluster {
    let key = dir.join("server.key");
    prepare_for_server(dir, &key);
    PgCluster::start_with(
        ClusterOptions::default()
            .setting("ssl", "on")
            .setting(
                "ssl_cert_file",
                dir.join("server.crt").display().to_string(),
            )
            .setting("ssl_key_file", key.display().to_string()),
    )
    .unwrap_or_else(|e| panic!("starting PostgreSQL with TLS: {e}"))
}

/// Connects and returns whether the server sees the session as encrypted.
async fn encrypted(url: &str) -> Result<bool, Error> {
    let client = connect(&ConnString::new(url), End::Source).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Ok(row.get(0))
}

fn url(host: &str, port: u16, params: &str) -> String {
    format!("postgres://postgres:planted-Secret-42@{host}:{port}/postgres?{params}")
}

fn failure(r: Result<bool, Error>) -> String {
    match r {
        Ok(ssl) => panic!("connected (ssl = {ssl}) where it must fail"),
        Err(e) => {
            // Retrying cannot cure a refused certificate: the error says so, so no retries wait.
            assert!(
                matches!(
                    e,
                    Error::Connect {
                        transient: false,
                        ..
                    }
                ),
                "a permanent connection error: {e:?}"
            );
            let m = e.to_string();
            assert!(!m.contains("planted-Secret-42"), "the password leaked: {m}");
            m
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_connect_or_fail_as_libpq_does() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let certs: PathBuf = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap_or_else(|e| panic!("{e}"));
    make_certificates(&certs);
    let cluster = tls_cluster(&certs);
    let port = cluster.port();
    let ca = certs.join("ca.crt").display().to_string();
    let other = certs.join("other.crt").display().to_string();

    // verify-full with the right authority and the name in the certificate.
    let full = format!("sslmode=verify-full&sslrootcert={ca}");
    assert_eq!(
        encrypted(&url("localhost", port, &full)).await.ok(),
        Some(true)
    );
    // The certificate does not list 127.0.0.1: verify-full refuses, verify-ca accepts.
    let m = failure(encrypted(&url("127.0.0.1", port, &full)).await);
    assert!(
        m.contains("not issued for the host name `127.0.0.1`"),
        "{m}"
    );
    assert!(m.contains("source"), "names the end: {m}");
    let ca_only = format!("sslmode=verify-ca&sslrootcert={ca}");
    assert_eq!(
        encrypted(&url("127.0.0.1", port, &ca_only)).await.ok(),
        Some(true)
    );
    // An authority that did not sign it.
    let wrong = format!("sslmode=verify-full&sslrootcert={other}");
    let m = failure(encrypted(&url("localhost", port, &wrong)).await);
    assert!(
        m.contains("not signed by a certificate authority in sslrootcert"),
        "{m}"
    );
    // require encrypts without checking; prefer takes TLS when offered; disable does not.
    assert_eq!(
        encrypted(&url("127.0.0.1", port, "sslmode=require"))
            .await
            .ok(),
        Some(true)
    );
    assert_eq!(
        encrypted(&url("127.0.0.1", port, "sslmode=prefer"))
            .await
            .ok(),
        Some(true)
    );
    assert_eq!(
        encrypted(&url("127.0.0.1", port, "")).await.ok(),
        Some(true),
        "prefer is the default"
    );
    assert_eq!(
        encrypted(&url("127.0.0.1", port, "sslmode=disable"))
            .await
            .ok(),
        Some(false)
    );
    // require with a root certificate checks it (as libpq does).
    let m = failure(
        encrypted(&url(
            "localhost",
            port,
            &format!("sslmode=require&sslrootcert={other}"),
        ))
        .await,
    );
    assert!(m.contains("not signed"), "{m}");
    // verify-* without any root certificate says what to set.
    let m = failure(
        encrypted(&url(
            "localhost",
            port,
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ))
        .await,
    );
    assert!(m.contains("sslrootcert /nonexistent/ca.pem"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_fails_require_and_passes_prefer() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let port = cluster.port();
    let m = failure(encrypted(&url("127.0.0.1", port, "sslmode=require")).await);
    assert!(
        m.contains("sslmode=require needs TLS but the server does not offer it"),
        "{m}"
    );
    assert_eq!(
        encrypted(&url("127.0.0.1", port, "sslmode=prefer"))
            .await
            .ok(),
        Some(false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_logs_in_where_the_server_demands_one() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let certs: PathBuf = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap_or_else(|e| panic!("{e}"));
    make_certificates(&certs);
    // A client certificate (X.509 v3) for the role `certuser`, signed by the same authority.
    std::fs::write(certs.join("client.ext"), "extendedKeyUsage = clientAuth\n")
        .unwrap_or_else(|e| panic!("{e}"));
    openssl(
        &certs,
        "req -newkey rsa:2048 -nodes -subj /CN=certuser -keyout client.key -out client.csr",
    );
    openssl(
        &certs,
        "x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.crt",
    );
    let client_key = certs.join("client.key").display().to_string();
    let client_crt = certs.join("client.crt").display().to_string();
    let ca = certs.join("ca.crt").display().to_string();
    let cluster = tls_cluster_with_ca(&certs);
    cluster
        .psql("postgres", "CREATE ROLE certuser LOGIN")
        .unwrap_or_else(|e| panic!("{e}"));
    let hba = cluster.data_dir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &hba,
        format!("hostssl all certuser 127.0.0.1/32 cert\n{old}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql("postgres", "SELECT pg_reload_conf()")
        .unwrap_or_else(|e| panic!("{e}"));
    let port = cluster.port();
    let base =
        format!("postgres://certuser@127.0.0.1:{port}/postgres?sslmode=verify-ca&sslrootcert={ca}");
    let with_cert = format!("{base}&sslcert={client_crt}&sslkey={client_key}");
    let got = encrypted(&with_cert).await;
    assert!(
        matches!(got, Ok(true)),
        "{:?}",
        got.err().map(|e| e.to_string())
    );
    let m = failure(encrypted(&base).await);
    assert!(
        m.contains("certuser"),
        "the server refuses a login without the certificate: {m}"
    );
}

/// [`tls_cluster`] that also asks clients for certificates signed by `ca.crt`.
fn tls_cluster_with_ca(dir: &Path) -> PgCluster {
    let key = dir.join("server.key");
    prepare_for_server(dir, &key);
    PgCluster::start_with(
        ClusterOptions::default()
            .setting("ssl", "on")
            .setting(
                "ssl_cert_file",
                dir.join("server.crt").display().to_string(),
            )
            .setting("ssl_key_file", key.display().to_string())
            .setting("ssl_ca_file", dir.join("ca.crt").display().to_string()),
    )
    .unwrap_or_else(|e| panic!("starting PostgreSQL with TLS: {e}"))
}
