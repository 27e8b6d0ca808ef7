//! End to end: a regulator enrolls the appliance's AK (`zonevault attest
//! enroll`: EK certificate validated against swtpm's local CA, credential
//! challenge activated by the real swtpm, AK pinned), verifies quotes with
//! the pin, and every impostor fails with its own reason: an EK certificate
//! from another CA, an AK that does not live in the TPM of the certified EK,
//! a quote signed by an AK that is not the pinned one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use attest::credential::{make_credential, CredentialSecret};
use attest::ekcert::validate;
use attest::enrollment::{check_ak_area, AkPin, Enrollment};
use attest::AkPublicKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::appliance::{s, zonevault, Appliance};
use serde_json::{json, Value};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A serving appliance whose TPM has an EK certificate.
fn serving() -> Appliance {
    let mut app = Appliance::with_ek_cert();
    app.init("0,2,4,7");
    app.start_server().expect("server starts");
    app
}

/// The regulator's manufacturer CA bundle for `app`'s TPM, as a file.
fn ca_bundle(app: &Appliance, file: &str) -> std::path::PathBuf {
    let path = app.path(file);
    std::fs::write(&path, app.tpm.local_ca_bundle()).unwrap();
    path
}

fn enroll(app: &Appliance, bundle: &Path, out: &Path) -> Output {
    app.zonevault_as(
        "regulator",
        &["attest", "enroll", "--ek-ca", s(bundle), "--out", s(out)],
    )
}

fn served(app: &Appliance) -> Enrollment {
    let (status, body) = app.curl("regulator", "GET", "/v1/attestation/enrollment", None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A quote bundle for `nonce`, saved to `file`, and a reference file with
/// its PCR values.
fn quote(app: &Appliance, nonce: &str, file: &Path, reference: &Path) {
    let (status, body) = app.curl(
        "regulator",
        "GET",
        &format!("/v1/attestation?nonce={nonce}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    std::fs::write(file, &body).unwrap();
    let bundle: Value = serde_json::from_str(&body).unwrap();
    let pcrs = bundle["pcrs"].as_object().unwrap();
    let selection: Vec<u8> = pcrs.keys().map(|k| k.parse().unwrap()).collect();
    let sources: serde_json::Map<String, Value> = pcrs
        .keys()
        .map(|k| (k.clone(), json!("firmware")))
        .collect();
    let r = json!({"bank": "sha256", "selection": selection, "pcrs": pcrs, "sources": sources});
    std::fs::write(reference, r.to_string()).unwrap();
}

/// Posts a credential for `ak` of `ak_of` made to the EK `ek_of` certifies,
/// to `to`; the HTTP status and body, and whether the secret came back.
fn challenge(ek_of: &Appliance, ak_of: &Appliance, to: &Appliance) -> (u16, String, bool) {
    let ek = validate(
        served(ek_of).ek_certificate_pem.as_deref().unwrap(),
        &ek_of.tpm.local_ca_bundle(),
    )
    .unwrap();
    let ak = served(ak_of);
    let key = AkPublicKey::from_pem(&ak.ak_public_pem).unwrap();
    let name = check_ak_area(&B64.decode(&ak.ak_public).unwrap(), &key).unwrap();
    assert_eq!(
        hex::encode(name),
        ak.ak_name,
        "the served name is the area's"
    );
    let secret = CredentialSecret::random().unwrap();
    let credential = make_credential(&ek.public, &name, &secret).unwrap();
    let body = json!({
        "credential_blob": B64.encode(&credential.credential_blob),
        "encrypted_secret": B64.encode(&credential.encrypted_secret),
    })
    .to_string();
    let (status, answer) = to.curl(
        "regulator",
        "POST",
        "/v1/attestation/challenge",
        Some(&body),
    );
    let recovered = serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| v["secret"].as_str().map(str::to_owned))
        .map(|b| B64.decode(b).unwrap());
    let matched = recovered.is_some_and(|r| secret.matches(&r));
    (status, answer, matched)
}

#[test]
fn a_regulator_enrolls_the_ak_and_verifies_quotes_with_the_pin() {
    let app = serving();
    let bundle = ca_bundle(&app, "ek-ca.pem");
    let pin = app.path("ak-pin.json");
    let out = enroll(&app, &bundle, &pin);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("PASS"), "{stdout}");
    assert!(
        stdout.contains("credential challenge (rsa2048) passed"),
        "{stdout}"
    );
    assert!(stdout.contains("swtpm-localca-rootca"), "{stdout}");

    // The pin is the AK the appliance created at init.
    let sealed_pem = std::fs::read_to_string(app.data_dir().join("sealed/ak.pem")).unwrap();
    let pinned: AkPin = serde_json::from_slice(&std::fs::read(&pin).unwrap()).unwrap();
    assert_eq!(pinned.ak_public_pem, sealed_pem);
    let key = AkPublicKey::from_pem(&sealed_pem).unwrap();
    assert_eq!(pinned.ak_fingerprint, key.fingerprint());
    assert_eq!(pinned.ak_name, served(&app).ak_name);
    assert_eq!(pinned.ek_chain.len(), 3, "{:?}", pinned.ek_chain);

    // Both enrollment requests are ledger entries with their reasons.
    let (status, entries) = app.curl("regulator", "GET", "/v1/ledger/entries", None);
    assert_eq!(status, 200);
    let enrolled = entries
        .lines()
        .filter(|l| l.contains("\"route\":\"/v1/attestation/enrollment\""))
        .count();
    assert!(enrolled >= 1, "{entries}");
    assert!(
        entries
            .lines()
            .any(|l| l.contains("\"route\":\"/v1/attestation/challenge\"")
                && l.contains("credential activated with the AK and the EK")),
        "{entries}"
    );
    // Supervisors only.
    let (status, _) = app.curl("analyst", "GET", "/v1/attestation/enrollment", None);
    assert_eq!(status, 403);
    let (status, _) = app.curl("operator", "GET", "/v1/attestation/enrollment", None);
    assert_eq!(status, 200);

    // Quotes verify with the pin, online and offline.
    let nonce = hex::encode([0x5a; 32]);
    let (bundle_file, reference) = (app.path("bundle.json"), app.path("ref.json"));
    quote(&app, &nonce, &bundle_file, &reference);
    let out = zonevault(&[
        "verify",
        "quote",
        "--bundle",
        s(&bundle_file),
        "--nonce",
        &nonce,
        "--ak-pin",
        s(&pin),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(pinned)"));
    let online = app.zonevault_as(
        "regulator",
        &[
            "attest",
            "verify",
            "--reference",
            s(&reference),
            "--ak-pin",
            s(&pin),
        ],
    );
    assert!(online.status.success(), "{}", text(&online));
    assert!(String::from_utf8_lossy(&online.stdout).contains("(pinned)"));

    // An EK certificate checked against a CA that is not the manufacturer's.
    let foreign = app.path("pki/ca/cert.pem");
    let refused = app.path("refused-pin.json");
    let out = enroll(&app, &foreign, &refused);
    assert!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("FAIL"), "{stdout}");
    assert!(
        stdout.contains("which is not a CA in the trusted bundle"),
        "{stdout}"
    );
    assert!(!refused.exists(), "nothing is pinned after a failure");
}

#[test]
fn an_impostor_ak_fails_the_challenge_and_a_foreign_ak_fails_the_pin() {
    let a = serving();
    let b = serving();

    // The genuine pair: A's TPM returns the secret.
    let (status, body, matched) = challenge(&a, &a, &a);
    assert_eq!(status, 200, "{body}");
    assert!(matched, "{body}");

    // An impostor serves A's EK certificate while its AK lives in B's TPM:
    // the credential made for that AK and A's EK cannot be activated in B.
    let (status, body, matched) = challenge(&a, &b, &b);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("the TPM refused the credential"), "{body}");
    assert!(!matched);
    // Nor in A, whose TPM holds the EK but not that AK.
    let (status, body, _) = challenge(&a, &b, &a);
    assert_eq!(status, 400, "{body}");
    // The refusal is recorded.
    let (_, entries) = b.curl("regulator", "GET", "/v1/ledger/entries", None);
    assert!(
        entries
            .lines()
            .any(|l| l.contains("\"route\":\"/v1/attestation/challenge\"")
                && l.contains("refused the credential")),
        "{entries}"
    );

    // A's EK certificate against B's local CA (same names, other keys).
    let out = enroll(&a, &ca_bundle(&b, "b-ca.pem"), &a.path("x.json"));
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("does not verify with the bundle's CA"),
        "{stdout}"
    );

    // B enrolled; a quote from A checked against B's pin FAILs.
    let pin_b = b.path("ak-pin.json");
    let out = enroll(&b, &ca_bundle(&b, "ek-ca.pem"), &pin_b);
    assert!(out.status.success(), "{}", text(&out));
    let nonce = hex::encode([0x33; 32]);
    let (bundle_a, reference) = (a.path("bundle.json"), a.path("ref.json"));
    quote(&a, &nonce, &bundle_a, &reference);
    let out = zonevault(&[
        "verify",
        "quote",
        "--bundle",
        s(&bundle_a),
        "--nonce",
        &nonce,
        "--ak-pin",
        s(&pin_b),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("FAIL"), "{stdout}");
    assert!(stdout.contains("not the pinned AK"), "{stdout}");
}

#[test]
fn an_appliance_whose_tpm_has_no_ek_certificate_is_not_enrolled() {
    let mut app = Appliance::new();
    app.init("0,2,4,7");
    app.start_server().expect("server starts");
    assert_eq!(served(&app).ek_certificate_pem, None);
    let pin = app.path("ak-pin.json");
    let out = enroll(&app, &app.path("pki/ca/cert.pem"), &pin);
    assert!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("FAIL"), "{stdout}");
    assert!(stdout.contains("has no EK certificate"), "{stdout}");
    assert!(!pin.exists());
}
