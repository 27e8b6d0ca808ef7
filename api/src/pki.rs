//! A small certificate authority for demos and tests.
//!
//! It issues ECDSA P-256 client certificates whose URI SAN is
//! `spiffe://<trust-domain>/<role>/<org>/<person>`, server certificates, and
//! CRLs. A CA directory holds `cert.pem`, `key.pem` (mode 0600) and
//! `ca.json` (trust domain, serials, issued and revoked certificates).
//!
//! Production may bring its own CA: the TLS server ([`crate::tls`]) reads
//! only PEM files and never this module's `ca.json`.

mod error;
mod store;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::identity::{is_valid_segment, Role};
pub use error::PkiError;
use store::{create_dir, read_to_string, write_atomic, PRIVATE, PUBLIC};
pub use store::{CaState, IssuedCert, RevokedCert};

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity; may lie in the past (for tests of expiry).
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From five minutes ago (clock skew) to `days` days from now.
    pub fn days_from_now(days: u32) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(i64::from(days)),
        }
    }

    /// A window that ended `ago` before now and lasted a day.
    pub fn expired(ago: Duration) -> Validity {
        let not_after = OffsetDateTime::now_utc() - ago;
        Validity {
            not_before: not_after - Duration::days(1),
            not_after,
        }
    }
}

const CA_DAYS: u32 = 3650;
const SERVER_DAYS: u32 = 397;
const CRL_DAYS: i64 = 7;

/// Creates a CA in `out_dir`: `cert.pem`, `key.pem` (0600) and `ca.json`.
pub fn init_ca(out_dir: &Path, trust_domain: &str) -> Result<CaState, PkiError> {
    check_trust_domain(trust_domain)?;
    let cert_path = out_dir.join("cert.pem");
    if cert_path.exists() {
        return Err(PkiError::CaExists { path: cert_path });
    }
    create_dir(out_dir)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = ca_params(trust_domain);
    let validity = Validity::days_from_now(CA_DAYS);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(SerialNumber::from(1u64));
    let cert = params.self_signed(&key)?;
    write_atomic(
        &out_dir.join("key.pem"),
        key.serialize_pem().as_bytes(),
        PRIVATE,
    )?;
    write_atomic(&cert_path, cert.pem().as_bytes(), PUBLIC)?;
    let state = CaState {
        trust_domain: trust_domain.into(),
        next_serial: 2,
        next_crl_number: 1,
        issued: Vec::new(),
        revoked: Vec::new(),
    };
    state.store(out_dir)?;
    Ok(state)
}

/// Issues a client certificate for `spiffe://<td>/<role>/<org>/<person>`
/// into `out_dir` (`cert.pem`, `key.pem`).
pub fn issue_client(
    ca_dir: &Path,
    role: &str,
    org: &str,
    person: &str,
    out_dir: &Path,
    validity: Validity,
) -> Result<IssuedCert, PkiError> {
    let role: Role = role.parse()?;
    check_segment("organization", org)?;
    check_segment("person", person)?;
    let mut ca = Ca::load(ca_dir)?;
    let uri = format!("spiffe://{}/{role}/{org}/{person}", ca.state.trust_domain);
    let mut params = leaf_params(validity, ExtendedKeyUsagePurpose::ClientAuth)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{person}@{org} ({role})"));
    params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into()?)];
    ca.issue(params, "client", uri, out_dir)
}

/// Issues a server certificate for the given names into `out_dir`.
pub fn issue_server(
    ca_dir: &Path,
    dns: &[String],
    ips: &[IpAddr],
    out_dir: &Path,
) -> Result<IssuedCert, PkiError> {
    if dns.is_empty() && ips.is_empty() {
        return Err(PkiError::NoServerNames);
    }
    let mut ca = Ca::load(ca_dir)?;
    let validity = Validity::days_from_now(SERVER_DAYS);
    let mut params = leaf_params(validity, ExtendedKeyUsagePurpose::ServerAuth)?;
    let mut names = Vec::new();
    for name in dns {
        params
            .subject_alt_names
            .push(SanType::DnsName(name.as_str().try_into()?));
        names.push(name.clone());
    }
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
        names.push(ip.to_string());
    }
    let subject = names.join(",");
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    ca.issue(params, "server", subject, out_dir)
}

/// Records the certificate at `cert_pem_path` as revoked. Idempotent.
/// Call [`write_crl`] afterwards to publish the revocation.
pub fn revoke(ca_dir: &Path, cert_pem_path: &Path) -> Result<RevokedCert, PkiError> {
    let serial = serial_of(cert_pem_path)?;
    let mut state = CaState::load(ca_dir)?;
    if !state.issued.iter().any(|c| c.serial == serial) {
        return Err(PkiError::NotIssuedHere {
            path: cert_pem_path.into(),
            serial: format!("{serial:x}"),
        });
    }
    if let Some(done) = state.revoked.iter().find(|r| r.serial == serial) {
        return Ok(done.clone());
    }
    let entry = RevokedCert {
        serial,
        revoked_at: rfc3339(OffsetDateTime::now_utc()),
    };
    state.revoked.push(entry.clone());
    state.store(ca_dir)?;
    Ok(entry)
}

/// Writes a CRL (PEM) listing every revoked certificate, signed by the CA,
/// valid for seven days.
pub fn write_crl(ca_dir: &Path, out_path: &Path) -> Result<(), PkiError> {
    let mut ca = Ca::load(ca_dir)?;
    let now = OffsetDateTime::now_utc();
    let revoked_certs = ca
        .state
        .revoked
        .iter()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from(r.serial),
            revocation_time: time::OffsetDateTime::parse(
                &r.revoked_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or(now),
            reason_code: None,
            invalidity_date: None,
        })
        .collect();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(CRL_DAYS),
        crl_number: SerialNumber::from(ca.state.next_crl_number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&ca.issuer)?;
    ca.state.next_crl_number += 1;
    ca.state.store(ca_dir)?;
    write_atomic(out_path, crl.pem()?.as_bytes(), PUBLIC)
}

/// A loaded CA: its state and its signing identity.
struct Ca {
    dir: PathBuf,
    state: CaState,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn load(ca_dir: &Path) -> Result<Ca, PkiError> {
        let state = CaState::load(ca_dir)?;
        let key = KeyPair::from_pem(&read_to_string(&ca_dir.join("key.pem"))?)?;
        // The issuer name and key identifier are derived exactly as in
        // `init_ca`, so they match the CA certificate's subject and SKI.
        let issuer = Issuer::new(ca_params(&state.trust_domain), key);
        Ok(Ca {
            dir: ca_dir.into(),
            state,
            issuer,
        })
    }

    /// Signs `params` with a fresh P-256 key and writes both to `out_dir`.
    fn issue(
        &mut self,
        mut params: CertificateParams,
        kind: &str,
        subject: String,
        out_dir: &Path,
    ) -> Result<IssuedCert, PkiError> {
        let serial = self.state.next_serial;
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let issued = IssuedCert {
            serial,
            kind: kind.into(),
            subject,
            not_after: rfc3339(params.not_after),
        };
        self.state.next_serial += 1;
        self.state.issued.push(issued.clone());
        // Record the serial first: a crash afterwards wastes a serial
        // rather than reusing one.
        self.state.store(&self.dir)?;
        create_dir(out_dir)?;
        write_atomic(
            &out_dir.join("key.pem"),
            key.serialize_pem().as_bytes(),
            PRIVATE,
        )?;
        write_atomic(&out_dir.join("cert.pem"), cert.pem().as_bytes(), PUBLIC)?;
        Ok(issued)
    }
}

fn ca_params(trust_domain: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "zonevault");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("zonevault CA {trust_domain}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(v: Validity, eku: ExtendedKeyUsagePurpose) -> Result<CertificateParams, PkiError> {
    if v.not_after <= v.not_before {
        return Err(PkiError::InvalidValidity);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.not_before = v.not_before;
    params.not_after = v.not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The serial number of a PEM certificate, as issued by this CA (≤ 64 bits).
fn serial_of(path: &Path) -> Result<u64, PkiError> {
    let bad = |problem: String| PkiError::BadCertificate {
        path: path.into(),
        problem,
    };
    let pem = read_to_string(path)?;
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .ok_or_else(|| bad("no CERTIFICATE block".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
    let raw = cert.raw_serial();
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let digits = &raw[first..];
    if digits.len() > 8 {
        return Err(PkiError::NotIssuedHere {
            path: path.into(),
            serial: hex::encode(raw),
        });
    }
    Ok(digits
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn check_segment(what: &'static str, value: &str) -> Result<(), PkiError> {
    if is_valid_segment(value) {
        return Ok(());
    }
    Err(PkiError::InvalidName {
        what,
        value: value.into(),
        rule: "must match [a-z0-9][a-z0-9._-]* (at most 64 characters)",
    })
}

fn check_trust_domain(td: &str) -> Result<(), PkiError> {
    let ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'));
    if ok {
        return Ok(());
    }
    Err(PkiError::InvalidName {
        what: "trust domain",
        value: td.into(),
        rule: "must be lowercase letters, digits, '.', '-' or '_'",
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn ca_and_client_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init_ca(&ca, "zv.test").unwrap();
        assert_eq!(mode(&ca.join("key.pem")), 0o600);
        assert!(matches!(
            init_ca(&ca, "zv.test"),
            Err(PkiError::CaExists { .. })
        ));
        let out = dir.path().join("alice");
        let v = Validity::days_from_now(30);
        let issued = issue_client(&ca, "analyst", "acme", "alice", &out, v).unwrap();
        assert_eq!(issued.subject, "spiffe://zv.test/analyst/acme/alice");
        assert_eq!(mode(&out.join("key.pem")), 0o600);
        let pem = std::fs::read_to_string(out.join("cert.pem")).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let id = crate::identity::Identity::from_peer_cert(&der, "zv.test").unwrap();
        assert_eq!(id.role, Role::Analyst);
        assert_eq!(serial_of(&out.join("cert.pem")).unwrap(), issued.serial);
    }

    #[test]
    fn rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        assert!(matches!(
            init_ca(&ca, "Bad TD"),
            Err(PkiError::InvalidName { .. })
        ));
        init_ca(&ca, "zv.test").unwrap();
        let out = dir.path().join("x");
        let v = Validity::days_from_now(1);
        let err = issue_client(&ca, "root", "acme", "a", &out, v).unwrap_err();
        assert!(err.to_string().contains("unknown role"), "{err}");
        let err = issue_client(&ca, "operator", "Acme", "a", &out, v).unwrap_err();
        assert!(matches!(
            err,
            PkiError::InvalidName {
                what: "organization",
                ..
            }
        ));
        let err = issue_client(&ca, "operator", "acme", "a/b", &out, v).unwrap_err();
        assert!(matches!(err, PkiError::InvalidName { what: "person", .. }));
        let backwards = Validity {
            not_before: v.not_after,
            not_after: v.not_before,
        };
        let err = issue_client(&ca, "operator", "acme", "a", &out, backwards).unwrap_err();
        assert!(matches!(err, PkiError::InvalidValidity));
        assert!(matches!(
            issue_server(&ca, &[], &[], &out),
            Err(PkiError::NoServerNames)
        ));
    }

    #[test]
    fn revoke_and_crl() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init_ca(&ca, "zv.test").unwrap();
        let out = dir.path().join("bob");
        issue_client(
            &ca,
            "operator",
            "acme",
            "bob",
            &out,
            Validity::days_from_now(1),
        )
        .unwrap();
        let first = revoke(&ca, &out.join("cert.pem")).unwrap();
        assert_eq!(revoke(&ca, &out.join("cert.pem")).unwrap(), first);
        // A CA's own certificate is not in its issued list.
        assert!(matches!(
            revoke(&ca, &ca.join("cert.pem")),
            Err(PkiError::NotIssuedHere { .. })
        ));
        write_crl(&ca, &dir.path().join("crl.pem")).unwrap();
        let pem = std::fs::read_to_string(dir.path().join("crl.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"));
        assert_eq!(CaState::load(&ca).unwrap().next_crl_number, 2);
    }
}
