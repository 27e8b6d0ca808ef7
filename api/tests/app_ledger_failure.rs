//! Fail-closed: when the audit ledger cannot be written, a request through
//! `app()` gets 503 and none of the handler's data, and no ledger receipt.
//! Driven with `oneshot` (no socket), with an I/O error injected through
//! `Ledger::open_with` and a real client certificate from the demo PKI.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use api::app::audit::LEDGER_INDEX_HEADER;
use api::app::{app, AppState};
use api::pki::{self, Validity};
use api::server::PeerInfo;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vault::catalog::Catalog;
use vault::datadir::DataDir;
use vault::keys::MasterKey;
use vault::ledger::{Ledger, LedgerHmac, LedgerOptions, LogFile};
use zeroize::Zeroizing;

const TD: &str = "zv.test";

/// A log whose every write and sync fails, as on a full filesystem.
struct FullDisk;

impl LogFile for FullDisk {
    fn write_all(&mut self, _: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "injected: no space left",
        ))
    }
    fn sync_data(&mut self) -> io::Result<()> {
        Err(io::Error::other("injected: fsync failed"))
    }
    fn set_len(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }
}

fn state(dir: &Path, full_disk: bool) -> Arc<AppState> {
    let master = MasterKey::generate().unwrap();
    let datadir = DataDir::create(&dir.join("data")).unwrap();
    let catalog = Catalog::create(&datadir.catalog_path(), &master.catalog_key()).unwrap();
    let appliance_id = catalog.appliance_id().unwrap();
    let seed = Zeroizing::new(*master.ledger_signing_seed().ed25519_seed_bytes());
    let wrap = move |file: std::fs::File| -> Box<dyn LogFile> {
        if full_disk {
            Box::new(FullDisk)
        } else {
            Box::new(file)
        }
    };
    let (ledger, _) = Ledger::open_with(
        datadir.root(),
        &appliance_id,
        seed,
        LedgerOptions::default(),
        wrap,
    )
    .unwrap();
    Arc::new(AppState {
        ledger: Arc::new(ledger),
        catalog: Mutex::new(catalog),
        hmac: LedgerHmac::new(Zeroizing::new(*master.ledger_hmac_key().hmac_key_bytes())),
        trust_domain: TD.into(),
        appliance_id,
        handshakes: Arc::default(),
        metrics: api::app::metrics::Metrics::default(),
        zones: api::app::zones::ZoneSettings {
            datadir,
            bureau: "bureau".into(),
            max_import_bytes: 1 << 20,
            imports: Default::default(),
        },
        keys: api::app::keyring::KeyRing::new(master),
    })
}

/// The DER of a real operator client certificate from the demo PKI.
fn operator_cert(dir: &Path) -> Vec<u8> {
    pki::init_ca(&dir.join("ca"), TD).unwrap();
    let out = dir.join("operator");
    let validity = Validity::days_from_now(1);
    pki::issue_client(&dir.join("ca"), "operator", "acme", "alice", &out, validity).unwrap();
    let pem = std::fs::read(out.join("cert.pem")).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    der.to_vec()
}

async fn health(state: &Arc<AppState>, cert: &[u8]) -> (StatusCode, Option<String>, String) {
    let peer = PeerInfo {
        cert_der: Arc::new(cert.to_vec()),
        peer_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)),
    };
    let request = Request::builder()
        .uri("/v1/health")
        .extension(peer)
        .body(Body::empty())
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let receipt = response
        .headers()
        .get(LEDGER_INDEX_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, receipt, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn app_ledger_healthy_ledger_answers_with_data_and_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), false);
    let (status, receipt, body) = health(&state, &operator_cert(dir.path())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(receipt.as_deref(), Some("0"));
    assert!(body.contains(&state.appliance_id), "{body}");
}

#[tokio::test]
async fn app_ledger_unwritable_ledger_gives_503_and_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), true);
    let cert = operator_cert(dir.path());
    for _ in 0..2 {
        let (status, receipt, body) = health(&state, &cert).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(receipt, None);
        assert!(
            !body.contains(&state.appliance_id),
            "handler data leaked: {body}"
        );
        assert!(!body.contains("ledger_size"), "handler data leaked: {body}");
        assert!(!body.contains("injected"), "internal detail leaked: {body}");
        assert!(body.contains("ledger_unavailable"), "{body}");
    }
    assert!(state.ledger.is_failed());
    assert_eq!(state.ledger.size(), 0);
}
