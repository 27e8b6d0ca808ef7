//! Where the server is and who the client is: the `https://host:port`
//! address and the rustls client configuration built from PEM files.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::ClientError;
use crate::tls::TlsError;

/// The server's address, parsed from `https://host[:port]` (port 443 if absent).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or IP address (no brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The name the server certificate must carry.
    pub server_name: ServerName<'static>,
}

impl Endpoint {
    /// Parses `https://host[:port]`; IPv6 hosts in brackets; no path.
    pub fn parse(addr: &str) -> Result<Endpoint, ClientError> {
        let bad = |problem| ClientError::Address {
            addr: addr.to_owned(),
            problem,
        };
        let rest = addr
            .strip_prefix("https://")
            .ok_or(bad("must start with https://"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(bad("must not have a path"));
        }
        let (host, port) = split_host_port(authority).ok_or(bad("bad host or port"))?;
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| bad("host is not a valid DNS name or IP address"))?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            server_name,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest {
            "" => 443,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((authority, 443)),
    }
}

/// TLS 1.3 (or 1.2 with forward-secret AEAD suites, as the server allows),
/// the server verified against `cacert`, the client authenticated by
/// `cert` and `key`; HTTP/1.1 only.
pub fn tls_config(
    cacert: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    for ca in read_certs(cacert)? {
        roots.add(ca).map_err(|e| pem_error(cacert, e))?;
    }
    let mut config = ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(read_certs(cert)?, read_key(key)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server's PEM readers, their errors as the client's.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    crate::tls::read_certs(path).map_err(client_error)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    crate::tls::read_key(path).map_err(client_error)
}

fn pem_error(path: &Path, problem: impl ToString) -> ClientError {
    ClientError::Pem {
        path: path.into(),
        problem: problem.to_string(),
    }
}

fn client_error(err: TlsError) -> ClientError {
    match err {
        TlsError::Io { path, source } => ClientError::Read { path, source },
        TlsError::Pem { path, problem } => ClientError::Pem { path, problem },
        other => ClientError::TlsFiles(other),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_port() {
        let e = Endpoint::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8443));
        let e = Endpoint::parse("https://vault.example/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("vault.example", 443));
        let e = Endpoint::parse("https://[::1]:9000").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.to_string()),
            ("::1", 9000, "[::1]:9000".into())
        );
    }

    #[test]
    fn bad_addresses_say_why() {
        for (addr, why) in [
            ("http://127.0.0.1:8443", "https://"),
            ("127.0.0.1:8443", "https://"),
            ("https://127.0.0.1:8443/v1", "path"),
            ("https://127.0.0.1:x", "port"),
            ("https://:8443", "no host"),
        ] {
            let err = Endpoint::parse(addr).unwrap_err().to_string();
            assert!(err.contains(why), "{addr}: {err}");
        }
    }
}
