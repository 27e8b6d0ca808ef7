//! MakeCredential checked against an independent ActivateCredential written
//! from TPM 2.0 Part 1 §24 (RSA EKs; the ECC path is checked by swtpm in
//! `attest/tests/credential.rs`), and KDFa against its definition.

use aes::Aes128;
use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use ring::hmac;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use sha2::Sha256;

use super::*;

fn ek_pair() -> (RsaPrivateKey, EkPublic) {
    let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let public = EkPublic::Rsa2048 {
        modulus: private.n().to_bytes_be(),
        exponent: private.e().to_bytes_be(),
    };
    (private, public)
}

fn split_sized(bytes: &[u8]) -> (&[u8], &[u8]) {
    let n = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    (&bytes[2..2 + n], &bytes[2 + n..])
}

/// What TPM2_ActivateCredential does with an RSA EK, or why it refuses.
fn activate(
    ek: &RsaPrivateKey,
    name: &[u8],
    credential: &Credential,
) -> Result<Vec<u8>, &'static str> {
    let (encrypted, rest) = split_sized(&credential.encrypted_secret);
    assert!(rest.is_empty());
    let seed = ek
        .decrypt(Oaep::new_with_label::<Sha256, _>("IDENTITY\0"), encrypted)
        .map_err(|_| "seed")?;
    let (id_object, rest) = split_sized(&credential.credential_blob);
    assert!(rest.is_empty());
    let (integrity, enc_identity) = split_sized(id_object);
    let hmac_key = kdfa(&seed, b"INTEGRITY", &[], &[], 256);
    let key = hmac::Key::new(hmac::HMAC_SHA256, &hmac_key);
    let signed = [enc_identity, name].concat();
    hmac::verify(&key, &signed, integrity).map_err(|_| "integrity")?;
    let sym_key = kdfa(&seed, b"STORAGE", name, &[], 128);
    let mut plain = enc_identity.to_vec();
    cfb_mode::Decryptor::<Aes128>::new_from_slices(&sym_key, &[0; 16])
        .unwrap()
        .decrypt(&mut plain);
    let (secret, rest) = split_sized(&plain);
    assert!(rest.is_empty());
    Ok(secret.to_vec())
}

#[test]
fn only_the_named_object_in_the_ek_holder_recovers_the_secret() {
    let (ek, public) = ek_pair();
    let name = name_of(b"the AK's TPMT_PUBLIC");
    let secret = CredentialSecret::random().unwrap();
    let credential = make_credential(&public, &name, &secret).unwrap();
    assert_eq!(credential.encrypted_secret.len(), 2 + 256);
    // TPM2B_ID_OBJECT: size, TPM2B_DIGEST(HMAC), encrypted TPM2B_DIGEST(secret).
    assert_eq!(credential.credential_blob.len(), 2 + 2 + 32 + 2 + 32);
    let recovered = activate(&ek, &name, &credential).unwrap();
    assert!(secret.matches(&recovered));
    assert!(!CredentialSecret::random().unwrap().matches(&recovered));

    // Another object's name: the integrity check fails.
    let other = name_of(b"an impostor's TPMT_PUBLIC");
    assert_eq!(activate(&ek, &other, &credential), Err("integrity"));
    // Another TPM's EK: the seed does not decrypt.
    let (stranger, _) = ek_pair();
    assert_eq!(activate(&stranger, &name, &credential), Err("seed"));
    // A flipped ciphertext bit: the integrity check fails.
    let mut tampered = credential.clone();
    let last = tampered.credential_blob.len() - 1;
    tampered.credential_blob[last] ^= 1;
    assert_eq!(activate(&ek, &name, &tampered), Err("integrity"));
}

#[test]
fn every_credential_uses_a_fresh_seed() {
    let (_, public) = ek_pair();
    let name = name_of(b"ak");
    let secret = CredentialSecret::random().unwrap();
    let a = make_credential(&public, &name, &secret).unwrap();
    let b = make_credential(&public, &name, &secret).unwrap();
    assert_ne!(a.encrypted_secret, b.encrypted_secret);
    assert_ne!(a.credential_blob, b.credential_blob);
}

#[test]
fn bad_names_and_keys_are_refused() {
    let (_, public) = ek_pair();
    let secret = CredentialSecret::random().unwrap();
    let sha1_name = [&[0x00, 0x04][..], &[0; 20]].concat();
    assert_eq!(
        make_credential(&public, &sha1_name, &secret),
        Err(CredentialError::BadName)
    );
    let small = EkPublic::Rsa2048 {
        modulus: vec![0xc5; 128],
        exponent: vec![1, 0, 1],
    };
    assert!(matches!(
        make_credential(&small, &name_of(b"ak"), &secret),
        Err(CredentialError::BadEkKey(_))
    ));
    let off_curve = EkPublic::EccP256 { point: [4; 65] };
    assert!(matches!(
        make_credential(&off_curve, &name_of(b"ak"), &secret),
        Err(CredentialError::BadEkKey(_))
    ));
}

#[test]
fn kdfa_follows_its_definition() {
    // Two HMAC blocks, the second truncated: 40 bytes = 320 bits.
    let out = kdfa(b"key", b"STORAGE", b"u", b"v", 320);
    assert_eq!(out.len(), 40);
    let block = |i: u32| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"key");
        let msg = [
            &i.to_be_bytes()[..],
            b"STORAGE\0",
            b"u",
            b"v",
            &320u32.to_be_bytes(),
        ]
        .concat();
        hmac::sign(&key, &msg).as_ref().to_vec()
    };
    assert_eq!(&out[..32], &block(1)[..]);
    assert_eq!(&out[32..], &block(2)[..8]);
}
