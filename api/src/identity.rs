//! Who is calling: the identity carried by a client certificate.
//!
//! The identity is the certificate's single URI SAN,
//! `spiffe://<trust-domain>/<role>/<organization>/<person>`. It is parsed once,
//! at the edge, by [`Identity::from_peer_cert`]; the rest of the API only sees
//! the typed [`Identity`]. A certificate that chains to the client CA but
//! carries no usable identity is *not* a handshake failure: the request is
//! answered with 403 and recorded in the ledger, so the attempt is auditable.
//!
//! This module never checks the chain, validity or revocation: rustls has
//! already done that before a request exists.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

/// The role a certificate grants; the second path segment of the SPIFFE id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the appliance.
    Operator,
    /// Supervises: reads the ledger, verifies attestation.
    Regulator,
    /// Brings data into zones.
    Provider,
    /// Reads desensitized data through grants.
    Analyst,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] = [
        Role::Operator,
        Role::Regulator,
        Role::Provider,
        Role::Analyst,
    ];

    /// The lowercase name used in SPIFFE ids and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Regulator => "regulator",
            Role::Provider => "provider",
            Role::Analyst => "analyst",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected operator, regulator, provider or analyst)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Whether `s` is a valid organization or person segment:
/// `[a-z0-9][a-z0-9._-]*`, at most 64 bytes.
pub fn is_valid_segment(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'));
    first_ok
        && s.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// Why a client certificate carries no usable identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The DER does not parse as an X.509 certificate.
    #[error("peer certificate does not parse: {0}")]
    Malformed(String),
    /// The certificate has no URI subject alternative name.
    #[error("peer certificate has no URI SAN")]
    NoUriSan,
    /// More than one URI SAN: the identity would be ambiguous.
    #[error("peer certificate has {0} URI SANs; exactly one is allowed")]
    MultipleUriSans(usize),
    /// The URI SAN is not a `spiffe://` URI.
    #[error("URI SAN {uri:?} is not a spiffe:// id")]
    NotSpiffe {
        /// The URI as found.
        uri: String,
    },
    /// The trust domain is not the configured one.
    #[error("trust domain {found:?} is not {expected:?}")]
    WrongTrustDomain {
        /// The trust domain found in the certificate.
        found: String,
        /// The configured trust domain.
        expected: String,
    },
    /// The role segment names no role.
    #[error("{0}")]
    UnknownRole(#[from] UnknownRole),
    /// The path is not exactly `/<role>/<org>/<person>` with valid segments.
    #[error("SPIFFE path of {uri:?} is not /<role>/<org>/<person>")]
    BadPath {
        /// The URI as found.
        uri: String,
    },
}

/// The authenticated caller, as named by its client certificate. Its
/// fields ([`IdentityFields`]) are reached through `Deref` and shared by
/// every clone: each request hands its identity to the audit layer and to
/// its handler, and a clone costs a reference count, not four strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(Arc<IdentityFields>);

impl std::ops::Deref for Identity {
    type Target = IdentityFields;

    fn deref(&self) -> &IdentityFields {
        &self.0
    }
}

impl Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// What an [`Identity`] says about the caller.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct IdentityFields {
    /// The SPIFFE trust domain (equal to the configured one).
    pub trust_domain: String,
    /// The role the certificate grants.
    pub role: Role,
    /// The caller's organization.
    pub org: String,
    /// The person within the organization.
    pub person: String,
    /// The full SPIFFE id, as in the certificate.
    pub uri: String,
    /// SHA-256 of the end-entity certificate's DER: the fingerprint recorded
    /// in the ledger.
    #[serde(serialize_with = "serialize_hex")]
    pub cert_sha256: [u8; 32],
}

fn serialize_hex<S: serde::Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(digest))
}

impl Identity {
    /// Parses the identity from the peer's end-entity certificate (DER).
    pub fn from_peer_cert(der: &[u8], trust_domain: &str) -> Result<Identity, IdentityError> {
        let uri = single_uri_san(der)?;
        let mut fields = IdentityFields::from_spiffe_uri(&uri, trust_domain)?;
        fields.cert_sha256 = Sha256::digest(der).into();
        Ok(Identity(Arc::new(fields)))
    }

    /// The fingerprint as lowercase hex.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.cert_sha256)
    }
}

impl IdentityFields {
    /// Parses a SPIFFE id; `cert_sha256` is left zero.
    fn from_spiffe_uri(uri: &str, trust_domain: &str) -> Result<Self, IdentityError> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| IdentityError::NotSpiffe { uri: uri.into() })?;
        let bad_path = || IdentityError::BadPath { uri: uri.into() };
        let (found_td, path) = rest.split_once('/').ok_or_else(bad_path)?;
        if found_td != trust_domain {
            return Err(IdentityError::WrongTrustDomain {
                found: found_td.into(),
                expected: trust_domain.into(),
            });
        }
        let segments: Vec<&str> = path.split('/').collect();
        let [role, org, person] = segments[..] else {
            return Err(bad_path());
        };
        let role: Role = role.parse()?;
        if !is_valid_segment(org) || !is_valid_segment(person) {
            return Err(bad_path());
        }
        Ok(Self {
            trust_domain: trust_domain.into(),
            role,
            org: org.into(),
            person: person.into(),
            uri: uri.into(),
            cert_sha256: [0; 32],
        })
    }
}

/// The one URI SAN of a certificate.
fn single_uri_san(der: &[u8]) -> Result<String, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris[..] {
        [] => Err(IdentityError::NoUriSan),
        [uri] => Ok(uri.to_owned()),
        _ => Err(IdentityError::MultipleUriSans(uris.len())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cert_with_sans(sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri_cert(uri: &str) -> Vec<u8> {
        cert_with_sans(vec![rcgen::SanType::URI(uri.try_into().unwrap())])
    }

    #[test]
    fn valid_spiffe_id_parses() {
        let der = uri_cert("spiffe://zv.test/analyst/acme/alice");
        let id = Identity::from_peer_cert(&der, "zv.test").unwrap();
        assert_eq!(id.role, Role::Analyst);
        assert_eq!((id.org.as_str(), id.person.as_str()), ("acme", "alice"));
        assert_eq!(id.cert_sha256, <[u8; 32]>::from(Sha256::digest(&der)));
    }

    #[test]
    fn wrong_trust_domain() {
        let der = uri_cert("spiffe://evil.test/operator/acme/alice");
        let err = Identity::from_peer_cert(&der, "zv.test").unwrap_err();
        assert!(
            matches!(err, IdentityError::WrongTrustDomain { found, .. } if found == "evil.test")
        );
    }

    #[test]
    fn unknown_role() {
        let der = uri_cert("spiffe://zv.test/root/acme/alice");
        let err = Identity::from_peer_cert(&der, "zv.test").unwrap_err();
        assert_eq!(err, IdentityError::UnknownRole(UnknownRole("root".into())));
    }

    #[test]
    fn no_uri_san() {
        let der = cert_with_sans(vec![rcgen::SanType::DnsName("a.test".try_into().unwrap())]);
        assert_eq!(
            Identity::from_peer_cert(&der, "zv.test"),
            Err(IdentityError::NoUriSan)
        );
        let der = cert_with_sans(vec![]);
        assert_eq!(
            Identity::from_peer_cert(&der, "zv.test"),
            Err(IdentityError::NoUriSan)
        );
    }

    #[test]
    fn bad_paths() {
        for uri in [
            "spiffe://zv.test/operator/acme/alice/extra",
            "spiffe://zv.test/operator/acme",
            "spiffe://zv.test/operator/acme/",
            "spiffe://zv.test/operator/Acme/alice",
            "spiffe://zv.test",
        ] {
            let err = Identity::from_peer_cert(&uri_cert(uri), "zv.test").unwrap_err();
            assert!(
                matches!(err, IdentityError::BadPath { .. }),
                "{uri}: {err:?}"
            );
        }
        let err = Identity::from_peer_cert(&uri_cert("https://zv.test/a/b/c"), "zv.test");
        assert!(matches!(err, Err(IdentityError::NotSpiffe { .. })));
    }

    #[test]
    fn two_uri_sans_are_ambiguous() {
        let der = cert_with_sans(vec![
            rcgen::SanType::URI("spiffe://zv.test/operator/a/b".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://zv.test/analyst/a/b".try_into().unwrap()),
        ]);
        let err = Identity::from_peer_cert(&der, "zv.test");
        assert_eq!(err, Err(IdentityError::MultipleUriSans(2)));
    }

    #[test]
    fn garbage_is_malformed() {
        let err = Identity::from_peer_cert(b"not a cert", "zv.test");
        assert!(matches!(err, Err(IdentityError::Malformed(_))));
    }

    #[test]
    fn segments() {
        assert!(is_valid_segment("acme-corp.cn_1"));
        for bad in ["", "-a", ".a", "A", "a b", "a/b", &"a".repeat(65)] {
            assert!(!is_valid_segment(bad), "{bad:?}");
        }
    }
}
