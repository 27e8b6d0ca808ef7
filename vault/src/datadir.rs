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

    fn fail<T>(e: impl std::fmt::Display) -> T {
        panic!("{e}")
    }

    const MARKER: &[u8] = b"zv-plaintext-marker-5e1d9b";
    const SQLITE_HEADER: &[u8] = b"SQLite format 3";

    /// Every regular file under `root`, recursively, with its bytes.
    fn all_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
                let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
                    out.push((path, bytes));
                }
            }
        }
        out
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn assert_no_plaintext(root: &Path) -> usize {
        let files = all_files(root);
        for (path, bytes) in &files {
            assert!(!contains(bytes, MARKER), "marker in {}", path.display());
            assert!(
                !contains(bytes, SQLITE_HEADER),
                "SQLite header in {}",
                path.display()
            );
        }
        files.len()
    }

    #[test]
    fn no_plaintext_in_any_file_under_the_data_dir() {
        use crate::catalog::{Catalog, NewZone};
        use crate::dataset_file::DatasetFile;
        use crate::keys::{DatasetKey, MasterKey, ZoneKey};

        let t = tmp();
        let dd = DataDir::create(&t.path().join("data")).unwrap_or_else(fail);
        let marker = std::str::from_utf8(MARKER).unwrap_or_else(fail);
        let master = MasterKey::generate().unwrap_or_else(fail);
        let mut catalog =
            Catalog::create(&dd.catalog_path(), &master.catalog_key()).unwrap_or_else(fail);
        let z1: crate::ids::ZoneId = "z1".parse().unwrap_or_else(fail);
        let zone_key = ZoneKey::generate().unwrap_or_else(fail);
        let wrapped = zone_key.wrap(&master, &z1).unwrap_or_else(fail);
        catalog
            .insert_zone(&NewZone {
                id: &z1,
                name: marker,
                kind: marker,
                domain: "d",
                supervisor: "s",
                wrapped_key: &wrapped,
            })
            .unwrap_or_else(fail);
        catalog.put_meta("note", marker).unwrap_or_else(fail);

        let id: DatasetId = "d1".parse().unwrap_or_else(fail);
        let key = DatasetKey::generate().unwrap_or_else(fail);
        let mut ds = DatasetFile::create(&dd.dataset_path(&id), &key).unwrap_or_else(fail);
        ds.connection_mut()
            .execute_batch("CREATE TABLE rows(v TEXT)")
            .unwrap_or_else(fail);
        for _ in 0..50 {
            ds.connection_mut()
                .execute("INSERT INTO rows VALUES (?1)", [marker])
                .unwrap_or_else(fail);
        }
        let n: i64 = ds
            .connection()
            .query_row("SELECT count(*) FROM rows WHERE v = ?1", [marker], |r| {
                r.get(0)
            })
            .unwrap_or_else(fail);
        assert_eq!(n, 50);

        // Connections open, WAL not checkpointed: the rows sit in -wal files.
        assert!(dd.dataset_path(&id).with_extension("db-wal").exists());
        assert!(assert_no_plaintext(dd.root()) >= 4);
        // After a checkpoint and close, the main files hold them.
        ds.checkpoint().unwrap_or_else(fail);
        drop(ds);
        drop(catalog);
        assert!(assert_no_plaintext(dd.root()) >= 2);
    }

    /// The scanner itself works: an unkeyed (plain SQLite) file does show
    /// both the header and the marker.
    #[test]
    fn plaintext_scanner_detects_plain_sqlite() {
        let t = tmp();
        let path = t.path().join("plain.db");
        let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch("CREATE TABLE t(v TEXT)")
            .unwrap_or_else(|e| panic!("{e}"));
        conn.execute(
            "INSERT INTO t VALUES (?1)",
            [std::str::from_utf8(MARKER).unwrap_or("")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        drop(conn);
        let files = all_files(t.path());
        assert!(files.iter().any(|(_, b)| contains(b, MARKER)));
        assert!(files.iter().any(|(_, b)| contains(b, SQLITE_HEADER)));
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
