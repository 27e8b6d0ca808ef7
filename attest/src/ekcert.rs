//! The EK certificate, checked against a manufacturer CA bundle (pure Rust:
//! x509-parser with ring's signature verification; no OpenSSL, no TPM).
//!
//! A TPM manufacturer certifies each TPM's endorsement key. A regulator
//! holds the manufacturers' CA certificates (roots and intermediates) in
//! one PEM bundle; [`validate`] accepts an EK certificate only if a chain
//! of signatures leads from it through CA certificates of the bundle to a
//! self-signed root of the bundle, every certificate on the way within its
//! validity period. It returns the EK public key that the credential
//! challenge then encrypts to, so the challenge only succeeds in the TPM
//! the manufacturer certified.

use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::OID_EC_P256;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::ak::pem_decode;
use crate::credential::EkPublic;

/// The longest chain followed (EK, intermediates, root).
const MAX_CHAIN: usize = 5;

/// Why an EK certificate was not accepted. Each reason is its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EkCertError {
    /// The EK certificate is not a PEM certificate that parses.
    #[error("the EK certificate does not parse: {0}")]
    Malformed(String),
    /// The bundle holds no certificate that parses.
    #[error("the manufacturer CA bundle holds no certificate")]
    EmptyBundle,
    /// No CA in the bundle has the issuer's name.
    #[error("the EK certificate chain leads to {issuer:?}, which is not a CA in the trusted bundle (untrusted manufacturer)")]
    UntrustedIssuer {
        /// The issuer name no bundle CA has.
        issuer: String,
    },
    /// A CA of that name exists but did not sign the certificate.
    #[error("the signature on {subject:?} does not verify with the bundle's CA {issuer:?}")]
    BadSignature {
        /// The certificate whose signature failed.
        subject: String,
        /// The CA it names as issuer.
        issuer: String,
    },
    /// The issuing certificate is not a CA certificate.
    #[error("{subject:?} is not a CA certificate but issued a certificate on the chain")]
    NotACa {
        /// The certificate lacking `cA`.
        subject: String,
    },
    /// A certificate on the chain is outside its validity period.
    #[error("{subject:?} is not valid now (expired or not yet valid)")]
    NotValidNow {
        /// The certificate.
        subject: String,
    },
    /// The chain did not reach a self-signed root within the depth limit.
    #[error("the EK certificate chain is longer than {MAX_CHAIN} certificates")]
    TooLong,
    /// The certified key is not an RSA 2048 or ECC P-256 key.
    #[error("the EK certificate certifies an unsupported key: {0}")]
    UnsupportedKey(&'static str),
}

/// An EK certificate that chains to the bundle.
#[derive(Debug, Clone)]
pub struct TrustedEk {
    /// The certified endorsement key.
    pub public: EkPublic,
    /// Subjects from the EK certificate to the root, in order.
    pub chain: Vec<String>,
    /// SHA-256 of the EK certificate's DER, hex.
    pub fingerprint: String,
}

/// Validates `ek_pem` against the CA certificates in `bundle_pem`.
pub fn validate(ek_pem: &str, bundle_pem: &str) -> Result<TrustedEk, EkCertError> {
    let der = pem_decode(ek_pem, "CERTIFICATE")
        .ok_or_else(|| EkCertError::Malformed("not a PEM CERTIFICATE block".into()))?;
    let (_, ek) =
        X509Certificate::from_der(&der).map_err(|e| EkCertError::Malformed(e.to_string()))?;
    let bundle = bundle_ders(bundle_pem);
    let cas: Vec<X509Certificate<'_>> = bundle
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .collect();
    if cas.is_empty() {
        return Err(EkCertError::EmptyBundle);
    }
    let chain = chain_to_root(&ek, &cas)?;
    Ok(TrustedEk {
        public: ek_public(&ek)?,
        chain,
        fingerprint: hex::encode(Sha256::digest(&der)),
    })
}

/// The DER of every CERTIFICATE block in `pem`.
fn bundle_ders(pem: &str) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// Follows issuers through `cas` up to a self-signed root; the subjects.
fn chain_to_root(
    leaf: &X509Certificate<'_>,
    cas: &[X509Certificate<'_>],
) -> Result<Vec<String>, EkCertError> {
    let mut subjects = vec![leaf.subject().to_string()];
    let mut current = leaf;
    for _ in 0..MAX_CHAIN {
        valid_now(current)?;
        let issuer = issuer_in(current, cas)?;
        if !is_ca(issuer) {
            return Err(EkCertError::NotACa {
                subject: issuer.subject().to_string(),
            });
        }
        subjects.push(issuer.subject().to_string());
        if is_self_signed(issuer) {
            valid_now(issuer)?;
            return Ok(subjects);
        }
        current = issuer;
    }
    Err(EkCertError::TooLong)
}

/// The bundle CA that signed `cert`.
fn issuer_in<'b, 'a>(
    cert: &X509Certificate<'_>,
    cas: &'b [X509Certificate<'a>],
) -> Result<&'b X509Certificate<'a>, EkCertError> {
    let named: Vec<&X509Certificate<'a>> = cas
        .iter()
        .filter(|ca| ca.subject().as_raw() == cert.issuer().as_raw())
        .collect();
    if named.is_empty() {
        return Err(EkCertError::UntrustedIssuer {
            issuer: cert.issuer().to_string(),
        });
    }
    named
        .into_iter()
        .find(|ca| cert.verify_signature(Some(ca.public_key())).is_ok())
        .ok_or_else(|| EkCertError::BadSignature {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
        })
}

fn valid_now(cert: &X509Certificate<'_>) -> Result<(), EkCertError> {
    if cert.validity().is_valid() {
        Ok(())
    } else {
        Err(EkCertError::NotValidNow {
            subject: cert.subject().to_string(),
        })
    }
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok()
}

/// The certified key, if it is one an EK template produces that this
/// verifier can encrypt to.
fn ek_public(cert: &X509Certificate<'_>) -> Result<EkPublic, EkCertError> {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() == 2048 => {
            Ok(EkPublic::rsa(rsa.modulus, rsa.exponent))
        }
        Ok(PublicKey::RSA(_)) => Err(EkCertError::UnsupportedKey("RSA other than 2048 bits")),
        Ok(PublicKey::EC(point)) => {
            let on_p256 = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|oid| oid == OID_EC_P256);
            let point: [u8; 65] = point
                .data()
                .try_into()
                .map_err(|_| EkCertError::UnsupportedKey("ECC other than P-256"))?;
            if !on_p256 || point[0] != 0x04 {
                return Err(EkCertError::UnsupportedKey("ECC other than P-256"));
            }
            Ok(EkPublic::EccP256 { point })
        }
        _ => Err(EkCertError::UnsupportedKey("neither RSA nor ECC")),
    }
}
