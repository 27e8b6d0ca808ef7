//! Sharing applications and data-use filings in the catalog.
//!
//! Each is stored as its typed record in JSON (`record`), with the columns
//! the catalog selects on (`zone_id`, `provider`, `state`, `filed_at`)
//! beside it; a transition rewrites both in one `UPDATE` guarded by the
//! state it started from, so two concurrent steps cannot both win.

use rusqlite::{params, OptionalExtension};

use super::{is_constraint, sql, Catalog, CatalogError};
use crate::dataset::rfc3339;
use crate::governance::filing::Filing;
use crate::governance::share::ShareApplication;

fn corrupt(owner: String, problem: impl ToString) -> CatalogError {
    CatalogError::Corrupt {
        owner,
        field: "record",
        problem: problem.to_string(),
    }
}

fn to_json<T: serde::Serialize>(owner: String, value: &T) -> Result<String, CatalogError> {
    serde_json::to_string(value).map_err(|e| corrupt(owner, e))
}

fn from_json<T: serde::de::DeserializeOwned>(owner: String, text: &str) -> Result<T, CatalogError> {
    serde_json::from_str(text).map_err(|e| corrupt(owner, e))
}

impl Catalog {
    /// Records a new sharing application. Its zone must exist.
    pub fn insert_share_application(&mut self, a: &ShareApplication) -> Result<(), CatalogError> {
        let record = to_json(format!("share-application:{}", a.id), a)?;
        let result = self.conn.execute(
            "INSERT INTO share_applications(id, zone_id, provider, state, record, filed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                a.id,
                a.zone.as_str(),
                a.provider,
                a.state.as_str(),
                record,
                rfc3339(a.filed_at)
            ],
        );
        match result {
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                Err(CatalogError::UnknownZone { id: a.zone.clone() })
            }
            other => other.map(drop).map_err(sql(&self.path)),
        }
    }

    /// Stores a transition of `a` from state `from`; `false` if the stored
    /// application is no longer in `from` (another step won).
    pub fn update_share_application(
        &mut self,
        a: &ShareApplication,
        from: crate::governance::share::ShareState,
    ) -> Result<bool, CatalogError> {
        let record = to_json(format!("share-application:{}", a.id), a)?;
        let n = self
            .conn
            .execute(
                "UPDATE share_applications SET state = ?2, record = ?3 WHERE id = ?1 AND state = ?4",
                params![a.id, a.state.as_str(), record, from.as_str()],
            )
            .map_err(sql(&self.path))?;
        Ok(n == 1)
    }

    /// The sharing application `id`, if recorded.
    pub fn share_application(&self, id: &str) -> Result<Option<ShareApplication>, CatalogError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT record FROM share_applications WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))?;
        text.map(|t| from_json(format!("share-application:{id}"), &t))
            .transpose()
    }

    /// Every sharing application, oldest first.
    pub fn share_applications(&self) -> Result<Vec<ShareApplication>, CatalogError> {
        self.records(
            "SELECT id, record FROM share_applications ORDER BY filed_at, id",
            "share-application",
        )
    }

    /// Records a new filing. Its zone must exist.
    pub fn insert_filing(&mut self, f: &Filing) -> Result<(), CatalogError> {
        let record = to_json(format!("filing:{}", f.id), f)?;
        let result = self.conn.execute(
            "INSERT INTO filings(id, zone_id, state, record, filed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                f.id,
                f.zone.as_str(),
                f.state.as_str(),
                record,
                rfc3339(f.filed_at)
            ],
        );
        match result {
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                Err(CatalogError::UnknownZone { id: f.zone.clone() })
            }
            other => other.map(drop).map_err(sql(&self.path)),
        }
    }

    /// Stores a transition of `f` from state `from`; `false` if the stored
    /// filing is no longer in `from`.
    pub fn update_filing(
        &mut self,
        f: &Filing,
        from: crate::governance::filing::FilingState,
    ) -> Result<bool, CatalogError> {
        let record = to_json(format!("filing:{}", f.id), f)?;
        let n = self
            .conn
            .execute(
                "UPDATE filings SET state = ?2, record = ?3 WHERE id = ?1 AND state = ?4",
                params![f.id, f.state.as_str(), record, from.as_str()],
            )
            .map_err(sql(&self.path))?;
        Ok(n == 1)
    }

    /// The filing `id`, if recorded.
    pub fn filing(&self, id: &str) -> Result<Option<Filing>, CatalogError> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT record FROM filings WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql(&self.path))?;
        text.map(|t| from_json(format!("filing:{id}"), &t))
            .transpose()
    }

    /// Every filing, oldest first.
    pub fn filings(&self) -> Result<Vec<Filing>, CatalogError> {
        self.records(
            "SELECT id, record FROM filings ORDER BY filed_at, id",
            "filing",
        )
    }

    /// The ids of the grants made under filing `id`.
    pub fn grants_under_filing(&self, id: &str) -> Result<Vec<String>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM grants WHERE filing = ?1 ORDER BY id")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(sql(&self.path))?;
        rows.map(|r| r.map_err(sql(&self.path))).collect()
    }

    fn records<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        kind: &str,
    ) -> Result<Vec<T>, CatalogError> {
        let mut stmt = self.conn.prepare(query).map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql(&self.path))?;
        rows.map(|r| {
            let (id, text) = r.map_err(sql(&self.path))?;
            from_json(format!("{kind}:{id}"), &text)
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::filing::{FilingState, Method, NewFiling, ScopeEntry};
    use crate::governance::period::{Period, Review};
    use crate::governance::share::{NewShare, ShareItem, ShareState};
    use crate::keys::MasterKey;

    fn period() -> Period {
        Period::parse("2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z").unwrap()
    }

    #[test]
    fn applications_and_filings_round_trip_with_guarded_steps() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let mut cat = super::super::tests::populated(&dir.path().join("c.db"), &master);
        let new = NewShare {
            zone: "z1".parse().unwrap(),
            scenario: "s".into(),
            provider: "bureau-x".into(),
            items: vec![ShareItem {
                name: "i".into(),
                fields: vec!["a".into()],
            }],
            purpose: "p".into(),
            period: period(),
        };
        let mut a = ShareApplication::file("sa-1".into(), new.clone(), "op").unwrap();
        cat.insert_share_application(&a).unwrap();
        assert_eq!(cat.share_application("sa-1").unwrap().as_ref(), Some(&a));
        let stale = a.clone();
        a.assess(Review::now(true, "ok", "reg").unwrap()).unwrap();
        assert!(cat.update_share_application(&a, ShareState::Filed).unwrap());
        // A second step from the same starting state loses.
        assert!(!cat
            .update_share_application(&stale, ShareState::Filed)
            .unwrap());
        assert_eq!(
            cat.share_application("sa-1").unwrap().unwrap().state,
            ShareState::Assessed
        );
        let orphan = ShareApplication::file(
            "sa-2".into(),
            NewShare {
                zone: "nope".parse().unwrap(),
                ..new
            },
            "op",
        )
        .unwrap();
        assert!(matches!(
            cat.insert_share_application(&orphan),
            Err(CatalogError::UnknownZone { .. })
        ));
        assert_eq!(cat.share_applications().unwrap().len(), 1);
        assert_eq!(cat.share_application("sa-9").unwrap(), None);

        let nf = NewFiling {
            zone: "z1".parse().unwrap(),
            scenario: "s".into(),
            scope: vec![ScopeEntry {
                dataset: "d1".parse().unwrap(),
                columns: vec!["a".into()],
            }],
            method: Method::Both,
            recipients: vec!["partner-a".into()],
            period: period(),
        };
        let mut f = Filing::file("f-1".into(), nf, "op").unwrap();
        cat.insert_filing(&f).unwrap();
        f.acknowledge(Review::now(true, "ok", "reg").unwrap())
            .unwrap();
        assert!(cat.update_filing(&f, FilingState::Filed).unwrap());
        assert!(!cat.update_filing(&f, FilingState::Filed).unwrap());
        assert_eq!(cat.filing("f-1").unwrap().as_ref(), Some(&f));
        assert_eq!(cat.filings().unwrap().len(), 1);
        assert!(cat.grants_under_filing("f-1").unwrap().is_empty());
    }
}
