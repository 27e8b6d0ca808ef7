//! The attestation key and quotes against a real swtpm, checked by the
//! pure-Rust verifier (skipped if swtpm is missing).
#![cfg(feature = "tpm")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use attest::eventlog::Event;
use attest::reference::Source;
use attest::verify::{qualifying_data, Expectations, Failure};
use attest::{verify_quote, AkBlob, Bundle, Nonce, PcrSelection, Reference, Tpm};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::{tpm_available, Swtpm};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

fn fresh_tpm() -> Option<(Swtpm, TempDir)> {
    if !tpm_available() {
        eprintln!("swtpm not installed; skipping");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    Some((Swtpm::start(dir.path()), dir))
}

/// A signed checkpoint note and its verifier key, in the ledger's formats.
fn checkpoint(size: u64) -> (String, String) {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[4; 32]).unwrap();
    let name = "zonevault/quote-test";
    let public = pair.public_key().as_ref();
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', 1]);
    h.update(public);
    let id = h.finalize()[..4].to_vec();
    let mut key = vec![1u8];
    key.extend_from_slice(public);
    let vkey = format!("{name}+{}+{}", hex::encode(&id), B64.encode(key));
    let body = format!("{name}\n{size}\n{}\n", B64.encode([1u8; 32]));
    let mut blob = id;
    blob.extend_from_slice(pair.sign(body.as_bytes()).as_ref());
    (
        format!("{body}\n\u{2014} {name} {}\n", B64.encode(blob)),
        vkey,
    )
}

struct Setup {
    tpm: Tpm,
    ak: AkBlob,
    sel: PcrSelection,
    events: Vec<Event>,
}

/// An AK, and PCR 11 extended as the launcher would, with its event log.
fn setup(swtpm: &Swtpm) -> Setup {
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let ak = tpm.create_ak().unwrap();
    let mut events = Vec::new();
    for (i, what) in ["zonevault binary", "config"].iter().enumerate() {
        let digest: [u8; 32] = Sha256::digest(what.as_bytes()).into();
        tpm.extend_pcr(11, &digest).unwrap();
        events.push(Event {
            pcr: 11,
            digest,
            description: format!("{i}: {what}"),
        });
    }
    Setup {
        tpm,
        ak,
        sel: "0,2,4,7,11".parse().unwrap(),
        events,
    }
}

fn bundle(s: &mut Setup, nonce: &Nonce, ledger_size: u64) -> Bundle {
    let (note, vkey) = checkpoint(ledger_size);
    let qd = qualifying_data(nonce, &note, &vkey);
    let quote = s.tpm.quote(&s.ak, &s.sel, &qd).unwrap();
    Bundle {
        quote: B64.encode(&quote.attest),
        signature: B64.encode(&quote.signature),
        pcr_bank: "sha256".into(),
        pcrs: quote.pcrs,
        ak_public_pem: s.ak.key.to_pem(),
        ek_certificate_pem: None,
        event_log: s.events.clone(),
        checkpoint: note,
        checkpoint_key: vkey,
    }
}

fn reference(b: &Bundle) -> Reference {
    let sources = b
        .pcrs
        .iter()
        .map(|(i, _)| {
            (
                i,
                if i == 11 {
                    Source::Launcher
                } else {
                    Source::Firmware
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    Reference::new(b.pcrs.clone(), sources, Some(11)).unwrap()
}

#[test]
fn a_tpm_quote_verifies_and_every_tampering_fails_with_its_reason() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut s = setup(&swtpm);
    let nonce = Nonce::random().unwrap();
    let good = bundle(&mut s, &nonce, 9);
    let reference = reference(&good);
    let pin = s.ak.key.clone();
    let expect = Expectations {
        nonce: &nonce,
        reference: Some(&reference),
        ak_pin: Some(&pin),
    };
    let ok = verify_quote(&good, &expect).unwrap();
    assert_eq!(ok.checkpoint().size, 9);
    assert_eq!(ok.replayed(), &[11]);
    let fails = |b: &Bundle| verify_quote(b, &expect).unwrap_err().failures;

    let mut b = good.clone();
    b.pcrs.insert(7, [0xee; 32]);
    let f = fails(&b);
    assert!(f.contains(&Failure::PcrDigestMismatch), "{f:?}");
    assert!(f
        .iter()
        .any(|x| matches!(x, Failure::ReferenceMismatch { pcr: 7, .. })));

    let mut b = good.clone();
    let mut sig = B64.decode(&b.signature).unwrap();
    sig[10] ^= 0x40;
    b.signature = B64.encode(sig);
    assert_eq!(fails(&b), vec![Failure::BadSignature]);

    let mut b = good.clone();
    b.event_log.pop();
    assert_eq!(fails(&b), vec![Failure::EventLogMismatch(11)]);

    // Another AK in the same TPM signs a quote over the same data.
    let other = s.tpm.create_ak().unwrap();
    let mut impostor = Setup {
        tpm: s.tpm,
        ak: other,
        sel: s.sel.clone(),
        events: s.events.clone(),
    };
    let b = bundle(&mut impostor, &nonce, 9);
    assert_eq!(fails(&b), vec![Failure::AkNotPinned, Failure::BadSignature]);

    // A quote made for an old nonce, replayed to a new challenge.
    let fresh = Nonce::random().unwrap();
    let replay = Expectations {
        nonce: &fresh,
        ..expect
    };
    let f = verify_quote(&good, &replay).unwrap_err().failures;
    assert_eq!(f, vec![Failure::NonceMismatch]);
}

#[test]
fn quotes_flush_every_handle() {
    let Some((swtpm, _dir)) = fresh_tpm() else {
        return;
    };
    let mut s = setup(&swtpm);
    let nonce = Nonce::random().unwrap();
    // swtpm has 3 transient slots: a leak would fail within a few rounds.
    for size in 0..8 {
        let b = bundle(&mut s, &nonce, size);
        let expect = Expectations {
            nonce: &nonce,
            reference: None,
            ak_pin: None,
        };
        verify_quote(&b, &expect).unwrap();
    }
}

#[test]
fn the_ek_certificate_is_read_from_nv_when_present() {
    if !tpm_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plain = Swtpm::start(&dir.path().join("plain"));
    assert_eq!(
        Tpm::open(&plain.tcti())
            .unwrap()
            .ek_certificate_pem()
            .unwrap(),
        None
    );
    let made = Swtpm::start_with_ek_cert(&dir.path().join("made"));
    let pem = Tpm::open(&made.tcti())
        .unwrap()
        .ek_certificate_pem()
        .unwrap()
        .expect("an EK certificate");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(made.local_ca_cert().is_file());
}
