//! The end of a dataset's life: retention, two-person destruction by
//! cryptographic erase, and the signed destruction certificate.
//!
//! - [`retention`] finds datasets whose retention has ended and marks them
//!   `due-for-destruction`.
//! - [`destruction`] is the request → approval → execution state machine;
//!   the requester can never approve their own request.
//! - [`erase`] executes an approved destruction (NIST SP 800-88
//!   cryptographic erase) and verifies it.
//! - [`certificate`] signs and verifies the destruction certificate with
//!   the ledger's key.
//! - [`exit`] is a zone's exit procedure: grants revoked, use refused, a
//!   zone-wide destruction filed, then `exited` once it executes.
//!
//! What it never does: decide who is a regulator (the API does), keep a
//! copy of a destroyed key, or leave a dataset readable after its
//! certificate says it is gone.

pub mod certificate;
pub mod destruction;
pub mod erase;
pub mod exit;
pub mod retention;

use crate::catalog::{Catalog, CatalogError};
use crate::dataset::{Dataset, DatasetState};

pub use certificate::{CertificateSigner, CertificateVerifier, DestructionCertificate};
pub use destruction::{Destruction, DestructionObject, DestructionState};

/// Why a dataset's rows may not be read or written any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inaccessible {
    /// Destroyed; the certificate says how (`None` if none was found,
    /// which only an interrupted execution leaves behind).
    #[error("dataset destroyed (certificate {})", certificate_id.as_deref().unwrap_or("pending"))]
    Gone {
        /// The destruction certificate's id.
        certificate_id: Option<String>,
    },
    /// Retention has ended; the dataset awaits destruction.
    #[error("dataset retention has ended; it awaits destruction")]
    DueForDestruction,
}

/// Whether `dataset`'s rows may still be read or imported: call it before
/// every import and extract. Refuses destroyed and due datasets.
pub fn check_accessible(catalog: &Catalog, dataset: &Dataset) -> Result<(), CheckError> {
    match dataset.state {
        DatasetState::Destroyed => {
            let certificate_id = catalog.certificate_covering(&dataset.id, &dataset.zone)?;
            Err(CheckError::Inaccessible(Inaccessible::Gone {
                certificate_id,
            }))
        }
        DatasetState::DueForDestruction => {
            Err(CheckError::Inaccessible(Inaccessible::DueForDestruction))
        }
        _ => Ok(()),
    }
}

/// The outcome of [`check_accessible`] when it refuses.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The dataset is destroyed or due.
    #[error(transparent)]
    Inaccessible(Inaccessible),
    /// The catalog could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}
