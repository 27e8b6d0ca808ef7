//! The attestation key (AK) as it lives in the data directory, and its
//! public key in the forms a verifier uses (pure Rust).
//!
//! The AK is a restricted ECC NIST P-256 ECDSA-SHA256 signing key created
//! under the storage primary at `init`. Its blobs are `sealed/ak.pub`
//! (TPM2B_PUBLIC) and `sealed/ak.priv` (TPM2B_PRIVATE, only loadable in the
//! TPM that created it); `sealed/ak.pem` is its public key as SPKI PEM.
//! Nothing here is secret.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::sealed::{read, sync_dir, write_atomic, StoreError};

/// File holding the AK's public area.
pub const AK_PUBLIC_FILE: &str = "ak.pub";
/// File holding the AK's TPM-encrypted private area.
pub const AK_PRIVATE_FILE: &str = "ak.priv";
/// File holding the AK's public key, SPKI PEM.
pub const AK_PEM_FILE: &str = "ak.pem";

/// DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The AK blobs created by the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkBlob {
    /// Marshalled TPM2B_PUBLIC.
    pub public: Vec<u8>,
    /// Marshalled TPM2B_PRIVATE.
    pub private: Vec<u8>,
    /// The public key.
    pub key: AkPublicKey,
}

impl AkBlob {
    /// Writes `ak.pub`, `ak.priv` and `ak.pem` into `dir`, each atomically.
    pub fn write_to(&self, dir: &Path) -> Result<(), StoreError> {
        write_atomic(dir, AK_PUBLIC_FILE, &self.public)?;
        write_atomic(dir, AK_PRIVATE_FILE, &self.private)?;
        write_atomic(dir, AK_PEM_FILE, self.key.to_pem().as_bytes())?;
        sync_dir(dir)
    }

    /// Reads the three files from `dir`.
    pub fn read_from(dir: &Path) -> Result<AkBlob, StoreError> {
        let public = read(&dir.join(AK_PUBLIC_FILE))?;
        let private = read(&dir.join(AK_PRIVATE_FILE))?;
        let pem_path = dir.join(AK_PEM_FILE);
        let pem = read(&pem_path)?;
        let key = std::str::from_utf8(&pem)
            .ok()
            .and_then(|p| AkPublicKey::from_pem(p).ok())
            .ok_or(StoreError::Invalid {
                path: pem_path,
                reason: "not a P-256 public key in PEM",
            })?;
        Ok(AkBlob {
            public,
            private,
            key,
        })
    }
}

/// Why a public key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a `PUBLIC KEY` PEM block with valid base64.
    #[error("not a PEM `PUBLIC KEY` block")]
    NotPem,
    /// The DER is not an uncompressed NIST P-256 SubjectPublicKeyInfo.
    #[error("not an ECC NIST P-256 public key")]
    NotP256,
}

/// An ECC NIST P-256 public key (the uncompressed point `04 ‖ x ‖ y`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkPublicKey {
    point: [u8; 65],
}

impl AkPublicKey {
    /// From the affine coordinates (each up to 32 bytes, big-endian).
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Result<AkPublicKey, KeyError> {
        if x.len() > 32 || y.len() > 32 {
            return Err(KeyError::NotP256);
        }
        let mut point = [0u8; 65];
        point[0] = 0x04;
        point[33 - x.len()..33].copy_from_slice(x);
        point[65 - y.len()..].copy_from_slice(y);
        Ok(AkPublicKey { point })
    }

    /// From SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<AkPublicKey, KeyError> {
        let rest = der
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .ok_or(KeyError::NotP256)?;
        let point: [u8; 65] = rest.try_into().map_err(|_| KeyError::NotP256)?;
        if point[0] != 0x04 {
            return Err(KeyError::NotP256);
        }
        Ok(AkPublicKey { point })
    }

    /// From a `-----BEGIN PUBLIC KEY-----` PEM block.
    pub fn from_pem(pem: &str) -> Result<AkPublicKey, KeyError> {
        let der = pem_decode(pem, "PUBLIC KEY").ok_or(KeyError::NotPem)?;
        AkPublicKey::from_spki_der(&der)
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.point);
        der
    }

    /// SubjectPublicKeyInfo PEM (what `tpm2_checkquote -u` reads).
    pub fn to_pem(&self) -> String {
        pem_encode(&self.to_spki_der(), "PUBLIC KEY")
    }

    /// The uncompressed point, as ring's `UnparsedPublicKey` wants it.
    pub fn point(&self) -> &[u8; 65] {
        &self.point
    }

    /// SHA-256 of the SPKI DER, hex: how people compare keys.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.to_spki_der()))
    }
}

/// PEM armour around `der` with 64-column base64.
pub fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first PEM block labelled `label`.
pub fn pem_decode(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    B64.decode(body).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip_and_padding() {
        let key = AkPublicKey::from_coordinates(&[7; 31], &[9; 32]).unwrap();
        assert_eq!(key.point()[1], 0, "x is left-padded");
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(AkPublicKey::from_pem(&pem).unwrap(), key);
        assert_eq!(AkPublicKey::from_pem("junk"), Err(KeyError::NotPem));
        let other = pem_encode(b"\x30\x03\x02\x01\x01", "PUBLIC KEY");
        assert_eq!(AkPublicKey::from_pem(&other), Err(KeyError::NotP256));
    }
}
