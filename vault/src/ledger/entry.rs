//! Ledger entries and the HMAC for sensitive request values.
//!
//! **Leaf bytes.** A leaf is exactly one JSON object on one line, without the
//! trailing newline, as produced by [`LedgerEntry::to_leaf_bytes`]: fields in
//! the declaration order of [`LedgerEntry`], absent optional fields omitted,
//! no whitespace between tokens, strings escaped by `serde_json` (so a leaf
//! never contains a raw newline). The ledger stores and serves these bytes
//! verbatim and hashes them as they are; a verifier never re-serializes.

use ring::hmac;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// One answered API request.
    Request,
    /// A workflow or lifecycle event.
    Event,
}

/// The authorization outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Allowed and answered.
    Allow,
    /// Refused by authorization or validation.
    Deny,
    /// Allowed but failed.
    Error,
}

/// The step of a streamed response, which is recorded twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "lowercase")]
pub enum Phase {
    /// Written before the first byte of the body is released.
    Start,
    /// Written after the last byte, with rows, bytes and body digest.
    Complete {
        /// Ledger index of the matching `start` entry.
        start_index: u64,
    },
}

/// One audit record. Serialized field order is the declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// When it happened, RFC 3339 in UTC.
    #[serde(with = "rfc3339_utc")]
    pub time: OffsetDateTime,
    /// Request or event.
    pub kind: EntryKind,
    /// SPIFFE URI of the client certificate, or `anonymous` / `system`.
    pub identity: String,
    /// SHA-256 of the client certificate (DER), lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cert_sha256: Option<String>,
    /// Role taken from the identity.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<String>,
    /// Peer socket address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<String>,
    /// HTTP method, or the event name's verb for events.
    pub method: String,
    /// Matched route template, or the event name.
    pub route: String,
    /// Ids of the resources touched (dataset, zone, grant, …).
    pub resources: Vec<String>,
    /// Outcome.
    pub decision: Decision,
    /// Why (fixed, non-sensitive reason code or text).
    pub reason: String,
    /// Declared purpose.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purpose: Option<String>,
    /// Filing id the access is made under.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filing: Option<String>,
    /// Rows returned.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows: Option<u64>,
    /// Body bytes returned.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// SHA-256 of the response body, lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub body_sha256: Option<String>,
    /// HTTP status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    /// Streamed responses: start or completion.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phase: Option<Phase>,
    /// Event details (workflow events); sensitive values only as HMACs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<serde_json::Value>,
}

impl LedgerEntry {
    /// A minimal entry; fill the optional fields as needed.
    pub fn new(
        kind: EntryKind,
        identity: &str,
        method: &str,
        route: &str,
        decision: Decision,
    ) -> Self {
        Self {
            time: OffsetDateTime::now_utc(),
            kind,
            identity: identity.to_owned(),
            cert_sha256: None,
            role: None,
            peer: None,
            method: method.to_owned(),
            route: route.to_owned(),
            resources: Vec::new(),
            decision,
            reason: String::new(),
            purpose: None,
            filing: None,
            rows: None,
            bytes: None,
            body_sha256: None,
            status: None,
            phase: None,
            details: None,
        }
    }

    /// The canonical leaf bytes (one JSON line, no trailing newline).
    pub fn to_leaf_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(512);
        self.write_leaf_bytes(&mut out)?;
        Ok(out)
    }

    /// Appends the canonical leaf bytes to `out`.
    pub fn write_leaf_bytes(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }

    /// Parses leaf bytes back into an entry.
    pub fn from_leaf_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

mod rfc3339_utc {
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};
    use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t
            .to_offset(UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)
    }
}

/// HMAC-SHA256 of sensitive request values under the ledger's derived key.
///
/// No `Debug`, `Clone` or `Serialize`; the key zeroizes on drop. A ring HMAC
/// key is built per call, so only this zeroizing copy outlives a call.
pub struct LedgerHmac {
    key: Zeroizing<[u8; 32]>,
}

impl LedgerHmac {
    /// Takes ownership of the 32-byte HMAC key.
    pub fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self { key }
    }

    /// `hex(HMAC-SHA256(key, value))`, lowercase.
    pub fn hex(&self, value: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.key.as_ref());
        hex::encode(hmac::sign(&key, value).as_ref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn leaf_bytes_are_canonical_one_line_json() {
        let mut e = LedgerEntry::new(
            EntryKind::Request,
            "spiffe://td/analyst/o/p",
            "GET",
            "/v1/x",
            Decision::Allow,
        );
        e.time = datetime!(2026-05-01 12:00:00.5 +02:00);
        e.rows = Some(3);
        e.phase = Some(Phase::Complete { start_index: 7 });
        e.reason = "line\nbreak".into();
        let bytes = e.to_leaf_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"time":"2026-05-01T10:00:00.5Z","kind":"request","identity":"spiffe://td/analyst/o/p","method":"GET","route":"/v1/x","resources":[],"decision":"allow","reason":"line\nbreak","rows":3,"phase":{"step":"complete","start_index":7}}"#
        );
        assert!(!bytes.contains(&b'\n'));
        assert_eq!(
            LedgerEntry::from_leaf_bytes(&bytes)
                .unwrap()
                .to_leaf_bytes()
                .unwrap(),
            bytes
        );
    }

    #[test]
    fn hmac_is_keyed_deterministic_hex() {
        let a = LedgerHmac::new(Zeroizing::new([1u8; 32]));
        let b = LedgerHmac::new(Zeroizing::new([2u8; 32]));
        assert_eq!(a.hex(b"110101199003077777"), a.hex(b"110101199003077777"));
        assert_ne!(a.hex(b"v"), b.hex(b"v"));
        assert_eq!(a.hex(b"v").len(), 64);
    }
}
