//! The exit procedure of a zone (clause 8 of the guidance): what happens
//! when a zone's operation ends, because its operator leaves, its
//! regulator orders it, or the operator's authorization is terminated.
//!
//! ```text
//! (open) ──begin──▶ exiting ──zone-wide destruction executed──▶ exited
//! ```
//!
//! [`begin`] does, in one catalog transaction: record the exit, revoke
//! every grant on the zone's datasets, and file the zone-wide destruction
//! request (the existing two-person destruction with object `zone:<id>`).
//! While a zone is `exiting` or `exited`, nothing new may enter or leave
//! it (grants, extracts, aggregates, imports, datasets): the API asks
//! [`exit_of`] before each. [`finish`] records the certificate once the
//! zone's regulator has approved and the erase has run.
//!
//! What it never does: decide who may start an exit (the API does), or
//! erase anything itself (see [`super::erase`]).

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use super::destruction::{Destruction, DestructionObject, TransitionError, MAX_TEXT_LEN};
use crate::catalog::Catalog;
use crate::dataset::{now_utc_seconds, rfc3339};

use crate::ids::ZoneId;

/// Where a zone's exit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitState {
    /// Grants revoked, use refused, zone-wide destruction pending.
    Exiting,
    /// The zone-wide destruction executed; its certificate is recorded.
    Exited,
}

/// Why the exit was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// The zone's operator withdrew.
    OperatorWithdrawal,
    /// The zone's regulator ordered it.
    RegulatorOrder,
    /// The operator's operating authorization was terminated (governance).
    AuthorizationTerminated,
}

macro_rules! names {
    ($t:ty, $what:literal, $($v:ident = $s:literal),+) => {
        impl $t {
            /// The stable name, as serialized and stored.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok(Self::$v),)+ other => Err(format!("unknown {} {other:?}", $what)) }
            }
        }
    };
}

names!(
    ExitState,
    "exit state",
    Exiting = "exiting",
    Exited = "exited"
);
names!(
    ExitCause,
    "exit cause",
    OperatorWithdrawal = "operator-withdrawal",
    RegulatorOrder = "regulator-order",
    AuthorizationTerminated = "authorization-terminated"
);

/// One zone's exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneExit {
    /// The zone.
    pub zone: ZoneId,
    /// Where it stands.
    pub state: ExitState,
    /// Why it started.
    pub cause: ExitCause,
    /// The free-text reason given.
    pub reason: String,
    /// Who started it (identity URI, or `system:<component>`).
    pub initiated_by: String,
    /// When.
    pub started_at: OffsetDateTime,
    /// The zone-wide destruction request it filed.
    pub destruction_id: String,
    /// The grants it revoked.
    pub revoked_grants: Vec<String>,
    /// The certificate of the zone-wide destruction, once executed.
    pub certificate_id: Option<String>,
    /// When the destruction executed.
    pub finished_at: Option<OffsetDateTime>,
}

impl ZoneExit {
    /// The API's view of the exit.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "zone": self.zone.as_str(),
            "state": self.state.as_str(),
            "cause": self.cause.as_str(),
            "reason": self.reason,
            "initiated_by": self.initiated_by,
            "started_at": rfc3339(self.started_at),
            "destruction_id": self.destruction_id,
            "revoked_grants": self.revoked_grants,
            "certificate_id": self.certificate_id,
            "finished_at": self.finished_at.map(rfc3339),
        })
    }
}

/// Why an exit could not be started or recorded.
#[derive(Debug, thiserror::Error)]
pub enum ExitError {
    /// The zone already has an exit.
    #[error("zone {zone} is already {state}")]
    AlreadyStarted {
        /// The zone.
        zone: ZoneId,
        /// Its exit state.
        state: ExitState,
    },
    /// The reason is empty, too long or has control characters.
    #[error("reason must be 1 to {MAX_TEXT_LEN} bytes without control characters")]
    BadReason,
    /// The destruction request was refused.
    #[error(transparent)]
    Destruction(#[from] TransitionError),
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(String),
}

fn db(e: impl fmt::Display) -> ExitError {
    ExitError::Catalog(e.to_string())
}

/// What [`begin`] needs.
pub struct ExitStart<'a> {
    /// The zone.
    pub zone: &'a ZoneId,
    /// Why.
    pub cause: ExitCause,
    /// The free-text reason.
    pub reason: &'a str,
    /// Who starts it.
    pub initiated_by: &'a str,
    /// The id for the zone-wide destruction request (`dx-…`).
    pub destruction_id: String,
}

/// Starts the exit of a zone: records it, revokes every unrevoked grant
/// on the zone's datasets and files the zone-wide destruction request, all
/// in one catalog transaction (all or nothing). Refuses a zone that
/// already has an exit.
pub fn begin(
    catalog: &mut Catalog,
    start: ExitStart<'_>,
) -> Result<(ZoneExit, Destruction), ExitError> {
    let reason = checked_reason(start.reason)?;
    if let Some(existing) = exit_of(catalog, start.zone)? {
        return Err(ExitError::AlreadyStarted {
            zone: existing.zone,
            state: existing.state,
        });
    }
    let destruction = Destruction::request(
        start.destruction_id,
        DestructionObject::Zone(start.zone.clone()),
        start.zone.clone(),
        &format!("zone exit ({})", start.cause),
        &reason,
        start.initiated_by,
    )?;
    let mut exit = ZoneExit {
        zone: start.zone.clone(),
        state: ExitState::Exiting,
        cause: start.cause,
        reason,
        initiated_by: start.initiated_by.to_owned(),
        started_at: now_utc_seconds(),
        destruction_id: destruction.id.clone(),
        revoked_grants: Vec::new(),
        certificate_id: None,
        finished_at: None,
    };
    exit.revoked_grants = catalog.begin_zone_exit(&exit, &destruction).map_err(db)?;
    Ok((exit, destruction))
}

/// The exit of `zone`, if one was started.
pub fn exit_of(catalog: &Catalog, zone: &ZoneId) -> Result<Option<ZoneExit>, ExitError> {
    catalog.zone_exit(zone).map_err(db)
}

/// Every exit, oldest first.
pub fn exits(catalog: &Catalog) -> Result<Vec<ZoneExit>, ExitError> {
    catalog.zone_exits().map_err(db)
}

/// Records that `zone`'s destruction executed with `certificate_id`: an
/// `exiting` zone becomes `exited`. The exit, if the zone had one.
pub fn finish(
    catalog: &mut Catalog,
    zone: &ZoneId,
    certificate_id: &str,
) -> Result<Option<ZoneExit>, ExitError> {
    catalog
        .finish_zone_exit(zone, certificate_id, now_utc_seconds())
        .map_err(db)?;
    exit_of(catalog, zone)
}

fn checked_reason(value: &str) -> Result<String, ExitError> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_TEXT_LEN || v.chars().any(char::is_control) {
        return Err(ExitError::BadReason);
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// A catalog with zone `z1`, its dataset `d1` and two grants on it,
    /// one already revoked.
    fn catalog(dir: &std::path::Path) -> Catalog {
        let mut cat = crate::catalog::fixtures::zone_and_dataset(dir);
        for (id, revoked) in [("g-1", None), ("g-2", Some("2020-01-01T00:00:00Z"))] {
            cat.connection()
                .execute(
                    "INSERT INTO grants(id, recipient, dataset, columns, purpose, row_limit,
                         expires_at, revoked_at, created_by, created_at)
                     VALUES (?1, 'org:p', 'd1', '[]', 'p', 1, '2030-01-01T00:00:00Z', ?2,
                         'op', '2020-01-01T00:00:00Z')",
                    params![id, revoked],
                )
                .unwrap();
        }
        cat
    }

    fn start<'a>(zone: &'a ZoneId, reason: &'a str) -> ExitStart<'a> {
        ExitStart {
            zone,
            cause: ExitCause::RegulatorOrder,
            reason,
            initiated_by: "spiffe://td/regulator/bjeit/bob",
            destruction_id: "dx-00aa".into(),
        }
    }

    #[test]
    fn begin_files_the_zone_destruction_once_and_finish_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = catalog(dir.path());
        let z1: ZoneId = "z1".parse().unwrap();
        assert_eq!(exit_of(&cat, &z1).unwrap(), None);
        let (exit, d) = begin(&mut cat, start(&z1, " order 12 ")).unwrap();
        assert_eq!(
            (exit.state, exit.reason.as_str()),
            (ExitState::Exiting, "order 12")
        );
        assert_eq!(
            exit.revoked_grants,
            ["g-1"],
            "only the open grant is revoked"
        );
        let open: i64 = cat
            .connection()
            .query_row(
                "SELECT count(*) FROM grants WHERE revoked_at IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(open, 0);
        assert_eq!(d.object, DestructionObject::Zone(z1.clone()));
        assert_eq!(cat.destruction("dx-00aa").unwrap(), Some(d));
        assert_eq!(exit_of(&cat, &z1).unwrap(), Some(exit.clone()));
        let again = begin(&mut cat, start(&z1, "again")).unwrap_err();
        assert!(matches!(again, ExitError::AlreadyStarted { .. }), "{again}");
        let done = finish(&mut cat, &z1, "dc-00aa").unwrap().unwrap();
        assert_eq!(done.state, ExitState::Exited);
        assert_eq!(done.certificate_id.as_deref(), Some("dc-00aa"));
        assert_eq!(exits(&cat).unwrap(), vec![done]);
    }

    #[test]
    fn a_bad_reason_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = catalog(dir.path());
        let z1: ZoneId = "z1".parse().unwrap();
        for bad in ["", "  ", "a\u{7}b"] {
            assert!(matches!(
                begin(&mut cat, start(&z1, bad)),
                Err(ExitError::BadReason)
            ));
        }
        assert_eq!(exit_of(&cat, &z1).unwrap(), None);
        assert!(cat.destructions().unwrap().is_empty());
    }

    #[test]
    fn names_round_trip() {
        for c in [
            ExitCause::OperatorWithdrawal,
            ExitCause::RegulatorOrder,
            ExitCause::AuthorizationTerminated,
        ] {
            assert_eq!(c.as_str().parse(), Ok(c));
        }
        assert_eq!("exited".parse(), Ok(ExitState::Exited));
        assert!("gone".parse::<ExitState>().is_err());
    }
}
