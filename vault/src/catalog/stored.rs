//! Stored forms of zone and dataset rows, and their parsing back into
//! domain types. Enums are stored by their stable names, times in RFC 3339,
//! column schemas and quasi-identifiers as JSON; a dataset's grade is `''`
//! until its import.

use rusqlite::Row;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::CatalogError;
use crate::dataset::{rfc3339, Dataset};
use crate::zone::Zone;

/// A stored value that failed to parse, for `owner`'s `field`.
fn corrupt<'a>(owner: &'a str, field: &'static str) -> impl Fn(String) -> CatalogError + 'a {
    move |problem| CatalogError::Corrupt {
        owner: owner.to_owned(),
        field,
        problem,
    }
}

fn parse_time(owner: &str, field: &'static str, s: &str) -> Result<OffsetDateTime, CatalogError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|e| {
            s.parse::<i64>()
                .ok()
                .and_then(|n| OffsetDateTime::from_unix_timestamp(n).ok())
                .ok_or(e)
        })
        .map_err(|e| corrupt(owner, field)(e.to_string()))
}

/// A zone row as stored, before parsing.
pub(super) struct StoredZone([String; 6]);

impl StoredZone {
    pub(super) fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self([
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ]))
    }

    pub(super) fn parse(self) -> Result<Zone, CatalogError> {
        let [id, name, kind, domain, supervisor, created_at] = self.0;
        let owner = format!("zone:{id}");
        let bad = |field| corrupt(&owner, field);
        Ok(Zone {
            kind: kind.parse().map_err(|e| bad("kind")(format!("{e}")))?,
            created_at: parse_time(&owner, "created_at", &created_at)?,
            id: id.parse().map_err(|e| bad("id")(format!("{e}")))?,
            name,
            domain,
            supervisor,
        })
    }
}

/// A dataset row as stored, before parsing (and the stored forms of a
/// [`Dataset`]'s non-text fields, for writing).
pub(super) struct StoredDataset {
    pub(super) id: String,
    pub(super) zone: String,
    text: [String; 4],
    application: Option<String>,
    pub(super) retention: String,
    pub(super) row_count: i64,
    pub(super) grade: String,
    pub(super) columns: String,
    pub(super) quasi_identifiers: String,
    confirmed: bool,
    pub(super) created_at: String,
    pub(super) imported_at: Option<String>,
}

impl StoredDataset {
    pub(super) fn of(ds: &Dataset, path: &std::path::Path) -> Result<Self, CatalogError> {
        let row_count =
            i64::try_from(ds.row_count).map_err(|_| CatalogError::RowCountTooLarge {
                id: ds.id.clone(),
                row_count: ds.row_count,
            })?;
        let owner = format!("dataset:{} ({})", ds.id, path.display());
        Ok(Self {
            id: ds.id.to_string(),
            zone: ds.zone.to_string(),
            text: [
                ds.title.clone(),
                ds.provider.clone(),
                ds.source.to_string(),
                ds.state.to_string(),
            ],
            application: ds.application.clone(),
            retention: ds.retention.to_string(),
            row_count,
            grade: ds.grade.map(|g| g.as_str()).unwrap_or_default().to_owned(),
            columns: to_json(&owner, "columns", &ds.columns)?,
            quasi_identifiers: to_json(&owner, "quasi_identifiers", &ds.quasi_identifiers)?,
            confirmed: ds.schema_confirmed,
            created_at: rfc3339(ds.created_at),
            imported_at: ds.imported_at.map(rfc3339),
        })
    }

    pub(super) fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            zone: r.get(1)?,
            text: [r.get(2)?, r.get(3)?, r.get(4)?, r.get(7)?],
            application: r.get(5)?,
            retention: r.get(6)?,
            row_count: r.get(8)?,
            grade: r.get(9)?,
            columns: r.get(10)?,
            quasi_identifiers: r.get(11)?,
            confirmed: r.get(12)?,
            created_at: r.get(13)?,
            imported_at: r.get(14)?,
        })
    }

    pub(super) fn parse(self) -> Result<Dataset, CatalogError> {
        let owner = format!("dataset:{}", self.id);
        let bad = |field| corrupt(&owner, field);
        let [title, provider, source, state] = self.text;
        let grade = match self.grade.as_str() {
            "" => None,
            g => Some(g.parse().map_err(|e| bad("grade")(format!("{e}")))?),
        };
        let imported_at = match self.imported_at {
            Some(t) => Some(parse_time(&owner, "imported_at", &t)?),
            None => None,
        };
        Ok(Dataset {
            id: self.id.parse().map_err(|e| bad("id")(format!("{e}")))?,
            zone: self
                .zone
                .parse()
                .map_err(|e| bad("zone_id")(format!("{e}")))?,
            title,
            provider,
            source: source.parse().map_err(|e| bad("source")(format!("{e}")))?,
            application: self.application,
            retention: self
                .retention
                .parse()
                .map_err(|e| bad("retention")(format!("{e}")))?,
            state: state.parse().map_err(|e| bad("state")(format!("{e}")))?,
            row_count: u64::try_from(self.row_count).unwrap_or_default(),
            grade,
            columns: serde_json::from_str(&self.columns)
                .map_err(|e| bad("columns")(e.to_string()))?,
            quasi_identifiers: serde_json::from_str(&self.quasi_identifiers)
                .map_err(|e| bad("quasi_identifiers")(e.to_string()))?,
            schema_confirmed: self.confirmed,
            created_at: parse_time(&owner, "created_at", &self.created_at)?,
            imported_at,
        })
    }
}

fn to_json(
    owner: &str,
    field: &'static str,
    value: &impl serde::Serialize,
) -> Result<String, CatalogError> {
    serde_json::to_string(value).map_err(|e| corrupt(owner, field)(e.to_string()))
}
