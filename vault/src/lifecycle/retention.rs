//! Retention: which datasets have outlived their retention, and marking
//! them `due-for-destruction`.
//!
//! A dataset's retention runs from its import (from its creation before
//! an import). Only live datasets (created, imported, confirmed) fall due;
//! one already due or destroyed is left alone, so the sweep is idempotent.

use time::OffsetDateTime;

use crate::catalog::{Catalog, CatalogError};
use crate::dataset::{Dataset, DatasetState};

/// When `dataset`'s retention ends; `None` if beyond the representable
/// range (never due).
pub fn expires_at(dataset: &Dataset) -> Option<OffsetDateTime> {
    let start = dataset.imported_at.unwrap_or(dataset.created_at);
    dataset.retention.expires_at(start)
}

/// Whether `dataset` is live and its retention has ended at `now`.
pub fn is_past_retention(dataset: &Dataset, now: OffsetDateTime) -> bool {
    let live = matches!(
        dataset.state,
        DatasetState::Created | DatasetState::Imported | DatasetState::Confirmed
    );
    live && expires_at(dataset).is_some_and(|t| t <= now)
}

/// Marks every live dataset past its retention at `now` as due for
/// destruction; returns the ones marked, for the ledger.
pub fn mark_due(catalog: &mut Catalog, now: OffsetDateTime) -> Result<Vec<Dataset>, CatalogError> {
    let due: Vec<Dataset> = catalog
        .datasets(None)?
        .into_iter()
        .filter(|d| is_past_retention(d, now))
        .collect();
    for d in &due {
        catalog.set_dataset_state(&d.id, DatasetState::DueForDestruction)?;
    }
    Ok(due)
}

/// Every dataset currently due for destruction.
pub fn due(catalog: &Catalog) -> Result<Vec<Dataset>, CatalogError> {
    Ok(catalog
        .datasets(None)?
        .into_iter()
        .filter(|d| d.state == DatasetState::DueForDestruction)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{DatasetSource, DatasetSpec, Retention};
    use crate::keys::{DatasetKey, MasterKey, ZoneKey};
    use crate::zone::{Zone, ZoneKind};

    fn dataset(id: &str, retention: &str) -> Dataset {
        let spec = DatasetSpec {
            title: "t".into(),
            provider: "p".into(),
            source: DatasetSource::OperatorOwn,
            application: None,
            retention: retention.parse::<Retention>().unwrap(),
            quasi_identifiers: vec![],
        };
        Dataset::new(id.parse().unwrap(), "z".parse().unwrap(), spec).unwrap()
    }

    #[test]
    fn only_live_datasets_past_retention_are_due() {
        let now = OffsetDateTime::now_utc();
        let past = dataset("old", "2020-01-01");
        assert!(is_past_retention(&past, now));
        assert!(!is_past_retention(&dataset("new", "30d"), now));
        let later = now + time::Duration::days(31);
        assert!(is_past_retention(&dataset("new", "30d"), later));
        let mut destroyed = past.clone();
        destroyed.state = DatasetState::Destroyed;
        assert!(!is_past_retention(&destroyed, now));
    }

    #[test]
    fn sweep_marks_once() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let mut cat = Catalog::create(&dir.path().join("c.db"), &master.catalog_key()).unwrap();
        let zone = Zone::new(
            "z".parse().unwrap(),
            "n".into(),
            ZoneKind::Sectoral,
            "d".into(),
            "s".into(),
        );
        let zk = ZoneKey::generate().unwrap();
        cat.create_zone(&zone, &zk.wrap(&master, &zone.id).unwrap())
            .unwrap();
        for d in [dataset("old", "2020-01-01"), dataset("new", "30d")] {
            let w = DatasetKey::generate().unwrap().wrap(&zk, &d.id).unwrap();
            cat.create_dataset(&d, &w).unwrap();
        }
        let now = OffsetDateTime::now_utc();
        let marked = mark_due(&mut cat, now).unwrap();
        assert_eq!(marked.len(), 1);
        assert_eq!(marked[0].id.as_str(), "old");
        assert!(mark_due(&mut cat, now).unwrap().is_empty(), "idempotent");
        assert_eq!(due(&cat).unwrap().len(), 1);
    }
}
