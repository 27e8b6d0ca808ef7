//! Executing a destruction: cryptographic erase per NIST SP 800-88.
//!
//! For each dataset, in order: take its row count and content digest (as
//! recorded at import: datasets are written once; computed now only for
//! datasets imported before digests were recorded) and copy the head of
//! its file aside (the first [`PROBE_LEN`] bytes: the SQLCipher header and
//! schema pages, which only the dataset's key decrypts; opened once with
//! that key, to show the copy is a working probe); drop its key
//! (zeroized). Copy the catalog aside too. Delete the wrapped keys from the
//! catalog in one transaction, vacuum it and truncate its WAL; overwrite
//! the head of each dataset file and its SQLite sidecars with zeros, fsync,
//! unlink (the unlinked file's blocks are freed on a background thread),
//! fsync the directory; move the catalog to a fresh key
//! epoch ([`Catalog::rotate_key`]). Then verify: the catalog re-read holds
//! no wrapped key for the object, no file of the scope exists, the saved
//! dataset heads open with none of the dataset keys the appliance still
//! holds, and the saved catalog with none of the catalog keys it can still
//! derive; then the copies are shredded too.
//!
//! The key deletion is the erase; the overwrite is defence in depth. Any
//! backup of the encrypted files is unreadable because no copy of their
//! keys remains, and a backup of the catalog (which held the wrapped keys)
//! no longer opens. Nothing here reads every row or writes every byte, so
//! the time taken does not grow with the dataset's size.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::certificate::{
    DestructionCertificate, ErasedDataset, Scope, Verification, METHOD, STANDARD,
};
use super::destruction::{Destruction, DestructionObject};
use crate::catalog::{derivable_keys, sqlcipher, Catalog, CatalogError};
use crate::datadir::DataDir;
use crate::dataset::{now_utc_seconds, rfc3339, Dataset};
use crate::dataset_file::{DatasetFile, DatasetFileError};
use crate::ids::DatasetId;
use crate::keys::{CatalogRoot, DatasetKey};

/// Overwrite buffer size.
const CHUNK: usize = 1 << 20;
/// Bytes of a dataset file copied as the probe, and overwritten before the
/// file is unlinked: the header (with its salt) and the
/// first pages, which hold the schema.
pub const PROBE_LEN: u64 = 1 << 20;
/// What every certificate says about backups.
const BACKUPS: &str = "every copy and backup of the listed files, wherever kept: \
     they are encrypted under the destroyed keys, of which no copy remains";

/// Why an execution failed.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// Reading the dataset before the erase failed.
    #[error("dataset {id}: {source}")]
    Dataset {
        /// The dataset.
        id: DatasetId,
        /// What failed.
        source: DatasetFileError,
    },
    /// Hashing the rows failed.
    #[error("dataset {id}: reading rows: {source}")]
    Rows {
        /// The dataset.
        id: DatasetId,
        /// What failed.
        source: rusqlite::Error,
    },
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Overwriting or unlinking a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> EraseError + '_ {
    move |source| EraseError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What an execution needs: the approved destruction, each dataset to
/// erase with its key, and every other dataset key the appliance holds.
pub struct Execution<'a> {
    /// The approved destruction.
    pub destruction: &'a Destruction,
    /// The appliance id, for the certificate.
    pub appliance_id: &'a str,
    /// The datasets to erase, with their keys (dropped during the erase).
    pub datasets: Vec<(Dataset, DatasetKey)>,
    /// Every dataset key still held afterwards, for the verification.
    pub remaining_keys: Vec<DatasetKey>,
    /// The root of the catalog's keys, to move it to a fresh epoch.
    pub catalog_root: &'a CatalogRoot,
}

/// A dataset's state just before its erase, and a copy of its file.
struct Snapshot {
    erased: ErasedDataset,
    copy: Option<PathBuf>,
    opened_with_own_key: bool,
}

/// Erases every dataset of `ex` and returns the (unsigned) certificate.
pub fn execute(
    catalog: &mut Catalog,
    datadir: &DataDir,
    ex: Execution<'_>,
) -> Result<DestructionCertificate, EraseError> {
    let mut snapshots = Vec::with_capacity(ex.datasets.len());
    let mut ids = Vec::with_capacity(ex.datasets.len());
    for (dataset, key) in ex.datasets {
        let digest = catalog.content_digest(&dataset.id)?;
        snapshots.push(snapshot(datadir, &dataset, key, digest)?);
        ids.push(dataset.id);
    }
    let catalog_copy = copy_catalog(catalog, datadir)?;
    let zone = match &ex.destruction.object {
        DestructionObject::Zone(z) => Some(z),
        DestructionObject::Dataset(_) => None,
    };
    catalog.destroy_keys(&ids, zone)?;
    let mut files = Vec::new();
    for id in &ids {
        files.extend(shred_dataset(datadir, id)?);
    }
    let dir = datadir.datasets_dir();
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    catalog.rotate_key(datadir, ex.catalog_root)?;
    let mut verification = verify(catalog, datadir, &ids, zone, &snapshots, &ex.remaining_keys)?;
    let keys = derivable_keys(datadir, ex.catalog_root)?;
    verification.catalog_rekeyed = true;
    verification.catalog_keys_tried = keys.len() as u64;
    verification.catalog_keys_opened = keys
        .iter()
        .filter(|k| Catalog::open(&catalog_copy, k).is_ok())
        .count() as u64;
    shred_with_sidecars(&catalog_copy)?;
    Ok(certificate(
        ex.destruction,
        ex.appliance_id,
        &ids,
        snapshots,
        files,
        verification,
    ))
}

/// A copy of the catalog (checkpointed first) beside it, for the check
/// that it no longer opens after the erase.
fn copy_catalog(catalog: &mut Catalog, datadir: &DataDir) -> Result<PathBuf, EraseError> {
    catalog.compact()?;
    let copy = datadir.root().join("catalog.erase-probe");
    shred_with_sidecars(&copy)?;
    let from = datadir.catalog_path();
    std::fs::copy(&from, &copy).map_err(io_err(&copy))?;
    Ok(copy)
}

/// Row count, content digest and the head of one dataset's file; drops
/// `key`. `digest` is the content digest recorded at import, if any.
fn snapshot(
    datadir: &DataDir,
    dataset: &Dataset,
    key: DatasetKey,
    digest: Option<String>,
) -> Result<Snapshot, EraseError> {
    let id = &dataset.id;
    let path = datadir.dataset_path(id);
    let grade = dataset.grade.map_or("ungraded", |g| g.as_str()).to_owned();
    if !path.exists() {
        return Ok(Snapshot {
            erased: erased(id, grade, 0, Context::new(&SHA256)),
            copy: None,
            opened_with_own_key: false,
        });
    }
    let file = DatasetFile::open(&path, &key).map_err(|source| EraseError::Dataset {
        id: id.clone(),
        source,
    })?;
    file.checkpoint().map_err(|source| EraseError::Dataset {
        id: id.clone(),
        source,
    })?;
    let (rows, sha256) = match digest {
        Some(d) => (dataset.row_count, d),
        None => {
            let (rows, ctx) =
                content_digest(file.connection()).map_err(|source| EraseError::Rows {
                    id: id.clone(),
                    source,
                })?;
            (rows, hex::encode(ctx.finish()))
        }
    };
    drop(file);
    let copy = probe_path(datadir, id);
    shred_with_sidecars(&copy)?;
    copy_head(&path, &copy)?;
    let opened_with_own_key = opens_with(&copy, std::slice::from_ref(&key)) == 1;
    drop(key);
    Ok(Snapshot {
        erased: ErasedDataset {
            id: id.to_string(),
            grade,
            row_count: rows,
            content_sha256: sha256,
        },
        copy: Some(copy),
        opened_with_own_key,
    })
}

fn erased(id: &DatasetId, grade: String, row_count: u64, ctx: Context) -> ErasedDataset {
    ErasedDataset {
        id: id.to_string(),
        grade,
        row_count,
        content_sha256: hex::encode(ctx.finish()),
    }
}

/// Copies the first [`PROBE_LEN`] bytes of `from` to a new file `to`.
fn copy_head(from: &Path, to: &Path) -> Result<(), EraseError> {
    use std::io::Read as _;
    let mut head = Vec::new();
    File::open(from)
        .and_then(|f| f.take(PROBE_LEN).read_to_end(&mut head))
        .map_err(io_err(from))?;
    std::fs::write(to, &head).map_err(io_err(to))
}

/// SHA-256 over the `rows` table in rowid order. Each value is encoded as a
/// type byte (0 null, 1 integer, 2 real, 3 text, 4 blob) followed by its
/// big-endian 8-byte length and its bytes (integers and reals as their
/// 8-byte big-endian form). A file without a `rows` table has no rows.
pub fn content_digest(conn: &Connection) -> Result<(u64, Context), rusqlite::Error> {
    let mut ctx = Context::new(&SHA256);
    let has_rows: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rows'",
        [],
        |r| r.get(0),
    )?;
    if has_rows == 0 {
        return Ok((0, ctx));
    }
    let mut stmt = conn.prepare("SELECT * FROM rows ORDER BY rowid")?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut count = 0u64;
    let mut encoded = Vec::new();
    while let Some(row) = rows.next()? {
        encoded.clear();
        for i in 0..columns {
            encode_value(&mut encoded, row.get_ref(i)?);
        }
        ctx.update(&encoded);
        count += 1;
    }
    Ok((count, ctx))
}

/// Appends one value's encoding for [`content_digest`] to `out`. The
/// importer digests rows with it as it writes them, so the digest a
/// destruction certifies needs no second read of the file.
pub(crate) fn encode_value(out: &mut Vec<u8>, value: ValueRef<'_>) {
    let (tag, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match value {
        ValueRef::Null => (0, (&[][..]).into()),
        ValueRef::Integer(i) => (1, i.to_be_bytes().to_vec().into()),
        ValueRef::Real(f) => (2, f.to_be_bytes().to_vec().into()),
        ValueRef::Text(t) => (3, t.into()),
        ValueRef::Blob(b) => (4, b.into()),
    };
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// Where the pre-erase copy of a dataset file is kept until verified.
fn probe_path(datadir: &DataDir, id: &DatasetId) -> PathBuf {
    datadir.datasets_dir().join(format!("{id}.erase-probe"))
}

/// How many of `keys` open the file (or file head) at `path`: keyed, its
/// schema page decrypted (no journal mode switch, nothing written; SQLite
/// may add `-wal`/`-shm` sidecars, which are shredded with the probe).
fn opens_with(path: &Path, keys: &[DatasetKey]) -> u64 {
    keys.iter().filter(|key| opens_read_only(path, key)).count() as u64
}

fn opens_read_only(path: &Path, key: &DatasetKey) -> bool {
    use rusqlite::OpenFlags;
    let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) else {
        return false;
    };
    // A head copy is shorter than its header says; SQLite tolerates that
    // only with writable_schema (nothing is written here).
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .is_ok()
        && conn
            .execute_batch(&sqlcipher::key_pragma(key.sqlcipher_key_bytes()))
            .is_ok()
        && conn.execute_batch(sqlcipher::PAGE_FORMAT).is_ok()
        && conn.execute_batch("PRAGMA writable_schema = ON;").is_ok()
        && conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok()
}

/// Shreds `datasets/<id>.db` and its sidecars; returns the files removed,
/// relative to the data directory.
fn shred_dataset(datadir: &DataDir, id: &DatasetId) -> Result<Vec<String>, EraseError> {
    let path = datadir.dataset_path(id);
    let removed = shred_with_sidecars(&path)?;
    Ok(removed
        .iter()
        .map(|p| {
            p.strip_prefix(datadir.root())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect())
}

fn sidecars(path: &Path) -> [PathBuf; 4] {
    let with = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    [with(""), with("-wal"), with("-shm"), with("-journal")]
}

fn shred_with_sidecars(path: &Path) -> Result<Vec<PathBuf>, EraseError> {
    let mut removed = Vec::new();
    for p in sidecars(path) {
        if shred_file(&p)? {
            removed.push(p);
        }
    }
    Ok(removed)
}

/// Overwrites the head of `path` (its first [`PROBE_LEN`] bytes: header,
/// salt, schema) with zeros, fsyncs and unlinks it; `false` if absent.
/// Freeing the rest of its blocks (ciphertext under a key that no longer
/// exists) takes time that grows with the file, so a background thread
/// truncates the unlinked file and closes it; the erase does not wait.
fn shred_file(path: &Path) -> Result<bool, EraseError> {
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path)(e)),
    };
    let len = file.metadata().map_err(io_err(path))?.len().min(PROBE_LEN);
    let zeros = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        file.write_all(&zeros[..n]).map_err(io_err(path))?;
        left -= n as u64;
    }
    file.sync_all().map_err(io_err(path))?;
    std::fs::remove_file(path).map_err(io_err(path))?;
    release_blocks(file);
    Ok(true)
}

/// Truncates an unlinked file and closes it on a background thread, so
/// that its blocks are freed without holding up the caller. If the thread
/// cannot start, the closure and the file are dropped here, which frees
/// the blocks at once.
fn release_blocks(file: File) {
    let _ = std::thread::Builder::new()
        .name("erase-release".into())
        .spawn(move || {
            // The path is gone and the key destroyed; a failure here only
            // leaves the space to be reclaimed when the descriptor closes.
            let _ = file.set_len(0);
        });
}

fn verify(
    catalog: &Catalog,
    datadir: &DataDir,
    ids: &[DatasetId],
    zone: Option<&crate::ids::ZoneId>,
    snapshots: &[Snapshot],
    remaining: &[DatasetKey],
) -> Result<Verification, EraseError> {
    let mut keys_absent = true;
    for id in ids {
        keys_absent &= !catalog.holds_dataset_key(id)?;
    }
    if let Some(z) = zone {
        keys_absent &= !catalog.holds_zone_key(z)?;
    }
    let files_absent = ids.iter().all(|id| {
        sidecars(&datadir.dataset_path(id))
            .iter()
            .all(|p| !p.exists())
    });
    let mut opened = 0;
    let mut tried = 0;
    for copy in snapshots.iter().filter_map(|s| s.copy.as_deref()) {
        opened += opens_with(copy, remaining);
        tried += remaining.len() as u64;
        shred_with_sidecars(copy)?;
    }
    Ok(Verification {
        wrapped_keys_absent: keys_absent,
        files_absent,
        copy_opened_before: snapshots.iter().all(|s| s.opened_with_own_key),
        remaining_keys_tried: tried,
        remaining_keys_opened: opened,
        catalog_rekeyed: false,
        catalog_keys_tried: 0,
        catalog_keys_opened: 0,
    })
}

fn certificate(
    d: &Destruction,
    appliance_id: &str,
    ids: &[DatasetId],
    snapshots: Vec<Snapshot>,
    files: Vec<String>,
    verification: Verification,
) -> DestructionCertificate {
    let mut keys: Vec<String> = ids.iter().map(|id| format!("dataset-key:{id}")).collect();
    if let DestructionObject::Zone(z) = &d.object {
        keys.push(format!("zone-key:{z}"));
    }
    let datasets: Vec<ErasedDataset> = snapshots.into_iter().map(|s| s.erased).collect();
    DestructionCertificate {
        certificate_id: Destruction::certificate_id_for(&d.id),
        destruction_id: d.id.clone(),
        appliance_id: appliance_id.to_owned(),
        object: d.object.to_string(),
        zone: d.zone.to_string(),
        grade: highest_grade(&datasets),
        basis: d.basis.clone(),
        reason: d.reason.clone(),
        method: METHOD.to_owned(),
        standard: STANDARD.to_owned(),
        scope: Scope {
            keys,
            files,
            backups: BACKUPS.to_owned(),
        },
        datasets,
        requested_by: d.requested_by.clone(),
        requested_at: rfc3339(d.requested_at),
        approved_by: d.decided_by.clone().unwrap_or_default(),
        approved_at: d.decided_at.map(rfc3339).unwrap_or_default(),
        executed_at: rfc3339(now_utc_seconds()),
        verification,
    }
}

fn highest_grade(datasets: &[ErasedDataset]) -> String {
    datasets
        .iter()
        .filter_map(|d| d.grade.parse::<crate::schema::Grade>().ok())
        .max()
        .map_or_else(|| "ungraded".to_owned(), |g| g.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{DatasetSource, DatasetSpec, Retention};
    use crate::keys::{MasterKey, ZoneKey};
    use crate::zone::{Zone, ZoneKind};

    struct Setup {
        _dir: tempfile::TempDir,
        datadir: DataDir,
        cat: Catalog,
        zone_key: ZoneKey,
        root: CatalogRoot,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let datadir = DataDir::create(&dir.path().join("data")).unwrap();
        let master = MasterKey::generate().unwrap();
        let root = master.catalog_root();
        let mut cat = crate::catalog::create_catalog(&datadir, &root).unwrap();
        let zone = Zone::new(
            "z".parse().unwrap(),
            "n".into(),
            ZoneKind::Sectoral,
            "d".into(),
            "reg".into(),
        );
        let zone_key = ZoneKey::generate().unwrap();
        cat.create_zone(&zone, &zone_key.wrap(&master, &zone.id).unwrap())
            .unwrap();
        Setup {
            _dir: dir,
            datadir,
            cat,
            zone_key,
            root,
        }
    }

    impl Setup {
        /// A dataset with `rows` rows in its file; its wrapped key bytes.
        fn dataset(&mut self, id: &str, rows: u32) -> (Dataset, Vec<u8>) {
            let spec = DatasetSpec {
                title: "t".into(),
                provider: "p".into(),
                source: DatasetSource::OperatorOwn,
                application: None,
                retention: "30d".parse::<Retention>().unwrap(),
                quasi_identifiers: vec![],
            };
            let ds = Dataset::new(id.parse().unwrap(), "z".parse().unwrap(), spec).unwrap();
            let key = DatasetKey::generate().unwrap();
            let wrapped = key.wrap(&self.zone_key, &ds.id).unwrap();
            self.cat.create_dataset(&ds, &wrapped).unwrap();
            let file = DatasetFile::create(&self.datadir.dataset_path(&ds.id), &key).unwrap();
            let conn = file.connection();
            conn.execute_batch("CREATE TABLE rows (name TEXT, amount INTEGER)")
                .unwrap();
            for i in 0..rows {
                conn.execute(
                    "INSERT INTO rows VALUES (?1, ?2)",
                    rusqlite::params![format!("n{i}"), i],
                )
                .unwrap();
            }
            (ds, wrapped.as_bytes().to_vec())
        }

        fn key(&self, ds: &Dataset) -> DatasetKey {
            let wrapped = self.cat.dataset_wrapped_key(&ds.id).unwrap();
            DatasetKey::unwrap(&wrapped, &self.zone_key, &ds.id).unwrap()
        }
    }

    #[test]
    fn erase_leaves_no_key_no_file_and_the_copy_unreadable() {
        let mut s = setup();
        let (gone, wrapped_bytes) = s.dataset("gone", 25);
        let (kept, _) = s.dataset("kept", 3);
        let path = s.datadir.dataset_path(&gone.id);
        let copy = s.datadir.root().join("backup-of-gone.db");
        std::fs::copy(&path, &copy).unwrap();
        let mut d = Destruction::request(
            "dx-1".into(),
            DestructionObject::Dataset(gone.id.clone()),
            gone.zone.clone(),
            "retention",
            "r",
            "op",
        )
        .unwrap();
        d.decide(true, "reg").unwrap();
        let ex = Execution {
            destruction: &d,
            appliance_id: "a",
            datasets: vec![(gone.clone(), s.key(&gone))],
            remaining_keys: vec![s.key(&kept)],
            catalog_root: &s.root,
        };
        let catalog_copy = s.datadir.root().join("backup-of-catalog.db");
        s.cat.compact().unwrap();
        std::fs::copy(s.datadir.catalog_path(), &catalog_copy).unwrap();
        let cert = execute(&mut s.cat, &s.datadir, ex).unwrap();
        assert!(cert.verified(), "{cert:?}");
        assert!(cert.verification.copy_opened_before);
        assert!(cert.verification.catalog_rekeyed);
        assert_eq!(
            (
                cert.verification.catalog_keys_tried,
                cert.verification.catalog_keys_opened
            ),
            (2, 0)
        );
        for key in derivable_keys(&s.datadir, &s.root).unwrap() {
            assert!(Catalog::open(&catalog_copy, &key).is_err());
        }
        std::fs::remove_file(&catalog_copy).unwrap();
        assert_eq!(
            (
                cert.datasets[0].row_count,
                cert.verification.remaining_keys_tried
            ),
            (25, 1)
        );
        assert!(!path.exists());
        assert!(!s.cat.holds_dataset_key(&gone.id).unwrap());
        assert!(s.cat.dataset_wrapped_key(&gone.id).is_err());
        assert_eq!(
            s.cat.dataset(&gone.id).unwrap().unwrap().state,
            crate::dataset::DatasetState::Destroyed
        );
        // The backup opens with no key still held, and no byte of the old
        // wrapped key remains in the data directory.
        assert!(DatasetFile::open(&copy, &s.key(&kept)).is_err());
        std::fs::remove_file(&copy).unwrap();
        assert!(!dir_contains(s.datadir.root(), &wrapped_bytes));
        assert!(DatasetFile::open(&s.datadir.dataset_path(&kept.id), &s.key(&kept)).is_ok());
    }

    #[test]
    fn a_file_larger_than_the_probe_and_a_recorded_digest() {
        let mut s = setup();
        let (big, _) = s.dataset("big", 0);
        let key = s.key(&big);
        {
            let file = DatasetFile::open(&s.datadir.dataset_path(&big.id), &key).unwrap();
            let conn = file.connection();
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
                 INSERT INTO rows SELECT printf('%0500d', i), i FROM n",
                [],
            )
            .unwrap();
            file.checkpoint().unwrap();
        }
        let path = s.datadir.dataset_path(&big.id);
        assert!(std::fs::metadata(&path).unwrap().len() > PROBE_LEN);
        s.cat
            .set_content_digest(&big.id, "recorded-at-import")
            .unwrap();
        let mut d = Destruction::request(
            "dx-2".into(),
            DestructionObject::Dataset(big.id.clone()),
            big.zone.clone(),
            "retention",
            "r",
            "op",
        )
        .unwrap();
        d.decide(true, "reg").unwrap();
        let ex = Execution {
            destruction: &d,
            appliance_id: "a",
            datasets: vec![(big.clone(), key)],
            remaining_keys: vec![],
            catalog_root: &s.root,
        };
        let cert = execute(&mut s.cat, &s.datadir, ex).unwrap();
        assert!(cert.verified(), "{cert:?}");
        assert!(
            cert.verification.copy_opened_before,
            "the head alone opens with its key"
        );
        assert_eq!(cert.datasets[0].content_sha256, "recorded-at-import");
        assert!(!path.exists());
        let left: Vec<_> = std::fs::read_dir(s.datadir.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!left.iter().any(|n| n.contains("probe")), "{left:?}");
    }

    fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
        std::fs::read_dir(dir).unwrap().any(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                return dir_contains(&p, needle);
            }
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    }

    #[test]
    fn digest_depends_on_order_and_values() {
        let conn = Connection::open_in_memory().unwrap();
        let (n, ctx) = content_digest(&conn).unwrap();
        assert_eq!(
            (n, hex::encode(ctx.finish())),
            (0, hex::encode(ring::digest::digest(&SHA256, b"")))
        );
        conn.execute_batch("CREATE TABLE rows (a); INSERT INTO rows VALUES ('x'), (1), (NULL);")
            .unwrap();
        let (n, first) = content_digest(&conn).unwrap();
        conn.execute_batch("UPDATE rows SET a = 2 WHERE a = 1")
            .unwrap();
        let (_, second) = content_digest(&conn).unwrap();
        assert_eq!(n, 3);
        assert_ne!(first.finish().as_ref(), second.finish().as_ref());
    }
}
