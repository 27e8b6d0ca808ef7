//! The catalog schema and its forward-only migrations.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. Never edit
//! a released migration; append a new one.

use std::path::Path;

use rusqlite::{OptionalExtension, Transaction};

use super::{sql, CatalogError};

/// Version 1: settings, zones and datasets with their wrapped keys.
const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE zones (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    domain      TEXT NOT NULL,
    supervisor  TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE datasets (
    id          TEXT PRIMARY KEY NOT NULL,
    zone_id     TEXT NOT NULL REFERENCES zones(id) ON DELETE RESTRICT,
    title       TEXT NOT NULL,
    provider    TEXT NOT NULL,
    source      TEXT NOT NULL,
    state       TEXT NOT NULL,
    grade       TEXT NOT NULL,
    row_count   INTEGER NOT NULL CHECK (row_count >= 0),
    retention   TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE INDEX datasets_by_zone ON datasets(zone_id);
";

/// Version 2: what a dataset's import and schema confirmation record: the
/// sharing application, the column schemas and quasi-identifiers (JSON),
/// the confirmation flag and the import time. `grade` is `''` until the
/// import grades the dataset.
const V2: &str = "
ALTER TABLE datasets ADD COLUMN application TEXT;
ALTER TABLE datasets ADD COLUMN columns TEXT NOT NULL DEFAULT '[]';
ALTER TABLE datasets ADD COLUMN quasi_identifiers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE datasets ADD COLUMN schema_confirmed INTEGER NOT NULL DEFAULT 0
    CHECK (schema_confirmed IN (0, 1));
ALTER TABLE datasets ADD COLUMN imported_at TEXT;
";

const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

fn current_version(tx: &Transaction<'_>, path: &Path) -> Result<u32, CatalogError> {
    let has_meta: i64 = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )
        .map_err(sql(path))?;
    if has_meta == 0 {
        return Ok(0);
    }
    let value: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path))?;
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CatalogError::BadMeta {
            path: path.to_owned(),
            key: "schema_version".into(),
        })
}

/// Bring the schema up to [`SCHEMA_VERSION`] inside `tx`; refuse a newer one.
pub(super) fn migrate(tx: &Transaction<'_>, path: &Path) -> Result<(), CatalogError> {
    let found = current_version(tx, path)?;
    if found > SCHEMA_VERSION {
        return Err(CatalogError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, step) in (found..).zip(&MIGRATIONS[found as usize..]) {
        tx.execute_batch(step).map_err(sql(path))?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(from + 1).to_string()],
        )
        .map_err(sql(path))?;
    }
    Ok(())
}
