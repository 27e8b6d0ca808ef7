//! The offline verifier of an attestation bundle (pure Rust: builds and
//! runs without libtss2, so it runs on a regulator's machine).
//!
//! [`verify_quote`] checks, in this order: the quote signature with the
//! pinned AK (or the bundle's own, which the caller must say it trusts),
//! the TPMS_ATTEST magic and type, the nonce binding of the qualifying
//! data, the PCR digest against the values, the values against a
//! reference (naming each mismatched PCR), the event log replayed against
//! the PCRs it extends, and the signature of the ledger checkpoint. It
//! collects every failure rather than stopping at the first, and returns a
//! [`VerifiedQuote`] only when there is none: nothing else constructs one.

mod note;
pub mod tpms;

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use note::{verify_checkpoint, SignedCheckpoint};

use crate::ak::AkPublicKey;
use crate::eventlog::{self, Event};
use crate::pcr::PcrValues;
use crate::reference::{Reference, Source};

/// The domain-separation prefix of the qualifying data.
pub const QUALIFYING_TAG: &[u8] = b"zonevault-attest-v1";
/// The shortest nonce accepted, in bytes.
pub const MIN_NONCE_LEN: usize = 16;
/// The longest nonce accepted, in bytes.
pub const MAX_NONCE_LEN: usize = 64;

/// `SHA-256("zonevault-attest-v1" ‖ nonce ‖ checkpoint ‖ checkpoint key)`,
/// the last two exactly as the bundle carries them.
pub fn qualifying_data(nonce: &Nonce, checkpoint: &str, checkpoint_key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(QUALIFYING_TAG);
    h.update(&nonce.0);
    h.update(checkpoint.as_bytes());
    h.update(checkpoint_key.as_bytes());
    h.finalize().into()
}

/// A verifier's challenge: 16 to 64 bytes, fresh for each verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(Vec<u8>);

/// Why a nonce was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// Not hexadecimal.
    #[error("the nonce is not hexadecimal")]
    NotHex,
    /// Too short or too long.
    #[error("the nonce must be {MIN_NONCE_LEN} to {MAX_NONCE_LEN} bytes, got {0}")]
    Length(usize),
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

impl Nonce {
    /// Parses a hex nonce.
    pub fn from_hex(text: &str) -> Result<Nonce, NonceError> {
        let bytes = hex::decode(text.trim()).map_err(|_| NonceError::NotHex)?;
        Nonce::from_bytes(bytes)
    }

    /// Checks the length of raw nonce bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Nonce, NonceError> {
        if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&bytes.len()) {
            return Err(NonceError::Length(bytes.len()));
        }
        Ok(Nonce(bytes))
    }

    /// 32 bytes from the operating system's CSPRNG.
    pub fn random() -> Result<Nonce, NonceError> {
        use ring::rand::SecureRandom;
        let mut bytes = vec![0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| NonceError::Random)?;
        Ok(Nonce(bytes))
    }

    /// The nonce in lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// What `GET /v1/attestation` returns, and what `zonevault verify quote`
/// reads: one self-contained JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bundle {
    /// The TPMS_ATTEST bytes, standard base64.
    pub quote: String,
    /// The TPMT_SIGNATURE bytes, standard base64.
    pub signature: String,
    /// The PCR bank (`sha256`).
    pub pcr_bank: String,
    /// The quoted PCR values, index to hex.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub pcrs: PcrValues,
    /// The AK public key, SPKI PEM.
    pub ak_public_pem: String,
    /// The TPM's EK certificate, PEM, if it has one.
    pub ek_certificate_pem: Option<String>,
    /// The measured-launch event log.
    pub event_log: Vec<Event>,
    /// The signed ledger checkpoint (C2SP signed note), verbatim.
    pub checkpoint: String,
    /// The checkpoint's verifier key string, verbatim.
    pub checkpoint_key: String,
}

/// What the verifier must hold the bundle to.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The nonce this verifier sent.
    pub nonce: &'a Nonce,
    /// Expected PCR values; without one, the values are reported unjudged.
    pub reference: Option<&'a Reference>,
    /// The enrolled AK; without one, the bundle's AK is trusted.
    pub ak_pin: Option<&'a AkPublicKey>,
}

/// One reason a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A field could not be decoded.
    Malformed(String),
    /// The bundle's AK is not the pinned one.
    AkNotPinned,
    /// The signature does not verify with the AK.
    BadSignature,
    /// The TPMS_ATTEST magic is not TPM_GENERATED.
    BadMagic(u32),
    /// The TPMS_ATTEST is not a quote.
    NotAQuote(u16),
    /// The qualifying data does not bind this nonce and checkpoint.
    NonceMismatch,
    /// The quoted selection differs from the PCRs the bundle lists.
    SelectionMismatch,
    /// The values do not hash to the quoted PCR digest.
    PcrDigestMismatch,
    /// A PCR differs from the reference.
    ReferenceMismatch {
        /// The PCR.
        pcr: u8,
        /// Its quoted value.
        quoted: [u8; 32],
        /// The reference value.
        expected: [u8; 32],
        /// Where the reference value comes from.
        source: Option<Source>,
    },
    /// A PCR of the reference was not quoted.
    NotQuoted(u8),
    /// The event log does not replay to a PCR's quoted value.
    EventLogMismatch(u8),
    /// The event log has no events for the reference's launcher PCR.
    EventLogMissing(u8),
    /// The ledger checkpoint did not verify.
    Checkpoint(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Malformed(what) => write!(f, "malformed bundle: {what}"),
            Failure::AkNotPinned => f.write_str("the AK in the bundle is not the pinned AK"),
            Failure::BadSignature => f.write_str("the quote signature does not verify with the AK"),
            Failure::BadMagic(m) => write!(f, "the quote's magic is {m:#010x}, not TPM_GENERATED"),
            Failure::NotAQuote(t) => write!(f, "the attestation has type {t:#06x}, not a quote"),
            Failure::NonceMismatch => f.write_str(
                "the qualifying data does not bind this nonce and checkpoint (stale or replayed quote)",
            ),
            Failure::SelectionMismatch => {
                f.write_str("the quoted PCR selection differs from the PCR values in the bundle")
            }
            Failure::PcrDigestMismatch => {
                f.write_str("the PCR values do not match the quoted PCR digest")
            }
            Failure::ReferenceMismatch {
                pcr,
                quoted,
                expected,
                source,
            } => {
                let from = match source {
                    Some(Source::Firmware) => " (firmware)",
                    Some(Source::Launcher) => " (launcher)",
                    None => "",
                };
                write!(
                    f,
                    "PCR {pcr} is {}, the reference expects {}{from}",
                    hex::encode(quoted),
                    hex::encode(expected)
                )
            }
            Failure::NotQuoted(pcr) => write!(f, "PCR {pcr} is in the reference but was not quoted"),
            Failure::EventLogMismatch(pcr) => {
                write!(f, "the event log does not replay to the quoted PCR {pcr}")
            }
            Failure::EventLogMissing(pcr) => {
                write!(f, "the event log has no events for the launcher PCR {pcr}")
            }
            Failure::Checkpoint(why) => write!(f, "the ledger checkpoint: {why}"),
        }
    }
}

/// A refused bundle: every reason found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Rejection {
    /// The reasons, in check order.
    pub failures: Vec<Failure>,
}

/// A bundle that passed every check. Only [`verify_quote`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedQuote {
    checkpoint: SignedCheckpoint,
    pcrs: PcrValues,
    ak: AkPublicKey,
    ak_pinned: bool,
    unjudged: Vec<u8>,
    replayed: Vec<u8>,
    clock: u64,
    reset_count: u32,
    firmware_version: u64,
}

impl VerifiedQuote {
    /// The attested ledger checkpoint.
    pub fn checkpoint(&self) -> &SignedCheckpoint {
        &self.checkpoint
    }
    /// The attested PCR values.
    pub fn pcrs(&self) -> &PcrValues {
        &self.pcrs
    }
    /// The AK that signed.
    pub fn ak(&self) -> &AkPublicKey {
        &self.ak
    }
    /// Was the AK pinned (rather than taken from the bundle)?
    pub fn ak_pinned(&self) -> bool {
        self.ak_pinned
    }
    /// Quoted PCRs no reference judged (all of them without a reference).
    pub fn unjudged(&self) -> &[u8] {
        &self.unjudged
    }
    /// PCRs the event log was replayed against.
    pub fn replayed(&self) -> &[u8] {
        &self.replayed
    }
    /// The TPM clock (ms), reset count and firmware version in the quote.
    pub fn clock_info(&self) -> (u64, u32, u64) {
        (self.clock, self.reset_count, self.firmware_version)
    }
}

/// Verifies `bundle` against `expect`.
pub fn verify_quote(
    bundle: &Bundle,
    expect: &Expectations<'_>,
) -> Result<VerifiedQuote, Rejection> {
    let mut failures = Vec::new();
    let decoded = decode(bundle);
    let (attest, signature, bundle_ak) = match decoded {
        Ok(parts) => parts,
        Err(what) => {
            return Err(Rejection {
                failures: vec![Failure::Malformed(what)],
            })
        }
    };
    let ak = match expect.ak_pin {
        Some(pin) => {
            if *pin != bundle_ak {
                failures.push(Failure::AkNotPinned);
            }
            pin.clone()
        }
        None => bundle_ak,
    };
    if !signature_verifies(&ak, &attest, &signature) {
        failures.push(Failure::BadSignature);
    }
    let info = match tpms::parse_quote(&attest) {
        Ok(info) => info,
        Err(e) => {
            failures.push(Failure::Malformed(e.to_string()));
            return Err(Rejection { failures });
        }
    };
    check_quote_info(bundle, expect, &info, &mut failures);
    let unjudged = check_reference(bundle, expect.reference, &mut failures);
    let replayed = check_event_log(bundle, expect.reference, &mut failures);
    let checkpoint = verify_checkpoint(&bundle.checkpoint, &bundle.checkpoint_key)
        .map_err(|why| failures.push(Failure::Checkpoint(why)))
        .ok();
    match checkpoint {
        Some(checkpoint) if failures.is_empty() => Ok(VerifiedQuote {
            checkpoint,
            pcrs: bundle.pcrs.clone(),
            ak,
            ak_pinned: expect.ak_pin.is_some(),
            unjudged,
            replayed,
            clock: info.clock,
            reset_count: info.reset_count,
            firmware_version: info.firmware_version,
        }),
        _ => Err(Rejection { failures }),
    }
}

fn decode(bundle: &Bundle) -> Result<(Vec<u8>, Vec<u8>, AkPublicKey), String> {
    let attest = B64
        .decode(bundle.quote.trim())
        .map_err(|_| "`quote` is not base64".to_owned())?;
    let signature = B64
        .decode(bundle.signature.trim())
        .map_err(|_| "`signature` is not base64".to_owned())?;
    let ak = AkPublicKey::from_pem(&bundle.ak_public_pem)
        .map_err(|e| format!("`ak_public_pem`: {e}"))?;
    if bundle.pcr_bank != "sha256" {
        return Err(format!("`pcr_bank` {:?} is not sha256", bundle.pcr_bank));
    }
    Ok((attest, signature, ak))
}

fn signature_verifies(ak: &AkPublicKey, attest: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = tpms::parse_ecdsa_signature(signature) else {
        return false;
    };
    let Some(fixed) = sig.fixed().filter(|_| sig.hash == tpms::ALG_SHA256) else {
        return false;
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ak.point())
        .verify(attest, &fixed)
        .is_ok()
}

/// Magic, type, nonce binding, selection and PCR digest.
fn check_quote_info(
    bundle: &Bundle,
    expect: &Expectations<'_>,
    info: &tpms::QuoteInfo,
    failures: &mut Vec<Failure>,
) {
    if info.magic != tpms::TPM_GENERATED {
        failures.push(Failure::BadMagic(info.magic));
    }
    if info.kind != tpms::ST_ATTEST_QUOTE {
        failures.push(Failure::NotAQuote(info.kind));
        return;
    }
    let bound = qualifying_data(expect.nonce, &bundle.checkpoint, &bundle.checkpoint_key);
    if info.extra_data != bound {
        failures.push(Failure::NonceMismatch);
    }
    let listed: Vec<u8> = bundle.pcrs.iter().map(|(i, _)| i).collect();
    let single_sha256 =
        matches!(&info.banks[..], [(tpms::ALG_SHA256, quoted)] if *quoted == listed);
    if !single_sha256 {
        failures.push(Failure::SelectionMismatch);
        return;
    }
    let mut h = Sha256::new();
    for (_, value) in bundle.pcrs.iter() {
        h.update(value);
    }
    if h.finalize().as_slice() != info.pcr_digest.as_slice() {
        failures.push(Failure::PcrDigestMismatch);
    }
}

/// Values against the reference; returns the quoted PCRs it does not judge.
fn check_reference(
    bundle: &Bundle,
    reference: Option<&Reference>,
    failures: &mut Vec<Failure>,
) -> Vec<u8> {
    let Some(reference) = reference else {
        return bundle.pcrs.iter().map(|(i, _)| i).collect();
    };
    for (pcr, expected) in reference.pcrs.iter() {
        match bundle.pcrs.get(pcr) {
            None => failures.push(Failure::NotQuoted(pcr)),
            Some(quoted) if quoted != expected => failures.push(Failure::ReferenceMismatch {
                pcr,
                quoted: *quoted,
                expected: *expected,
                source: reference.sources.get(&pcr).copied(),
            }),
            Some(_) => {}
        }
    }
    bundle
        .pcrs
        .iter()
        .map(|(i, _)| i)
        .filter(|i| !reference.selection.contains(*i))
        .collect()
}

/// Replays the event log against every PCR it extends; returns those PCRs.
fn check_event_log(
    bundle: &Bundle,
    reference: Option<&Reference>,
    failures: &mut Vec<Failure>,
) -> Vec<u8> {
    let replayed = eventlog::replay(&bundle.event_log);
    let mut pcrs = Vec::new();
    for (pcr, value) in replayed.iter() {
        pcrs.push(pcr);
        if bundle.pcrs.get(pcr) != Some(value) {
            failures.push(Failure::EventLogMismatch(pcr));
        }
    }
    if let Some(launcher) = reference.and_then(|r| r.launcher_pcr) {
        if replayed.get(launcher).is_none() {
            failures.push(Failure::EventLogMissing(launcher));
        }
    }
    pcrs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
