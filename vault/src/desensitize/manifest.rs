//! The signed manifest of an extract: who received what, under which
//! grant and policy, with the SHA-256 of the body, so a leaked file can be
//! traced to the extract it came from and checked offline.
//!
//! The manifest is a C2SP signed note whose body is two lines: the header
//! [`MANIFEST_HEADER`] and the manifest as compact JSON (fields in
//! declaration order, as `serde_json` writes them). Signatures and verifier
//! keys have the same format as ledger checkpoints, so when the signer is
//! built from the ledger's signing seed under the ledger origin, the one
//! published verifier key checks both. A two-line body can never parse as a
//! three-line checkpoint, and the header names the note's kind, so the two
//! cannot be confused.

use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::policy::ColumnPlan;
use crate::ledger::checkpoint::{CheckpointSigner, NoteError, NoteVerifier};
use crate::schema::Grade;

/// The first line of every manifest note body.
pub const MANIFEST_HEADER: &str = "zonevault extract manifest v1";

/// Why a manifest could not be signed or verified. Coarse on purpose.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The key name or verifier key is unusable.
    #[error("bad manifest key: {0}")]
    Key(#[source] NoteError),
    /// The manifest could not be written as JSON (a non-finite number).
    #[error("manifest cannot be serialized: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The note is not a well-formed manifest note.
    #[error("malformed manifest note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key.
    #[error("no signature by key {0:?}")]
    NoSignature(String),
    /// A signature by the expected key does not verify.
    #[error("manifest signature by key {0:?} does not verify")]
    BadSignature(String),
}

/// What one extract released. Serialized with the fields in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractManifest {
    /// The extract's id.
    pub extract_id: String,
    /// The recipient: an analyst's SPIFFE identity or an organization.
    pub recipient: String,
    /// The grant the extract was made under.
    pub grant: String,
    /// The grant's declared purpose.
    pub purpose: String,
    /// The dataset extracted from.
    pub dataset: String,
    /// The dataset's grade (its highest column grade).
    pub dataset_grade: Grade,
    /// Each released column with its technique and parameters.
    pub columns: Vec<ColumnPlan>,
    /// The policy version that chose the techniques.
    pub policy_version: String,
    /// Rows in the body.
    pub row_count: u64,
    /// Rows withheld to reach k-anonymity.
    pub rows_suppressed: u64,
    /// Steps the quasi-identifiers were generalized beyond the policy to
    /// reach k-anonymity before any row was suppressed (`columns` shows
    /// the techniques as applied); omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generalization_level: u32,
    /// SHA-256 of the body as delivered, lowercase hex.
    pub body_sha256: String,
    /// Index of the ledger entry recording the extract.
    pub ledger_index: u64,
    /// When the extract was made, RFC 3339.
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// Fingerprint of the recipient: HMAC-SHA256 of its identity under the
    /// grant's pseudonymization key, lowercase hex, binding the file to
    /// whoever received it.
    pub recipient_fingerprint: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

mod rfc3339 {
    use serde::{de, ser, Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format(&Rfc3339).map_err(ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(de::Error::custom)
    }
}

impl ExtractManifest {
    /// SHA-256 of an extract body, lowercase hex, for [`Self::body_sha256`].
    pub fn body_digest(body: &[u8]) -> String {
        hex::encode(digest(&SHA256, body))
    }

    /// Whether `body` is the body this manifest describes.
    pub fn matches_body(&self, body: &[u8]) -> bool {
        let actual = Self::body_digest(body);
        bool::from(actual.as_bytes().ct_eq(self.body_sha256.as_bytes()))
    }

    /// The signed note body: the header line and the compact JSON line.
    pub fn note_body(&self) -> Result<String, ManifestError> {
        let json = serde_json::to_string(self).map_err(ManifestError::Serialize)?;
        Ok(format!("{MANIFEST_HEADER}\n{json}\n"))
    }

    /// The manifest in a note body, which must be in canonical form (as
    /// [`Self::note_body`] writes it).
    fn from_note_body(body: &str) -> Result<Self, ManifestError> {
        let json = body
            .strip_prefix(MANIFEST_HEADER)
            .and_then(|rest| rest.strip_prefix('\n'))
            .and_then(|rest| rest.strip_suffix('\n'))
            .filter(|json| !json.contains('\n'))
            .ok_or(ManifestError::Malformed(
                "body is not header and one JSON line",
            ))?;
        let manifest: Self =
            serde_json::from_str(json).map_err(|_| ManifestError::Malformed("manifest JSON"))?;
        if manifest.note_body()? != body {
            return Err(ManifestError::Malformed("manifest JSON is not canonical"));
        }
        Ok(manifest)
    }
}

/// Signs manifests with Ed25519 as signed notes. No `Debug`, no `Clone`.
pub struct ManifestSigner {
    inner: CheckpointSigner,
}

impl ManifestSigner {
    /// A signer named `name` from a 32-byte Ed25519 seed (the ledger
    /// signing seed and origin, so the ledger's verifier key applies).
    pub fn new(name: &str, seed: &Zeroizing<[u8; 32]>) -> Result<Self, ManifestError> {
        let inner = CheckpointSigner::new(name, seed).map_err(ManifestError::Key)?;
        Ok(Self { inner })
    }

    /// The verifier key string: `<name>+<key id hex>+<base64(0x01 ‖ key)>`.
    pub fn verifier_key(&self) -> String {
        self.inner.verifier_key()
    }

    /// The signed note of `manifest`.
    pub fn sign(&self, manifest: &ExtractManifest) -> Result<String, ManifestError> {
        Ok(self.inner.sign_note(&manifest.note_body()?))
    }
}

/// Checks manifest notes against one verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestVerifier {
    inner: NoteVerifier,
}

impl ManifestVerifier {
    /// Parses a verifier key string (the same format as the ledger's).
    pub fn parse(vkey: &str) -> Result<Self, ManifestError> {
        let inner = NoteVerifier::parse(vkey).map_err(ManifestError::Key)?;
        Ok(Self { inner })
    }

    /// Verifies a manifest note and returns the manifest it signs. Needs
    /// one valid signature by this key; other keys' signatures are ignored.
    pub fn verify(&self, note: &str) -> Result<ExtractManifest, ManifestError> {
        let body = self.inner.verify_note(note).map_err(|e| match e {
            NoteError::Malformed(what) => ManifestError::Malformed(what),
            NoteError::NoSignature(name) => ManifestError::NoSignature(name),
            NoteError::BadSignature(name) => ManifestError::BadSignature(name),
            other => ManifestError::Key(other),
        })?;
        ExtractManifest::from_note_body(body)
    }
}

/// The current time as the manifest records it (UTC, whole seconds).
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desensitize::{Generalization, Technique};
    use crate::ledger::checkpoint::CheckpointSigner;
    use crate::schema::SemanticType;
    use signed_note::{Note, StandardVerifier, VerifierList};

    const NAME: &str = "zonevault/test-appliance";

    fn seed() -> Zeroizing<[u8; 32]> {
        Zeroizing::new([7u8; 32])
    }

    fn manifest() -> ExtractManifest {
        let body = b"name,amount\n\xe5\xbc\xa0*,[1000,2000)\n";
        ExtractManifest {
            extract_id: "ex-1".into(),
            recipient: "spiffe://zone.example/analyst/li".into(),
            grant: "gr-9".into(),
            purpose: "credit risk model, filing F-12".into(),
            dataset: "loans".into(),
            dataset_grade: Grade::General4,
            columns: vec![
                ColumnPlan {
                    name: "name".into(),
                    semantic_type: SemanticType::PersonName,
                    technique: Technique::Mask {
                        keep_first: 1,
                        keep_last: 0,
                    },
                },
                ColumnPlan {
                    name: "loc".into(),
                    semantic_type: SemanticType::GeoPoint,
                    technique: Technique::Generalize(Generalization::GeoGrid { cell_deg: 0.05 }),
                },
            ],
            policy_version: "v1".into(),
            row_count: 1,
            rows_suppressed: 0,
            generalization_level: 1,
            body_sha256: ExtractManifest::body_digest(body),
            ledger_index: 41,
            created_at: OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
            recipient_fingerprint: "ab".repeat(32),
        }
    }

    #[test]
    fn sign_verify_roundtrip_with_the_ledger_key() {
        let signer = ManifestSigner::new(NAME, &seed()).unwrap();
        let ledger = CheckpointSigner::new(NAME, &seed()).unwrap();
        assert_eq!(signer.verifier_key(), ledger.verifier_key());
        let note = signer.sign(&manifest()).unwrap();
        assert!(note.starts_with(&format!("{MANIFEST_HEADER}\n{{\"extract_id\":\"ex-1\"")));
        let v = ManifestVerifier::parse(&ledger.verifier_key()).unwrap();
        let m = v.verify(&note).unwrap();
        assert_eq!(m, manifest());
        assert!(m.matches_body(b"name,amount\n\xe5\xbc\xa0*,[1000,2000)\n"));
        assert!(!m.matches_body(b"name,amount\n"));
        // A checkpoint verifier refuses a manifest note: not a checkpoint.
        assert!(NoteVerifier::parse(&ledger.verifier_key())
            .unwrap()
            .verify(&note)
            .is_err());
    }

    #[test]
    fn manifest_notes_verify_with_signed_note() {
        let signer = ManifestSigner::new(NAME, &seed()).unwrap();
        let note = signer.sign(&manifest()).unwrap();
        let verifier = StandardVerifier::new(&signer.verifier_key()).unwrap();
        let parsed = Note::from_bytes(note.as_bytes()).unwrap();
        let (ok, _) = parsed
            .verify(&VerifierList::new(vec![Box::new(verifier)]))
            .unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn tampered_manifests_fail() {
        let signer = ManifestSigner::new(NAME, &seed()).unwrap();
        let v = ManifestVerifier::parse(&signer.verifier_key()).unwrap();
        let note = signer.sign(&manifest()).unwrap();
        let more_rows = note.replacen("\"row_count\":1", "\"row_count\":2", 1);
        assert!(matches!(
            v.verify(&more_rows),
            Err(ManifestError::BadSignature(_))
        ));
        let other_recipient = note.replacen("analyst/li", "analyst/wu", 1);
        assert!(matches!(
            v.verify(&other_recipient),
            Err(ManifestError::BadSignature(_))
        ));
        let other = ManifestSigner::new(NAME, &Zeroizing::new([8u8; 32])).unwrap();
        assert!(matches!(
            v.verify(&other.sign(&manifest()).unwrap()),
            Err(ManifestError::NoSignature(_))
        ));
        let unsigned = note.split("\n\n").next().unwrap().to_owned() + "\n\n";
        assert!(matches!(
            v.verify(&unsigned),
            Err(ManifestError::Malformed(_))
        ));
        assert!(ManifestVerifier::parse("nope").is_err());
    }

    #[test]
    fn non_canonical_body_is_rejected_even_if_signed() {
        let m = manifest();
        let json = serde_json::to_string_pretty(&m).unwrap().replace('\n', "");
        let body = format!("{MANIFEST_HEADER}\n{json}\n");
        assert!(matches!(
            ExtractManifest::from_note_body(&body),
            Err(ManifestError::Malformed(_))
        ));
        assert_eq!(
            ExtractManifest::from_note_body(&m.note_body().unwrap()).unwrap(),
            m
        );
        let t = now();
        let text = serde_json::to_string(&ExtractManifest { created_at: t, ..m }).unwrap();
        assert_eq!(
            serde_json::from_str::<ExtractManifest>(&text)
                .unwrap()
                .created_at,
            t
        );
    }
}
