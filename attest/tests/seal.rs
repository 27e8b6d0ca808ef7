//! Sealing and unsealing against a real swtpm (skipped if swtpm is missing).
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use attest::{PcrSelection, SealedObject, Tpm, TpmError};
use e2e::{tpm_available, Swtpm, WireTap};
use tempfile::TempDir;

/// A fresh swtpm with its own state dir (kept alive with the TPM).
fn fresh_tpm() -> Option<(Swtpm, TempDir)> {
    if !tpm_available() {
        eprintln!("swtpm not installed; skipping");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    Some((Swtpm::start(dir.path()), dir))
}

fn sel(s: &str) -> PcrSelection {
    s.parse().unwrap()
}

#[test]
fn seal_then_unseal_returns_the_secret() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let secret = [0x5au8; 32];
    let sealed = tpm.seal(&secret, &sel("0,2,4,7")).unwrap();
    assert_eq!(sealed.selection.indices(), &[0, 2, 4, 7]);
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), &secret);
}

#[test]
fn reads_more_than_eight_pcrs() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let all: PcrSelection = (0..=23)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
        .parse()
        .unwrap();
    let values = tpm.read_pcrs(&all).unwrap();
    assert!(values.covers_exactly(&all));
    // Resettable PCRs 17..=22 start at all ones on a fresh swtpm; 0 at zero.
    assert_eq!(values.get(0), Some(&[0u8; 32]));
}

#[test]
fn extending_a_sealed_pcr_names_it_in_the_mismatch() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let sealed = tpm.seal(b"sixteen byte key", &sel("0,7,16")).unwrap();
    tpm.extend_pcr(16, &[0x11; 32]).unwrap();
    match tpm.unseal(&sealed) {
        Err(TpmError::PcrMismatch { changed }) => assert_eq!(changed, vec![16]),
        Err(e) => panic!("expected PcrMismatch, got {e}"),
        Ok(_) => panic!("unsealed after PCR 16 changed"),
    }
    let err = tpm.unseal(&sealed).err().unwrap();
    assert_eq!(err.to_string(), "PCR 16 changed since the key was sealed");
}

#[test]
fn pcr_outside_the_selection_does_not_matter() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let sealed = tpm.seal(b"k", &sel("0,7")).unwrap();
    tpm.extend_pcr(23, &[0x22; 32]).unwrap();
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), b"k");
}

#[test]
fn sealed_object_survives_disk_and_a_restarted_tpm() {
    let Some((mut swtpm, state)) = fresh_tpm() else {
        return;
    };
    let blob_dir = tempfile::tempdir().unwrap();
    let secret = *b"0123456789abcdef0123456789abcdef";
    {
        let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
        let sealed = tpm.seal(&secret, &sel("0,7")).unwrap();
        sealed.write_to(blob_dir.path()).unwrap();
    }
    swtpm.stop();
    let swtpm = Swtpm::start(state.path());
    let sealed = SealedObject::read_from(blob_dir.path()).unwrap();
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), &secret);
}

#[test]
fn another_tpm_cannot_unseal() {
    let Some((first, _a)) = fresh_tpm() else {
        return;
    };
    let Some((second, _b)) = fresh_tpm() else {
        return;
    };
    let sealed = Tpm::open(&first.tcti())
        .unwrap()
        .seal(&[7u8; 32], &sel("0,7"))
        .unwrap();
    let mut other = Tpm::open(&second.tcti()).unwrap();
    match other.unseal(&sealed) {
        Err(TpmError::Load(_)) => {}
        Err(e) => panic!("expected a Load error, got {e}"),
        Ok(_) => panic!("a different TPM unsealed the secret"),
    }
    // The failed load leaked nothing: the same context still seals and unseals.
    let again = other.seal(&[8u8; 32], &sel("0,7")).unwrap();
    assert_eq!(other.unseal(&again).unwrap().as_slice(), &[8u8; 32]);
}

#[test]
fn twenty_cycles_do_not_exhaust_transient_slots() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    for i in 0..20u8 {
        let secret = [i; 32];
        let sealed = tpm.seal(&secret, &sel("0,7,16")).unwrap();
        assert_eq!(
            tpm.unseal(&sealed).unwrap().as_slice(),
            &secret,
            "cycle {i}"
        );
    }
    // Failures must flush too: mismatches and foreign blobs, then success.
    let sealed = tpm.seal(&[1; 32], &sel("16")).unwrap();
    tpm.extend_pcr(16, &[3; 32]).unwrap();
    for _ in 0..5 {
        assert!(matches!(
            tpm.unseal(&sealed),
            Err(TpmError::PcrMismatch { .. })
        ));
    }
    // New contexts (as separate processes would have) on the same swtpm.
    for i in 0..20u8 {
        let mut fresh = Tpm::open(&swtpm.tcti()).unwrap();
        let sealed = fresh.seal(&[i; 16], &sel("0")).unwrap();
        drop(fresh);
        let mut fresh = Tpm::open(&swtpm.tcti()).unwrap();
        assert_eq!(fresh.unseal(&sealed).unwrap().as_slice(), &[i; 16]);
    }
}

#[test]
fn rejects_secrets_a_sealed_object_cannot_hold() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    assert!(matches!(
        tpm.seal(&[], &sel("0")),
        Err(TpmError::SecretSize { len: 0 })
    ));
    assert!(matches!(
        tpm.seal(&[0; 129], &sel("0")),
        Err(TpmError::SecretSize { len: 129 })
    ));
    let largest = tpm.seal(&[9; 128], &sel("0")).unwrap();
    assert_eq!(tpm.unseal(&largest).unwrap().len(), 128);
}

#[test]
fn open_rejects_a_bad_tcti() {
    assert!(matches!(
        Tpm::open("nonsense:foo"),
        Err(TpmError::Tcti { .. })
    ));
}

#[test]
fn secret_never_crosses_the_wire_in_clear() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let tap = WireTap::new(&swtpm);
    let secret: [u8; 32] = *b"ZONEVAULT-WIRETAP-CANARY-0xC0FFE";
    let mut tpm = Tpm::open(&tap.tcti()).unwrap();
    let sealed = tpm.seal(&secret, &sel("0,7")).unwrap();
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), &secret);
    drop(tpm);
    let wire = tap.captured();
    assert!(wire.len() > 1000, "the tap saw only {} bytes", wire.len());
    // Sanity: the tap does see clear-text parameters (the PCR selection of
    // TPM2_PCR_Read travels unencrypted).
    let tpml = sel("0,7").to_tpml_bytes();
    assert!(
        contains(&wire, &tpml),
        "tap did not see the PCR_Read selection"
    );
    assert!(
        !contains(&wire, &secret),
        "the secret crossed the wire in clear"
    );
    assert!(
        !contains(&wire, &secret[..8]),
        "part of the secret crossed the wire"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Environment variable that turns [`child_process_role`] into a seal or
/// unseal step run by [`twenty_cycles_across_processes`].
const CHILD_ROLE: &str = "ZV_ATTEST_CHILD_ROLE";

#[test]
fn twenty_cycles_across_processes() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let blob = tempfile::tempdir().unwrap();
    for i in 0..20u8 {
        let secret = hex::encode([i; 32]);
        for role in ["seal", "unseal"] {
            let done = blob.path().join("done");
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_process_role",
                    "--test-threads=1",
                    "--quiet",
                ])
                .env(CHILD_ROLE, role)
                .env("ZV_TCTI", swtpm.tcti())
                .env("ZV_BLOB_DIR", blob.path())
                .env("ZV_SECRET", &secret)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{role} process failed in cycle {i}");
            std::fs::remove_file(&done).expect("child did not run its role");
        }
    }
}

/// Not a test on its own: the child side of [`twenty_cycles_across_processes`];
/// does nothing unless the parent set its role.
#[test]
fn child_process_role() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var("ZV_BLOB_DIR").unwrap());
    let secret = hex::decode(std::env::var("ZV_SECRET").unwrap()).unwrap();
    let mut tpm = Tpm::open(&std::env::var("ZV_TCTI").unwrap()).unwrap();
    match role.as_str() {
        "seal" => tpm
            .seal(&secret, &sel("0,7"))
            .unwrap()
            .write_to(&dir)
            .unwrap(),
        "unseal" => {
            let sealed = SealedObject::read_from(&dir).unwrap();
            assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), secret.as_slice());
        }
        other => panic!("unknown role {other}"),
    }
    std::fs::write(dir.join("done"), role).unwrap();
}
