//! End to end: `GET /v1/attestation` from the real server on a real swtpm,
//! checked by `zonevault verify quote`, `zonevault attest verify` and by
//! `tpm2_checkquote` from tpm2-tools (an implementation we did not write).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::appliance::{s, zonevault, Appliance};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn nonce(byte: u8) -> String {
    hex::encode([byte; 32])
}

/// `GET /v1/attestation?nonce=` as the regulator; the body, saved to `file`.
fn fetch(app: &Appliance, nonce: &str, file: &Path) -> Value {
    let (status, body) = app.curl(
        "regulator",
        "GET",
        &format!("/v1/attestation?nonce={nonce}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    std::fs::write(file, &body).unwrap();
    serde_json::from_str(&body).unwrap()
}

/// A reference file with the bundle's PCR values, PCR `changed` altered.
fn reference(bundle: &Value, file: &Path, changed: Option<&str>) {
    let mut pcrs = bundle["pcrs"].as_object().unwrap().clone();
    if let Some(pcr) = changed {
        pcrs.insert(pcr.into(), json!("11".repeat(32)));
    }
    let selection: Vec<u8> = pcrs.keys().map(|k| k.parse().unwrap()).collect();
    let sources: serde_json::Map<String, Value> = pcrs
        .keys()
        .map(|k| (k.clone(), json!("firmware")))
        .collect();
    let reference =
        json!({"bank": "sha256", "selection": selection, "pcrs": pcrs, "sources": sources});
    std::fs::write(file, reference.to_string()).unwrap();
}

fn verify(bundle: &Path, nonce: &str, extra: &[&str]) -> Output {
    let mut args = vec!["verify", "quote", "--bundle", s(bundle), "--nonce", nonce];
    args.extend_from_slice(extra);
    zonevault(&args)
}

/// Runs tpm2_checkquote on the bundle with qualifying data for `nonce`.
fn checkquote(app: &Appliance, bundle: &Value, nonce: &str) -> Output {
    let dir = app.path("checkquote");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let ak = file(
        "ak.pem",
        bundle["ak_public_pem"].as_str().unwrap().as_bytes(),
    );
    let msg = file(
        "quote.msg",
        &B64.decode(bundle["quote"].as_str().unwrap()).unwrap(),
    );
    let sig = file(
        "quote.sig",
        &B64.decode(bundle["signature"].as_str().unwrap()).unwrap(),
    );
    let pcrs = bundle["pcrs"].as_object().unwrap();
    let mut indices: Vec<u8> = pcrs.keys().map(|k| k.parse().unwrap()).collect();
    indices.sort_unstable();
    let mut values = Vec::new();
    for i in &indices {
        values.extend(hex::decode(pcrs[&i.to_string()].as_str().unwrap()).unwrap());
    }
    let values = file("pcrs.bin", &values);
    let list: Vec<String> = indices.iter().map(u8::to_string).collect();
    let mut qualifying = Sha256::new();
    qualifying.update(b"zonevault-attest-v1");
    qualifying.update(hex::decode(nonce).unwrap());
    qualifying.update(bundle["checkpoint"].as_str().unwrap().as_bytes());
    qualifying.update(bundle["checkpoint_key"].as_str().unwrap().as_bytes());
    Command::new("tpm2_checkquote")
        .args(["-u", s(&ak), "-m", s(&msg), "-s", s(&sig), "-f", s(&values)])
        .arg("-l")
        .arg(format!("sha256:{}", list.join(",")))
        .args(["-g", "sha256", "-q"])
        .arg(hex::encode(qualifying.finalize()))
        .output()
        .expect("run tpm2_checkquote")
}

#[test]
fn the_regulator_gets_a_quote_that_we_and_tpm2_checkquote_verify() {
    let mut app = Appliance::new();
    app.init("0,2,4,7");
    app.start_server().expect("server starts");
    let n = nonce(0x42);
    let bundle_path = app.path("bundle.json");
    let bundle = fetch(&app, &n, &bundle_path);
    assert_eq!(bundle["pcr_bank"], "sha256");
    let quoted: Vec<&String> = bundle["pcrs"].as_object().unwrap().keys().collect();
    assert_eq!(
        quoted,
        ["0", "11", "2", "4", "7"],
        "policy PCRs plus the launcher PCR"
    );
    assert!(bundle["ek_certificate_pem"].is_null());

    // Roles: supervisors only; a short nonce is the caller's error.
    let (status, _) = app.curl(
        "analyst",
        "GET",
        &format!("/v1/attestation?nonce={n}"),
        None,
    );
    assert_eq!(status, 403);
    let (status, body) = app.curl("operator", "GET", "/v1/attestation?nonce=abcd", None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nonce"), "{body}");

    // Offline, no pin, no reference: PASS, and it says what it trusted.
    let out = verify(&bundle_path, &n, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("PASS"), "{stdout}");
    assert!(stdout.contains("NOT pinned"), "{stdout}");
    assert!(stdout.contains("unjudged"), "{stdout}");

    // Pinned AK and a reference: PASS.
    let pin = app.data_dir().join("sealed/ak.pem");
    let good_ref = app.path("reference.json");
    reference(&bundle, &good_ref, None);
    let out = verify(
        &bundle_path,
        &n,
        &["--ak-pin", s(&pin), "--reference", s(&good_ref)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(pinned)"));

    // A reference that differs in PCR 7: FAIL naming PCR 7.
    let bad_ref = app.path("reference-7.json");
    reference(&bundle, &bad_ref, Some("7"));
    let out = verify(&bundle_path, &n, &["--reference", s(&bad_ref)]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("FAIL"), "{stdout}");
    assert!(stdout.contains("PCR 7 is "), "{stdout}");

    // A wrong (or replayed old) nonce: FAIL.
    let out = verify(&bundle_path, &nonce(0x43), &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nonce"),
        "{}",
        text(&out)
    );

    // tpm2_checkquote accepts our quote, and refuses it for another nonce.
    let out = checkquote(&app, &bundle, &n);
    assert!(out.status.success(), "tpm2_checkquote: {}", text(&out));
    let out = checkquote(&app, &bundle, &nonce(0x43));
    assert!(
        !out.status.success(),
        "tpm2_checkquote accepted a wrong nonce"
    );

    // Online: a fresh random nonce each time.
    let online = |reference: &Path| {
        let mut args = vec!["attest", "verify", "--reference", s(reference)];
        args.extend(["--ak-pin", s(&pin)]);
        app.zonevault_as("regulator", &args)
    };
    let out = online(&good_ref);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASS"));
    let out = online(&bad_ref);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PCR 7"),
        "{}",
        text(&out)
    );
}

/// A reboot of the TPM: reset through swtpm's control channel, then
/// TPM2_Startup(CLEAR). PCRs return to their reset values; seeds stay.
fn reboot(app: &Appliance) {
    let ctrl = format!("127.0.0.1:{}", app.tpm.port() + 1);
    let out = Command::new("swtpm_ioctl")
        .args(["--tcp", &ctrl, "-i"])
        .output()
        .unwrap();
    assert!(out.status.success(), "swtpm_ioctl -i: {}", text(&out));
    let out = Command::new("tpm2_startup")
        .arg("-c")
        .env("TPM2TOOLS_TCTI", app.tpm.tcti())
        .env("TSS2_LOG", "all+none")
        .output()
        .unwrap();
    assert!(out.status.success(), "tpm2_startup: {}", text(&out));
}

fn launcher(args: &[&str]) -> Output {
    Command::new(e2e::appliance::launcher_bin())
        .args(args)
        .env("TSS2_LOG", "all+none")
        .output()
        .unwrap()
}

/// `zonevault-launch reference` for the current config into `file`.
fn launch_reference(app: &Appliance, file: &Path) {
    let zv = e2e::appliance::zonevault_bin();
    let base = app.path("firmware-pcrs.json");
    let zero = "00".repeat(32);
    let values = json!({"0": zero, "2": zero, "4": zero, "7": zero});
    std::fs::write(&base, values.to_string()).unwrap();
    let config = app.path("config.toml");
    let out = launcher(&[
        "reference",
        "--binary",
        s(&zv),
        "--config",
        s(&config),
        "--base-pcrs",
        s(&base),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(file, &out.stdout).unwrap();
}

fn attest_online(app: &Appliance, reference: &Path) -> Output {
    let pin = app.data_dir().join("sealed/ak.pem");
    app.zonevault_as(
        "regulator",
        &[
            "attest",
            "verify",
            "--reference",
            s(reference),
            "--ak-pin",
            s(&pin),
        ],
    )
}

#[test]
fn measured_launch_binds_the_config_to_the_key_and_the_quote() {
    let mut app = Appliance::new();
    // Measure once, then seal the master key to the measured state.
    let port = e2e::appliance::free_port();
    let config = app.write_config(port, "");
    let out = launcher(
        &["measure", "--config", s(&config), "--binary"]
            .into_iter()
            .chain([s(&e2e::appliance::zonevault_bin())])
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", text(&out));
    app.init("0,2,4,7,11");
    let old_ref = app.path("reference-old.json");
    launch_reference(&app, &old_ref);

    // Boot, launch: the server unseals; the quote matches the reference
    // and the event log replays to the PCR the TPM reports.
    reboot(&app);
    app.start_launched(port, "")
        .expect("the launched server starts");
    let out = attest_online(&app, &old_ref);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("event log replays to PCR 11"), "{stdout}");
    let bundle = fetch(&app, &nonce(1), &app.path("launched.json"));
    let log = std::fs::read_to_string(attest::eventlog::path_for(&app.data_dir())).unwrap();
    let events = attest::eventlog::parse_lines(&log).unwrap();
    assert_eq!(events.len(), 2);
    let replayed = hex::encode(attest::eventlog::replay(&events).get(11).unwrap());
    assert_eq!(bundle["pcrs"]["11"], replayed.as_str());
    let reference: Value = serde_json::from_slice(&std::fs::read(&old_ref).unwrap()).unwrap();
    assert_eq!(reference["pcrs"]["11"], replayed.as_str());
    app.stop_server(false);

    // A changed config: PCR 11 differs, so the key is not released.
    reboot(&app);
    let err = app
        .start_launched(port, "# changed")
        .expect_err("the server must refuse");
    let log = String::from_utf8_lossy(&err.stderr);
    assert!(log.contains("PCR 11 changed"), "{log}");

    // The upgrade procedure: k shares reseal to the new state; the old
    // reference now FAILs naming PCR 11, the new one PASSes.
    let pass = app.path("recover-pass.txt");
    std::fs::write(&pass, e2e::appliance::PASSPHRASES[..2].join("\n")).unwrap();
    let (data, share1, share2) = (
        app.data_dir(),
        app.path("recovery/share-1.json"),
        app.path("recovery/share-2.json"),
    );
    let tcti = app.tpm.tcti();
    let out = zonevault(&[
        "recover",
        "--data-dir",
        s(&data),
        "--tpm",
        &tcti,
        "--share",
        s(&share1),
        "--share",
        s(&share2),
        "--recovery-passphrases",
        s(&pass),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    reboot(&app);
    app.start_launched(port, "# changed")
        .expect("the resealed server starts");
    let out = attest_online(&app, &old_ref);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PCR 11 is "), "{stdout}");
    assert!(stdout.contains("(launcher)"), "{stdout}");
    let new_ref = app.path("reference-new.json");
    launch_reference(&app, &new_ref);
    let out = attest_online(&app, &new_ref);
    assert!(out.status.success(), "{}", text(&out));
}
