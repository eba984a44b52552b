//! TLS for PostgreSQL connections with libpq's `sslmode` semantics, on rustls:
//!
//! | sslmode | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `prefer` (default) | when the server offers it | no | no |
//! | `require` | yes, or fail | only when a root certificate is given (as libpq) | no |
//! | `verify-ca` | yes | against `sslrootcert` | no |
//! | `verify-full` | yes | against `sslrootcert` | yes |
//!
//! The root certificate defaults to `~/.postgresql/root.crt` and the client certificate to
//! `~/.postgresql/postgresql.crt` / `.key`, as in libpq, when those files exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::conninfo::{SslMode, TlsParams};

/// The rustls client configuration for `params` (not called for `disable`).
pub fn client_config(params: &TlsParams, home: Option<&Path>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default_file = |name: &str| {
        home.map(|h| h.join(".postgresql").join(name))
            .filter(|p| p.is_file())
    };
    let root_file = params
        .root_cert
        .clone()
        .or_else(|| default_file("root.crt"));
    let verifier: Arc<dyn ServerCertVerifier> = match (params.mode, &root_file) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode={} checks the server's certificate and needs the certificate authority that signed it: \
                 set sslrootcert=/path/to/ca.pem (no ~/.postgresql/root.crt was found)",
                params.mode.name()
            ))
        }
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(Unchecked(provider.clone()))
        }
        (mode, Some(file)) => {
            let roots = load_roots(file)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let (cert, key) = match (&params.cert, &params.key) {
        (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
        (Some(c), None) => (Some(c.clone()), Some(c.with_extension("key"))),
        (None, Some(_)) => return Err("sslkey is set but sslcert is not: give both".into()),
        (None, None) => match (
            default_file("postgresql.crt"),
            default_file("postgresql.key"),
        ) {
            (Some(c), Some(k)) => (Some(c), Some(k)),
            _ => (None, None),
        },
    };
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslcert {}: {e}", cert.display()))?;
            let key_der = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("sslcert {} / sslkey {}: {e}", cert.display(), key.display()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The certificate authorities in a PEM file.
fn load_roots(file: &PathBuf) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "sslrootcert {} holds no certificate",
            file.display()
        ));
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
    }
    Ok(roots)
}

/// `prefer` and `require` without a root certificate: encrypt, trust any certificate (the
/// handshake's signatures are still verified).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in it is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A hint for a TLS failure, from the driver's message.
pub fn hint(message: &str, params: &TlsParams, host: &str) -> Option<String> {
    let root = params
        .root_cert
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.postgresql/root.crt".into());
    if message.contains("UnknownIssuer") || message.contains("unknown issuer") {
        Some(format!(
            "the server's certificate is not signed by a certificate authority in sslrootcert ({root}): give the CA that signed it"
        ))
    } else if message.contains("NotValidForName") || message.contains("not valid for name") {
        Some(format!(
            "the server's certificate is not issued for the host name `{host}`: connect with a name the certificate lists, or use sslmode=verify-ca (checks the signature, not the name)"
        ))
    } else if message.contains("does not support TLS") || message.contains("does not support SSL") {
        Some(format!(
            "sslmode={} needs TLS but the server does not offer it: enable ssl on the server, or use sslmode=prefer",
            params.mode.name()
        ))
    } else if message.contains("UnsupportedCertVersion") {
        Some("a certificate is X.509 version 1, which rustls does not accept: re-issue it as version 3 (openssl x509 -req … -extfile with any extension)".into())
    } else if message.contains("Expired") || message.contains("expired") {
        Some("the server's certificate has expired".into())
    } else {
        None
    }
}
