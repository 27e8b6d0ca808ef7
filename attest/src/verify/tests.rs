//! The verifier against quotes signed in software with the TPM's formats
//! (the swtpm tests in `attest/tests/quote.rs` use the real thing).

use std::collections::BTreeMap;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::*;
use crate::eventlog::extend;

struct Signer(EcdsaKeyPair);

impl Signer {
    fn new() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Signer(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn key(&self) -> AkPublicKey {
        let p = self.0.public_key().as_ref();
        AkPublicKey::from_coordinates(&p[1..33], &p[33..]).unwrap()
    }

    /// TPMT_SIGNATURE (ECDSA, SHA-256) over `msg`.
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let sig = self.0.sign(&SystemRandom::new(), msg).unwrap();
        let sig = sig.as_ref();
        let mut out = vec![0, 0x18, 0, 0x0b, 0, 32];
        out.extend_from_slice(&sig[..32]);
        out.extend_from_slice(&[0, 32]);
        out.extend_from_slice(&sig[32..]);
        out
    }
}

fn attest_bytes(extra: &[u8], pcrs: &PcrValues) -> Vec<u8> {
    let sel = crate::PcrSelection::new(pcrs.iter().map(|(i, _)| i)).unwrap();
    let mut digest = Sha256::new();
    for (_, v) in pcrs.iter() {
        digest.update(v);
    }
    let mut v = Vec::new();
    v.extend_from_slice(&tpms::TPM_GENERATED.to_be_bytes());
    v.extend_from_slice(&tpms::ST_ATTEST_QUOTE.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&(extra.len() as u16).to_be_bytes());
    v.extend_from_slice(extra);
    v.extend_from_slice(&[0; 25]);
    v.extend_from_slice(&sel.to_tpml_bytes());
    v.extend_from_slice(&[0, 32]);
    v.extend_from_slice(&digest.finalize());
    v
}

struct Case {
    signer: Signer,
    nonce: Nonce,
    bundle: Bundle,
    reference: Reference,
}

fn case() -> Case {
    let signer = Signer::new();
    let nonce = Nonce::from_bytes(vec![7; 32]).unwrap();
    let (checkpoint, checkpoint_key) = note::tests::signed(5);
    let events = vec![
        Event {
            pcr: 11,
            digest: [1; 32],
            description: "zonevault binary".into(),
        },
        Event {
            pcr: 11,
            digest: [2; 32],
            description: "config".into(),
        },
    ];
    let mut pcrs = PcrValues::new();
    pcrs.insert(0, [0; 32]);
    pcrs.insert(11, extend(&extend(&[0; 32], &[1; 32]), &[2; 32]));
    let extra = qualifying_data(&nonce, &checkpoint, &checkpoint_key);
    let attest = attest_bytes(&extra, &pcrs);
    let bundle = Bundle {
        quote: B64.encode(&attest),
        signature: B64.encode(signer.sign(&attest)),
        pcr_bank: "sha256".into(),
        pcrs: pcrs.clone(),
        ak_public_pem: signer.key().to_pem(),
        ek_certificate_pem: None,
        event_log: events,
        checkpoint,
        checkpoint_key,
    };
    let sources = BTreeMap::from([(0, Source::Firmware), (11, Source::Launcher)]);
    let reference = Reference::new(pcrs, sources, Some(11)).unwrap();
    Case {
        signer,
        nonce,
        bundle,
        reference,
    }
}

fn failures(c: &Case, bundle: &Bundle) -> Vec<Failure> {
    let key = c.signer.key();
    let expect = Expectations {
        nonce: &c.nonce,
        reference: Some(&c.reference),
        ak_pin: Some(&key),
    };
    verify_quote(bundle, &expect).unwrap_err().failures
}

#[test]
fn a_good_bundle_verifies() {
    let c = case();
    let key = c.signer.key();
    let expect = Expectations {
        nonce: &c.nonce,
        reference: Some(&c.reference),
        ak_pin: Some(&key),
    };
    let ok = verify_quote(&c.bundle, &expect).unwrap();
    assert_eq!(ok.checkpoint().size, 5);
    assert!(ok.ak_pinned());
    assert!(ok.unjudged().is_empty());
    assert_eq!(ok.replayed(), &[11]);
    let loose = Expectations {
        nonce: &c.nonce,
        reference: None,
        ak_pin: None,
    };
    let ok = verify_quote(&c.bundle, &loose).unwrap();
    assert_eq!(ok.unjudged(), &[0, 11]);
}

#[test]
fn each_tampering_has_its_own_reason() {
    let c = case();
    let mut b = c.bundle.clone();
    b.pcrs.insert(0, [9; 32]);
    let f = failures(&c, &b);
    assert!(f.contains(&Failure::PcrDigestMismatch), "{f:?}");
    assert!(f
        .iter()
        .any(|x| matches!(x, Failure::ReferenceMismatch { pcr: 0, .. })));

    let mut b = c.bundle.clone();
    let mut sig = B64.decode(&b.signature).unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    b.signature = B64.encode(sig);
    assert_eq!(failures(&c, &b), vec![Failure::BadSignature]);

    let mut b = c.bundle.clone();
    b.event_log[0].digest = [3; 32];
    assert_eq!(failures(&c, &b), vec![Failure::EventLogMismatch(11)]);

    let other = Signer::new();
    let mut b = c.bundle.clone();
    let attest = B64.decode(&b.quote).unwrap();
    b.signature = B64.encode(other.sign(&attest));
    b.ak_public_pem = other.key().to_pem();
    assert_eq!(
        failures(&c, &b),
        vec![Failure::AkNotPinned, Failure::BadSignature]
    );

    let mut b = c.bundle.clone();
    b.checkpoint = b.checkpoint.replace("\n5\n", "\n6\n");
    let f = failures(&c, &b);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[0], Failure::NonceMismatch);
    assert!(matches!(f[1], Failure::Checkpoint(_)));
}

#[test]
fn an_old_nonce_fails_and_names_the_reference_pcr() {
    let c = case();
    let fresh = Nonce::from_bytes(vec![8; 32]).unwrap();
    let key = c.signer.key();
    let expect = Expectations {
        nonce: &fresh,
        reference: Some(&c.reference),
        ak_pin: Some(&key),
    };
    let f = verify_quote(&c.bundle, &expect).unwrap_err().failures;
    assert_eq!(f, vec![Failure::NonceMismatch]);

    let mut reference = c.reference.clone();
    reference.pcrs.insert(11, [4; 32]);
    let expect = Expectations {
        nonce: &c.nonce,
        reference: Some(&reference),
        ak_pin: Some(&key),
    };
    let err = verify_quote(&c.bundle, &expect).unwrap_err();
    assert!(err.to_string().contains("PCR 11 is "), "{err}");
    assert!(err.to_string().contains("(launcher)"), "{err}");
}

#[test]
fn nonces_are_length_checked() {
    assert_eq!(Nonce::from_hex("abcd"), Err(NonceError::Length(2)));
    assert_eq!(Nonce::from_hex("zz"), Err(NonceError::NotHex));
    let n = Nonce::random().unwrap();
    assert_eq!(Nonce::from_hex(&n.to_hex()).unwrap(), n);
}
