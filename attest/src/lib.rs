//! zonevault's TPM boundary: sealing the master key under a PCR policy, and
//! the PCR types that policies, quotes and reference measurements share.
//!
//! This crate owns the one connection to the TPM ([`Tpm`], feature `tpm`):
//! reading and extending sha256 PCRs, and sealing a caller-supplied secret in
//! salted, parameter-encrypted sessions so it never crosses the TPM interface
//! in clear. Without the `tpm` feature it is pure Rust ([`PcrSelection`],
//! [`PcrValues`], [`SealedObject`]) and builds on a machine without libtss2.
//! It never generates or stores key material itself, never writes a secret
//! to disk, never logs one, and never falls back to software pretending to
//! be a TPM.

pub mod pcr;
pub mod sealed;
#[cfg(feature = "tpm")]
pub mod tpm;

pub use pcr::{PcrSelection, PcrValues, SelectionError};
pub use sealed::{SealedObject, StoreError};
#[cfg(feature = "tpm")]
pub use tpm::{Tpm, TpmError};
