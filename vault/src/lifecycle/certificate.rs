//! Destruction certificates: what was destroyed, on what basis, by whom,
//! how, and how the erase was verified (the record NIST SP 800-88 asks
//! for), as a C2SP signed note.
//!
//! The note body is two lines, the header [`CERTIFICATE_HEADER`] and the
//! certificate as compact JSON, exactly like an extract manifest; it is
//! signed with the ledger's Ed25519 seed under the ledger origin, so the
//! one published ledger verifier key checks checkpoints, manifests and
//! certificates alike. The header names the kind, so a certificate can
//! never pass for a manifest or a checkpoint.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ledger::checkpoint::{CheckpointSigner, NoteError, NoteVerifier};

/// The first line of every certificate note body.
pub const CERTIFICATE_HEADER: &str = "zonevault destruction certificate v1";
/// The method recorded in every certificate.
pub const METHOD: &str = "cryptographic-erase";
/// The standard the method follows.
pub const STANDARD: &str = "NIST SP 800-88 Rev. 1";

/// Why a certificate could not be signed or verified. Coarse on purpose.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The key name or verifier key is unusable.
    #[error("bad certificate key: {0}")]
    Key(#[source] NoteError),
    /// The certificate could not be written as JSON.
    #[error("certificate cannot be serialized: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The note is not a well-formed certificate note.
    #[error("malformed certificate note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key.
    #[error("no signature by key {0:?}")]
    NoSignature(String),
    /// A signature by the expected key does not verify.
    #[error("certificate signature by key {0:?} does not verify")]
    BadSignature(String),
}

/// One dataset as it was just before its erase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasedDataset {
    /// The dataset id.
    pub id: String,
    /// Its grade (`ungraded` before an import).
    pub grade: String,
    /// Rows before destruction.
    pub row_count: u64,
    /// SHA-256 over the rows in row order (see `erase::content_digest`),
    /// as recorded at import (datasets are written once).
    pub content_sha256: String,
}

/// What the erase covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The keys destroyed, e.g. `dataset-key:loans`, `zone-key:finance`.
    pub keys: Vec<String>,
    /// The files whose head (header, salt, schema pages) was overwritten
    /// and which were then unlinked (the rest of their blocks, ciphertext
    /// under the destroyed key, freed right after), relative to the data
    /// directory.
    pub files: Vec<String>,
    /// Which copies the key destruction covers.
    pub backups: String,
}

/// The checks made after the erase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// The catalog, re-read after vacuum, holds no wrapped key for the object.
    pub wrapped_keys_absent: bool,
    /// None of the scope's files exists any more.
    pub files_absent: bool,
    /// A copy of the head of each file (its first MiB: header and schema
    /// pages, which only the dataset key decrypts), taken before the
    /// erase, opened with the dataset's own key (the probe works).
    pub copy_opened_before: bool,
    /// Dataset keys the appliance still holds that were tried on the copy.
    pub remaining_keys_tried: u64,
    /// How many of them opened it (must be 0).
    pub remaining_keys_opened: u64,
    /// The catalog was moved to a fresh key epoch after the key deletion.
    #[serde(default)]
    pub catalog_rekeyed: bool,
    /// Catalog keys the appliance can still derive that were tried on a
    /// copy of the catalog taken before the erase.
    #[serde(default)]
    pub catalog_keys_tried: u64,
    /// How many of them opened it (must be 0).
    #[serde(default)]
    pub catalog_keys_opened: u64,
}

/// A destruction certificate. Serialized with the fields in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestructionCertificate {
    /// `dc-` and the destruction's hex id.
    pub certificate_id: String,
    /// The destruction request.
    pub destruction_id: String,
    /// The appliance that executed it.
    pub appliance_id: String,
    /// `dataset:<id>` or `zone:<id>`.
    pub object: String,
    /// The zone.
    pub zone: String,
    /// The highest grade among the erased datasets.
    pub grade: String,
    /// The legal basis.
    pub basis: String,
    /// The requester's reason.
    pub reason: String,
    /// Always [`METHOD`].
    pub method: String,
    /// Always [`STANDARD`].
    pub standard: String,
    /// Keys, files, backups covered.
    pub scope: Scope,
    /// Each erased dataset with its row count and content digest.
    pub datasets: Vec<ErasedDataset>,
    /// Who requested (identity URI) and when (RFC 3339).
    pub requested_by: String,
    /// When it was requested.
    pub requested_at: String,
    /// Who approved (the witness) and when.
    pub approved_by: String,
    /// When it was approved.
    pub approved_at: String,
    /// When the erase completed.
    pub executed_at: String,
    /// The checks made.
    pub verification: Verification,
}

impl DestructionCertificate {
    /// The note body: header line and compact JSON line.
    pub fn note_body(&self) -> Result<String, CertificateError> {
        let json = serde_json::to_string(self).map_err(CertificateError::Serialize)?;
        Ok(format!("{CERTIFICATE_HEADER}\n{json}\n"))
    }

    fn from_note_body(body: &str) -> Result<Self, CertificateError> {
        let json = body
            .strip_prefix(CERTIFICATE_HEADER)
            .and_then(|rest| rest.strip_prefix('\n'))
            .and_then(|rest| rest.strip_suffix('\n'))
            .filter(|json| !json.contains('\n'))
            .ok_or(CertificateError::Malformed(
                "body is not header and one JSON line",
            ))?;
        let cert: Self = serde_json::from_str(json)
            .map_err(|_| CertificateError::Malformed("certificate JSON"))?;
        if cert.note_body()? != body {
            return Err(CertificateError::Malformed(
                "certificate JSON is not canonical",
            ));
        }
        Ok(cert)
    }

    /// Whether every verification passed.
    pub fn verified(&self) -> bool {
        let v = &self.verification;
        v.wrapped_keys_absent
            && v.files_absent
            && v.remaining_keys_opened == 0
            && v.catalog_keys_opened == 0
    }
}

/// Signs certificates as signed notes. No `Debug`, no `Clone`.
pub struct CertificateSigner {
    inner: CheckpointSigner,
}

impl CertificateSigner {
    /// A signer named `name` (the ledger origin) from the ledger's seed.
    pub fn new(name: &str, seed: &Zeroizing<[u8; 32]>) -> Result<Self, CertificateError> {
        let inner = CheckpointSigner::new(name, seed).map_err(CertificateError::Key)?;
        Ok(Self { inner })
    }

    /// The verifier key string (identical to the ledger's).
    pub fn verifier_key(&self) -> String {
        self.inner.verifier_key()
    }

    /// The signed note of `cert`.
    pub fn sign(&self, cert: &DestructionCertificate) -> Result<String, CertificateError> {
        Ok(self.inner.sign_note(&cert.note_body()?))
    }
}

/// Checks certificate notes against one verifier key; needs no TPM and no
/// appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateVerifier {
    inner: NoteVerifier,
}

impl CertificateVerifier {
    /// Parses a verifier key string (the ledger's format).
    pub fn parse(vkey: &str) -> Result<Self, CertificateError> {
        let inner = NoteVerifier::parse(vkey.trim()).map_err(CertificateError::Key)?;
        Ok(Self { inner })
    }

    /// Verifies a certificate note and returns the certificate it signs.
    pub fn verify(&self, note: &str) -> Result<DestructionCertificate, CertificateError> {
        let body = self.inner.verify_note(note).map_err(|e| match e {
            NoteError::Malformed(what) => CertificateError::Malformed(what),
            NoteError::NoSignature(name) => CertificateError::NoSignature(name),
            NoteError::BadSignature(name) => CertificateError::BadSignature(name),
            other => CertificateError::Key(other),
        })?;
        DestructionCertificate::from_note_body(body)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const NAME: &str = "zonevault/test-appliance";

    pub(crate) fn certificate() -> DestructionCertificate {
        DestructionCertificate {
            certificate_id: "dc-01".into(),
            destruction_id: "dx-01".into(),
            appliance_id: "ab".repeat(16),
            object: "dataset:loans".into(),
            zone: "finance".into(),
            grade: "general-3".into(),
            basis: "retention ended".into(),
            reason: "expired".into(),
            method: METHOD.into(),
            standard: STANDARD.into(),
            scope: Scope {
                keys: vec!["dataset-key:loans".into()],
                files: vec!["datasets/loans.db".into()],
                backups: "all".into(),
            },
            datasets: vec![ErasedDataset {
                id: "loans".into(),
                grade: "general-3".into(),
                row_count: 3,
                content_sha256: "00".repeat(32),
            }],
            requested_by: "spiffe://td/operator/acme/alice".into(),
            requested_at: "2025-01-01T00:00:00Z".into(),
            approved_by: "spiffe://td/regulator/bjeit/bob".into(),
            approved_at: "2025-01-02T00:00:00Z".into(),
            executed_at: "2025-01-02T00:00:01Z".into(),
            verification: Verification {
                wrapped_keys_absent: true,
                files_absent: true,
                copy_opened_before: true,
                remaining_keys_tried: 2,
                remaining_keys_opened: 0,
                catalog_rekeyed: true,
                catalog_keys_tried: 2,
                catalog_keys_opened: 0,
            },
        }
    }

    fn seed() -> Zeroizing<[u8; 32]> {
        Zeroizing::new([9u8; 32])
    }

    #[test]
    fn signs_with_the_ledger_key_and_round_trips() {
        let signer = CertificateSigner::new(NAME, &seed()).unwrap();
        let ledger = CheckpointSigner::new(NAME, &seed()).unwrap();
        assert_eq!(signer.verifier_key(), ledger.verifier_key());
        let note = signer.sign(&certificate()).unwrap();
        assert!(note.starts_with(CERTIFICATE_HEADER));
        let v = CertificateVerifier::parse(&ledger.verifier_key()).unwrap();
        let cert = v.verify(&note).unwrap();
        assert_eq!(cert, certificate());
        assert!(cert.verified());
    }

    #[test]
    fn tampered_or_foreign_certificates_fail() {
        let signer = CertificateSigner::new(NAME, &seed()).unwrap();
        let v = CertificateVerifier::parse(&signer.verifier_key()).unwrap();
        let note = signer.sign(&certificate()).unwrap();
        let more = note.replacen("\"row_count\":3", "\"row_count\":4", 1);
        assert!(matches!(
            v.verify(&more),
            Err(CertificateError::BadSignature(_))
        ));
        let other = CertificateSigner::new(NAME, &Zeroizing::new([1u8; 32])).unwrap();
        let foreign = other.sign(&certificate()).unwrap();
        assert!(matches!(
            v.verify(&foreign),
            Err(CertificateError::NoSignature(_))
        ));
        let unsigned = note.split("\n\n").next().unwrap_or_default().to_owned() + "\n\n";
        assert!(matches!(
            v.verify(&unsigned),
            Err(CertificateError::Malformed(_))
        ));
        assert!(CertificateVerifier::parse("nope").is_err());
    }
}
