//! TLS against a real PostgreSQL server with a certificate from a throwaway certificate
//! authority made by `openssl` here: each `sslmode` connects or fails as libpq's does, and
//! the server's own view (`pg_stat_ssl`) says whether the session is encrypted.

use std::path::{Path, PathBuf};
use std::process::Command;

use tsmigrate_core::{ConnString, End, Error};
use tsmigrate_postgres::connect::connect;
use tsmigrate_testkit::{ClusterOptions, PgCluster};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
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
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=tsmigrate test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName = DNS:localhost\n")
        .unwrap_or_else(|e| panic!("{e}"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// A cluster serving TLS with the server certificate (the key readable by the server only).
fn tls_cluster(dir: &Path) -> PgCluster {
    let key = dir.join("server.key");
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
    let _ = Command::new("chmod").arg("600").arg(&key).status();
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
            let m = e.to_string();
            eprintln!("failure: {m}");
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
