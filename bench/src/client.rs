//! The mTLS HTTP/1.1 client: one keep-alive connection per [`Connection`],
//! presenting a client certificate from the harness's PKI.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where a server listens and how to reach it as one role.
#[derive(Clone)]
pub struct Endpoint {
    /// 127.0.0.1 and the server's port.
    pub addr: SocketAddr,
    tls: Arc<ClientConfig>,
}

impl Endpoint {
    /// The server on 127.0.0.1:`port`, reached with the certificate of
    /// `role` from the harness PKI directory `pki` (`pki/<role>/*.pem`,
    /// server CA in `pki/ca/cert.pem`).
    pub fn new(port: u16, pki: &Path, role: &str) -> Result<Endpoint> {
        let role_dir = pki.join(role);
        let tls = client_config(
            &pki.join("ca/cert.pem"),
            &role_dir.join("cert.pem"),
            &role_dir.join("key.pem"),
        )?;
        Ok(Endpoint {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            tls,
        })
    }

    /// Opens one keep-alive HTTP/1.1 connection sending bodies of type `B`.
    pub async fn connect<B>(&self) -> Result<Connection<B>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {}", self.addr))?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { sender })
    }
}

/// One open connection.
pub struct Connection<B> {
    sender: SendRequest<B>,
}

impl<B> Connection<B>
where
    B: Body + Send + 'static,
{
    /// Sends `method path` with `body` and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        body: B,
    ) -> Result<(StatusCode, Bytes)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "127.0.0.1")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(body)?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow!("reading the response body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

impl Connection<Full<Bytes>> {
    /// `POST path` with a JSON body; streams the answer without keeping it,
    /// counting its bytes and lines (`\n`). The status, the response
    /// headers, and for a non-2xx answer its body (for the error message).
    pub async fn post_counting(&mut self, path: &str, body: &serde_json::Value) -> Result<Counted> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(hyper::header::HOST, "127.0.0.1")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, mut incoming) = response.into_parts();
        let mut counted = Counted {
            status: parts.status,
            headers: parts.headers,
            bytes: 0,
            lines: 0,
            error_body: Vec::new(),
        };
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| anyhow!("reading the response body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                counted.add(&data);
            }
        }
        Ok(counted)
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes)> {
        self.send(Method::GET, path, "text/plain", Full::default())
            .await
    }

    /// `method path` with a JSON body; any status but `accept` is an error.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
        accept: &[StatusCode],
    ) -> Result<(StatusCode, Bytes)> {
        let bytes = Bytes::from(body.to_string());
        let (status, answer) = self
            .send(method.clone(), path, "application/json", Full::new(bytes))
            .await?;
        if !accept.contains(&status) {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok((status, answer))
    }
}

/// A client configuration trusting `ca` and presenting `cert`/`key`;
/// HTTP/1.1 only, ring provider.
fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(ca)? {
        roots.add(c)?;
    }
    let key = read_key(key)?;
    let mut config = ClientConfig::builder_with_provider(api::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(read_certs(cert)?, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse {}", path.display()))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("parse {}", path.display()))?
        .ok_or_else(|| anyhow!("{}: no private key", path.display()))
}

/// A streamed answer, counted instead of kept.
pub struct Counted {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: hyper::HeaderMap,
    /// Body bytes.
    pub bytes: u64,
    /// `\n` bytes in the body.
    pub lines: u64,
    /// The body of a non-2xx answer (at most 4 KiB), for error messages.
    pub error_body: Vec<u8>,
}

impl Counted {
    fn add(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
        if !self.status.is_success() && self.error_body.len() < 4096 {
            self.error_body.extend_from_slice(data);
        }
    }
}
