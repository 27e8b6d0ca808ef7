//! End to end: a zone's exit procedure, against the real binary, a real
//! swtpm and real mTLS. Entering the exit revokes the zone's grants at
//! once and refuses all further use of the zone (409 `zone_exiting`); the
//! zone's regulator approves the zone-wide destruction, which erases the
//! zone key and every dataset of the zone under one certificate that
//! verifies offline. Afterwards copies of the dataset files and of the
//! catalog saved before open with no key the appliance still holds (the
//! test recovers the master key from the custodians' shares, so it holds
//! every key the appliance has), the data directory holds none of the
//! sample's plaintext and none of the old key material, and the ledger
//! verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use e2e::appliance::{
    create_dataset_args, files_containing, s, zonevault_ok, Appliance, Reply, PASSPHRASES,
};
use serde_json::{json, Value};
use vault::catalog::Catalog;
use vault::dataset_file::DatasetFile;
use vault::ids::{DatasetId, ZoneId};
use vault::keys::{DatasetKey, MasterKey, ZoneKey};
use vault::recovery::{combine, ShareFile};

const CAROL: &str = "spiffe://test.zonevault/analyst/partner-a/carol";
const DATASETS: [&str; 2] = ["residents", "accounts"];

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

struct Zone {
    app: Appliance,
    sample: PathBuf,
}

impl Zone {
    /// Zone `finance` with `residents` (graded, confirmed) and `accounts`
    /// (same sample rows), and a grant to carol on `residents`.
    fn start() -> (Zone, String) {
        let (app, sample) = Appliance::serving_graded_dataset();
        let z = Zone { app, sample };
        z.app.operator_ok(&create_dataset_args("accounts"));
        z.app.operator_ok(&[
            "dataset",
            "import",
            "--zone",
            "finance",
            "--id",
            "accounts",
            "--file",
            s(&z.sample),
        ]);
        let r = z.call("operator", "POST", "/v1/grants", grant_body(&z.app));
        assert_eq!(r.status, 201, "{}", r.body);
        let grant = json_of(&r.body)["id"].as_str().unwrap().to_owned();
        (z, grant)
    }

    fn call(&self, role: &str, method: &str, path: &str, body: Value) -> Reply {
        let body = (!body.is_null()).then(|| body.to_string());
        self.app.curl_full(role, method, path, body.as_deref())
    }

    /// The ledger entry of `reply`, parsed.
    fn entry_of(&self, reply: &Reply) -> Value {
        let index = reply.ledger_index().expect("a ledger receipt");
        let r = self.call("regulator", "GET", "/v1/ledger/entries", Value::Null);
        json_of(r.body.lines().nth(index as usize).expect("entry"))
    }

    /// Asserts a 409 `zone_exiting` naming zone `finance`, recorded.
    fn assert_exiting(&self, reply: &Reply) {
        let body = json_of(&reply.body);
        assert_eq!(
            (reply.status, body["error"].as_str(), body["zone"].as_str()),
            (409, Some("zone_exiting"), Some("finance")),
            "{}",
            reply.body
        );
        let entry = self.entry_of(reply);
        assert!(
            entry["reason"].as_str().unwrap_or("").contains("exit"),
            "{entry}"
        );
    }
}

fn grant_body(app: &Appliance) -> Value {
    json!({"recipient": CAROL, "dataset": "residents", "columns": ["id", "amount"],
           "purpose": "credit risk model", "row_limit": 5000, "max_extracts": 10,
           "expires": "2030-01-01T00:00:00Z", "filing": app.filing_id()})
}

/// The master key, from two custodians' shares: every key the appliance
/// holds is derived from it or wrapped under it.
fn master_key(app: &Appliance) -> MasterKey {
    let shares: Vec<_> = (1..=2)
        .map(|i| {
            let file = app.path(&format!("recovery/share-{i}.json"));
            let share = ShareFile::from_json(&std::fs::read_to_string(file).unwrap()).unwrap();
            (
                share.key_check(),
                share.open(PASSPHRASES[i - 1].as_bytes()).unwrap(),
            )
        })
        .collect();
    let check = shares[0].0;
    let shares: Vec<_> = shares.into_iter().map(|(_, s)| s).collect();
    combine(&shares, &check).unwrap()
}

/// Copies of the dataset files and the catalog (with its WAL), and the key
/// material they depend on: the wrapped zone and dataset keys and the
/// dataset keys themselves.
struct Saved {
    dir: PathBuf,
    key_material: Vec<Vec<u8>>,
}

fn save_before(z: &Zone, master: &MasterKey) -> Saved {
    let data = z.app.data_dir();
    let dir = z.app.path("saved");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["catalog.db", "catalog.db-wal", "catalog.epoch"] {
        if data.join(name).exists() {
            std::fs::copy(data.join(name), dir.join(name)).unwrap();
        }
    }
    for id in DATASETS {
        let file = format!("{id}.db");
        std::fs::copy(data.join("datasets").join(&file), dir.join(&file)).unwrap();
    }
    let catalog = Catalog::open(&dir.join("catalog.db"), &saved_catalog_key(&dir, master)).unwrap();
    let zone: ZoneId = "finance".parse().unwrap();
    let wrapped_zone = catalog.zone_wrapped_key(&zone).unwrap();
    let zone_key = ZoneKey::unwrap(&wrapped_zone, master, &zone).unwrap();
    let mut key_material = vec![
        wrapped_zone.as_bytes().to_vec(),
        std::fs::read(dir.join("catalog.epoch")).unwrap(),
    ];
    for id in DATASETS {
        let id: DatasetId = id.parse().unwrap();
        let wrapped = catalog.dataset_wrapped_key(&id).unwrap();
        let key = DatasetKey::unwrap(&wrapped, &zone_key, &id).unwrap();
        assert!(DatasetFile::open(&dir.join(format!("{id}.db")), &key).is_ok());
        key_material.push(wrapped.as_bytes().to_vec());
        key_material.push(key.sqlcipher_key_bytes().to_vec());
    }
    Saved { dir, key_material }
}

#[test]
fn exit_revokes_refuses_and_erases_the_whole_zone() {
    let (mut z, grant) = Zone::start();
    let extract = json!({"grant": grant, "columns": ["id", "amount"]});
    assert_eq!(
        z.call("analyst", "POST", "/v1/extracts", extract.clone())
            .status,
        200
    );
    let master = master_key(&z.app);
    let saved = save_before(&z, &master);
    let markers = plaintext_markers(&z.sample);

    refused_exits_change_nothing(&z, &grant);
    let r = z.call(
        "operator",
        "POST",
        "/v1/zones/finance/exit",
        json!({"reason": "operator withdraws from the zone"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let exit = json_of(&r.body);
    assert_eq!(exit["state"], "exiting", "{exit}");
    assert_eq!(exit["cause"], "operator-withdrawal", "{exit}");
    assert_eq!(exit["revoked_grants"], json!([grant]), "{exit}");
    let dx = exit["destruction_id"].as_str().unwrap().to_owned();
    assert_eq!(exit["destruction"]["object"]["kind"], "zone", "{exit}");
    let again = z.call(
        "regulator",
        "POST",
        "/v1/zones/finance/exit",
        json!({"reason": "x"}),
    );
    assert_eq!(again.status, 409, "{}", again.body);

    use_is_refused(&z, &extract);
    let cert_id = approve_zone_destruction(&z, &dx);
    let (code, exit) = {
        let r = z.call("regulator", "GET", "/v1/zones/finance/exit", Value::Null);
        (r.status, json_of(&r.body))
    };
    assert_eq!(
        (
            code,
            exit["state"].as_str(),
            exit["certificate_id"].as_str()
        ),
        (200, Some("exited"), Some(cert_id.as_str())),
        "{exit}"
    );
    for id in DATASETS {
        let r = z.call(
            "operator",
            "GET",
            &format!("/v1/datasets/{id}"),
            Value::Null,
        );
        let body = json_of(&r.body);
        assert_eq!(
            (r.status, body["certificate"].as_str()),
            (410, Some(cert_id.as_str())),
            "{id}: {}",
            r.body
        );
    }
    let key = ledger_key(&z);
    check_certificate(&z, &dx, &cert_id, &key);
    z.app.stop_server(false);
    copies_open_with_no_remaining_key(&z, &master, &saved);
    nothing_readable_remains(&z, &saved, &markers);
    let out = zonevault_ok(&[
        "ledger",
        "verify",
        "--data-dir",
        s(&z.app.data_dir()),
        "--key",
        &key,
    ]);
    assert!(out.contains("OK"), "{out}");
}

/// A foreign role, a bad reason and a reason carrying a resident ID are
/// refused (recorded), and leave the grant usable and no exit behind.
fn refused_exits_change_nothing(z: &Zone, grant: &str) {
    let path = "/v1/zones/finance/exit";
    let r = z.call("analyst", "POST", path, json!({"reason": "r"}));
    assert_eq!(r.status, 403, "{}", r.body);
    let r = z.call("operator", "POST", path, json!({"reason": " "}));
    assert_eq!(
        (r.status, json_of(&r.body)["field"].as_str()),
        (400, Some("reason")),
        "{}",
        r.body
    );
    let r = z.call(
        "operator",
        "POST",
        path,
        json!({"reason": "户主 11010519491231002X 要求退出"}),
    );
    let body = json_of(&r.body);
    assert_eq!(
        (r.status, body["field"].as_str()),
        (400, Some("reason")),
        "{}",
        r.body
    );
    assert!(
        body["problem"].as_str().unwrap().contains("resident_id"),
        "{body}"
    );
    let entry = z.entry_of(&r);
    assert_eq!(
        (entry["status"].as_u64(), entry["decision"].as_str()),
        (Some(400), Some("error")),
        "{entry}"
    );
    assert!(!entry.to_string().contains("11010519491231002X"), "{entry}");
    assert_eq!(z.call("operator", "GET", path, Value::Null).status, 404);
    let r = z.call("operator", "GET", "/v1/grants", Value::Null);
    let grants = json_of(&r.body);
    let g = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == grant)
        .unwrap()
        .clone();
    assert!(g["revoked_at"].is_null(), "{g}");
}

/// While exiting: extracts (grant revoked), new grants, imports and new
/// datasets are refused; the operator cannot approve the destruction.
fn use_is_refused(z: &Zone, extract: &Value) {
    let r = z.call("analyst", "POST", "/v1/extracts", extract.clone());
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        z.entry_of(&r)["reason"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        z.entry_of(&r)
    );
    z.assert_exiting(&z.call("operator", "POST", "/v1/grants", grant_body(&z.app)));
    let put = z.app.curl_full(
        "operator",
        "PUT",
        "/v1/datasets/accounts/rows",
        Some("a,b\n1,2\n"),
    );
    z.assert_exiting(&put);
    let new = json!({"id": "late", "title": "t", "provider": "p",
                     "source": "operator-own", "retention": "30d"});
    z.assert_exiting(&z.call("operator", "POST", "/v1/zones/finance/datasets", new));
}

/// The operator may not approve; the zone's regulator does, which executes
/// the erase. The certificate id.
fn approve_zone_destruction(z: &Zone, dx: &str) -> String {
    let path = format!("/v1/destructions/{dx}/approval");
    let yes = json!({"approve": true});
    assert_eq!(z.call("operator", "POST", &path, yes.clone()).status, 403);
    assert!(z.app.data_dir().join("datasets/residents.db").exists());
    let r = z.call("regulator", "POST", &path, yes);
    assert_eq!(r.status, 200, "{}", r.body);
    let d = json_of(&r.body);
    assert_eq!(d["state"], "executed", "{d}");
    d["certificate_id"].as_str().unwrap().to_owned()
}

fn ledger_key(z: &Zone) -> String {
    let (code, key) = z.app.curl("regulator", "GET", "/v1/ledger/key", None);
    assert_eq!(code, 200, "{key}");
    key.trim().to_owned()
}

fn check_certificate(z: &Zone, dx: &str, cert_id: &str, key: &str) {
    let file = z.app.path("zone-cert.note");
    let out = z.app.zonevault_as(
        "regulator",
        &["destruction", "certificate", "--id", dx, "--out", s(&file)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let note = std::fs::read_to_string(&file).unwrap();
    let cert = json_of(note.lines().nth(1).unwrap());
    assert_eq!(cert["certificate_id"], cert_id);
    assert_eq!(cert["object"], "zone:finance");
    let ids: Vec<&str> = cert["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{cert}");
    assert!(DATASETS.iter().all(|d| ids.contains(d)), "{cert}");
    for d in cert["datasets"].as_array().unwrap() {
        assert_eq!(d["row_count"], 2000, "{cert}");
    }
    assert!(
        cert["scope"]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("zone-key:finance")),
        "{cert}"
    );
    assert_eq!(cert["verification"]["wrapped_keys_absent"], true, "{cert}");
    assert_eq!(cert["verification"]["files_absent"], true, "{cert}");
    assert_eq!(cert["verification"]["remaining_keys_opened"], 0, "{cert}");
    let out = zonevault_ok(&[
        "verify",
        "certificate",
        "--certificate",
        s(&file),
        "--key",
        key,
    ]);
    assert!(out.contains("PASS"), "{out}");
}

/// The catalog key of the epoch saved with the copy (which the erase
/// destroys on the appliance).
fn saved_catalog_key(dir: &Path, master: &MasterKey) -> vault::keys::CatalogKey {
    let epoch: [u8; 32] = std::fs::read(dir.join("catalog.epoch"))
        .unwrap()
        .try_into()
        .unwrap();
    master.catalog_root().key(Some(&epoch))
}

/// Every key the appliance still holds: the catalog key, every zone key
/// still wrapped in the catalog, every dataset key under them.
fn remaining_keys(z: &Zone, master: &MasterKey) -> (Vec<DatasetKey>, usize) {
    let datadir = vault::datadir::DataDir::open(&z.app.data_dir()).unwrap();
    let catalog = vault::catalog::open_catalog(&datadir, &master.catalog_root())
        .expect("the live catalog opens with the appliance's key");
    let mut keys = Vec::new();
    let mut zones = 0;
    for zone in catalog.zones().unwrap() {
        let Ok(zone_key) = catalog
            .zone_wrapped_key(&zone.id)
            .map_err(|_| ())
            .and_then(|w| ZoneKey::unwrap(&w, master, &zone.id).map_err(|_| ()))
        else {
            continue;
        };
        zones += 1;
        for ds in catalog.datasets(Some(&zone.id)).unwrap() {
            if let Ok(w) = catalog.dataset_wrapped_key(&ds.id) {
                if let Ok(k) = DatasetKey::unwrap(&w, &zone_key, &ds.id) {
                    keys.push(k);
                }
            }
        }
    }
    (keys, zones)
}

fn copies_open_with_no_remaining_key(z: &Zone, master: &MasterKey, saved: &Saved) {
    let (keys, zones) = remaining_keys(z, master);
    assert_eq!(
        zones, 0,
        "the finance zone key must be gone (the only zone)"
    );
    for id in DATASETS {
        let copy = saved.dir.join(format!("{id}.db"));
        for key in &keys {
            assert!(DatasetFile::open(&copy, key).is_err(), "{id}");
        }
        // And the keys the saved catalog would give, unwrapped again with
        // the master key: the saved catalog must not open at all.
    }
    let copy = saved.dir.join("catalog.db");
    let datadir = vault::datadir::DataDir::open(&z.app.data_dir()).unwrap();
    let keys = vault::catalog::derivable_keys(&datadir, &master.catalog_root()).unwrap();
    assert_eq!(keys.len(), 2, "the epoch-less key and the current epoch's");
    for key in &keys {
        assert!(
            Catalog::open(&copy, key).is_err(),
            "the catalog saved before the exit must not open with a key the appliance holds"
        );
    }
    assert!(
        Catalog::open(&copy, &saved_catalog_key(&saved.dir, master)).is_ok(),
        "the copy itself is a good catalog: it opens with the destroyed epoch's key"
    );
}

/// A few values of the sample (resident IDs, names) that must not appear
/// in clear anywhere in the data directory.
fn plaintext_markers(sample: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(sample).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (rid, name) = (col("resident_id"), col("name"));
    lines
        .take(5)
        .flat_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [f[rid].to_owned(), f[name].to_owned()]
        })
        .collect()
}

fn nothing_readable_remains(z: &Zone, saved: &Saved, markers: &[String]) {
    let data = z.app.data_dir();
    for m in markers {
        let hits = files_containing(&data, m.as_bytes());
        assert!(hits.is_empty(), "{m:?} in {hits:?}");
    }
    for (i, k) in saved.key_material.iter().enumerate() {
        let hits = files_containing(&data, k);
        assert!(hits.is_empty(), "key material #{i} in {hits:?}");
    }
    let left: Vec<_> = std::fs::read_dir(data.join("datasets"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
