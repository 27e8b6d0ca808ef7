//! Typed zone and dataset records: create, read, list, hand over
//! supervision, record an import, confirm a schema.
//!
//! Enums are stored by their stable names, times in RFC 3339, column
//! schemas and quasi-identifiers as JSON. A stored value that does not
//! parse is [`CatalogError::Corrupt`], never a panic or a silent default.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::stored::{StoredDataset, StoredZone};
use super::{is_constraint, sql, Catalog, CatalogError};
use crate::dataset::{now_utc_seconds, rfc3339, ColumnOverride, Dataset, DatasetState};
use crate::ids::{DatasetId, ZoneId};
use crate::keys::WrappedKey;
use crate::schema::{dataset_grade, ColumnSchema};
use crate::zone::Zone;

const ZONE_COLUMNS: &str = "id, name, kind, domain, supervisor, created_at";
const DATASET_COLUMNS: &str = "id, zone_id, title, provider, source, application, retention, \
     state, row_count, grade, columns, quasi_identifiers, schema_confirmed, created_at, imported_at";

impl Catalog {
    /// Records a zone with its wrapped zone key. A duplicate id is
    /// [`CatalogError::ZoneExists`].
    pub fn create_zone(&mut self, zone: &Zone, wrapped: &WrappedKey) -> Result<(), CatalogError> {
        let result = self.conn.execute(
            "INSERT INTO zones(id, name, kind, domain, supervisor, wrapped_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                zone.id.as_str(),
                zone.name,
                zone.kind.as_str(),
                zone.domain,
                zone.supervisor,
                wrapped.as_bytes(),
                rfc3339(zone.created_at),
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

    /// The zone `id`, if recorded.
    pub fn zone(&self, id: &ZoneId) -> Result<Option<Zone>, CatalogError> {
        let query = format!("SELECT {ZONE_COLUMNS} FROM zones WHERE id = ?1");
        let row = self
            .conn
            .query_row(&query, [id.as_str()], StoredZone::read)
            .optional()
            .map_err(sql(&self.path))?;
        row.map(StoredZone::parse).transpose()
    }

    /// Every zone, ordered by id.
    pub fn zones(&self) -> Result<Vec<Zone>, CatalogError> {
        let query = format!("SELECT {ZONE_COLUMNS} FROM zones ORDER BY id");
        let mut stmt = self.conn.prepare(&query).map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], StoredZone::read)
            .map_err(sql(&self.path))?;
        rows.map(|r| r.map_err(sql(&self.path)).and_then(StoredZone::parse))
            .collect()
    }

    /// Hands zone `id` over to `supervisor`; [`CatalogError::UnknownZone`]
    /// if there is no such zone.
    pub fn set_zone_supervisor(
        &mut self,
        id: &ZoneId,
        supervisor: &str,
    ) -> Result<(), CatalogError> {
        let n = self
            .conn
            .execute(
                "UPDATE zones SET supervisor = ?2 WHERE id = ?1",
                params![id.as_str(), supervisor],
            )
            .map_err(sql(&self.path))?;
        if n == 0 {
            return Err(CatalogError::UnknownZone { id: id.clone() });
        }
        Ok(())
    }

    /// Records a dataset with its wrapped dataset key. Its zone must exist
    /// ([`CatalogError::UnknownZone`]); a duplicate id is
    /// [`CatalogError::DatasetExists`].
    pub fn create_dataset(
        &mut self,
        ds: &Dataset,
        wrapped: &WrappedKey,
    ) -> Result<(), CatalogError> {
        let stored = StoredDataset::of(ds, &self.path)?;
        let result = self.conn.execute(
            &format!(
                "INSERT INTO datasets({DATASET_COLUMNS}, wrapped_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ),
            params![
                stored.id,
                stored.zone,
                ds.title,
                ds.provider,
                ds.source.as_str(),
                ds.application,
                stored.retention,
                ds.state.as_str(),
                stored.row_count,
                stored.grade,
                stored.columns,
                stored.quasi_identifiers,
                ds.schema_confirmed,
                stored.created_at,
                stored.imported_at,
                wrapped.as_bytes(),
            ],
        );
        match result {
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                Err(CatalogError::DatasetExists { id: ds.id.clone() })
            }
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                Err(CatalogError::UnknownZone {
                    id: ds.zone.clone(),
                })
            }
            other => other.map(drop).map_err(sql(&self.path)),
        }
    }

    /// The dataset `id`, if recorded.
    pub fn dataset(&self, id: &DatasetId) -> Result<Option<Dataset>, CatalogError> {
        let query = format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = ?1");
        let row = self
            .conn
            .query_row(&query, [id.as_str()], StoredDataset::read)
            .optional()
            .map_err(sql(&self.path))?;
        row.map(StoredDataset::parse).transpose()
    }

    /// The datasets of `zone`, or of every zone, ordered by id.
    pub fn datasets(&self, zone: Option<&ZoneId>) -> Result<Vec<Dataset>, CatalogError> {
        let query = format!(
            "SELECT {DATASET_COLUMNS} FROM datasets
             WHERE ?1 IS NULL OR zone_id = ?1 ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&query).map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([zone.map(ZoneId::as_str)], StoredDataset::read)
            .map_err(sql(&self.path))?;
        rows.map(|r| r.map_err(sql(&self.path)).and_then(StoredDataset::parse))
            .collect()
    }

    /// Records a finished import: the row count and the detected columns,
    /// with the quasi-identifiers requested at creation flagged (one that
    /// names no column is [`CatalogError::UnknownColumn`]). The state
    /// becomes `imported`, the schema unconfirmed, and the grade the
    /// highest column grade. Allowed in states `created` and `imported`.
    pub fn record_import(
        &mut self,
        id: &DatasetId,
        row_count: u64,
        columns: &[ColumnSchema],
    ) -> Result<(), CatalogError> {
        let mut ds = self.existing_dataset(id)?;
        if !ds.state.accepts_import() {
            return Err(invalid_state(&ds, "record an import"));
        }
        let mut columns = columns.to_vec();
        for name in &ds.quasi_identifiers {
            column_mut(&mut columns, id, name)?.quasi_identifier = true;
        }
        ds.row_count = row_count;
        ds.columns = columns;
        ds.state = DatasetState::Imported;
        ds.schema_confirmed = false;
        ds.imported_at = Some(now_utc_seconds());
        self.update_schema(&mut ds)
    }

    /// Confirms the schema of dataset `id`, first applying `overrides` by
    /// column name (one that names no column is
    /// [`CatalogError::UnknownColumn`], and nothing changes). The grade is
    /// recomputed; the state becomes `confirmed`. Allowed in states
    /// `imported` and `confirmed`.
    pub fn confirm_schema(
        &mut self,
        id: &DatasetId,
        overrides: &[ColumnOverride],
    ) -> Result<Dataset, CatalogError> {
        let mut ds = self.existing_dataset(id)?;
        if !matches!(ds.state, DatasetState::Imported | DatasetState::Confirmed) {
            return Err(invalid_state(&ds, "confirm the schema"));
        }
        for o in overrides {
            o.apply(column_mut(&mut ds.columns, id, &o.name)?);
        }
        ds.state = DatasetState::Confirmed;
        ds.schema_confirmed = true;
        self.update_schema(&mut ds)?;
        Ok(ds)
    }

    fn existing_dataset(&self, id: &DatasetId) -> Result<Dataset, CatalogError> {
        self.dataset(id)?
            .ok_or_else(|| CatalogError::UnknownDataset { id: id.clone() })
    }

    /// Writes `ds`'s import and schema fields, deriving the grade and the
    /// quasi-identifier list from its columns.
    fn update_schema(&mut self, ds: &mut Dataset) -> Result<(), CatalogError> {
        ds.grade = Some(dataset_grade(&ds.columns));
        ds.quasi_identifiers = ds
            .columns
            .iter()
            .filter(|c| c.quasi_identifier)
            .map(|c| c.name.clone())
            .collect();
        let stored = StoredDataset::of(ds, &self.path)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(&self.path))?;
        tx.execute(
            "UPDATE datasets SET row_count = ?2, grade = ?3, columns = ?4,
                 quasi_identifiers = ?5, schema_confirmed = ?6, state = ?7, imported_at = ?8
             WHERE id = ?1",
            params![
                stored.id,
                stored.row_count,
                stored.grade,
                stored.columns,
                stored.quasi_identifiers,
                ds.schema_confirmed,
                ds.state.as_str(),
                stored.imported_at,
            ],
        )
        .map_err(sql(&self.path))?;
        tx.commit().map_err(sql(&self.path))
    }
}

fn invalid_state(ds: &Dataset, action: &'static str) -> CatalogError {
    CatalogError::InvalidState {
        id: ds.id.clone(),
        state: ds.state,
        action,
    }
}

fn column_mut<'a>(
    columns: &'a mut [ColumnSchema],
    id: &DatasetId,
    name: &str,
) -> Result<&'a mut ColumnSchema, CatalogError> {
    columns
        .iter_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| CatalogError::UnknownColumn {
            dataset: id.clone(),
            column: name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{DatasetSource, DatasetSpec, Retention};
    use crate::keys::{DatasetKey, MasterKey, ZoneKey};
    use crate::schema::{Grade, SemanticType};
    use crate::zone::ZoneKind;
    use time::OffsetDateTime;

    struct Setup {
        _dir: tempfile::TempDir,
        cat: Catalog,
        zone_key: ZoneKey,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let mut cat =
            Catalog::create(&dir.path().join("catalog.db"), &master.catalog_key()).unwrap();
        let zone_key = ZoneKey::generate().unwrap();
        let z = zone("finance-1");
        cat.create_zone(&z, &zone_key.wrap(&master, &z.id).unwrap())
            .unwrap();
        Setup {
            _dir: dir,
            cat,
            zone_key,
        }
    }

    fn zone(id: &str) -> Zone {
        Zone::new(
            id.parse().unwrap(),
            "金融专区".into(),
            ZoneKind::Sectoral,
            "finance".into(),
            "bureau".into(),
        )
    }

    fn dataset(id: &str, zone: &str, qis: &[&str]) -> Dataset {
        let spec = DatasetSpec {
            title: "企业信贷".into(),
            provider: "jxj".into(),
            source: DatasetSource::GovernmentShare,
            application: Some("app-7".into()),
            retention: "365d".parse().unwrap(),
            quasi_identifiers: qis.iter().map(|s| s.to_string()).collect(),
        };
        Dataset::new(id.parse().unwrap(), zone.parse().unwrap(), spec).unwrap()
    }

    impl Setup {
        fn add(&mut self, ds: &Dataset) -> Result<(), CatalogError> {
            let wrapped = DatasetKey::generate()
                .unwrap()
                .wrap(&self.zone_key, &ds.id)
                .unwrap();
            self.cat.create_dataset(ds, &wrapped)
        }
    }

    fn column(name: &str, t: SemanticType, grade: Grade) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            semantic_type: t,
            confidence: 0.9,
            grade,
            quasi_identifier: false,
        }
    }

    #[test]
    fn zones_create_read_list_and_hand_over() {
        let mut s = setup();
        let z1 = s.cat.zone(&"finance-1".parse().unwrap()).unwrap().unwrap();
        assert_eq!(z1, zone_with_time("finance-1", z1.created_at));
        let wrapped = s.cat.zone_wrapped_key(&z1.id).unwrap();
        assert!(matches!(
            s.cat.create_zone(&z1, &wrapped),
            Err(CatalogError::ZoneExists { .. })
        ));
        let mut z2 = zone("district-haidian");
        z2.kind = ZoneKind::Regional;
        s.cat.create_zone(&z2, &wrapped).unwrap();
        let ids: Vec<String> = s
            .cat
            .zones()
            .unwrap()
            .iter()
            .map(|z| z.id.to_string())
            .collect();
        assert_eq!(ids, ["district-haidian", "finance-1"]);
        assert_eq!(s.cat.zone(&"nope".parse().unwrap()).unwrap(), None);
        s.cat.set_zone_supervisor(&z2.id, "haidian-gov").unwrap();
        let z2 = s.cat.zone(&z2.id).unwrap().unwrap();
        assert_eq!(
            (z2.supervisor.as_str(), z2.kind),
            ("haidian-gov", ZoneKind::Regional)
        );
        assert!(matches!(
            s.cat.set_zone_supervisor(&"nope".parse().unwrap(), "x"),
            Err(CatalogError::UnknownZone { .. })
        ));
    }

    fn zone_with_time(id: &str, t: OffsetDateTime) -> Zone {
        Zone {
            created_at: t,
            ..zone(id)
        }
    }

    #[test]
    fn datasets_create_read_list_duplicates_and_unknown_zone() {
        let mut s = setup();
        let ds = dataset("loans", "finance-1", &[]);
        s.add(&ds).unwrap();
        assert_eq!(s.cat.dataset(&ds.id).unwrap().as_ref(), Some(&ds));
        assert!(matches!(
            s.add(&ds),
            Err(CatalogError::DatasetExists { .. })
        ));
        assert!(matches!(
            s.add(&dataset("other", "no-such-zone", &[])),
            Err(CatalogError::UnknownZone { .. })
        ));
        s.add(&dataset("credit", "finance-1", &[])).unwrap();
        let all: Vec<String> = s
            .cat
            .datasets(None)
            .unwrap()
            .iter()
            .map(|d| d.id.to_string())
            .collect();
        assert_eq!(all, ["credit", "loans"]);
        assert_eq!(
            s.cat
                .datasets(Some(&"finance-1".parse().unwrap()))
                .unwrap()
                .len(),
            2
        );
        assert!(s
            .cat
            .datasets(Some(&"other".parse().unwrap()))
            .unwrap()
            .is_empty());
        assert_eq!(s.cat.dataset(&"nope".parse().unwrap()).unwrap(), None);
    }

    #[test]
    fn import_then_confirm_with_overrides() {
        let mut s = setup();
        let ds = dataset("loans", "finance-1", &["birth"]);
        s.add(&ds).unwrap();
        assert!(matches!(
            s.cat.confirm_schema(&ds.id, &[]),
            Err(CatalogError::InvalidState { .. })
        ));
        let columns = [
            column("name", SemanticType::PersonName, Grade::General3),
            column("birth", SemanticType::BirthDate, Grade::General3),
            column("amount", SemanticType::Amount, Grade::General2),
        ];
        assert!(matches!(
            s.cat.record_import(&ds.id, 10, &columns[..1]),
            Err(CatalogError::UnknownColumn { column, .. }) if column == "birth"
        ));
        s.cat.record_import(&ds.id, 10, &columns).unwrap();
        let got = s.cat.dataset(&ds.id).unwrap().unwrap();
        assert_eq!(
            (got.state, got.row_count, got.grade),
            (DatasetState::Imported, 10, Some(Grade::General3))
        );
        assert!(
            got.columns[1].quasi_identifier && !got.schema_confirmed && got.imported_at.is_some()
        );
        assert_eq!(got.quasi_identifiers, ["birth"]);

        let unknown = ColumnOverride {
            name: "salary".into(),
            semantic_type: None,
            grade: Some(Grade::Core),
            quasi_identifier: None,
        };
        let err = s.cat.confirm_schema(&ds.id, &[unknown]).unwrap_err();
        assert!(err.to_string().contains("\"salary\""), "{err}");
        assert_eq!(
            s.cat.dataset(&ds.id).unwrap().unwrap().state,
            DatasetState::Imported
        );

        let raise = ColumnOverride {
            name: "amount".into(),
            semantic_type: Some(SemanticType::Code),
            grade: Some(Grade::Important),
            quasi_identifier: Some(true),
        };
        let confirmed = s.cat.confirm_schema(&ds.id, &[raise]).unwrap();
        assert_eq!(confirmed.grade, Some(Grade::Important));
        assert_eq!(
            (confirmed.state, confirmed.schema_confirmed),
            (DatasetState::Confirmed, true)
        );
        assert_eq!(confirmed.columns[2].semantic_type, SemanticType::Code);
        assert_eq!(confirmed.columns[2].confidence, 1.0);
        assert_eq!(confirmed.quasi_identifiers, ["birth", "amount"]);
        assert_eq!(s.cat.dataset(&ds.id).unwrap().as_ref(), Some(&confirmed));
        assert!(matches!(
            s.cat.record_import(&ds.id, 1, &columns),
            Err(CatalogError::InvalidState { .. })
        ));
        assert!(matches!(
            s.cat.record_import(&"nope".parse().unwrap(), 1, &columns),
            Err(CatalogError::UnknownDataset { .. })
        ));
    }

    #[test]
    fn retention_dates_survive_the_round_trip() {
        let mut s = setup();
        let mut ds = dataset("until", "finance-1", &[]);
        ds.retention = "2031-06-30T00:00:00+08:00".parse::<Retention>().unwrap();
        ds.source = DatasetSource::Feedback;
        ds.application = None;
        s.add(&ds).unwrap();
        assert_eq!(s.cat.dataset(&ds.id).unwrap(), Some(ds));
    }
}
