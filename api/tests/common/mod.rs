//! Shared setup of API tests driven with `oneshot`: an `AppState` over a
//! fresh data directory (optionally with a failing ledger log) and a real
//! client certificate from the demo PKI.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use api::app::AppState;
use api::pki::{self, Validity};
use vault::catalog::Catalog;
use vault::datadir::DataDir;
use vault::keys::MasterKey;
use vault::ledger::{Ledger, LedgerHmac, LedgerOptions, LogFile};
use zeroize::Zeroizing;

pub const TD: &str = "zv.test";

/// A file whose every write and sync fails, as on a full filesystem (both
/// ledger files get one).
pub struct FullDisk;

impl LogFile for FullDisk {
    fn write_all_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
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

pub fn state(dir: &Path, full_disk: bool) -> Arc<AppState> {
    let master = MasterKey::generate().unwrap();
    let datadir = DataDir::create(&dir.join("data")).unwrap();
    let catalog = Catalog::create(&datadir.catalog_path(), &master.catalog_key()).unwrap();
    let appliance_id = catalog.appliance_id().unwrap();
    let seed = Zeroizing::new(*master.ledger_signing_seed().ed25519_seed_bytes());
    let wrap = move |_, file: std::fs::File| -> Box<dyn LogFile> {
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
    let signer = vault::lifecycle::CertificateSigner::new(
        &format!("zonevault/{appliance_id}"),
        &Zeroizing::new(*master.ledger_signing_seed().ed25519_seed_bytes()),
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
        keys: api::app::keyring::KeyRing::new(&master),
        lifecycle: api::app::destructions::Lifecycle {
            signer,
            retention_interval: std::time::Duration::from_secs(60),
        },
        attest: None,
        quality_sla: vault::governance::quality::Sla::default(),
        monitoring: api::app::alerts::Monitoring::new(Default::default(), 0),
    })
}

/// The DER of a real operator client certificate from the demo PKI.
pub fn operator_cert(dir: &Path) -> Vec<u8> {
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
