//! The catalog: `catalog.db`, a SQLCipher database keyed from the master
//! key, holding zones, datasets and their wrapped keys, and settings.
//!
//! The schema is versioned in `meta.schema_version` and only moves forward:
//! opening a catalog applies the migrations it lacks, in one transaction,
//! and refuses a catalog written by a newer build.

mod alerts;
mod destructions;
mod epoch;
mod exits;
mod grants;
mod records;
mod schema;
mod share_filings;
pub(crate) mod sqlcipher;
mod stored;
mod traces;
mod workflows;

use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::ids::{DatasetId, ZoneId};
use crate::keys::{CatalogKey, WrappedKey};
use sqlcipher::KeyedOpenError;

pub use alerts::StoredAlert;
pub use epoch::{create_catalog, derivable_keys, open_catalog};
pub use schema::SCHEMA_VERSION;
pub use traces::{StoredPolicy, TraceRecord};

/// Meta keys the catalog manages itself; [`Catalog::put_meta`] refuses them.
pub const RESERVED_META_KEYS: &[&str] = &["schema_version", "appliance_id", "created_at"];

/// Errors of the catalog. Variants name the file or the row; none carries
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// `create` found a file at the path.
    #[error("{}: catalog already exists", path.display())]
    Exists {
        /// The catalog path.
        path: PathBuf,
    },
    /// The key does not open the file (or it is not a catalog at all).
    #[error("{}: wrong catalog key, or not a catalog database", path.display())]
    WrongKey {
        /// The catalog path.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The catalog path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The catalog path.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// SQLite would not switch to WAL mode.
    #[error("{}: journal mode is {mode:?}, WAL is required", path.display())]
    JournalMode {
        /// The catalog path.
        path: PathBuf,
        /// The mode SQLite reported.
        mode: String,
    },
    /// The catalog was written by a newer build.
    #[error("{}: schema version {found} is newer than this build supports ({supported})", path.display())]
    SchemaTooNew {
        /// The catalog path.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Highest version this build knows.
        supported: u32,
    },
    /// A managed meta value is missing or malformed.
    #[error("{}: meta value {key:?} is missing or malformed", path.display())]
    BadMeta {
        /// The catalog path.
        path: PathBuf,
        /// The meta key.
        key: String,
    },
    /// `put_meta` was asked to overwrite a value the catalog manages.
    #[error("meta key {key:?} is managed by the catalog and cannot be set")]
    ReservedMetaKey {
        /// The refused key.
        key: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
    /// A zone with this id exists.
    #[error("zone {id} already exists")]
    ZoneExists {
        /// The zone id.
        id: ZoneId,
    },
    /// A dataset with this id exists.
    #[error("dataset {id} already exists")]
    DatasetExists {
        /// The dataset id.
        id: DatasetId,
    },
    /// No zone with this id.
    #[error("zone {id} not found")]
    UnknownZone {
        /// The zone id.
        id: ZoneId,
    },
    /// No dataset with this id.
    #[error("dataset {id} not found")]
    UnknownDataset {
        /// The dataset id.
        id: DatasetId,
    },
    /// A row count beyond SQLite's signed 64-bit integers.
    #[error("dataset {id}: row count {row_count} is too large to store")]
    RowCountTooLarge {
        /// The dataset id.
        id: DatasetId,
        /// The rejected count.
        row_count: u64,
    },
    /// A column name that the dataset does not have.
    #[error("dataset {dataset} has no column {column:?}")]
    UnknownColumn {
        /// The dataset id.
        dataset: DatasetId,
        /// The name that matched no column.
        column: String,
    },
    /// The dataset's lifecycle state does not allow the operation.
    #[error("dataset {id} is {state}; cannot {action}")]
    InvalidState {
        /// The dataset id.
        id: DatasetId,
        /// Its current state.
        state: crate::dataset::DatasetState,
        /// What was refused.
        action: &'static str,
    },
    /// A stored value does not parse (written by another tool, or damaged).
    #[error("the stored {field} of {owner} is malformed: {problem}")]
    Corrupt {
        /// `zone:<id>` or `dataset:<id>`.
        owner: String,
        /// The column.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A stored wrapped key has the wrong version or length.
    #[error("the stored wrapped key of {owner} is malformed")]
    MalformedWrappedKey {
        /// `zone:<id>` or `dataset:<id>`.
        owner: String,
    },
}

/// A zone to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewZone<'a> {
    /// The zone's id.
    pub id: &'a ZoneId,
    /// Display name.
    pub name: &'a str,
    /// Kind of zone.
    pub kind: &'a str,
    /// The data domain (sector) the zone belongs to.
    pub domain: &'a str,
    /// The supervising authority.
    pub supervisor: &'a str,
    /// The zone key wrapped under the master key for this zone id.
    pub wrapped_key: &'a WrappedKey,
}

/// A dataset to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewDataset<'a> {
    /// The dataset's id.
    pub id: &'a DatasetId,
    /// The zone it belongs to (must exist).
    pub zone_id: &'a ZoneId,
    /// Title.
    pub title: &'a str,
    /// The providing organization.
    pub provider: &'a str,
    /// Where the data came from.
    pub source: &'a str,
    /// Lifecycle state.
    pub state: &'a str,
    /// Data grade.
    pub grade: &'a str,
    /// Number of rows.
    pub row_count: u64,
    /// Retention rule.
    pub retention: &'a str,
    /// The dataset key wrapped under its zone key for this dataset id.
    pub wrapped_key: &'a WrappedKey,
}

/// An open catalog.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

impl Catalog {
    /// Create a new catalog at `path` (refusing an existing file), apply the
    /// schema, and record a fresh random appliance id and the creation time.
    pub fn create(path: &Path, key: &CatalogKey) -> Result<Self, CatalogError> {
        let conn =
            sqlcipher::create(path, key.sqlcipher_key_bytes()).map_err(|e| open_error(path, e))?;
        let mut catalog = Catalog {
            conn,
            path: path.to_owned(),
        };
        let appliance_id = random_hex_16()?;
        let now = now_rfc3339();
        let tx = catalog
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(path))?;
        schema::migrate(&tx, path)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('appliance_id', ?1), ('created_at', ?2)",
            params![appliance_id, now],
        )
        .map_err(sql(path))?;
        tx.commit().map_err(sql(path))?;
        Ok(catalog)
    }

    /// Open the catalog at `path`. A wrong key fails here with
    /// [`CatalogError::WrongKey`]; pending migrations are applied.
    pub fn open(path: &Path, key: &CatalogKey) -> Result<Self, CatalogError> {
        if !path.is_file() {
            return Err(CatalogError::Io {
                path: path.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let mut conn =
            sqlcipher::open(path, key.sqlcipher_key_bytes()).map_err(|e| open_error(path, e))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(path))?;
        schema::migrate(&tx, path)?;
        tx.commit().map_err(sql(path))?;
        let catalog = Catalog {
            conn,
            path: path.to_owned(),
        };
        catalog.appliance_id()?;
        Ok(catalog)
    }

    /// The file this catalog lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The appliance's id: 32 lowercase hex digits, fixed at create.
    pub fn appliance_id(&self) -> Result<String, CatalogError> {
        self.meta("appliance_id")?
            .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| CatalogError::BadMeta {
                path: self.path.clone(),
                key: "appliance_id".into(),
            })
    }

    /// A meta value, if set.
    pub fn meta(&self, key: &str) -> Result<Option<String>, CatalogError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path))
    }

    /// Set a meta value (insert or replace). Refuses [`RESERVED_META_KEYS`].
    pub fn put_meta(&mut self, key: &str, value: &str) -> Result<(), CatalogError> {
        if RESERVED_META_KEYS.contains(&key) {
            return Err(CatalogError::ReservedMetaKey { key: key.into() });
        }
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Number of zones.
    pub fn zone_count(&self) -> Result<u64, CatalogError> {
        self.count("SELECT count(*) FROM zones")
    }

    /// Number of datasets.
    pub fn dataset_count(&self) -> Result<u64, CatalogError> {
        self.count("SELECT count(*) FROM datasets")
    }

    fn count(&self, query: &str) -> Result<u64, CatalogError> {
        let n: i64 = self
            .conn
            .query_row(query, [], |r| r.get(0))
            .map_err(sql(&self.path))?;
        // count(*) is never negative.
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Insert a zone. Fails with [`CatalogError::ZoneExists`] on a duplicate id.
    pub fn insert_zone(&mut self, zone: &NewZone<'_>) -> Result<(), CatalogError> {
        let result = self.conn.execute(
            "INSERT INTO zones(id, name, kind, domain, supervisor, wrapped_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                zone.id.as_str(),
                zone.name,
                zone.kind,
                zone.domain,
                zone.supervisor,
                zone.wrapped_key.as_bytes(),
                now_rfc3339(),
            ],
        );
        match result {
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                Err(CatalogError::ZoneExists {
                    id: zone.id.clone(),
                })
            }
            other => other.map(drop).map_err(sql(&self.path)),
        }
    }

    /// Insert a dataset. Its zone must exist ([`CatalogError::UnknownZone`]);
    /// a duplicate id is [`CatalogError::DatasetExists`].
    pub fn insert_dataset(&mut self, ds: &NewDataset<'_>) -> Result<(), CatalogError> {
        let row_count =
            i64::try_from(ds.row_count).map_err(|_| CatalogError::RowCountTooLarge {
                id: ds.id.clone(),
                row_count: ds.row_count,
            })?;
        let result = self.conn.execute(
            "INSERT INTO datasets(id, zone_id, title, provider, source, state, grade,
                                  row_count, retention, wrapped_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                ds.id.as_str(),
                ds.zone_id.as_str(),
                ds.title,
                ds.provider,
                ds.source,
                ds.state,
                ds.grade,
                row_count,
                ds.retention,
                ds.wrapped_key.as_bytes(),
                now_rfc3339(),
            ],
        );
        match result {
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                Err(CatalogError::DatasetExists { id: ds.id.clone() })
            }
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                Err(CatalogError::UnknownZone {
                    id: ds.zone_id.clone(),
                })
            }
            other => other.map(drop).map_err(sql(&self.path)),
        }
    }

    /// The wrapped key of zone `id`.
    pub fn zone_wrapped_key(&self, id: &ZoneId) -> Result<WrappedKey, CatalogError> {
        let blob =
            self.wrapped_key_blob("SELECT wrapped_key FROM zones WHERE id = ?1", id.as_str())?;
        let blob = blob.ok_or_else(|| CatalogError::UnknownZone { id: id.clone() })?;
        WrappedKey::from_bytes(&blob).map_err(|_| CatalogError::MalformedWrappedKey {
            owner: format!("zone:{id}"),
        })
    }

    /// The wrapped key of dataset `id`.
    pub fn dataset_wrapped_key(&self, id: &DatasetId) -> Result<WrappedKey, CatalogError> {
        let blob = self.wrapped_key_blob(
            "SELECT wrapped_key FROM datasets WHERE id = ?1",
            id.as_str(),
        )?;
        let blob = blob.ok_or_else(|| CatalogError::UnknownDataset { id: id.clone() })?;
        WrappedKey::from_bytes(&blob).map_err(|_| CatalogError::MalformedWrappedKey {
            owner: format!("dataset:{id}"),
        })
    }

    fn wrapped_key_blob(&self, query: &str, id: &str) -> Result<Option<Vec<u8>>, CatalogError> {
        self.conn
            .query_row(query, [id], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path))
    }

    /// The raw connection, for tests that tamper with stored rows.
    #[cfg(test)]
    pub(crate) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
    move |source| CatalogError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

fn open_error(path: &Path, e: KeyedOpenError) -> CatalogError {
    let path = path.to_owned();
    match e {
        KeyedOpenError::Exists => CatalogError::Exists { path },
        KeyedOpenError::Io(source) => CatalogError::Io { path, source },
        KeyedOpenError::WrongKey => CatalogError::WrongKey { path },
        KeyedOpenError::JournalMode(mode) => CatalogError::JournalMode { path, mode },
        KeyedOpenError::Sqlite(source) => CatalogError::Sqlite { path, source },
    }
}

fn is_constraint(e: &rusqlite::Error, extended: std::ffi::c_int) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == extended)
}

fn random_hex_16() -> Result<String, CatalogError> {
    let mut id = [0u8; 16];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| CatalogError::Rng)?;
    Ok(hex::encode(id))
}

/// The current time in RFC 3339 (UTC); falls back to Unix seconds for the
/// out-of-range years RFC 3339 cannot express.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Catalogs for unit tests of the modules that build on the catalog.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fixtures {
    use super::Catalog;
    use crate::dataset::{Dataset, DatasetSource, DatasetSpec};
    use crate::keys::{DatasetKey, MasterKey, ZoneKey};
    use crate::zone::{Zone, ZoneKind};

    /// A new catalog under `dir` with zone `z1` (supervisor `reg`) and its
    /// operator-own dataset `d1` from provider `bureau-x`.
    pub(crate) fn zone_and_dataset(dir: &std::path::Path) -> Catalog {
        let master = MasterKey::generate().unwrap();
        let datadir = crate::datadir::DataDir::create(&dir.join("data")).unwrap();
        let mut cat = Catalog::create(&datadir.catalog_path(), &master.catalog_key()).unwrap();
        let zone = Zone::new(
            "z1".parse().unwrap(),
            "n".into(),
            ZoneKind::Sectoral,
            "d".into(),
            "reg".into(),
        );
        let zone_key = ZoneKey::generate().unwrap();
        cat.create_zone(&zone, &zone_key.wrap(&master, &zone.id).unwrap())
            .unwrap();
        let spec = DatasetSpec {
            title: "t".into(),
            provider: "bureau-x".into(),
            source: DatasetSource::OperatorOwn,
            application: None,
            retention: "30d".parse().unwrap(),
            quasi_identifiers: vec![],
        };
        let ds = Dataset::new("d1".parse().unwrap(), zone.id.clone(), spec).unwrap();
        let key = DatasetKey::generate().unwrap();
        cat.create_dataset(&ds, &key.wrap(&zone_key, &ds.id).unwrap())
            .unwrap();
        cat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{DatasetKey, MasterKey, ZoneKey};

    const MARKER: &str = "zv-marker-7f3a1c Ministry of Plaintext";

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn zone_id(s: &str) -> ZoneId {
        ok(s.parse())
    }

    fn dataset_id(s: &str) -> DatasetId {
        ok(s.parse())
    }

    /// A catalog with zone `z1` (name contains [`MARKER`]) and dataset `d1`.
    pub(crate) fn populated(path: &Path, master: &MasterKey) -> Catalog {
        let mut cat = ok(Catalog::create(path, &master.catalog_key()));
        let zone_key = ok(ZoneKey::generate());
        let z1 = zone_id("z1");
        let wrapped_zone = ok(zone_key.wrap(master, &z1));
        ok(cat.insert_zone(&NewZone {
            id: &z1,
            name: MARKER,
            kind: "sector",
            domain: "health",
            supervisor: "regulator-a",
            wrapped_key: &wrapped_zone,
        }));
        let d1 = dataset_id("d1");
        let wrapped_ds = ok(ok(DatasetKey::generate()).wrap(&zone_key, &d1));
        ok(cat.insert_dataset(&NewDataset {
            id: &d1,
            zone_id: &z1,
            title: "t",
            provider: "p",
            source: "s",
            state: "active",
            grade: "general",
            row_count: 42,
            retention: "P5Y",
            wrapped_key: &wrapped_ds,
        }));
        cat
    }

    #[test]
    fn create_insert_reopen_and_wrong_key() {
        let dir = ok(tempfile::tempdir());
        let path = dir.path().join("catalog.db");
        let master = ok(MasterKey::generate());
        let appliance_id = {
            let mut cat = populated(&path, &master);
            ok(cat.put_meta("region", "north"));
            ok(cat.put_meta("region", "south"));
            assert!(matches!(
                cat.put_meta("schema_version", "99"),
                Err(CatalogError::ReservedMetaKey { .. })
            ));
            ok(cat.appliance_id())
        };
        assert_eq!(appliance_id.len(), 32);
        assert!(matches!(
            Catalog::create(&path, &master.catalog_key()),
            Err(CatalogError::Exists { .. })
        ));

        let cat = ok(Catalog::open(&path, &master.catalog_key()));
        assert_eq!(ok(cat.appliance_id()), appliance_id);
        assert_eq!(ok(cat.zone_count()), 1);
        assert_eq!(ok(cat.dataset_count()), 1);
        assert_eq!(ok(cat.meta("region")).as_deref(), Some("south"));
        assert_eq!(ok(cat.meta("absent")), None);
        assert_eq!(
            ok(cat.meta("schema_version")),
            Some(SCHEMA_VERSION.to_string())
        );
        let wrapped = ok(cat.zone_wrapped_key(&zone_id("z1")));
        assert!(ZoneKey::unwrap(&wrapped, &master, &zone_id("z1")).is_ok());
        assert!(cat.dataset_wrapped_key(&dataset_id("d1")).is_ok());
        assert!(matches!(
            cat.zone_wrapped_key(&zone_id("nope")),
            Err(CatalogError::UnknownZone { .. })
        ));
        assert!(matches!(
            cat.dataset_wrapped_key(&dataset_id("nope")),
            Err(CatalogError::UnknownDataset { .. })
        ));
        drop(cat);

        let other = ok(MasterKey::generate());
        match Catalog::open(&path, &other.catalog_key()) {
            Err(CatalogError::WrongKey { path: p }) => assert_eq!(p, path),
            Err(e) => panic!("expected WrongKey, got {e}"),
            Ok(_) => panic!("opened with the wrong key"),
        }
    }

    #[test]
    fn duplicates_and_unknown_zone_are_typed_errors() {
        let dir = ok(tempfile::tempdir());
        let master = ok(MasterKey::generate());
        let mut cat = populated(&dir.path().join("catalog.db"), &master);
        let wrapped = ok(cat.zone_wrapped_key(&zone_id("z1")));
        let z1 = zone_id("z1");
        let zone = NewZone {
            id: &z1,
            name: "again",
            kind: "k",
            domain: "d",
            supervisor: "s",
            wrapped_key: &wrapped,
        };
        assert!(matches!(
            cat.insert_zone(&zone),
            Err(CatalogError::ZoneExists { .. })
        ));
        let (d2, z9) = (dataset_id("d2"), zone_id("z9"));
        let ds = NewDataset {
            id: &d2,
            zone_id: &z9,
            title: "t",
            provider: "p",
            source: "s",
            state: "active",
            grade: "general",
            row_count: 0,
            retention: "r",
            wrapped_key: &wrapped,
        };
        assert!(matches!(
            cat.insert_dataset(&ds),
            Err(CatalogError::UnknownZone { .. })
        ));
        let too_many = NewDataset {
            zone_id: &z1,
            row_count: u64::MAX,
            ..ds
        };
        assert!(matches!(
            cat.insert_dataset(&too_many),
            Err(CatalogError::RowCountTooLarge { .. })
        ));
        let d1 = dataset_id("d1");
        let dup = NewDataset {
            id: &d1,
            zone_id: &z1,
            ..ds
        };
        assert!(matches!(
            cat.insert_dataset(&dup),
            Err(CatalogError::DatasetExists { .. })
        ));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = ok(tempfile::tempdir());
        let path = dir.path().join("catalog.db");
        let master = ok(MasterKey::generate());
        {
            let mut cat = populated(&path, &master);
            ok(cat.connection().execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                [(SCHEMA_VERSION + 1).to_string()],
            ));
        }
        assert!(matches!(
            Catalog::open(&path, &master.catalog_key()),
            Err(CatalogError::SchemaTooNew { .. })
        ));
    }
}
