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

/// Version 5: the exit procedure of a zone (`exiting` until its zone-wide
/// destruction executes, then `exited`), the security-monitoring alerts
/// (evidence as ledger indexes), and the row count and content digest an
/// import records, so a destruction need not re-read the rows.
const V5: &str = "
CREATE TABLE zone_exits (
    zone_id        TEXT PRIMARY KEY NOT NULL REFERENCES zones(id) ON DELETE RESTRICT,
    state          TEXT NOT NULL CHECK (state IN ('exiting', 'exited')),
    cause          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    initiated_by   TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    destruction_id TEXT NOT NULL,
    revoked_grants TEXT NOT NULL,
    certificate_id TEXT,
    finished_at    TEXT
) STRICT;

CREATE TABLE alerts (
    id           TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    org          TEXT NOT NULL,
    summary      TEXT NOT NULL,
    evidence     TEXT NOT NULL,
    ledger_index INTEGER NOT NULL CHECK (ledger_index >= 0),
    raised_at    TEXT NOT NULL
) STRICT;

CREATE INDEX alerts_by_kind ON alerts(kind, subject);

ALTER TABLE datasets ADD COLUMN content_sha256 TEXT;
";

/// Version 6: government data-sharing applications and data-use filings
/// (each its typed record as JSON, with the columns the catalog queries),
/// and the partner permission flags besides data access.
const V6: &str = "
CREATE TABLE share_applications (
    id       TEXT PRIMARY KEY NOT NULL,
    zone_id  TEXT NOT NULL REFERENCES zones(id) ON DELETE RESTRICT,
    provider TEXT NOT NULL,
    state    TEXT NOT NULL,
    record   TEXT NOT NULL,
    filed_at TEXT NOT NULL
) STRICT;

CREATE TABLE filings (
    id       TEXT PRIMARY KEY NOT NULL,
    zone_id  TEXT NOT NULL REFERENCES zones(id) ON DELETE RESTRICT,
    state    TEXT NOT NULL,
    record   TEXT NOT NULL,
    filed_at TEXT NOT NULL
) STRICT;

ALTER TABLE partners ADD COLUMN product_authorization INTEGER NOT NULL DEFAULT 0
    CHECK (product_authorization IN (0, 1));
ALTER TABLE partners ADD COLUMN scenario_authorization INTEGER NOT NULL DEFAULT 0
    CHECK (scenario_authorization IN (0, 1));
ALTER TABLE partners ADD COLUMN ownership_control INTEGER NOT NULL DEFAULT 0
    CHECK (ownership_control IN (0, 1));
";

/// Version 7: quality tickets, feedback data with the departments'
/// applications, operator assessments and terminated authorizations (each
/// its typed record as JSON, with the columns the catalog queries).
const V7: &str = "
CREATE TABLE quality_tickets (
    id        TEXT PRIMARY KEY NOT NULL,
    dataset   TEXT NOT NULL REFERENCES datasets(id) ON DELETE RESTRICT,
    zone_id   TEXT NOT NULL,
    state     TEXT NOT NULL,
    record    TEXT NOT NULL,
    opened_at TEXT NOT NULL
) STRICT;

CREATE TABLE feedback (
    id           TEXT PRIMARY KEY NOT NULL,
    dataset      TEXT NOT NULL REFERENCES datasets(id) ON DELETE RESTRICT,
    zone_id      TEXT NOT NULL,
    state        TEXT NOT NULL,
    record       TEXT NOT NULL,
    submitted_at TEXT NOT NULL
) STRICT;

CREATE TABLE feedback_applications (
    id          TEXT PRIMARY KEY NOT NULL,
    feedback_id TEXT NOT NULL REFERENCES feedback(id) ON DELETE RESTRICT,
    org         TEXT NOT NULL,
    state       TEXT NOT NULL,
    record      TEXT NOT NULL
) STRICT;

CREATE TABLE assessments (
    id          TEXT PRIMARY KEY NOT NULL,
    operator    TEXT NOT NULL,
    rating      TEXT NOT NULL,
    record      TEXT NOT NULL,
    recorded_at TEXT NOT NULL
) STRICT;

CREATE INDEX assessments_by_operator ON assessments(operator);

CREATE TABLE terminations (
    operator   TEXT PRIMARY KEY NOT NULL,
    assessment TEXT NOT NULL REFERENCES assessments(id) ON DELETE RESTRICT,
    record     TEXT NOT NULL
) STRICT;
";

/// Version 8: the token sketch of each extract, for leak tracing (the
/// pseudonym tokens it released, level-sampled, see `crate::trace`), and
/// the operator's desensitization policies, numbered 2, 3, … (version 1 is
/// the default shipped in the binary), each with the SHA-256 of its TOML.
const V8: &str = "
CREATE TABLE extract_sketches (
    extract_id TEXT PRIMARY KEY NOT NULL REFERENCES extracts(id) ON DELETE RESTRICT,
    sketch     BLOB NOT NULL
) STRICT;

CREATE TABLE policies (
    version    INTEGER PRIMARY KEY NOT NULL CHECK (version >= 2),
    toml       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
";

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8];

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
