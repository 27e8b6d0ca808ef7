//! zonevault's TPM boundary: sealing the master key under a PCR policy, the
//! attestation key and quotes; and the verifier of quotes, event logs and
//! reference measurements that a regulator runs.
//!
//! This crate owns the one connection to the TPM ([`Tpm`], feature `tpm`):
//! reading and extending sha256 PCRs, sealing a caller-supplied secret in
//! salted, parameter-encrypted sessions so it never crosses the TPM interface
//! in clear, creating the attestation key and signing quotes with it,
//! reading the EK certificate and activating credentials with the AK and
//! the EK. Without the `tpm` feature it is pure Rust ([`PcrSelection`],
//! [`PcrValues`], [`SealedObject`], [`verify::verify_quote`], the event log
//! and reference formats, and enrollment: [`ekcert`] chains,
//! [`credential::make_credential`], the [`enrollment`] wire types and pin)
//! and builds on a machine without libtss2: the verifier never needs a TPM.
//! It never generates or stores the appliance's key material itself (only
//! a verifier's one-time challenge secrets), never writes a secret to disk,
//! never logs one, and never falls back to software pretending to be a TPM.

pub mod ak;
pub mod credential;
pub mod ekcert;
pub mod enrollment;
pub mod eventlog;
pub mod pcr;
pub mod reference;
pub mod sealed;
#[cfg(feature = "tpm")]
pub mod tpm;
pub mod verify;

pub use ak::{AkBlob, AkPublicKey};
pub use pcr::{PcrSelection, PcrValues, SelectionError};
pub use reference::{Reference, LAUNCHER_PCR};
pub use sealed::{SealedObject, StoreError};
#[cfg(feature = "tpm")]
pub use tpm::{EkCertificate, EkKind, Quote, Tpm, TpmError};
pub use verify::{verify_quote, Bundle, Nonce, VerifiedQuote};
