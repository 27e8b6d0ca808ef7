//! One SQLCipher file per dataset (`datasets/<id>.db`), keyed by the
//! dataset's own random key. Rows live in ordinary SQLite tables inside, so
//! filters and aggregates run at SQLite speed; destroying the wrapped
//! dataset key in the catalog makes the file (and every backup) unreadable.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::catalog::sqlcipher::{self, KeyedOpenError};
use crate::keys::DatasetKey;

/// Errors opening or creating a dataset file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetFileError {
    /// `create` found a file at the path.
    #[error("{}: dataset file already exists", path.display())]
    Exists {
        /// The dataset file.
        path: PathBuf,
    },
    /// The key does not open the file (or it is not a database).
    #[error("{}: wrong dataset key, or not a dataset file", path.display())]
    WrongKey {
        /// The dataset file.
        path: PathBuf,
    },
    /// The file does not exist or cannot be created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The dataset file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SQLite would not switch to WAL mode.
    #[error("{}: journal mode is {mode:?}, WAL is required", path.display())]
    JournalMode {
        /// The dataset file.
        path: PathBuf,
        /// The mode SQLite reported.
        mode: String,
    },
    /// SQLite failed.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The dataset file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
}

/// An open, keyed dataset file: one connection, or more for reading in
/// parallel ([`DatasetFile::open_readers`]).
pub struct DatasetFile {
    conns: Vec<Connection>,
    path: PathBuf,
}

impl DatasetFile {
    /// Create a new, empty dataset file at `path` (mode 0600), refusing an
    /// existing one.
    pub fn create(path: &Path, key: &DatasetKey) -> Result<Self, DatasetFileError> {
        let conn =
            sqlcipher::create(path, key.sqlcipher_key_bytes()).map_err(|e| open_error(path, e))?;
        Ok(Self {
            conns: vec![conn],
            path: path.to_owned(),
        })
    }

    /// Open an existing dataset file. A wrong key fails here with
    /// [`DatasetFileError::WrongKey`].
    pub fn open(path: &Path, key: &DatasetKey) -> Result<Self, DatasetFileError> {
        Self::open_readers(path, key, 1)
    }

    /// Open an existing dataset file on `readers` connections (at least
    /// one), for an extract that reads it on as many threads.
    pub fn open_readers(
        path: &Path,
        key: &DatasetKey,
        readers: usize,
    ) -> Result<Self, DatasetFileError> {
        if !path.is_file() {
            return Err(DatasetFileError::Io {
                path: path.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let conns = (0..readers.max(1))
            .map(|_| sqlcipher::open(path, key.sqlcipher_key_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| open_error(path, e))?;
        Ok(Self {
            conns,
            path: path.to_owned(),
        })
    }

    /// The file this dataset lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyed connection, for reading rows.
    pub fn connection(&self) -> &Connection {
        &self.conns[0]
    }

    /// The keyed connection, for imports (transactions need `&mut`).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conns[0]
    }

    /// Every open connection, for readers on several threads.
    pub fn connections_mut(&mut self) -> &mut [Connection] {
        &mut self.conns
    }

    /// Move the WAL's contents into the main file and truncate the WAL.
    pub fn checkpoint(&self) -> Result<(), DatasetFileError> {
        self.connection()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|source| DatasetFileError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }
}

fn open_error(path: &Path, e: KeyedOpenError) -> DatasetFileError {
    let path = path.to_owned();
    match e {
        KeyedOpenError::Exists => DatasetFileError::Exists { path },
        KeyedOpenError::Io(source) => DatasetFileError::Io { path, source },
        KeyedOpenError::WrongKey => DatasetFileError::WrongKey { path },
        KeyedOpenError::JournalMode(mode) => DatasetFileError::JournalMode { path, mode },
        KeyedOpenError::Sqlite(source) => DatasetFileError::Sqlite { path, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DatasetKey {
        DatasetKey::generate().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn create_write_reopen_and_wrong_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("ds1.db");
        let k = key();
        {
            let mut f = DatasetFile::create(&path, &k).unwrap_or_else(|e| panic!("{e}"));
            let tx = f
                .connection_mut()
                .transaction()
                .unwrap_or_else(|e| panic!("{e}"));
            tx.execute_batch("CREATE TABLE rows(v TEXT); INSERT INTO rows VALUES ('x');")
                .unwrap_or_else(|e| panic!("{e}"));
            tx.commit().unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(matches!(
            DatasetFile::create(&path, &k),
            Err(DatasetFileError::Exists { .. })
        ));
        let f = DatasetFile::open(&path, &k).unwrap_or_else(|e| panic!("{e}"));
        let n: i64 = f
            .connection()
            .query_row("SELECT count(*) FROM rows", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
        drop(f);
        match DatasetFile::open(&path, &key()) {
            Err(DatasetFileError::WrongKey { path: p }) => assert_eq!(p, path),
            Err(e) => panic!("expected WrongKey, got {e}"),
            Ok(_) => panic!("opened with the wrong key"),
        }
        assert!(matches!(
            DatasetFile::open(&dir.path().join("missing.db"), &k),
            Err(DatasetFileError::Io { .. })
        ));
    }

    #[test]
    fn file_mode_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("ds.db");
        let _f = DatasetFile::create(&path, &key()).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
