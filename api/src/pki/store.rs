//! On-disk state of the demo CA: `ca.json` and atomic file writes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PkiError;

/// Mode of private key files.
pub(super) const PRIVATE: u32 = 0o600;
/// Mode of certificates, CRLs and `ca.json`.
pub(super) const PUBLIC: u32 = 0o644;

/// The CA's bookkeeping, kept in `<ca-dir>/ca.json`. Nothing outside
/// [`crate::pki`] reads it: the TLS server only needs PEM files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaState {
    /// The SPIFFE trust domain this CA issues identities for.
    pub trust_domain: String,
    /// Serial number of the next certificate.
    pub next_serial: u64,
    /// Number of the next CRL.
    pub next_crl_number: u64,
    /// Every certificate issued, in order.
    pub issued: Vec<IssuedCert>,
    /// Every certificate revoked, in order.
    pub revoked: Vec<RevokedCert>,
}

/// One issued certificate, as recorded in `ca.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Serial number.
    pub serial: u64,
    /// `client` or `server`.
    pub kind: String,
    /// The SPIFFE id (client) or the names (server).
    pub subject: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
}

/// One revocation, as recorded in `ca.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCert {
    /// Serial number of the revoked certificate.
    pub serial: u64,
    /// When it was revoked, RFC 3339.
    pub revoked_at: String,
}

impl CaState {
    /// Reads `<ca_dir>/ca.json`.
    pub fn load(ca_dir: &Path) -> Result<CaState, PkiError> {
        let path = ca_dir.join("ca.json");
        let text = read_to_string(&path)?;
        serde_json::from_str(&text).map_err(|e| PkiError::CaState {
            path,
            problem: e.to_string(),
        })
    }

    /// Writes `<ca_dir>/ca.json` atomically.
    pub fn store(&self, ca_dir: &Path) -> Result<(), PkiError> {
        let path = ca_dir.join("ca.json");
        let json = serde_json::to_vec_pretty(self).map_err(|e| PkiError::CaState {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        write_atomic(&path, &json, PUBLIC)
    }
}

/// Reads a file, naming it on failure.
pub(super) fn read_to_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

/// Creates `dir` (mode 0700 when new) and its parents.
pub(super) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })
}

/// Writes `bytes` to `path` with `mode` through a temporary file and a
/// rename, so a reader never sees a partial file and a key is never
/// readable by others, not even briefly.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = temp_path(path);
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // A stale temporary file keeps its old mode: set it explicitly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}
