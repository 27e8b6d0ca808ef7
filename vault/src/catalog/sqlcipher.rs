//! Opening SQLCipher files with a raw 256-bit key; shared by the catalog
//! and the dataset files.
//!
//! The order matters (see FIELD-NOTES, SQLCipher): `PRAGMA key` never fails,
//! so the file is read right after keying and a wrong key surfaces here as
//! `SQLITE_NOTADB`, not at some later query.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use zeroize::Zeroizing;

/// Why a keyed open failed; the caller adds the path.
#[derive(Debug)]
pub(crate) enum KeyedOpenError {
    /// The file exists (on create).
    Exists,
    /// Creating the empty file failed.
    Io(io::Error),
    /// The key does not decrypt the file, or it is not a database.
    WrongKey,
    /// SQLite refused WAL mode and reported this journal mode instead.
    JournalMode(String),
    /// Any other SQLite failure.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for KeyedOpenError {
    fn from(e: rusqlite::Error) -> Self {
        KeyedOpenError::Sqlite(e)
    }
}

/// The page format, set after the key and before the first read of every
/// open: AES-256-CBC pages (SQLCipher 4) authenticated with HMAC-SHA256,
/// not the default HMAC-SHA512. Both are sound; SHA-256 runs on the CPU's
/// SHA extensions and SHA-512 does not, and page authentication is most of
/// the cost of reading a file (see FIELD-NOTES, SQLCipher).
pub(crate) const PAGE_FORMAT: &str = "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;";

/// `PRAGMA key = "x'<64 hex>'";` in a zeroizing string, sized up front so
/// it never reallocates and leaves a copy behind. (SQLite copies the SQL
/// internally; that copy is out of our reach.)
pub(crate) fn key_pragma(key: &[u8; 32]) -> Zeroizing<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut sql = Zeroizing::new(String::with_capacity(96));
    sql.push_str("PRAGMA key = \"x'");
    for &b in key {
        sql.push(char::from(HEX[usize::from(b >> 4)]));
        sql.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    sql.push_str("'\";");
    sql
}

/// Create `path` as a new, empty file with mode 0600, refusing if it exists,
/// then open it as a keyed SQLCipher database.
pub(crate) fn create(path: &Path, key: &[u8; 32]) -> Result<Connection, KeyedOpenError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => KeyedOpenError::Exists,
            _ => KeyedOpenError::Io(e),
        })?;
    open(path, key)
}

/// Open an existing SQLCipher file with a raw key, prove the key by reading
/// `sqlite_master`, then set WAL, `secure_delete`, in-memory temp storage
/// and foreign keys.
pub(crate) fn open(path: &Path, key: &[u8; 32]) -> Result<Connection, KeyedOpenError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    conn.execute_batch(&key_pragma(key))?;
    conn.execute_batch(PAGE_FORMAT)?;
    let probe = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    });
    match probe {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::NotADatabase => {
            return Err(KeyedOpenError::WrongKey)
        }
        Err(e) => return Err(e.into()),
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(KeyedOpenError::JournalMode(mode));
    }
    conn.execute_batch(
        "PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;",
    )?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pragma_is_raw_key_form() {
        let sql = key_pragma(&[0xab; 32]);
        assert_eq!(
            sql.as_str(),
            format!("PRAGMA key = \"x'{}'\";", "ab".repeat(32))
        );
        assert!(sql.capacity() >= sql.len());
    }

    /// The pages are authenticated with HMAC-SHA256: the same key under
    /// SQLCipher's default page format (HMAC-SHA512) does not read them.
    #[test]
    fn pages_use_hmac_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let key = [7u8; 32];
        let conn = create(&path, &key).unwrap();
        conn.execute_batch("CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x');")
            .unwrap();
        drop(conn);
        assert!(open(&path, &key).is_ok());
        let plain = Connection::open(&path).unwrap();
        plain.execute_batch(&key_pragma(&key)).unwrap();
        let read = plain.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        });
        assert!(read.is_err(), "HMAC-SHA512 pages read: {read:?}");
    }
}
