//! Catalog records of the destruction lifecycle: destruction requests and
//! their certificates, dataset state changes driven by retention, and the
//! key deletion at the heart of a cryptographic erase.
//!
//! A destroyed wrapped key is overwritten with an empty blob in a
//! transaction (`secure_delete` zeroes the freed cell), the catalog is then
//! vacuumed and its WAL checkpointed with `TRUNCATE`, so no page of the
//! file, live or free, still holds the old ciphertext of the key.

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{sql, Catalog, CatalogError};
use crate::dataset::{rfc3339, DatasetState};
use crate::ids::{DatasetId, ZoneId};
use crate::lifecycle::destruction::{Destruction, DestructionObject};

const COLUMNS: &str = "id, object_kind, object_id, zone_id, basis, reason, requested_by, \
     requested_at, approved_by, approved_at, state, certificate_id";

fn parse_time(owner: &str, field: &'static str, s: &str) -> Result<OffsetDateTime, CatalogError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| CatalogError::Corrupt {
        owner: owner.to_owned(),
        field,
        problem: e.to_string(),
    })
}

fn corrupt(id: &str, field: &'static str, problem: String) -> CatalogError {
    CatalogError::Corrupt {
        owner: format!("destruction:{id}"),
        field,
        problem,
    }
}

/// A destruction row as stored.
struct StoredDestruction([String; 8], [Option<String>; 3], String);

impl StoredDestruction {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self(
            [
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ],
            [r.get(8)?, r.get(9)?, r.get(11)?],
            r.get(10)?,
        ))
    }

    fn parse(self) -> Result<Destruction, CatalogError> {
        let [id, kind, object_id, zone, basis, reason, requested_by, requested_at] = self.0;
        let [decided_by, decided_at, certificate_id] = self.1;
        let owner = format!("destruction:{id}");
        Ok(Destruction {
            object: DestructionObject::parse(&kind, &object_id)
                .map_err(|e| corrupt(&id, "object", e))?,
            zone: zone
                .parse()
                .map_err(|e| corrupt(&id, "zone_id", format!("{e}")))?,
            requested_at: parse_time(&owner, "requested_at", &requested_at)?,
            decided_at: decided_at
                .map(|t| parse_time(&owner, "approved_at", &t))
                .transpose()?,
            state: self.2.parse().map_err(|e| corrupt(&id, "state", e))?,
            id,
            basis,
            reason,
            requested_by,
            decided_by,
            certificate_id,
        })
    }
}

impl Catalog {
    /// Records a new destruction request.
    pub fn insert_destruction(&mut self, d: &Destruction) -> Result<(), CatalogError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO destructions({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    d.id,
                    d.object.kind(),
                    d.object.id(),
                    d.zone.as_str(),
                    d.basis,
                    d.reason,
                    d.requested_by,
                    rfc3339(d.requested_at),
                    d.decided_by,
                    d.decided_at.map(rfc3339),
                    d.state.as_str(),
                    d.certificate_id,
                ],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// The destruction `id`, if recorded.
    pub fn destruction(&self, id: &str) -> Result<Option<Destruction>, CatalogError> {
        let query = format!("SELECT {COLUMNS} FROM destructions WHERE id = ?1");
        let row = self
            .conn
            .query_row(&query, [id], StoredDestruction::read)
            .optional()
            .map_err(sql(&self.path))?;
        row.map(StoredDestruction::parse).transpose()
    }

    /// Every destruction, oldest first.
    pub fn destructions(&self) -> Result<Vec<Destruction>, CatalogError> {
        let query = format!("SELECT {COLUMNS} FROM destructions ORDER BY requested_at, id");
        let mut stmt = self.conn.prepare(&query).map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], StoredDestruction::read)
            .map_err(sql(&self.path))?;
        rows.map(|r| {
            r.map_err(sql(&self.path))
                .and_then(StoredDestruction::parse)
        })
        .collect()
    }

    /// Writes a destruction's decision, state and certificate id.
    pub fn update_destruction(&mut self, d: &Destruction) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE destructions SET approved_by = ?2, approved_at = ?3, state = ?4,
                     certificate_id = ?5 WHERE id = ?1",
                params![
                    d.id,
                    d.decided_by,
                    d.decided_at.map(rfc3339),
                    d.state.as_str(),
                    d.certificate_id,
                ],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Stores the signed certificate note and the ledger index of the event
    /// that published it.
    pub fn store_certificate(
        &mut self,
        id: &str,
        note: &str,
        ledger_index: u64,
    ) -> Result<(), CatalogError> {
        let index = i64::try_from(ledger_index).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "UPDATE destructions SET certificate = ?2, ledger_index = ?3 WHERE id = ?1",
                params![id, note, index],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// The signed certificate note of destruction `id` and its ledger index.
    pub fn certificate(&self, id: &str) -> Result<Option<(String, u64)>, CatalogError> {
        let row: Option<(Option<String>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT certificate, ledger_index FROM destructions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql(&self.path))?;
        Ok(match row {
            Some((Some(note), Some(i))) => Some((note, u64::try_from(i).unwrap_or_default())),
            _ => None,
        })
    }

    /// The certificate id of the executed destruction that covered dataset
    /// `id` (directly, or through its zone).
    pub fn certificate_covering(
        &self,
        id: &DatasetId,
        zone: &ZoneId,
    ) -> Result<Option<String>, CatalogError> {
        self.conn
            .query_row(
                "SELECT certificate_id FROM destructions
                 WHERE state = 'executed' AND certificate_id IS NOT NULL
                   AND ((object_kind = 'dataset' AND object_id = ?1)
                     OR (object_kind = 'zone' AND object_id = ?2))
                 ORDER BY requested_at DESC LIMIT 1",
                [id.as_str(), zone.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// Records the content digest of dataset `id`'s rows (computed once,
    /// after its import: datasets are written once).
    pub fn set_content_digest(&mut self, id: &DatasetId, sha256: &str) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE datasets SET content_sha256 = ?2 WHERE id = ?1",
                params![id.as_str(), sha256],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// The content digest recorded at import for dataset `id`, if any.
    pub fn content_digest(&self, id: &DatasetId) -> Result<Option<String>, CatalogError> {
        let v: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT content_sha256 FROM datasets WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))?;
        Ok(v.flatten())
    }

    /// Sets dataset `id`'s lifecycle state (retention and destruction only).
    pub fn set_dataset_state(
        &mut self,
        id: &DatasetId,
        state: DatasetState,
    ) -> Result<(), CatalogError> {
        let n = self
            .conn
            .execute(
                "UPDATE datasets SET state = ?2 WHERE id = ?1",
                params![id.as_str(), state.as_str()],
            )
            .map_err(sql(&self.path))?;
        if n == 0 {
            return Err(CatalogError::UnknownDataset { id: id.clone() });
        }
        Ok(())
    }

    /// Destroys the wrapped keys of `datasets` (and of `zone`, if given) and
    /// marks the datasets destroyed, in one transaction; then vacuums the
    /// catalog and truncates its WAL so no copy of the old keys remains in
    /// the file.
    pub fn destroy_keys(
        &mut self,
        datasets: &[DatasetId],
        zone: Option<&ZoneId>,
    ) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(&path))?;
        for id in datasets {
            tx.execute(
                "UPDATE datasets SET wrapped_key = X'', state = ?2 WHERE id = ?1",
                params![id.as_str(), DatasetState::Destroyed.as_str()],
            )
            .map_err(sql(&path))?;
        }
        if let Some(zone) = zone {
            tx.execute(
                "UPDATE zones SET wrapped_key = X'' WHERE id = ?1",
                [zone.as_str()],
            )
            .map_err(sql(&path))?;
        }
        tx.commit().map_err(sql(&path))?;
        self.compact()
    }

    /// `VACUUM` and `wal_checkpoint(TRUNCATE)`: rewrites the file without
    /// free pages and empties the WAL.
    pub fn compact(&mut self) -> Result<(), CatalogError> {
        self.conn
            .execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(sql(&self.path))
    }

    /// Whether the catalog still holds a non-empty wrapped key for dataset
    /// `id`.
    pub fn holds_dataset_key(&self, id: &DatasetId) -> Result<bool, CatalogError> {
        self.holds_key(
            "SELECT length(wrapped_key) FROM datasets WHERE id = ?1",
            id.as_str(),
        )
    }

    /// Whether the catalog still holds a non-empty wrapped key for zone `id`.
    pub fn holds_zone_key(&self, id: &ZoneId) -> Result<bool, CatalogError> {
        self.holds_key(
            "SELECT length(wrapped_key) FROM zones WHERE id = ?1",
            id.as_str(),
        )
    }

    fn holds_key(&self, query: &str, id: &str) -> Result<bool, CatalogError> {
        let len: Option<i64> = self
            .conn
            .query_row(query, [id], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path))?;
        Ok(len.unwrap_or(0) > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::NewDataset;
    use crate::keys::{DatasetKey, MasterKey, ZoneKey};
    use crate::lifecycle::destruction::DestructionState;

    #[test]
    fn destructions_round_trip_and_keys_are_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let mut cat = crate::catalog::tests::populated(&dir.path().join("c.db"), &master);
        let d1: DatasetId = "d1".parse().unwrap();
        let z1: ZoneId = "z1".parse().unwrap();
        let object = DestructionObject::Dataset(d1.clone());
        let mut d =
            Destruction::request("dx-1".into(), object, z1.clone(), "b", "r", "op").unwrap();
        cat.insert_destruction(&d).unwrap();
        assert_eq!(cat.destruction("dx-1").unwrap().as_ref(), Some(&d));
        d.decide(true, "reg").unwrap();
        d.executed("dc-1").unwrap();
        cat.update_destruction(&d).unwrap();
        assert_eq!(
            cat.destruction("dx-1").unwrap().unwrap().state,
            DestructionState::Executed
        );
        assert_eq!(
            cat.certificate_covering(&d1, &z1).unwrap().as_deref(),
            Some("dc-1")
        );
        cat.store_certificate("dx-1", "note\n", 7).unwrap();
        assert_eq!(cat.certificate("dx-1").unwrap(), Some(("note\n".into(), 7)));

        let zone_key = ZoneKey::unwrap(&cat.zone_wrapped_key(&z1).unwrap(), &master, &z1).unwrap();
        let d2: DatasetId = "d2".parse().unwrap();
        let wrapped = DatasetKey::generate()
            .unwrap()
            .wrap(&zone_key, &d2)
            .unwrap();
        cat.insert_dataset(&NewDataset {
            id: &d2,
            zone_id: &z1,
            title: "t",
            provider: "p",
            source: "s",
            state: "active",
            grade: "general",
            row_count: 1,
            retention: "1d",
            wrapped_key: &wrapped,
        })
        .unwrap();
        assert!(cat.holds_dataset_key(&d1).unwrap());
        cat.destroy_keys(std::slice::from_ref(&d1), None).unwrap();
        assert!(!cat.holds_dataset_key(&d1).unwrap());
        assert!(
            cat.holds_dataset_key(&d2).unwrap(),
            "other datasets keep theirs"
        );
        assert!(cat.holds_zone_key(&z1).unwrap());
        cat.destroy_keys(&[], Some(&z1)).unwrap();
        assert!(!cat.holds_zone_key(&z1).unwrap());
    }
}
