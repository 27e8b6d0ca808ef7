//! Credential activation, the verifier's half: TPM2_MakeCredential in pure
//! Rust (TPM 2.0 Part 1 §24, Part 3 §12.6), so a regulator's machine needs
//! no TPM to challenge an appliance.
//!
//! The verifier picks a fresh secret and seals it so that only a TPM that
//! holds both the private part of the certified EK and a loaded object
//! with the given name (the AK) can recover it with TPM2_ActivateCredential:
//! a seed is encrypted to the EK (RSA-OAEP-SHA256 with label `IDENTITY\0`,
//! or ephemeral ECDH P-256 with KDFe), the seed derives an AES-128 key and
//! an HMAC key (KDFa), the secret is encrypted with AES-128-CFB (zero IV)
//! and the HMAC binds the ciphertext to the AK's name. The secret lives in
//! a zeroizing [`CredentialSecret`] that has no `Debug` and compares in
//! constant time. Only public-key operations happen here.

use aes::Aes128;
use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rsa::{BigUint, Oaep, RsaPublicKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The size of the secret a verifier sends, and of the EK's nameAlg digest
/// (SHA-256 for the standard RSA 2048 and ECC P-256 EK templates).
pub const SECRET_LEN: usize = 32;
/// TPM_ALG_SHA256, the nameAlg of the AK and of the standard EKs.
const ALG_SHA256: [u8; 2] = [0x00, 0x0b];

/// Why a credential could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The EK's public key is not usable (bad modulus or curve point).
    #[error("the EK public key is not usable: {0}")]
    BadEkKey(&'static str),
    /// The AK name is not a SHA-256 name (0x000b ‖ 32 bytes).
    #[error("the AK name is not a SHA-256 TPM name")]
    BadName,
    /// The system random generator or a primitive failed.
    #[error("a cryptographic primitive failed")]
    Crypto,
}

/// A TPM's endorsement key, as its certificate states it.
#[derive(Clone, PartialEq, Eq)]
pub enum EkPublic {
    /// RSA 2048 (`n` big-endian, exponent `e`).
    Rsa2048 {
        /// The modulus.
        modulus: Vec<u8>,
        /// The public exponent.
        exponent: Vec<u8>,
    },
    /// ECC NIST P-256: the uncompressed point `04 ‖ x ‖ y`.
    EccP256 {
        /// The point.
        point: [u8; 65],
    },
}

impl std::fmt::Debug for EkPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.algorithm())
    }
}

impl EkPublic {
    /// An RSA EK from its big-endian modulus and exponent (leading zero
    /// octets dropped, so equal keys compare equal whatever their source).
    pub fn rsa(modulus: &[u8], exponent: &[u8]) -> EkPublic {
        let strip = |v: &[u8]| v.iter().skip_while(|b| **b == 0).copied().collect();
        EkPublic::Rsa2048 {
            modulus: strip(modulus),
            exponent: strip(exponent),
        }
    }

    /// `rsa2048` or `ecc-p256`: the EK template the appliance must use.
    pub fn algorithm(&self) -> &'static str {
        match self {
            EkPublic::Rsa2048 { .. } => "rsa2048",
            EkPublic::EccP256 { .. } => "ecc-p256",
        }
    }
}

/// The secret a verifier challenges with: 32 bytes, zeroized on drop, no
/// `Debug`, compared in constant time.
pub struct CredentialSecret(Zeroizing<[u8; SECRET_LEN]>);

impl CredentialSecret {
    /// 32 bytes from the operating system's CSPRNG.
    pub fn random() -> Result<CredentialSecret, CredentialError> {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| CredentialError::Crypto)?;
        Ok(CredentialSecret(bytes))
    }

    /// Does `recovered` (what the appliance returned) equal this secret?
    pub fn matches(&self, recovered: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(recovered))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// TPM2_MakeCredential's two outputs, marshalled with their size prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// TPM2B_ID_OBJECT: integrity HMAC and encrypted secret.
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the EK.
    pub encrypted_secret: Vec<u8>,
}

/// The TPM name of a public area: `0x000b ‖ SHA-256(TPMT_PUBLIC)`.
pub fn name_of(tpmt_public: &[u8]) -> [u8; 34] {
    let mut name = [0u8; 34];
    name[..2].copy_from_slice(&ALG_SHA256);
    name[2..].copy_from_slice(&Sha256::digest(tpmt_public));
    name
}

/// Makes a credential that only the TPM holding `ek` and an object named
/// `ak_name` can activate to recover `secret`.
pub fn make_credential(
    ek: &EkPublic,
    ak_name: &[u8],
    secret: &CredentialSecret,
) -> Result<Credential, CredentialError> {
    if ak_name.len() != 34 || ak_name[..2] != ALG_SHA256 {
        return Err(CredentialError::BadName);
    }
    let (seed, encrypted) = match ek {
        EkPublic::Rsa2048 { modulus, exponent } => rsa_seed(modulus, exponent)?,
        EkPublic::EccP256 { point } => ecdh_seed(point)?,
    };
    Ok(Credential {
        credential_blob: protect(&seed, ak_name, secret.bytes())?,
        encrypted_secret: sized(&encrypted),
    })
}

/// A random seed and its RSA-OAEP-SHA256 encryption, label `IDENTITY\0`.
fn rsa_seed(
    modulus: &[u8],
    exponent: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CredentialError> {
    let key = RsaPublicKey::new(
        BigUint::from_bytes_be(modulus),
        BigUint::from_bytes_be(exponent),
    )
    .map_err(|_| CredentialError::BadEkKey("not a valid RSA public key"))?;
    if modulus.iter().skip_while(|b| **b == 0).count() != 256 {
        return Err(CredentialError::BadEkKey("not an RSA 2048 key"));
    }
    let mut seed = Zeroizing::new(vec![0u8; SECRET_LEN]);
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| CredentialError::Crypto)?;
    let padding = Oaep::new_with_label::<Sha256, _>("IDENTITY\0");
    let encrypted = key
        .encrypt(&mut rsa::rand_core::OsRng, padding, &seed)
        .map_err(|_| CredentialError::Crypto)?;
    Ok((seed, encrypted))
}

/// An ephemeral ECDH P-256 exchange with the EK: the seed is
/// `KDFe(SHA-256, Z, "IDENTITY", ephemeral x, EK x)`, and the TPMS_ECC_POINT
/// of the ephemeral key is what the TPM needs to derive it again.
fn ecdh_seed(ek_point: &[u8; 65]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CredentialError> {
    let rng = SystemRandom::new();
    let ephemeral =
        EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| CredentialError::Crypto)?;
    let public = ephemeral
        .compute_public_key()
        .map_err(|_| CredentialError::Crypto)?;
    let public = public.as_ref();
    let (ex, ey) = (&public[1..33], &public[33..65]);
    let peer = UnparsedPublicKey::new(&ECDH_P256, &ek_point[..]);
    let seed = agreement::agree_ephemeral(ephemeral, &peer, |z| {
        kdfe(z, b"IDENTITY", ex, &ek_point[1..33])
    })
    .map_err(|_| CredentialError::BadEkKey("not a point on P-256"))?;
    let mut point = sized(ex);
    point.extend_from_slice(&sized(ey));
    Ok((seed, point))
}

/// TPM2B_ID_OBJECT for `seed`, `name` and `secret` (Part 1 §24.4–24.5).
fn protect(seed: &[u8], name: &[u8], secret: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let sym_key = kdfa(seed, b"STORAGE", name, &[], 128);
    let hmac_key = kdfa(seed, b"INTEGRITY", &[], &[], 256);
    // The plaintext is the secret as a TPM2B_DIGEST.
    let mut enc_identity = sized(secret);
    cfb_mode::Encryptor::<Aes128>::new_from_slices(&sym_key, &[0u8; 16])
        .map_err(|_| CredentialError::Crypto)?
        .encrypt(&mut enc_identity);
    let mut integrity = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key));
    integrity.update(&enc_identity);
    integrity.update(name);
    let mut id_object = sized(integrity.sign().as_ref());
    id_object.extend_from_slice(&enc_identity);
    Ok(sized(&id_object))
}

/// KDFa with HMAC-SHA256 (Part 1 §11.4.10.2): `bits` of
/// `HMAC(key, i ‖ label ‖ 0 ‖ context_u ‖ context_v ‖ bits)`, i = 1, 2, ….
pub fn kdfa(
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let want = (bits as usize).div_ceil(8);
    let mut out = Zeroizing::new(Vec::with_capacity(want + 32));
    let mut counter: u32 = 1;
    while out.len() < want {
        let mut h = hmac::Context::with_key(&key);
        h.update(&counter.to_be_bytes());
        h.update(label);
        h.update(&[0]);
        h.update(context_u);
        h.update(context_v);
        h.update(&bits.to_be_bytes());
        out.extend_from_slice(h.sign().as_ref());
        counter += 1;
    }
    out.truncate(want);
    out
}

/// KDFe with SHA-256 for 256 bits (Part 1 §11.4.10.3): one round of
/// `SHA-256(1 ‖ Z ‖ use ‖ 0 ‖ party_u ‖ party_v)`.
pub fn kdfe(z: &[u8], usage: &[u8], party_u: &[u8], party_v: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update(usage);
    h.update([0]);
    h.update(party_u);
    h.update(party_v);
    Zeroizing::new(h.finalize().to_vec())
}

/// A TPM2B: big-endian u16 size, then the bytes (all callers pass < 64 KiB).
fn sized(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
