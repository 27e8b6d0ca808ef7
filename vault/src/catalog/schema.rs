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

/// Version 3: partner tiers, grants and the extracts made under them
/// (each with its signed manifest note).
const V3: &str = "
CREATE TABLE partners (
    org         TEXT PRIMARY KEY NOT NULL,
    tier        INTEGER NOT NULL CHECK (tier BETWEEN 1 AND 3),
    data_access INTEGER NOT NULL CHECK (data_access IN (0, 1)),
    updated_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE grants (
    id            TEXT PRIMARY KEY NOT NULL,
    recipient     TEXT NOT NULL,
    dataset       TEXT NOT NULL REFERENCES datasets(id) ON DELETE RESTRICT,
    columns       TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    filing        TEXT,
    filter        TEXT,
    row_limit     INTEGER NOT NULL CHECK (row_limit > 0),
    max_extracts  INTEGER CHECK (max_extracts > 0),
    extracts_used INTEGER NOT NULL DEFAULT 0 CHECK (extracts_used >= 0),
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

CREATE INDEX grants_by_recipient ON grants(recipient);

CREATE TABLE extracts (
    id           TEXT PRIMARY KEY NOT NULL,
    grant_id     TEXT NOT NULL REFERENCES grants(id) ON DELETE RESTRICT,
    recipient    TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    ledger_index INTEGER NOT NULL CHECK (ledger_index >= 0),
    created_at   TEXT NOT NULL
) STRICT;
";

/// Version 4: two-person destruction requests, their approval, and the
/// signed certificate of each executed destruction. A destroyed key is
/// overwritten in place with an empty blob (the column is `NOT NULL`).
const V4: &str = "
CREATE TABLE destructions (
    id             TEXT PRIMARY KEY NOT NULL,
    object_kind    TEXT NOT NULL CHECK (object_kind IN ('dataset', 'zone')),
    object_id      TEXT NOT NULL,
    zone_id        TEXT NOT NULL,
    basis          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    requested_at   TEXT NOT NULL,
    approved_by    TEXT,
    approved_at    TEXT,
    state          TEXT NOT NULL,
    certificate_id TEXT,
    certificate    TEXT,
    ledger_index   INTEGER CHECK (ledger_index >= 0)
) STRICT;

CREATE INDEX destructions_by_object ON destructions(object_kind, object_id);
";

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

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
