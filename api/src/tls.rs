//! The server's TLS policy, built from PEM files, and its reload on SIGHUP.
//!
//! Policy: TLS 1.3, or TLS 1.2 with ECDHE and an AEAD cipher only; the ring
//! provider (never aws-lc); a client certificate is required and must chain
//! to the client CA bundle; expired certificates and, when a CRL is
//! configured, certificates it lists are refused (by webpki, during the
//! handshake). Session resumption is off, so every connection presents and
//! verifies its certificate against the current CRL.
//!
//! Everything is read from PEM (or DER, for the CRL) files, so any CA works;
//! nothing here reads [`crate::pki`]'s `ca.json`.

mod stats;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{CipherSuite, RootCertStore, ServerConfig};

pub use stats::{HandshakeFailure, HandshakeStats};

/// The files the TLS configuration is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate chain (PEM), leaf first.
    pub cert_chain: PathBuf,
    /// The server private key (PEM).
    pub key: PathBuf,
    /// The client CA bundle (PEM): client certificates must chain to one.
    pub client_ca: PathBuf,
    /// An optional CRL file (PEM, possibly several, or one DER CRL).
    pub crl: Option<PathBuf>,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file holds nothing of the expected kind, or it does not parse.
    #[error("{}: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the certificate, key or protocol settings.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built (e.g. an unparsable CRL).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Cipher suites allowed: the TLS 1.3 suites and TLS 1.2 ECDHE with AEAD.
const ALLOWED_SUITES: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The ring provider restricted to [`ALLOWED_SUITES`].
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| ALLOWED_SUITES.contains(&s.suite()));
    Arc::new(provider)
}

/// Builds the server configuration from `files`, reading them now.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let roots = Arc::new(read_roots(&files.client_ca)?);
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if let Some(crl_path) = &files.crl {
        // Only the end entity is checked: the CRL comes from the CA that
        // issues client certificates. An unknown status (a client issued by
        // a CA the CRL does not cover) is refused.
        verifier = verifier
            .with_crls(read_crls(crl_path)?)
            .only_check_end_entity_revocation();
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier.build()?)
        .with_single_cert(read_certs(&files.cert_chain)?, read_key(&files.key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The current server configuration, swapped atomically on reload.
/// New handshakes use the newest configuration; connections already
/// established keep theirs.
#[derive(Clone)]
pub struct TlsReloader {
    files: Arc<TlsFiles>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    generation: Arc<AtomicU64>,
    stats: Arc<HandshakeStats>,
}

impl TlsReloader {
    /// Reads `files` and builds the first configuration.
    pub fn new(files: TlsFiles) -> Result<TlsReloader, TlsError> {
        let config = server_config(&files)?;
        Ok(TlsReloader {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(config)),
            generation: Arc::new(AtomicU64::new(0)),
            stats: Arc::new(HandshakeStats::default()),
        })
    }

    /// The configuration new handshakes should use.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads every file (the CRL in particular) and swaps the
    /// configuration in. On error the previous configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        match self.current.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// How many reloads have succeeded.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The handshake failure counters the server updates.
    pub fn handshake_stats(&self) -> Arc<HandshakeStats> {
        self.stats.clone()
    }

    /// Installs a SIGHUP handler that reloads the configuration, and
    /// returns the task running it. The handler is installed before this
    /// returns, so a SIGHUP sent afterwards no longer terminates the
    /// process. Must be called inside a tokio runtime.
    pub fn spawn_sighup_reload(&self) -> io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        let reloader = self.clone();
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match reloader.reload() {
                    Ok(()) => tracing::info!(
                        generation = reloader.generation(),
                        "SIGHUP: TLS configuration and CRL reloaded"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: reload failed; keeping the previous TLS configuration"
                    ),
                }
            }
        }))
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })
}

fn pem_error(path: &Path, problem: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.into(),
        problem: problem.to_string(),
    }
}

/// Every certificate in a PEM file; none is an error naming the file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path)?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| pem_error(path, e))?
        .ok_or_else(|| pem_error(path, "no private key block"))
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| pem_error(path, e))?;
    }
    Ok(roots)
}

fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read_file(path)?;
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = rustls_pemfile::crls(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if crls.is_empty() {
        return Err(pem_error(path, "no X509 CRL block"));
    }
    Ok(crls)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_forward_secret_aead_suites() {
        let provider = crypto_provider();
        assert_eq!(provider.cipher_suites.len(), ALLOWED_SUITES.len());
        for suite in &provider.cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name}"
            );
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert_chain: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            client_ca: "/nonexistent/ca.pem".into(),
            crl: None,
        };
        let err = TlsReloader::new(files).err().unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
