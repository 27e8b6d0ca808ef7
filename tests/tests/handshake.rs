//! End to end: client certificates the appliance refuses at the TLS
//! handshake, against the real binary, a real swtpm and real mTLS. No
//! certificate, a certificate from a look-alike CA (same trust domain, same
//! identity, another key), an expired one and a revoked one each get a TLS
//! alert and never an HTTP status; none of them becomes a ledger entry;
//! each is counted once, under its reason, in `GET /metrics`. A CRL
//! rewritten and signalled with SIGHUP refuses new connections of the
//! newly revoked certificate while its open connection is still answered.
//!
//! The client here is rustls itself, so a refusal is the exact alert the
//! server sent. In TLS 1.3 the server judges the client's certificate only
//! after the client has finished its side of the handshake, so the client
//! reads the verdict without sending a request: an alert, or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::pki::{self, Validity};
use e2e::appliance::{issue_client_cert, s, zonevault_ok, Appliance, TRUST_DOMAIN};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sha2::{Digest, Sha256};

/// The `[tls]` line pointing the server at the CA's CRL.
const CRL_CONFIG: &str = "crl = \"pki/crl.pem\"\n";
/// Bound on waiting for an alert that never comes (a wrongly accepted
/// certificate): the test fails instead of hanging. Not an assertion.
const READ_BOUND: Duration = Duration::from_secs(30);

/// A serving appliance and its port.
struct Vault {
    app: Appliance,
    port: u16,
}

impl Vault {
    /// Initializes `app` and starts its server with `tls_extra` in `[tls]`.
    fn start(mut app: Appliance, tls_extra: &str) -> Vault {
        app.init("0,2,4,7");
        let port = app.start_server_tls("", tls_extra).expect("server starts");
        Vault { app, port }
    }

    /// A client configuration trusting the appliance's CA, presenting the
    /// certificate in `client` (a directory with cert.pem and key.pem).
    fn client(&self, client: Option<&Path>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(pem_certs(&self.app.path("pki/ca/cert.pem")).remove(0))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(dir) => {
                let pem = std::fs::read(dir.join("key.pem")).unwrap();
                let key = rustls_pemfile::private_key(&mut pem.as_slice())
                    .unwrap()
                    .unwrap();
                builder
                    .with_client_auth_cert(pem_certs(&dir.join("cert.pem")), key)
                    .unwrap()
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// The certificate directory `pki/NAME` of the appliance.
    fn pki(&self, name: &str) -> PathBuf {
        self.app.path(&format!("pki/{name}"))
    }

    /// The ledger receipt of an operator's `GET /v1/health` (over curl).
    fn receipt(&self) -> u64 {
        let reply = self.app.curl_full("operator", "GET", "/v1/health", None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.ledger_index().expect("ledger receipt")
    }

    /// The indexes of the ledger entries made with the certificate in `dir`.
    fn entries_of(&self, dir: &Path) -> BTreeSet<u64> {
        let fingerprint = cert_sha256(dir);
        (0u64..)
            .zip(self.app.ledger_entries())
            .filter(|(_, e)| e["cert_sha256"] == fingerprint.as_str())
            .map(|(i, _)| i)
            .collect()
    }

    /// `zonevault_tls_handshake_failures_total` by reason, from `/metrics`.
    fn failures(&self) -> BTreeMap<String, u64> {
        let reply = self.app.curl_full("operator", "GET", "/metrics", None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let prefix = "zonevault_tls_handshake_failures_total{reason=\"";
        reply
            .body
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|rest| {
                let (reason, n) = rest.split_once("\"} ").unwrap();
                (reason.to_owned(), n.parse().unwrap())
            })
            .collect()
    }

    /// Polls `/metrics` (a bounded number of times) until the counters are
    /// `want` in every reason; the server counts a refusal just after it
    /// sends the alert, so the count may trail the client by a moment.
    fn expect_failures(&self, want: &BTreeMap<String, u64>) {
        let mut seen = self.failures();
        for _ in 0..100 {
            if want.iter().all(|(k, n)| seen.get(k) >= Some(n)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            seen = self.failures();
        }
        assert_eq!(&seen, want, "handshake failure counters");
    }

    /// The handshake with `client` is refused with `alert`, it writes no
    /// ledger entry (the receipts on either side are consecutive), and it
    /// is counted once under `reason`, every other reason unchanged.
    fn assert_refused(&self, client: Option<&Path>, alert: AlertDescription, reason: &str) {
        let mut want = self.failures();
        assert_eq!(want.len(), 6, "every reason is exported: {want:?}");
        *want.get_mut(reason).expect("known reason") += 1;
        let before = self.receipt();
        assert_eq!(refusal(self.port, self.client(client)), alert);
        assert_eq!(self.receipt(), before + 1, "the refusal wrote an entry");
        self.expect_failures(&want);
    }
}

/// Every certificate in a PEM file.
fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).unwrap();
    rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.unwrap())
        .collect()
}

/// Lowercase hex SHA-256 of the certificate in `dir`, as the ledger has it.
fn cert_sha256(dir: &Path) -> String {
    hex::encode(Sha256::digest(pem_certs(&dir.join("cert.pem"))[0].as_ref()))
}

/// The rustls error inside an I/O error, if there is one.
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// One client connection speaking HTTP/1.1 with keep-alive.
struct Conn(StreamOwned<ClientConnection, TcpStream>);

impl Conn {
    /// Connects and completes the client's side of the handshake (in TLS
    /// 1.3 this does not yet mean the server accepted the certificate).
    fn open(port: u16, config: Arc<ClientConfig>) -> io::Result<Conn> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(READ_BOUND))?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(tls, tcp);
        while stream.conn.is_handshaking() || stream.conn.wants_write() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Conn(stream))
    }

    /// `GET /v1/health`: the status and the ledger receipt.
    fn health(&mut self) -> io::Result<(u16, u64)> {
        self.0
            .write_all(b"GET /v1/health HTTP/1.1\r\nhost: localhost\r\n\r\n")?;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more(&mut buf)?;
        };
        let head = String::from_utf8(buf[..head_end].to_ascii_lowercase()).unwrap();
        let header = |name: &str| -> u64 {
            head.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {head}"))
                .trim()
                .parse()
                .unwrap()
        };
        let status: u16 = head[9..12].parse().unwrap();
        let len = header("content-length:") as usize;
        let receipt = header("zonevault-ledger-index:");
        while buf.len() < head_end + len {
            self.read_more(&mut buf)?;
        }
        Ok((status, receipt))
    }

    fn read_more(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        match self.0.read(&mut chunk)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }
}

/// Connects with `config`, sends nothing, and returns the alert the server
/// refused the handshake with; panics on anything else (an accepted
/// certificate reaches [`READ_BOUND`] and panics too).
fn refusal(port: u16, config: Arc<ClientConfig>) -> AlertDescription {
    let err = match Conn::open(port, config) {
        // TLS 1.2 would refuse before the client finishes.
        Err(e) => e,
        Ok(mut conn) => match conn.0.read(&mut [0u8; 1]) {
            Err(e) => e,
            Ok(n) => panic!("expected a TLS alert, read {n} bytes"),
        },
    };
    match tls_error(&err) {
        Some(rustls::Error::AlertReceived(alert)) => *alert,
        _ => panic!("expected a TLS alert, got: {err}"),
    }
}

/// `zonevault pki revoke`: revokes `cert_dir` and writes `pki/crl.pem`.
fn revoke(app: &Appliance, cert_dir: &Path) {
    zonevault_ok(&[
        "pki",
        "revoke",
        "--ca",
        s(&app.path("pki/ca")),
        "--cert",
        s(&cert_dir.join("cert.pem")),
        "--crl-out",
        s(&app.path("pki/crl.pem")),
    ]);
}

#[test]
fn handshake_without_a_client_certificate_is_refused_unrecorded_and_counted() {
    let v = Vault::start(Appliance::new(), "");
    v.assert_refused(None, AlertDescription::CertificateRequired, "no_cert");
    assert_eq!(v.failures()["no_cert"], 1);
}

#[test]
fn handshake_with_a_certificate_from_another_ca_is_refused() {
    let app = Appliance::new();
    // Another CA of the same trust domain (so the same CA name) issues the
    // operator's very identity; only its key differs.
    let other_ca = app.path("other-ca");
    zonevault_ok(&[
        "pki",
        "init-ca",
        "--out",
        s(&other_ca),
        "--trust-domain",
        TRUST_DOMAIN,
    ]);
    let mallory = app.path("mallory");
    issue_client_cert(&other_ca, "operator", "zone-op", "alice", &mallory);
    // And a CA of another trust domain: an issuer the server never heard of.
    let stranger_ca = app.path("stranger-ca");
    zonevault_ok(&[
        "pki",
        "init-ca",
        "--out",
        s(&stranger_ca),
        "--trust-domain",
        "stranger.example",
    ]);
    let sam = app.path("sam");
    issue_client_cert(&stranger_ca, "operator", "zone-op", "sam", &sam);
    let v = Vault::start(app, "");
    // The issuer's name matches, its signature does not verify.
    v.assert_refused(Some(&mallory), AlertDescription::DecryptError, "unknown_ca");
    v.assert_refused(Some(&sam), AlertDescription::UnknownCA, "unknown_ca");
    assert_eq!(v.failures()["unknown_ca"], 2);
    assert_eq!(v.entries_of(&mallory), BTreeSet::new());
    assert_eq!(v.entries_of(&sam), BTreeSet::new());
}

#[test]
fn handshake_with_an_expired_certificate_is_refused() {
    let app = Appliance::new();
    // `zonevault pki issue` only issues certificates valid from now on, so
    // the CA library backdates this one: it ended an hour ago.
    let old = app.path("pki/old");
    let expired = Validity::expired(time::Duration::hours(1));
    pki::issue_client(
        &app.path("pki/ca"),
        "operator",
        "zone-op",
        "olga",
        &old,
        expired,
    )
    .unwrap();
    let v = Vault::start(app, "");
    v.assert_refused(Some(&old), AlertDescription::CertificateExpired, "expired");
    assert_eq!(v.failures()["expired"], 1);
    assert_eq!(v.entries_of(&old), BTreeSet::new());
}

#[test]
fn handshake_with_a_revoked_certificate_is_refused_and_others_are_served() {
    let app = Appliance::new();
    let eve = app.path("pki/eve");
    issue_client_cert(&app.path("pki/ca"), "analyst", "partner-a", "eve", &eve);
    revoke(&app, &eve);
    let v = Vault::start(app, CRL_CONFIG);
    v.assert_refused(Some(&eve), AlertDescription::CertificateRevoked, "revoked");
    assert_eq!(v.failures()["revoked"], 1);
    assert_eq!(v.entries_of(&eve), BTreeSet::new());
    // Certificates the CRL does not list are served, on new connections.
    for role in ["analyst", "regulator"] {
        let mut conn = Conn::open(v.port, v.client(Some(&v.pki(role)))).unwrap();
        assert_eq!(conn.health().unwrap().0, 200, "{role}");
    }
}

#[test]
fn sighup_reloads_the_crl_refusing_new_connections_and_keeping_open_ones() {
    let app = Appliance::new();
    let ca = app.path("pki/ca");
    let (old, frank) = (app.path("pki/old"), app.path("pki/frank"));
    issue_client_cert(&ca, "analyst", "partner-a", "old", &old);
    issue_client_cert(&ca, "analyst", "partner-a", "frank", &frank);
    // The first CRL lists another certificate, not frank's.
    revoke(&app, &old);
    let v = Vault::start(app, CRL_CONFIG);
    let config = v.client(Some(&frank));
    let mut open = Conn::open(v.port, config.clone()).unwrap();
    let (status, first) = open.health().unwrap();
    assert_eq!(status, 200);
    let mut served = BTreeSet::from([first]);

    revoke(&v.app, &frank);
    v.app.signal_server(libc::SIGHUP);
    // Until the server has reloaded, frank's new connections are served;
    // the first refused one shows the reload happened.
    let mut reloaded = false;
    for _ in 0..200 {
        match Conn::open(v.port, config.clone()).and_then(|mut c| c.health()) {
            Ok((200, index)) => served.insert(index),
            Ok((status, _)) => panic!("frank got HTTP {status}, not 200 or a refusal"),
            Err(_) => {
                reloaded = true;
                break;
            }
        };
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reloaded, "SIGHUP did not make the server refuse frank");

    v.assert_refused(
        Some(&frank),
        AlertDescription::CertificateRevoked,
        "revoked",
    );
    // The refused poll and the refusal just checked.
    assert_eq!(v.failures()["revoked"], 2);
    // The connection opened before the reload is still answered.
    for _ in 0..2 {
        let (status, index) = open.health().unwrap();
        assert_eq!(status, 200);
        served.insert(index);
    }
    // Another certificate still connects afresh.
    let mut other = Conn::open(v.port, v.client(Some(&v.pki("analyst")))).unwrap();
    assert_eq!(other.health().unwrap().0, 200);
    // frank's entries are exactly the requests he was answered.
    assert_eq!(v.entries_of(&frank), served);
}
