//! The catalog's key epoch (see [`CatalogRoot`]): which key opens
//! `catalog.db` now, and moving the catalog to a fresh key after a
//! cryptographic erase.
//!
//! `catalog.epoch` (32 random bytes, mode 0600) salts the catalog key. A
//! rotation writes the new epoch to `catalog.epoch.new`, re-encrypts every
//! page of the catalog in place under the new key (`PRAGMA rekey`, one
//! transaction), overwrites the old epoch in place and removes
//! `catalog.epoch.new`. An interrupted rotation is finished or undone by
//! [`open_catalog`]: if the catalog opens with the pending epoch, that
//! epoch is committed; else it is discarded.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::{sql, Catalog, CatalogError};
use crate::datadir::DataDir;
use crate::keys::{CatalogKey, CatalogRoot};

type Epoch = Zeroizing<[u8; 32]>;

fn epoch_path(datadir: &DataDir) -> PathBuf {
    datadir.root().join("catalog.epoch")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CatalogError + '_ {
    move |source| CatalogError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_epoch(path: &Path) -> Result<Option<Epoch>, CatalogError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mut e = Zeroizing::new([0u8; 32]);
            if bytes.len() != 32 {
                return Err(CatalogError::BadMeta {
                    path: path.to_owned(),
                    key: "catalog epoch".into(),
                });
            }
            e.copy_from_slice(&bytes);
            Ok(Some(e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes `epoch` to `path` in place (created 0600 if absent), fsynced.
fn write_epoch(path: &Path, epoch: &[u8; 32]) -> Result<(), CatalogError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(epoch).map_err(io(path))?;
    f.set_len(32).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn fresh_epoch(path: &Path) -> Result<Epoch, CatalogError> {
    let mut e = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut e[..])
        .map_err(|_| io(path)(std::io::Error::other("random number generator failed")))?;
    Ok(e)
}

fn sync_dir(dir: &Path) -> Result<(), CatalogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Creates a new catalog in `datadir` under a fresh epoch.
pub fn create_catalog(datadir: &DataDir, root: &CatalogRoot) -> Result<Catalog, CatalogError> {
    let path = epoch_path(datadir);
    let epoch = fresh_epoch(&path)?;
    write_epoch(&path, &epoch)?;
    Catalog::create(&datadir.catalog_path(), &root.key(Some(&epoch)))
}

/// The catalog keys derivable from `root` and `datadir` now: the
/// epoch-less key and, if there is one, the current epoch's key.
pub fn derivable_keys(
    datadir: &DataDir,
    root: &CatalogRoot,
) -> Result<Vec<CatalogKey>, CatalogError> {
    let mut keys = vec![root.key(None)];
    if let Some(epoch) = read_epoch(&epoch_path(datadir))? {
        keys.push(root.key(Some(&epoch)));
    }
    Ok(keys)
}

/// Opens `datadir`'s catalog with the key of its current epoch (the
/// epoch-less key when it has none), finishing an interrupted rotation.
pub fn open_catalog(datadir: &DataDir, root: &CatalogRoot) -> Result<Catalog, CatalogError> {
    let path = epoch_path(datadir);
    let pending_path = with_suffix(&path, ".new");
    if let Some(pending) = read_epoch(&pending_path)? {
        if let Ok(c) = Catalog::open(&datadir.catalog_path(), &root.key(Some(&pending))) {
            write_epoch(&path, &pending)?;
            std::fs::remove_file(&pending_path).map_err(io(&pending_path))?;
            return Ok(c);
        }
        std::fs::remove_file(&pending_path).map_err(io(&pending_path))?;
    }
    let epoch = read_epoch(&path)?;
    Catalog::open(&datadir.catalog_path(), &root.key(epoch.as_deref()))
}

impl Catalog {
    /// Moves the catalog to a fresh epoch (see the module documentation):
    /// afterwards no copy of the old file opens with a key derivable from
    /// `root` and the files in `datadir`.
    pub fn rotate_key(
        &mut self,
        datadir: &DataDir,
        root: &CatalogRoot,
    ) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let epoch_file = epoch_path(datadir);
        let pending_path = with_suffix(&epoch_file, ".new");
        let epoch = fresh_epoch(&epoch_file)?;
        write_epoch(&pending_path, &epoch)?;
        let key = root.key(Some(&epoch));
        let rekeyed = self.rekey(&key);
        if let Err(e) = rekeyed {
            let _ = std::fs::remove_file(&pending_path);
            return Err(e);
        }
        write_epoch(&epoch_file, &epoch)?;
        std::fs::remove_file(&pending_path).map_err(io(&pending_path))?;
        sync_dir(datadir.root())?;
        *self = Catalog::open(&path, &key)?;
        Ok(())
    }

    /// `PRAGMA rekey` (outside WAL mode, which SQLCipher requires): every
    /// page is rewritten in place under `key`, in one transaction.
    fn rekey(&mut self, key: &CatalogKey) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let hex = Zeroizing::new(hex::encode(key.sqlcipher_key_bytes()));
        let pragma = Zeroizing::new(format!("PRAGMA rekey = \"x'{}'\";", hex.as_str()));
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(sql(&path))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(sql(&path))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(CatalogError::JournalMode { path, mode });
        }
        self.conn.execute_batch(&pragma).map_err(sql(&path))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql(&path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CatalogError::JournalMode { path, mode });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    #[test]
    fn rotation_leaves_old_copies_unopenable_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let datadir = DataDir::create(&dir.path().join("data")).unwrap();
        let master = MasterKey::generate().unwrap();
        let root = master.catalog_root();
        let mut cat = create_catalog(&datadir, &root).unwrap();
        cat.put_meta("note", "before").unwrap();
        let id = cat.appliance_id().unwrap();
        let copy = dir.path().join("copy.db");
        std::fs::copy(datadir.catalog_path(), &copy).unwrap();
        let old_epoch = std::fs::read(epoch_path(&datadir)).unwrap();

        cat.rotate_key(&datadir, &root).unwrap();
        assert_eq!(cat.appliance_id().unwrap(), id);
        cat.put_meta("note", "after").unwrap();
        drop(cat);
        let cat = open_catalog(&datadir, &root).unwrap();
        assert_eq!(cat.meta("note").unwrap().as_deref(), Some("after"));
        assert_ne!(std::fs::read(epoch_path(&datadir)).unwrap(), old_epoch);
        let current = read_epoch(&epoch_path(&datadir)).unwrap().unwrap();
        for key in [
            root.key(None),
            root.key(Some(&current)),
            master.catalog_key(),
        ] {
            assert!(matches!(
                Catalog::open(&copy, &key),
                Err(CatalogError::WrongKey { .. })
            ));
        }
        let names: Vec<_> = std::fs::read_dir(datadir.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".new") || n.ends_with(".rekey")),
            "{names:?}"
        );
    }

    #[test]
    fn an_interrupted_rotation_is_finished_or_undone() {
        let dir = tempfile::tempdir().unwrap();
        let datadir = DataDir::create(&dir.path().join("data")).unwrap();
        let root = MasterKey::generate().unwrap().catalog_root();
        drop(create_catalog(&datadir, &root).unwrap());
        let pending = with_suffix(&epoch_path(&datadir), ".new");
        std::fs::write(&pending, [7u8; 32]).unwrap();
        let cat = open_catalog(&datadir, &root).unwrap();
        assert!(
            !pending.exists(),
            "a pending epoch that does not open is discarded"
        );
        drop(cat);
        // Legacy catalogs (no epoch file) open with the epoch-less key.
        let legacy = DataDir::create(&dir.path().join("legacy")).unwrap();
        drop(Catalog::create(&legacy.catalog_path(), &root.key(None)).unwrap());
        assert!(open_catalog(&legacy, &root).is_ok());
    }
}
