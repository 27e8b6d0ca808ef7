//! Enrollment of an appliance's AK by a regulator (pure Rust): what the
//! appliance serves ([`Enrollment`]), the credential challenge on the wire
//! ([`ChallengeRequest`], [`ChallengeResponse`]), the check that the served
//! AK public area is a TPM-resident restricted signing key
//! ([`check_ak_area`]), and the pin file the regulator keeps ([`AkPin`]).
//!
//! The order a verifier follows: validate the EK certificate
//! ([`crate::ekcert::validate`]), check the AK area and compute its name,
//! make a credential for that name to the certified EK
//! ([`crate::credential::make_credential`]), send it, compare the returned
//! secret, and only then write the pin.

use serde::{Deserialize, Serialize};

use crate::ak::{AkPublicKey, KeyError};
use crate::credential::name_of;
use crate::verify::tpms::{self, ALG_ECDSA, ALG_SHA256, ECC_NIST_P256};

/// TPMA_OBJECT bits an AK must have.
const FIXED_TPM: u32 = 1 << 1;
const FIXED_PARENT: u32 = 1 << 4;
const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
const RESTRICTED: u32 = 1 << 16;
const DECRYPT: u32 = 1 << 17;
const SIGN: u32 = 1 << 18;

/// `GET /v1/attestation/enrollment`: what a regulator enrolls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrollment {
    /// The TPM's EK certificate, PEM (none if the TPM has none).
    pub ek_certificate_pem: Option<String>,
    /// The AK's public area, TPM2B_PUBLIC, standard base64.
    pub ak_public: String,
    /// The AK public key, SPKI PEM (the key quotes are checked with).
    pub ak_public_pem: String,
    /// The AK's TPM name (`000b` ‖ SHA-256 of its TPMT_PUBLIC), hex.
    pub ak_name: String,
}

/// `POST /v1/attestation/challenge`: TPM2_MakeCredential's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// TPM2B_ID_OBJECT, standard base64.
    pub credential_blob: String,
    /// TPM2B_ENCRYPTED_SECRET, standard base64.
    pub encrypted_secret: String,
}

/// The answer to a challenge: the secret the TPM recovered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeResponse {
    /// The recovered secret, standard base64.
    pub secret: String,
}

/// Why an AK public area was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AkAreaError {
    /// The bytes are not an ECC TPM2B_PUBLIC.
    #[error("the AK public area does not parse: {0}")]
    Malformed(String),
    /// Not a restricted, TPM-generated, non-duplicable signing key.
    #[error("the AK public area is not a restricted signing key fixed to its TPM (attributes {0:#010x})")]
    Attributes(u32),
    /// Not ECDSA-SHA256 on P-256 with a SHA-256 name.
    #[error("the AK public area is not an ECDSA-SHA256 NIST P-256 key with a SHA-256 name")]
    Algorithm,
    /// Its point is not the AK public key served with it.
    #[error("the AK public area and the AK public key differ")]
    KeyMismatch,
}

/// Checks that `tpm2b_public` is an AK worth enrolling and is the key
/// `key`; returns its TPM name, which the credential is bound to.
pub fn check_ak_area(tpm2b_public: &[u8], key: &AkPublicKey) -> Result<[u8; 34], AkAreaError> {
    let (area, tpmt) =
        tpms::parse_ecc_public(tpm2b_public).map_err(|e| AkAreaError::Malformed(e.to_string()))?;
    let required = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN;
    if area.attributes & required != required || area.attributes & DECRYPT != 0 {
        return Err(AkAreaError::Attributes(area.attributes));
    }
    if area.name_alg != ALG_SHA256
        || area.curve != ECC_NIST_P256
        || area.scheme != (ALG_ECDSA, ALG_SHA256)
    {
        return Err(AkAreaError::Algorithm);
    }
    let served =
        AkPublicKey::from_coordinates(&area.x, &area.y).map_err(|_| AkAreaError::Algorithm)?;
    if served != *key {
        return Err(AkAreaError::KeyMismatch);
    }
    Ok(name_of(tpmt))
}

/// The regulator's trust file for one appliance, written by `zonevault
/// attest enroll` after the challenge succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AkPin {
    /// The enrolled AK public key, SPKI PEM.
    pub ak_public_pem: String,
    /// Its TPM name, hex.
    pub ak_name: String,
    /// SHA-256 of its SPKI DER, hex.
    pub ak_fingerprint: String,
    /// SHA-256 of the EK certificate's DER, hex.
    pub ek_certificate_sha256: String,
    /// The EK certificate chain's subjects, EK first.
    pub ek_chain: Vec<String>,
    /// The appliance address it was enrolled from.
    pub appliance: String,
}

impl AkPin {
    /// The pinned AK public key from a pin file's text: an [`AkPin`] in
    /// JSON, or a bare SPKI PEM public key.
    pub fn read_key(text: &str) -> Result<AkPublicKey, KeyError> {
        if text.trim_start().starts_with('{') {
            let pin: AkPin = serde_json::from_str(text).map_err(|_| KeyError::NotPem)?;
            AkPublicKey::from_pem(&pin.ak_public_pem)
        } else {
            AkPublicKey::from_pem(text)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A TPM2B_PUBLIC as `create_ak` makes it, with the point `key`.
    fn area(attributes: u32, key: &AkPublicKey) -> Vec<u8> {
        let mut t = vec![0x00, 0x23, 0x00, 0x0b];
        t.extend_from_slice(&attributes.to_be_bytes());
        t.extend_from_slice(&[0, 0]); // authPolicy
        t.extend_from_slice(&[0x00, 0x10]); // symmetric NULL
        t.extend_from_slice(&[0x00, 0x18, 0x00, 0x0b]); // ECDSA SHA-256
        t.extend_from_slice(&[0x00, 0x03, 0x00, 0x10]); // P-256, KDF NULL
        t.extend_from_slice(&[0, 32]);
        t.extend_from_slice(&key.point()[1..33]);
        t.extend_from_slice(&[0, 32]);
        t.extend_from_slice(&key.point()[33..]);
        let mut out = (t.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&t);
        out
    }

    const AK_ATTRIBUTES: u32 = 0x0005_0472;

    #[test]
    fn an_ak_area_is_checked_and_named() {
        let key = AkPublicKey::from_coordinates(&[3; 32], &[4; 32]).unwrap();
        let bytes = area(AK_ATTRIBUTES, &key);
        let name = check_ak_area(&bytes, &key).unwrap();
        assert_eq!(name, name_of(&bytes[2..]));
        assert_eq!(&name[..2], &[0x00, 0x0b]);

        let decrypting = area(AK_ATTRIBUTES | DECRYPT, &key);
        assert_eq!(
            check_ak_area(&decrypting, &key),
            Err(AkAreaError::Attributes(AK_ATTRIBUTES | DECRYPT))
        );
        let duplicable = area(AK_ATTRIBUTES & !FIXED_TPM, &key);
        assert!(matches!(
            check_ak_area(&duplicable, &key),
            Err(AkAreaError::Attributes(_))
        ));
        let other = AkPublicKey::from_coordinates(&[5; 32], &[4; 32]).unwrap();
        assert_eq!(check_ak_area(&bytes, &other), Err(AkAreaError::KeyMismatch));
        assert!(matches!(
            check_ak_area(&bytes[..bytes.len() - 1], &key),
            Err(AkAreaError::Malformed(_))
        ));
    }

    #[test]
    fn a_pin_file_is_json_or_pem() {
        let key = AkPublicKey::from_coordinates(&[3; 32], &[4; 32]).unwrap();
        let pin = AkPin {
            ak_public_pem: key.to_pem(),
            ak_name: "000b".into(),
            ak_fingerprint: key.fingerprint(),
            ek_certificate_sha256: "00".into(),
            ek_chain: vec!["CN=ek".into()],
            appliance: "https://127.0.0.1:8443".into(),
        };
        let json = serde_json::to_string_pretty(&pin).unwrap();
        assert_eq!(AkPin::read_key(&json).unwrap(), key);
        assert_eq!(AkPin::read_key(&key.to_pem()).unwrap(), key);
        assert!(AkPin::read_key("{\"ak_public_pem\": 1}").is_err());
    }
}
