//! Partner tiers and permission flags, grants and extract records in the catalog.
//!
//! Times are stored in RFC 3339, a grant's columns as JSON, tiers as their
//! number. Counting an extract against a grant is one conditional `UPDATE`,
//! so two concurrent extracts can never both take the last one.

use rusqlite::{params, OptionalExtension, Row};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{is_constraint, sql, Catalog, CatalogError};
use crate::dataset::rfc3339;
use crate::desensitize::Tier;
use crate::grant::{ExtractRecord, Grant, Partner, Recipient};

const PARTNER_COLUMNS: &str = "org, tier, data_access, updated_by, updated_at, \
     product_authorization, scenario_authorization, ownership_control";

const GRANT_COLUMNS: &str = "id, recipient, dataset, columns, purpose, filing, filter, row_limit, \
     max_extracts, extracts_used, expires_at, revoked_at, created_by, created_at";

impl Catalog {
    /// Records (or replaces) a partner organization's tier and permission.
    pub fn put_partner(&mut self, p: &Partner) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT INTO partners(org, tier, data_access, updated_by, updated_at,
                     product_authorization, scenario_authorization, ownership_control)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(org) DO UPDATE SET tier = excluded.tier,
                     data_access = excluded.data_access, updated_by = excluded.updated_by,
                     updated_at = excluded.updated_at,
                     product_authorization = excluded.product_authorization,
                     scenario_authorization = excluded.scenario_authorization,
                     ownership_control = excluded.ownership_control",
                params![
                    p.org,
                    p.tier.number(),
                    p.data_access,
                    p.updated_by,
                    rfc3339(p.updated_at),
                    p.product_authorization,
                    p.scenario_authorization,
                    p.ownership_control
                ],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// The partner `org`, if recorded.
    pub fn partner(&self, org: &str) -> Result<Option<Partner>, CatalogError> {
        self.conn
            .query_row(
                &format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE org = ?1"),
                [org],
                read_partner,
            )
            .optional()
            .map_err(sql(&self.path))?
            .transpose()
    }

    /// Every partner, ordered by organization.
    pub fn partners(&self) -> Result<Vec<Partner>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {PARTNER_COLUMNS} FROM partners ORDER BY org"
            ))
            .map_err(sql(&self.path))?;
        let rows = stmt.query_map([], read_partner).map_err(sql(&self.path))?;
        rows.map(|r| r.map_err(sql(&self.path)).and_then(|p| p))
            .collect()
    }

    /// Records a new grant. Its dataset must exist
    /// ([`CatalogError::UnknownDataset`]).
    pub fn create_grant(&mut self, g: &Grant) -> Result<(), CatalogError> {
        let columns = serde_json::to_string(&g.columns).map_err(|e| CatalogError::Corrupt {
            owner: format!("grant:{}", g.id),
            field: "columns",
            problem: e.to_string(),
        })?;
        let result = self.conn.execute(
            &format!(
                "INSERT INTO grants({GRANT_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ),
            params![
                g.id,
                g.recipient.to_string(),
                g.dataset.as_str(),
                columns,
                g.purpose,
                g.filing,
                g.filter,
                to_i64(g.row_limit),
                g.max_extracts.map(to_i64),
                to_i64(g.extracts_used),
                rfc3339(g.expires_at),
                g.revoked_at.map(rfc3339),
                g.created_by,
                rfc3339(g.created_at),
            ],
        );
        match result {
            Err(e) if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                Err(CatalogError::UnknownDataset {
                    id: g.dataset.clone(),
                })
            }
            other => other.map(drop).map_err(sql(&self.path)),
        }
    }

    /// The grant `id`, if recorded.
    pub fn grant(&self, id: &str) -> Result<Option<Grant>, CatalogError> {
        self.conn
            .query_row(
                &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = ?1"),
                [id],
                read_grant,
            )
            .optional()
            .map_err(sql(&self.path))?
            .transpose()
    }

    /// The grants for `recipient` (exactly as stored), or all, oldest first.
    pub fn grants(&self, recipient: Option<&str>) -> Result<Vec<Grant>, CatalogError> {
        let query = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE ?1 IS NULL OR recipient = ?1
             ORDER BY created_at, id"
        );
        let mut stmt = self.conn.prepare(&query).map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([recipient], read_grant)
            .map_err(sql(&self.path))?;
        rows.map(|r| r.map_err(sql(&self.path)).and_then(|g| g))
            .collect()
    }

    /// Revokes grant `id` at `at`; `false` if there is no such grant or it
    /// was already revoked (the first revocation time stays).
    pub fn revoke_grant(&mut self, id: &str, at: OffsetDateTime) -> Result<bool, CatalogError> {
        let n = self
            .conn
            .execute(
                "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, rfc3339(at)],
            )
            .map_err(sql(&self.path))?;
        Ok(n == 1)
    }

    /// Counts one extract against grant `id`, unless that would pass its
    /// maximum; `false` when it would (or the grant is gone or revoked).
    pub fn take_extract(&mut self, id: &str) -> Result<bool, CatalogError> {
        let n = self
            .conn
            .execute(
                "UPDATE grants SET extracts_used = extracts_used + 1
                 WHERE id = ?1 AND revoked_at IS NULL
                   AND (max_extracts IS NULL OR extracts_used < max_extracts)",
                [id],
            )
            .map_err(sql(&self.path))?;
        Ok(n == 1)
    }

    /// Records a finished extract with its signed manifest.
    pub fn record_extract(&mut self, x: &ExtractRecord) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT INTO extracts(id, grant_id, recipient, manifest, ledger_index, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    x.id,
                    x.grant,
                    x.recipient,
                    x.manifest,
                    to_i64(x.ledger_index),
                    rfc3339(x.created_at)
                ],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// The extract `id`, if recorded.
    pub fn extract(&self, id: &str) -> Result<Option<ExtractRecord>, CatalogError> {
        self.conn
            .query_row(
                "SELECT id, grant_id, recipient, manifest, ledger_index, created_at
                 FROM extracts WHERE id = ?1",
                [id],
                read_extract,
            )
            .optional()
            .map_err(sql(&self.path))?
            .transpose()
    }
}

/// Counts and limits are far below `i64::MAX`; saturate rather than wrap.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn corrupt(owner: &str, field: &'static str, problem: impl ToString) -> CatalogError {
    CatalogError::Corrupt {
        owner: owner.to_owned(),
        field,
        problem: problem.to_string(),
    }
}

fn time(owner: &str, field: &'static str, s: &str) -> Result<OffsetDateTime, CatalogError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| corrupt(owner, field, e))
}

type Parsed<T> = rusqlite::Result<Result<T, CatalogError>>;

fn read_partner(r: &Row<'_>) -> Parsed<Partner> {
    let org: String = r.get(0)?;
    let tier: i64 = r.get(1)?;
    let updated_at: String = r.get(4)?;
    let owner = format!("partner:{org}");
    Ok((|| {
        let tier = u8::try_from(tier)
            .ok()
            .and_then(|t| Tier::try_from(t).ok())
            .ok_or_else(|| corrupt(&owner, "tier", tier))?;
        Ok(Partner {
            tier,
            data_access: r.get(2).map_err(|e| corrupt(&owner, "data_access", e))?,
            product_authorization: r
                .get(5)
                .map_err(|e| corrupt(&owner, "product_authorization", e))?,
            scenario_authorization: r
                .get(6)
                .map_err(|e| corrupt(&owner, "scenario_authorization", e))?,
            ownership_control: r
                .get(7)
                .map_err(|e| corrupt(&owner, "ownership_control", e))?,
            updated_by: r.get(3).map_err(|e| corrupt(&owner, "updated_by", e))?,
            updated_at: time(&owner, "updated_at", &updated_at)?,
            org,
        })
    })())
}

fn read_grant(r: &Row<'_>) -> Parsed<Grant> {
    let id: String = r.get(0)?;
    let text: [String; 4] = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(10)?];
    let nums: [i64; 2] = [r.get(7)?, r.get(9)?];
    let max: Option<i64> = r.get(8)?;
    let revoked: Option<String> = r.get(11)?;
    let created_at: String = r.get(13)?;
    let (purpose, filing, filter, created_by) = (r.get(4)?, r.get(5)?, r.get(6)?, r.get(12)?);
    let owner = format!("grant:{id}");
    Ok((|| {
        let [recipient, dataset, columns, expires_at] = text;
        Ok(Grant {
            recipient: Recipient::parse(&recipient).map_err(|e| corrupt(&owner, "recipient", e))?,
            dataset: dataset.parse().map_err(|e| corrupt(&owner, "dataset", e))?,
            columns: serde_json::from_str(&columns).map_err(|e| corrupt(&owner, "columns", e))?,
            purpose,
            filing,
            filter,
            row_limit: to_u64(nums[0]),
            max_extracts: max.map(to_u64),
            extracts_used: to_u64(nums[1]),
            expires_at: time(&owner, "expires_at", &expires_at)?,
            revoked_at: revoked
                .map(|t| time(&owner, "revoked_at", &t))
                .transpose()?,
            created_by,
            created_at: time(&owner, "created_at", &created_at)?,
            id,
        })
    })())
}

fn read_extract(r: &Row<'_>) -> Parsed<ExtractRecord> {
    let id: String = r.get(0)?;
    let created_at: String = r.get(5)?;
    let index: i64 = r.get(4)?;
    let owner = format!("extract:{id}");
    let (grant, recipient, manifest) = (r.get(1)?, r.get(2)?, r.get(3)?);
    Ok(
        time(&owner, "created_at", &created_at).map(|created_at| ExtractRecord {
            id,
            grant,
            recipient,
            manifest,
            ledger_index: to_u64(index),
            created_at,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn grant(id: &str, recipient: &str, max: Option<u64>) -> Grant {
        let now = crate::dataset::now_utc_seconds();
        Grant {
            id: id.into(),
            recipient: Recipient::parse(recipient).unwrap(),
            dataset: "d1".parse().unwrap(),
            columns: vec!["name".into(), "amount".into()],
            purpose: "credit model".into(),
            filing: None,
            filter: Some("amount >= 10".into()),
            row_limit: 100,
            max_extracts: max,
            extracts_used: 0,
            expires_at: now + time::Duration::days(30),
            revoked_at: None,
            created_by: "spiffe://td/operator/op/alice".into(),
            created_at: now,
        }
    }

    #[test]
    fn partners_grants_and_extracts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let mut cat = super::super::tests::populated(&dir.path().join("c.db"), &master);
        let p = Partner {
            org: "partner-a".into(),
            tier: Tier::Two,
            data_access: true,
            product_authorization: false,
            scenario_authorization: true,
            ownership_control: false,
            updated_by: "op".into(),
            updated_at: crate::dataset::now_utc_seconds(),
        };
        cat.put_partner(&p).unwrap();
        cat.put_partner(&Partner {
            tier: Tier::Three,
            ..p.clone()
        })
        .unwrap();
        let stored = cat.partner("partner-a").unwrap().unwrap();
        assert_eq!(stored.tier, Tier::Three);
        assert!(stored.scenario_authorization && !stored.product_authorization);
        assert_eq!(cat.partners().unwrap().len(), 1);
        assert_eq!(cat.partner("nobody").unwrap(), None);

        let g = grant("g-1", "spiffe://td/analyst/partner-a/carol", Some(1));
        cat.create_grant(&g).unwrap();
        assert_eq!(cat.grant("g-1").unwrap().as_ref(), Some(&g));
        let mut bad = grant("g-2", "partner-a", None);
        bad.dataset = "nope".parse().unwrap();
        assert!(matches!(
            cat.create_grant(&bad),
            Err(CatalogError::UnknownDataset { .. })
        ));
        cat.create_grant(&grant("g-3", "partner-a", None)).unwrap();
        assert_eq!(cat.grants(None).unwrap().len(), 2);
        assert_eq!(cat.grants(Some("partner-a")).unwrap()[0].id, "g-3");

        assert!(cat.take_extract("g-1").unwrap());
        assert!(!cat.take_extract("g-1").unwrap());
        assert_eq!(cat.grant("g-1").unwrap().unwrap().extracts_used, 1);
        assert!(cat
            .revoke_grant("g-3", crate::dataset::now_utc_seconds())
            .unwrap());
        assert!(!cat
            .revoke_grant("g-3", crate::dataset::now_utc_seconds())
            .unwrap());
        assert!(!cat.take_extract("g-3").unwrap());

        let x = ExtractRecord {
            id: "x-1".into(),
            grant: "g-1".into(),
            recipient: "spiffe://td/analyst/partner-a/carol".into(),
            manifest: "note\n".into(),
            ledger_index: 7,
            created_at: crate::dataset::now_utc_seconds(),
        };
        cat.record_extract(&x).unwrap();
        assert_eq!(cat.extract("x-1").unwrap(), Some(x));
        assert_eq!(cat.extract("x-2").unwrap(), None);
    }
}
