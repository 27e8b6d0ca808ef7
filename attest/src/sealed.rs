//! The sealed master-key blob as it lives in the data directory.
//!
//! Owns the on-disk form of a sealed object: `master.pub` (marshalled
//! TPM2B_PUBLIC), `master.priv` (marshalled TPM2B_PRIVATE, encrypted by the
//! TPM; both load with `tpm2_load -u master.pub -r master.priv`) and
//! `policy.json` (the PCR selection and the values sealed against, hex).
//! Writes are atomic per file (temp file, fsync, rename, fsync of the
//! directory). Nothing here is secret: the private part is only usable inside
//! the TPM that created it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pcr::{PcrSelection, PcrValues};

/// File holding the public part.
pub const PUBLIC_FILE: &str = "master.pub";
/// File holding the TPM-encrypted private part.
pub const PRIVATE_FILE: &str = "master.priv";
/// File holding the PCR selection and expected values.
pub const POLICY_FILE: &str = "policy.json";

/// Reading or writing a sealed object failed; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be read, written, synced or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `policy.json` is not valid.
    #[error("{}: {source}", path.display())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// The file parsed but its content is inconsistent.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A secret sealed by the TPM under a PolicyPCR policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedObject {
    /// Marshalled TPM2B_PUBLIC of the sealed object.
    pub public: Vec<u8>,
    /// Marshalled TPM2B_PRIVATE (encrypted under the storage key).
    pub private: Vec<u8>,
    /// The PCRs the policy covers.
    pub selection: PcrSelection,
    /// Their values at sealing time.
    pub expected: PcrValues,
}

#[derive(Serialize, Deserialize)]
struct PolicyFile {
    bank: String,
    selection: PcrSelection,
    expected: PcrValues,
}

impl SealedObject {
    /// Writes the three files into `dir` (which must exist), each atomically.
    pub fn write_to(&self, dir: &Path) -> Result<(), StoreError> {
        let policy = PolicyFile {
            bank: "sha256".into(),
            selection: self.selection.clone(),
            expected: self.expected.clone(),
        };
        let path = dir.join(POLICY_FILE);
        let mut json = serde_json::to_vec_pretty(&policy)
            .map_err(|source| StoreError::Policy { path, source })?;
        json.push(b'\n');
        write_atomic(dir, PUBLIC_FILE, &self.public)?;
        write_atomic(dir, PRIVATE_FILE, &self.private)?;
        write_atomic(dir, POLICY_FILE, &json)?;
        sync_dir(dir)
    }

    /// Reads the three files from `dir`.
    pub fn read_from(dir: &Path) -> Result<SealedObject, StoreError> {
        let public = read(&dir.join(PUBLIC_FILE))?;
        let private = read(&dir.join(PRIVATE_FILE))?;
        let path = dir.join(POLICY_FILE);
        let bytes = read(&path)?;
        let policy: PolicyFile = match serde_json::from_slice(&bytes) {
            Ok(p) => p,
            Err(source) => return Err(StoreError::Policy { path, source }),
        };
        if policy.bank != "sha256" {
            return Err(invalid(path, "only the sha256 PCR bank is supported"));
        }
        if !policy.expected.covers_exactly(&policy.selection) {
            return Err(invalid(path, "expected values do not match the selection"));
        }
        if public.is_empty() || private.is_empty() {
            let which = if public.is_empty() {
                PUBLIC_FILE
            } else {
                PRIVATE_FILE
            };
            return Err(invalid(dir.join(which), "file is empty"));
        }
        Ok(SealedObject {
            public,
            private,
            selection: policy.selection,
            expected: policy.expected,
        })
    }
}

fn invalid(path: PathBuf, reason: &'static str) -> StoreError {
    StoreError::Invalid { path, reason }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, StoreError> {
    fs::read(path).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })
}

/// temp file in the same directory, write, fsync, rename over `name`.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io_err = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Io { path: p, source }
    };
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> SealedObject {
        let selection: PcrSelection = "0,7".parse().unwrap();
        let mut expected = PcrValues::new();
        expected.insert(0, [1; 32]);
        expected.insert(7, [2; 32]);
        SealedObject {
            public: vec![0, 3, 1, 2, 3],
            private: vec![0, 2, 9, 9],
            selection,
            expected,
        }
    }

    #[test]
    fn roundtrips_through_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        sample().write_to(dir.path()).unwrap();
        assert_eq!(SealedObject::read_from(dir.path()).unwrap(), sample());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "no temp files left behind: {names:?}");
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = SealedObject::read_from(dir.path()).unwrap_err();
        assert!(err.to_string().contains(PUBLIC_FILE), "{err}");

        sample().write_to(dir.path()).unwrap();
        fs::write(dir.path().join(POLICY_FILE), b"{\"bank\":\"sha256\"").unwrap();
        let err = SealedObject::read_from(dir.path()).unwrap_err();
        assert!(err.to_string().contains(POLICY_FILE), "{err}");

        let json = r#"{"bank":"sha256","selection":[0,7],"expected":{"0":"00"}}"#;
        fs::write(dir.path().join(POLICY_FILE), json).unwrap();
        let err = SealedObject::read_from(dir.path()).unwrap_err();
        assert!(err.to_string().contains(POLICY_FILE), "{err}");
    }
}
