//! Catalog records of security-monitoring alerts ([`crate::monitor`]):
//! each with the ledger index of the event that published it and its
//! evidence as ledger indexes.

use rusqlite::params;

use super::{sql, Catalog, CatalogError};
use crate::monitor::{Alert, AlertKind};

/// An alert as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// `al-` and 16 hex digits.
    pub id: String,
    /// The alert.
    pub alert: Alert,
    /// The ledger index of its `security.alert` event.
    pub ledger_index: u64,
    /// When it was raised (RFC 3339).
    pub raised_at: String,
}

impl Catalog {
    /// Records an alert.
    pub fn insert_alert(&mut self, a: &StoredAlert) -> Result<(), CatalogError> {
        let evidence = serde_json::to_string(&a.alert.evidence).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                "INSERT INTO alerts(id, kind, subject, org, summary, evidence, ledger_index,
                     raised_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.id,
                    a.alert.kind.as_str(),
                    a.alert.subject,
                    a.alert.org,
                    a.alert.summary,
                    evidence,
                    i64::try_from(a.ledger_index).unwrap_or(i64::MAX),
                    a.raised_at,
                ],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Every alert (of `kind`, if given), oldest first.
    pub fn alerts(&self, kind: Option<AlertKind>) -> Result<Vec<StoredAlert>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, kind, subject, org, summary, evidence, ledger_index, raised_at
                 FROM alerts WHERE ?1 IS NULL OR kind = ?1 ORDER BY ledger_index",
            )
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([kind.map(AlertKind::as_str)], |r| {
                Ok((
                    [r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?],
                    [r.get::<_, String>(4)?, r.get(5)?, r.get(7)?],
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(sql(&self.path))?;
        let mut out = Vec::new();
        for row in rows {
            let ([id, kind, subject, org], [summary, evidence, raised_at], index) =
                row.map_err(sql(&self.path))?;
            let corrupt = |field: &'static str, problem: String| CatalogError::Corrupt {
                owner: format!("alert:{id}"),
                field,
                problem,
            };
            let kind = AlertKind::parse(&kind).ok_or_else(|| corrupt("kind", kind.clone()))?;
            let evidence =
                serde_json::from_str(&evidence).map_err(|e| corrupt("evidence", e.to_string()))?;
            out.push(StoredAlert {
                alert: Alert {
                    kind,
                    subject,
                    org,
                    summary,
                    evidence,
                },
                ledger_index: u64::try_from(index).unwrap_or_default(),
                raised_at,
                id,
            });
        }
        Ok(out)
    }
}
