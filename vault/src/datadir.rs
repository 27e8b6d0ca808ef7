//! The data directory's layout. Paths only: what lives in each place is the
//! business of the catalog, the dataset files, the ledger and the sealer.
//!
//! ```text
//! <data-dir>/        0700
//!   sealed/          the sealed master key and its PCR policy
//!   catalog.db       SQLCipher, keyed from the master key
//!   datasets/<id>.db one SQLCipher file per dataset
//!   ledger/          the audit ledger and its checkpoints
//! ```
//!
//! Recovery share files never live here: they go to their custodians.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::ids::DatasetId;

const SEALED: &str = "sealed";
const DATASETS: &str = "datasets";
const LEDGER: &str = "ledger";
const CATALOG: &str = "catalog.db";
const SUBDIRS: [&str; 3] = [SEALED, DATASETS, LEDGER];

/// Errors creating or opening a data directory.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// `create` was pointed at a directory that already has entries.
    #[error("{}: refusing to initialize a non-empty directory", path.display())]
    NotEmpty {
        /// The data directory.
        path: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// `open` found a directory that lacks part of the layout.
    #[error("{}: not an initialized data directory ({missing} is missing)", path.display())]
    NotInitialized {
        /// The data directory.
        path: PathBuf,
        /// The missing entry.
        missing: &'static str,
    },
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A data directory whose layout exists.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Lay out a new data directory at `path`: create it (mode 0700) if it
    /// does not exist, refuse it if it has any entries, then create
    /// `sealed/`, `datasets/` and `ledger/` with mode 0700 and fsync.
    /// `catalog.db` is created by [`crate::catalog::Catalog::create`].
    pub fn create(path: &Path) -> Result<Self, DataDirError> {
        let mut builder = DirBuilder::new();
        builder.mode(0o700);
        match fs::symlink_metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(DataDirError::NotADirectory {
                    path: path.to_owned(),
                })
            }
            Ok(_) => {
                let mut entries = fs::read_dir(path).map_err(io_err(path))?;
                if entries.next().is_some() {
                    return Err(DataDirError::NotEmpty {
                        path: path.to_owned(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                builder.create(path).map_err(io_err(path))?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
            }
            Err(e) => return Err(io_err(path)(e)),
        }
        for name in SUBDIRS {
            let sub = path.join(name);
            builder.create(&sub).map_err(io_err(&sub))?;
        }
        sync_dir(path)?;
        Ok(Self {
            root: path.to_owned(),
        })
    }

    /// Open an initialized data directory: the three subdirectories and
    /// `catalog.db` must exist.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let meta = fs::metadata(path).map_err(io_err(path))?;
        if !meta.is_dir() {
            return Err(DataDirError::NotADirectory {
                path: path.to_owned(),
            });
        }
        for name in SUBDIRS {
            if !path.join(name).is_dir() {
                return Err(DataDirError::NotInitialized {
                    path: path.to_owned(),
                    missing: name,
                });
            }
        }
        if !path.join(CATALOG).is_file() {
            return Err(DataDirError::NotInitialized {
                path: path.to_owned(),
                missing: CATALOG,
            });
        }
        Ok(Self {
            root: path.to_owned(),
        })
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `sealed/`: the sealed master key and its PCR policy.
    pub fn sealed_dir(&self) -> PathBuf {
        self.root.join(SEALED)
    }

    /// `catalog.db`.
    pub fn catalog_path(&self) -> PathBuf {
        self.root.join(CATALOG)
    }

    /// `datasets/`.
    pub fn datasets_dir(&self) -> PathBuf {
        self.root.join(DATASETS)
    }

    /// `datasets/<id>.db`. Safe by construction: a [`DatasetId`] has no
    /// dots or separators.
    pub fn dataset_path(&self, id: &DatasetId) -> PathBuf {
        self.datasets_dir().join(format!("{id}.db"))
    }

    /// `ledger/`.
    pub fn ledger_dir(&self) -> PathBuf {
        self.root.join(LEDGER)
    }
}

/// fsync a directory so entries created in it survive a crash.
pub(crate) fn sync_dir(path: &Path) -> Result<(), DataDirError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn create_lays_out_0700_dirs_and_open_requires_catalog() {
        let t = tmp();
        let root = t.path().join("data");
        let dd = DataDir::create(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&root), 0o700);
        for d in [dd.sealed_dir(), dd.datasets_dir(), dd.ledger_dir()] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        let id: DatasetId = "ds-1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dd.dataset_path(&id), root.join("datasets").join("ds-1.db"));

        assert!(matches!(
            DataDir::open(&root),
            Err(DataDirError::NotInitialized {
                missing: "catalog.db",
                ..
            })
        ));
        fs::write(dd.catalog_path(), b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(DataDir::open(&root).is_ok());
    }

    #[test]
    fn create_accepts_existing_empty_dir_and_refuses_non_empty() {
        let t = tmp();
        assert!(DataDir::create(t.path()).is_ok());
        match DataDir::create(t.path()) {
            Err(DataDirError::NotEmpty { path }) => assert_eq!(path, t.path()),
            other => panic!("expected NotEmpty, got {other:?}"),
        }
        let file = t.path().join("sealed").join("f");
        fs::write(&file, b"x").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            DataDir::create(&file),
            Err(DataDirError::NotADirectory { .. })
        ));
    }

    #[test]
    fn open_refuses_uninitialized() {
        let t = tmp();
        assert!(matches!(
            DataDir::open(t.path()),
            Err(DataDirError::NotInitialized {
                missing: "sealed",
                ..
            })
        ));
        assert!(matches!(
            DataDir::open(&t.path().join("nope")),
            Err(DataDirError::Io { .. })
        ));
    }
}
