//! Credential activation against real swtpms: the pure-Rust MakeCredential
//! (`attest::credential`) to the EK an EK certificate certifies, activated
//! by the TPM with the AK; and refused by a TPM that does not hold that EK
//! or that AK (skipped if swtpm is missing).
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use attest::credential::{make_credential, name_of, Credential, CredentialSecret, EkPublic};
use attest::ekcert::{validate, EkCertError};
use attest::enrollment::check_ak_area;
use attest::{AkBlob, EkKind, Tpm, TpmError};
use e2e::{tpm_available, Swtpm};

/// The AK's name, checked the way a regulator checks it.
fn ak_name(ak: &AkBlob) -> [u8; 34] {
    check_ak_area(&ak.public, &ak.key).unwrap()
}

fn challenge(ek: &EkPublic, ak: &AkBlob) -> (CredentialSecret, Credential) {
    let secret = CredentialSecret::random().unwrap();
    let credential = make_credential(ek, &ak_name(ak), &secret).unwrap();
    (secret, credential)
}

fn activate(tpm: &mut Tpm, ak: &AkBlob, kind: EkKind, c: &Credential) -> Result<Vec<u8>, TpmError> {
    tpm.activate_credential(ak, kind, &c.credential_blob, &c.encrypted_secret)
        .map(|s| s.to_vec())
}

fn made(dir: &Path, name: &str) -> (Swtpm, Tpm) {
    let swtpm = Swtpm::start_with_ek_cert(&dir.join(name));
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    (swtpm, tpm)
}

#[test]
fn the_certified_tpm_recovers_the_secret_and_an_impostor_does_not() {
    if !tpm_available() {
        eprintln!("swtpm not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, mut tpm_a) = made(dir.path(), "a");
    let (_b, mut tpm_b) = made(dir.path(), "b");
    let cert = tpm_a.ek_certificate().unwrap().expect("an EK certificate");
    assert_eq!(cert.index, 0x01c0_0002, "swtpm certifies its RSA 2048 EK");
    let kind = EkKind::for_certificate_index(cert.index).unwrap();
    let trusted = validate(&cert.pem, &a.local_ca_bundle()).unwrap();
    assert_eq!(trusted.chain.len(), 3, "{:?}", trusted.chain);
    assert_eq!(
        trusted.public,
        tpm_a.endorsement_public(kind).unwrap(),
        "the certificate certifies the EK the standard template re-creates"
    );
    let ak_a = tpm_a.create_ak().unwrap();
    let ak_b = tpm_b.create_ak().unwrap();

    // The genuine TPM: the secret comes back, twice (no leaked slots).
    for _ in 0..2 {
        let (secret, credential) = challenge(&trusted.public, &ak_a);
        let recovered = activate(&mut tpm_a, &ak_a, kind, &credential).unwrap();
        assert!(secret.matches(&recovered));
    }

    // An impostor serving A's EK certificate with an AK of its own TPM:
    // B cannot decrypt the seed made for A's EK.
    let (_, for_b) = challenge(&trusted.public, &ak_b);
    let err = activate(&mut tpm_b, &ak_b, kind, &for_b).unwrap_err();
    assert!(matches!(err, TpmError::ActivateCredential(_)), "{err:?}");
    // And A will not release a credential bound to another AK's name.
    let err = activate(&mut tpm_a, &ak_a, kind, &for_b).unwrap_err();
    assert!(matches!(err, TpmError::ActivateCredential(_)), "{err:?}");
    // A truncated blob is refused before it reaches the TPM.
    let (_, mut cut) = challenge(&trusted.public, &ak_a);
    cut.credential_blob.pop();
    let err = activate(&mut tpm_a, &ak_a, kind, &cut).unwrap_err();
    assert!(matches!(err, TpmError::MalformedCredential(_)), "{err:?}");
}

#[test]
fn an_ek_certificate_from_another_manufacturer_is_refused() {
    if !tpm_available() {
        eprintln!("swtpm not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, mut tpm_a) = made(dir.path(), "a");
    let (b, _) = made(dir.path(), "b");
    let pem = tpm_a.ek_certificate_pem().unwrap().unwrap();
    // B's local CA has the same names as A's, but other keys.
    let err = validate(&pem, &b.local_ca_bundle()).unwrap_err();
    assert!(matches!(err, EkCertError::BadSignature { .. }), "{err}");
    // A bundle with only A's root: the intermediate is missing.
    let root_only = std::fs::read_to_string(
        a.local_ca_cert()
            .with_file_name("swtpm-localca-rootca-cert.pem"),
    )
    .unwrap();
    let err = validate(&pem, &root_only).unwrap_err();
    assert!(
        matches!(&err, EkCertError::UntrustedIssuer { issuer } if issuer.contains("swtpm-localca")),
        "{err}"
    );
    assert!(matches!(
        validate(&pem, "junk"),
        Err(EkCertError::EmptyBundle)
    ));
}

#[test]
fn an_ecc_p256_ek_activates_too() {
    if !tpm_available() {
        eprintln!("swtpm not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let swtpm = Swtpm::start(dir.path());
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let ek = tpm.endorsement_public(EkKind::EccP256).unwrap();
    assert!(matches!(ek, EkPublic::EccP256 { .. }));
    let ak = tpm.create_ak().unwrap();
    let (secret, credential) = challenge(&ek, &ak);
    let recovered = activate(&mut tpm, &ak, EkKind::EccP256, &credential).unwrap();
    assert!(secret.matches(&recovered));
    // The same credential with the RSA EK: refused.
    let err = activate(&mut tpm, &ak, EkKind::Rsa2048, &credential).unwrap_err();
    assert!(matches!(err, TpmError::ActivateCredential(_)), "{err:?}");
    assert_eq!(name_of(&ak.public[2..]), ak_name(&ak));
}
