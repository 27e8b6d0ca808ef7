//! The error type of the demo CA.

use std::path::PathBuf;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `ca.json` is missing a field or is not JSON.
    #[error("{}: invalid CA state: {problem}", path.display())]
    CaState {
        /// Path of `ca.json`.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The role is not operator, regulator, provider or analyst.
    #[error("{0}")]
    Role(#[from] crate::identity::UnknownRole),
    /// An organization, person or trust domain name is not allowed.
    #[error("invalid {what} {value:?}: {rule}")]
    InvalidName {
        /// `organization`, `person` or `trust domain`.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// `not_after` is not after `not_before`.
    #[error("validity ends before it begins")]
    InvalidValidity,
    /// A server certificate needs at least one DNS name or IP address.
    #[error("a server certificate needs at least one --dns or --ip")]
    NoServerNames,
    /// The output directory already holds a CA.
    #[error("{} already exists; refusing to overwrite a CA", path.display())]
    CaExists {
        /// The existing certificate.
        path: PathBuf,
    },
    /// A certificate file could not be parsed.
    #[error("{}: not a PEM certificate: {problem}", path.display())]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The certificate was not issued by this CA.
    #[error("{}: serial {serial} was not issued by this CA", path.display())]
    NotIssuedHere {
        /// The certificate file.
        path: PathBuf,
        /// Its serial number, hex.
        serial: String,
    },
    /// rcgen refused to build or sign.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}
