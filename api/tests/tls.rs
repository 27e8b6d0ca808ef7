//! The mTLS server against real TLS clients on 127.0.0.1: who gets in, who
//! is refused at the handshake, and CRL reload without dropping connections.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::error::ApiError;
use api::identity::Identity;
use api::pki::{self, Validity};
use api::server::{serve, PeerInfo};
use api::tls::{HandshakeFailure, TlsFiles, TlsReloader};
use axum::routing::get;
use axum::{Extension, Json, Router};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const TD: &str = "zv.test";

/// A CA, a server certificate and named client certificates in a tempdir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        pki::init_ca(&dir.path().join("ca"), TD).unwrap();
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let dns = ["localhost".to_string()];
        pki::issue_server(
            &dir.path().join("ca"),
            &dns,
            &[localhost],
            &dir.path().join("server"),
        )
        .unwrap();
        Pki { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn client(&self, name: &str, role: &str, validity: Validity) -> PathBuf {
        let out = self.path(name);
        pki::issue_client(&self.path("ca"), role, "acme", name, &out, validity).unwrap();
        out
    }
    fn valid_client(&self, name: &str) -> PathBuf {
        self.client(name, "operator", Validity::days_from_now(1))
    }
    fn revoke(&self, client: &Path) {
        pki::revoke(&self.path("ca"), &client.join("cert.pem")).unwrap();
        pki::write_crl(&self.path("ca"), &self.path("crl.pem")).unwrap();
    }
    fn files(&self, client_ca: PathBuf, crl: bool) -> TlsFiles {
        if crl && !self.path("crl.pem").exists() {
            pki::write_crl(&self.path("ca"), &self.path("crl.pem")).unwrap();
        }
        TlsFiles {
            cert_chain: self.path("server/cert.pem"),
            key: self.path("server/key.pem"),
            client_ca,
            crl: crl.then(|| self.path("crl.pem")),
        }
    }
}

/// GET /v1/health answers with the caller's identity, or 403.
fn app() -> Router {
    async fn health(Extension(peer): Extension<PeerInfo>) -> Result<Json<Identity>, ApiError> {
        Ok(Json(Identity::from_peer_cert(&peer.cert_der, TD)?))
    }
    Router::new().route("/v1/health", get(health))
}

struct Server {
    addr: SocketAddr,
    tls: TlsReloader,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(files: TlsFiles) -> Server {
    let tls = TlsReloader::new(files).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve(listener, tls.clone(), app(), shutdown));
    Server {
        addr,
        tls,
        stop: Some(stop),
        task,
    }
}

impl Server {
    /// Waits until the server has counted `n` failures of `reason`.
    async fn expect_failures(&self, reason: HandshakeFailure, n: u64) {
        let stats = self.tls.handshake_stats();
        for _ in 0..100 {
            if stats.count(reason) >= n {
                assert_eq!(stats.count(reason), n, "{reason:?}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut all = String::new();
        stats.write_prometheus(&mut all);
        panic!("expected {n} handshake failures of {reason:?}; counters:\n{all}");
    }
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).unwrap();
    rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.unwrap())
        .collect()
}

fn client_config(
    pki: &Pki,
    client: Option<&Path>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(pem_certs(&pki.path("ca/cert.pem")).remove(0))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(dir) => {
            let key_pem = std::fs::read(dir.join("key.pem")).unwrap();
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .unwrap()
                .unwrap();
            builder
                .with_client_auth_cert(pem_certs(&dir.join("cert.pem")), key)
                .unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn default_client(pki: &Pki, client: Option<&Path>) -> Arc<ClientConfig> {
    client_config(pki, client, rustls::DEFAULT_VERSIONS)
}

/// A TLS client connection speaking HTTP/1.1 with keep-alive.
struct Conn(TlsStream<TcpStream>);

impl Conn {
    async fn open(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<Conn> {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        Ok(Conn(
            TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?,
        ))
    }

    /// GET /v1/health; returns status and body.
    async fn health(&mut self) -> std::io::Result<(u16, String)> {
        let req = "GET /v1/health HTTP/1.1\r\nhost: localhost\r\n\r\n";
        self.0.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.0.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let status: u16 = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap()
            .parse()
            .unwrap();
        let mut body = buf[head_end..].to_vec();
        while body.len() < len {
            let mut chunk = vec![0u8; len - body.len()];
            let n = self.0.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Ok((status, String::from_utf8(body).unwrap()))
    }
}

/// One connection, one request. In TLS 1.3 the server judges the client
/// certificate after the client has finished, so a refusal may surface
/// only at the first read.
async fn fetch(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<(u16, String)> {
    Conn::open(addr, config).await?.health().await
}

#[tokio::test]
async fn valid_client_is_served_with_its_identity() {
    let pki = Pki::new();
    let alice = pki.client("alice", "analyst", Validity::days_from_now(1));
    let server = start(pki.files(pki.path("ca/cert.pem"), true)).await;
    let (status, body) = fetch(server.addr, default_client(&pki, Some(&alice)))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["uri"], "spiffe://zv.test/analyst/acme/alice");
    assert_eq!(json["role"], "analyst");
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let pki = Pki::new();
    let server = start(pki.files(pki.path("ca/cert.pem"), false)).await;
    assert!(fetch(server.addr, default_client(&pki, None))
        .await
        .is_err());
    server.expect_failures(HandshakeFailure::NoCert, 1).await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    // A look-alike CA: same trust domain, hence the same name, another key.
    let lookalike = Pki::new();
    let mallory = lookalike.valid_client("mallory");
    // A CA with another name.
    let stranger = tempfile::tempdir().unwrap();
    let stranger_ca = stranger.path().join("ca");
    pki::init_ca(&stranger_ca, "stranger.test").unwrap();
    let sam = stranger.path().join("sam");
    pki::issue_client(
        &stranger_ca,
        "operator",
        "acme",
        "sam",
        &sam,
        Validity::days_from_now(1),
    )
    .unwrap();
    let server = start(pki.files(pki.path("ca/cert.pem"), false)).await;
    assert!(fetch(server.addr, default_client(&pki, Some(&mallory)))
        .await
        .is_err());
    assert!(fetch(server.addr, default_client(&pki, Some(&sam)))
        .await
        .is_err());
    server.expect_failures(HandshakeFailure::UnknownCa, 2).await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let pki = Pki::new();
    let old = pki.client(
        "old",
        "operator",
        Validity::expired(time::Duration::hours(1)),
    );
    let server = start(pki.files(pki.path("ca/cert.pem"), true)).await;
    assert!(fetch(server.addr, default_client(&pki, Some(&old)))
        .await
        .is_err());
    server.expect_failures(HandshakeFailure::Expired, 1).await;
}

#[tokio::test]
async fn revoked_certificate_is_refused() {
    let pki = Pki::new();
    let bob = pki.valid_client("bob");
    let carol = pki.valid_client("carol");
    pki.revoke(&bob);
    let server = start(pki.files(pki.path("ca/cert.pem"), true)).await;
    assert!(fetch(server.addr, default_client(&pki, Some(&bob)))
        .await
        .is_err());
    server.expect_failures(HandshakeFailure::Revoked, 1).await;
    let (status, _) = fetch(server.addr, default_client(&pki, Some(&carol)))
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn reload_refuses_newly_revoked_but_keeps_open_connections() {
    let pki = Pki::new();
    let bob = pki.valid_client("bob");
    let server = start(pki.files(pki.path("ca/cert.pem"), true)).await;
    let config = default_client(&pki, Some(&bob));
    let mut open = Conn::open(server.addr, config.clone()).await.unwrap();
    assert_eq!(open.health().await.unwrap().0, 200);

    pki.revoke(&bob);
    server.tls.reload().unwrap();
    assert_eq!(server.tls.generation(), 1);

    assert!(fetch(server.addr, config).await.is_err());
    server.expect_failures(HandshakeFailure::Revoked, 1).await;
    // The connection established before the reload keeps working.
    assert_eq!(open.health().await.unwrap().0, 200);
    assert_eq!(open.health().await.unwrap().0, 200);
}

#[tokio::test]
async fn sighup_reloads_the_crl() {
    let pki = Pki::new();
    let dave = pki.valid_client("dave");
    let server = start(pki.files(pki.path("ca/cert.pem"), true)).await;
    let handler = server.tls.spawn_sighup_reload().unwrap();
    let config = default_client(&pki, Some(&dave));
    assert_eq!(fetch(server.addr, config.clone()).await.unwrap().0, 200);

    pki.revoke(&dave);
    let pid = std::process::id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    for _ in 0..100 {
        if server.tls.generation() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.tls.generation() >= 1, "SIGHUP did not reload");
    assert!(fetch(server.addr, config).await.is_err());
    server.expect_failures(HandshakeFailure::Revoked, 1).await;
    handler.abort();
}

#[tokio::test]
async fn certificate_with_wrong_trust_domain_passes_tls_but_gets_403() {
    let pki = Pki::new();
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("ca");
    pki::init_ca(&other_ca, "other.test").unwrap();
    let eve = other.path().join("eve");
    pki::issue_client(
        &other_ca,
        "operator",
        "acme",
        "eve",
        &eve,
        Validity::days_from_now(1),
    )
    .unwrap();
    // The client CA bundle trusts both CAs; only the identity is wrong.
    let bundle = pki.path("bundle.pem");
    let mut pem = std::fs::read(pki.path("ca/cert.pem")).unwrap();
    pem.extend(std::fs::read(other_ca.join("cert.pem")).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let server = start(pki.files(bundle, false)).await;
    let (status, body) = fetch(server.addr, default_client(&pki, Some(&eve)))
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert!(
        !body.contains("other.test"),
        "internal reason leaked: {body}"
    );
}

#[tokio::test]
async fn tls12_with_ecdhe_aead_is_accepted_and_alpn_offers_h2() {
    let pki = Pki::new();
    let alice = pki.valid_client("alice");
    let server = start(pki.files(pki.path("ca/cert.pem"), false)).await;
    let tls12 = client_config(&pki, Some(&alice), &[&rustls::version::TLS12]);
    let mut conn = Conn::open(server.addr, tls12).await.unwrap();
    assert_eq!(conn.health().await.unwrap().0, 200);
    let session = conn.0.get_ref().1;
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = format!("{:?}", session.negotiated_cipher_suite().unwrap().suite());
    assert!(suite.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{suite}");

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let connector = TlsConnector::from(default_client(&pki, Some(&alice)));
    let h2 = connector.connect(name, tcp).await.unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

/// A minimal TLS 1.2 ClientHello offering exactly one cipher suite.
fn client_hello(suite: u16) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([7u8; 32]); // random
    body.push(0); // no session id
    body.extend([0, 2]);
    body.extend(suite.to_be_bytes());
    body.extend([1, 0]); // null compression
    let ext: &[u8] = &[
        0, 10, 0, 6, 0, 4, 0, 0x1d, 0, 0x17, // supported_groups: x25519, P-256
        0, 11, 0, 2, 1, 0, // ec_point_formats: uncompressed
        0, 13, 0, 8, 0, 6, 4, 3, 8, 4, 4, 1, // signature_algorithms
    ];
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut handshake = vec![1]; // ClientHello
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// Sends a ClientHello; returns the first record type and handshake type.
async fn first_reply(addr: SocketAddr, hello: &[u8]) -> (u8, u8) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut head = [0u8; 6];
    tcp.read_exact(&mut head).await.unwrap();
    (head[0], head[5])
}

#[tokio::test]
async fn tls12_without_ecdhe_is_refused() {
    // rustls clients cannot offer non-ECDHE suites, so speak raw TLS.
    let pki = Pki::new();
    let server = start(pki.files(pki.path("ca/cert.pem"), false)).await;
    const ECDHE_ECDSA_AES128_GCM: u16 = 0xc02b;
    const RSA_AES128_GCM: u16 = 0x009c; // static RSA key exchange: no forward secrecy
    const ECDHE_ECDSA_AES128_CBC: u16 = 0xc009; // ECDHE but not AEAD
    let (record, kind) = first_reply(server.addr, &client_hello(ECDHE_ECDSA_AES128_GCM)).await;
    assert_eq!((record, kind), (0x16, 2), "control: expected a ServerHello");
    // The control connection is dropped mid-handshake: one "other" failure.
    server.expect_failures(HandshakeFailure::Other, 1).await;
    for suite in [RSA_AES128_GCM, ECDHE_ECDSA_AES128_CBC] {
        let (record, _) = first_reply(server.addr, &client_hello(suite)).await;
        assert_eq!(record, 0x15, "suite {suite:#06x}: expected an alert");
    }
    server.expect_failures(HandshakeFailure::Other, 3).await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let pki = Pki::new();
    let alice = pki.valid_client("alice");
    let mut server = start(pki.files(pki.path("ca/cert.pem"), false)).await;
    let mut conn = Conn::open(server.addr, default_client(&pki, Some(&alice)))
        .await
        .unwrap();
    assert_eq!(conn.health().await.unwrap().0, 200);
    server.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server.task).await;
    result.expect("serve did not return").unwrap().unwrap();
    assert!(conn.health().await.is_err(), "idle connection still open");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting"
    );
}
