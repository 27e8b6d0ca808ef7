//! Catalog records of zone exits ([`crate::lifecycle::exit`]): the
//! `zone_exits` table, and the one transaction that starts an exit
//! (record it, revoke the zone's grants, file the zone-wide destruction).

use rusqlite::{params, OptionalExtension, Row};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{sql, Catalog, CatalogError};
use crate::dataset::rfc3339;
use crate::ids::ZoneId;
use crate::lifecycle::destruction::Destruction;
use crate::lifecycle::exit::ZoneExit;

const COLUMNS: &str = "zone_id, state, cause, reason, initiated_by, started_at, destruction_id, \
                       revoked_grants, certificate_id, finished_at";

impl Catalog {
    /// In one transaction: revokes every unrevoked grant on a dataset of
    /// the exit's zone (at its start time), records destruction `d` and the
    /// exit. The ids of the grants revoked.
    pub fn begin_zone_exit(
        &mut self,
        exit: &ZoneExit,
        d: &Destruction,
    ) -> Result<Vec<String>, CatalogError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql(&self.path))?;
        match self.record_exit(exit, d) {
            Ok(ids) => {
                self.conn.execute_batch("COMMIT").map_err(sql(&self.path))?;
                Ok(ids)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn record_exit(
        &mut self,
        exit: &ZoneExit,
        d: &Destruction,
    ) -> Result<Vec<String>, CatalogError> {
        let now = rfc3339(exit.started_at);
        let ids = self.revoke_zone_grants(&exit.zone, &now)?;
        self.insert_destruction(d)?;
        let revoked = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                &format!(
                    "INSERT INTO zone_exits({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL)"
                ),
                params![
                    exit.zone.as_str(),
                    exit.state.as_str(),
                    exit.cause.as_str(),
                    exit.reason,
                    exit.initiated_by,
                    now,
                    exit.destruction_id,
                    revoked,
                ],
            )
            .map_err(sql(&self.path))?;
        Ok(ids)
    }

    fn revoke_zone_grants(
        &mut self,
        zone: &ZoneId,
        now: &str,
    ) -> Result<Vec<String>, CatalogError> {
        let ids: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT g.id FROM grants g JOIN datasets d ON d.id = g.dataset
                     WHERE d.zone_id = ?1 AND g.revoked_at IS NULL ORDER BY g.id",
                )
                .map_err(sql(&self.path))?;
            let rows = stmt
                .query_map([zone.as_str()], |r| r.get(0))
                .map_err(sql(&self.path))?;
            rows.collect::<Result<_, _>>().map_err(sql(&self.path))?
        };
        for id in &ids {
            self.conn
                .execute(
                    "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, now],
                )
                .map_err(sql(&self.path))?;
        }
        Ok(ids)
    }

    /// The exit of `zone`, if one was started.
    pub fn zone_exit(&self, zone: &ZoneId) -> Result<Option<ZoneExit>, CatalogError> {
        let query = format!("SELECT {COLUMNS} FROM zone_exits WHERE zone_id = ?1");
        let row = self
            .conn
            .query_row(&query, [zone.as_str()], StoredExit::read)
            .optional()
            .map_err(sql(&self.path))?;
        row.map(StoredExit::parse).transpose()
    }

    /// Every exit, oldest first.
    pub fn zone_exits(&self) -> Result<Vec<ZoneExit>, CatalogError> {
        let query = format!("SELECT {COLUMNS} FROM zone_exits ORDER BY started_at, zone_id");
        let mut stmt = self.conn.prepare(&query).map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], StoredExit::read)
            .map_err(sql(&self.path))?;
        rows.map(|r| r.map_err(sql(&self.path)).and_then(StoredExit::parse))
            .collect()
    }

    /// Marks `zone`'s exit `exited` with the certificate of its zone-wide
    /// destruction (no-op unless it is `exiting`).
    pub fn finish_zone_exit(
        &mut self,
        zone: &ZoneId,
        certificate_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE zone_exits SET state = 'exited', certificate_id = ?2, finished_at = ?3
                 WHERE zone_id = ?1 AND state = 'exiting'",
                params![zone.as_str(), certificate_id, rfc3339(at)],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }
}

/// A `zone_exits` row as stored.
struct StoredExit([String; 8], [Option<String>; 2]);

impl StoredExit {
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
            [r.get(8)?, r.get(9)?],
        ))
    }

    fn parse(self) -> Result<ZoneExit, CatalogError> {
        let [zone, state, cause, reason, initiated_by, started_at, destruction_id, revoked] =
            self.0;
        let [certificate_id, finished_at] = self.1;
        let owner = format!("zone-exit:{zone}");
        let bad = |field: &'static str, problem: String| CatalogError::Corrupt {
            owner: owner.clone(),
            field,
            problem,
        };
        let time = |field: &'static str, s: &str| {
            OffsetDateTime::parse(s, &Rfc3339).map_err(|e| bad(field, e.to_string()))
        };
        Ok(ZoneExit {
            zone: zone.parse().map_err(|e| bad("zone_id", format!("{e}")))?,
            state: state.parse().map_err(|e| bad("state", e))?,
            cause: cause.parse().map_err(|e| bad("cause", e))?,
            started_at: time("started_at", &started_at)?,
            finished_at: finished_at
                .as_deref()
                .map(|t| time("finished_at", t))
                .transpose()?,
            revoked_grants: serde_json::from_str(&revoked)
                .map_err(|e| bad("revoked_grants", e.to_string()))?,
            reason,
            initiated_by,
            destruction_id,
            certificate_id,
        })
    }
}
