//! The two-person destruction workflow as a state machine.
//!
//! ```text
//! requested ──approve (another person)──▶ approved ──execute──▶ executed
//!     │
//!     └──reject──▶ rejected
//! ```
//!
//! The operator files the request; a different person (the zone's
//! regulator, checked by the API) approves or rejects it. Approval is
//! recorded before execution, so an execution that fails part-way leaves
//! the request `approved` and can be retried; only an `approved` request
//! executes, and only once.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use time::OffsetDateTime;

use crate::dataset::{now_utc_seconds, rfc3339};
use crate::ids::{DatasetId, ZoneId};

/// Longest basis or reason accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;

/// What a destruction destroys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestructionObject {
    /// One dataset, through its dataset key.
    Dataset(DatasetId),
    /// Every dataset of a zone, and the zone key (exit procedure).
    Zone(ZoneId),
}

impl DestructionObject {
    /// `dataset` or `zone`, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dataset(_) => "dataset",
            Self::Zone(_) => "zone",
        }
    }

    /// The object's id.
    pub fn id(&self) -> &str {
        match self {
            Self::Dataset(d) => d.as_str(),
            Self::Zone(z) => z.as_str(),
        }
    }

    /// Parses the stored `(kind, id)` pair.
    pub fn parse(kind: &str, id: &str) -> Result<Self, String> {
        match kind {
            "dataset" => id.parse().map(Self::Dataset).map_err(|e| format!("{e}")),
            "zone" => id.parse().map(Self::Zone).map_err(|e| format!("{e}")),
            other => Err(format!("unknown object kind {other:?}")),
        }
    }
}

impl fmt::Display for DestructionObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// Where a destruction request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestructionState {
    /// Filed by the operator, awaiting the regulator.
    Requested,
    /// Approved; execution pending or interrupted.
    Approved,
    /// Refused by the regulator. Final.
    Rejected,
    /// Keys destroyed, files gone, certificate issued. Final.
    Executed,
}

impl DestructionState {
    /// The stable name, as serialized and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Executed => "executed",
        }
    }
}

impl fmt::Display for DestructionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DestructionState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Requested,
            Self::Approved,
            Self::Rejected,
            Self::Executed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("unknown destruction state {s:?}"))
    }
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The request is not in a state that allows the step.
    #[error("destruction {id} is {state}; cannot {action}")]
    WrongState {
        /// The destruction id.
        id: String,
        /// Its state.
        state: DestructionState,
        /// What was refused.
        action: &'static str,
    },
    /// The requester tried to approve their own request.
    #[error("destruction {id}: the requester {who} cannot also approve it")]
    SamePerson {
        /// The destruction id.
        id: String,
        /// The identity that tried.
        who: String,
    },
    /// A basis or reason that is empty or too long.
    #[error("{field} must be 1 to {MAX_TEXT_LEN} bytes")]
    BadText {
        /// `basis` or `reason`.
        field: &'static str,
    },
}

/// One destruction request and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destruction {
    /// `dx-` and 16 hex digits.
    pub id: String,
    /// What is destroyed.
    pub object: DestructionObject,
    /// The zone the object belongs to (whose regulator approves).
    pub zone: ZoneId,
    /// The legal basis (retention expiry, contract end, order, ...).
    pub basis: String,
    /// Free-text reason.
    pub reason: String,
    /// Who requested it (identity URI).
    pub requested_by: String,
    /// When.
    pub requested_at: OffsetDateTime,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<OffsetDateTime>,
    /// Where it stands.
    pub state: DestructionState,
    /// The certificate's id, once executed.
    pub certificate_id: Option<String>,
}

impl Destruction {
    /// A new request, filed now by `requested_by`.
    pub fn request(
        id: String,
        object: DestructionObject,
        zone: ZoneId,
        basis: &str,
        reason: &str,
        requested_by: &str,
    ) -> Result<Self, TransitionError> {
        Ok(Self {
            id,
            object,
            zone,
            basis: checked_text("basis", basis)?,
            reason: checked_text("reason", reason)?,
            requested_by: requested_by.to_owned(),
            requested_at: now_utc_seconds(),
            decided_by: None,
            decided_at: None,
            state: DestructionState::Requested,
            certificate_id: None,
        })
    }

    /// The regulator's decision: `approve` moves to `approved`, otherwise
    /// `rejected`. Only a `requested` destruction, and never by its requester.
    pub fn decide(&mut self, approve: bool, who: &str) -> Result<(), TransitionError> {
        self.expect(DestructionState::Requested, "decide on it")?;
        if who == self.requested_by {
            return Err(TransitionError::SamePerson {
                id: self.id.clone(),
                who: who.to_owned(),
            });
        }
        self.decided_by = Some(who.to_owned());
        self.decided_at = Some(now_utc_seconds());
        self.state = if approve {
            DestructionState::Approved
        } else {
            DestructionState::Rejected
        };
        Ok(())
    }

    /// Records the execution: only an `approved` destruction, once.
    pub fn executed(&mut self, certificate_id: &str) -> Result<(), TransitionError> {
        self.expect(DestructionState::Approved, "execute it")?;
        self.state = DestructionState::Executed;
        self.certificate_id = Some(certificate_id.to_owned());
        Ok(())
    }

    /// Refuses with [`TransitionError::WrongState`] unless in `state`.
    pub fn expect(
        &self,
        state: DestructionState,
        action: &'static str,
    ) -> Result<(), TransitionError> {
        if self.state == state {
            return Ok(());
        }
        Err(TransitionError::WrongState {
            id: self.id.clone(),
            state: self.state,
            action,
        })
    }

    /// The certificate id that goes with this destruction id.
    pub fn certificate_id_for(id: &str) -> String {
        format!("dc-{}", id.strip_prefix("dx-").unwrap_or(id))
    }

    /// The API's view of the request.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": {"kind": self.object.kind(), "id": self.object.id()},
            "zone": self.zone.as_str(),
            "basis": self.basis,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "requested_at": rfc3339(self.requested_at),
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.map(rfc3339),
            "state": self.state,
            "certificate_id": self.certificate_id,
        })
    }
}

fn checked_text(field: &'static str, value: &str) -> Result<String, TransitionError> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_TEXT_LEN || v.chars().any(char::is_control) {
        return Err(TransitionError::BadText { field });
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: &str = "spiffe://td/operator/acme/alice";
    const REG: &str = "spiffe://td/regulator/bjeit/bob";

    fn request() -> Destruction {
        let object = DestructionObject::Dataset("loans".parse().unwrap());
        let zone = "finance".parse().unwrap();
        Destruction::request("dx-01".into(), object, zone, "retention", "expired", OP).unwrap()
    }

    #[test]
    fn approve_then_execute_once() {
        let mut d = request();
        assert_eq!(d.state, DestructionState::Requested);
        assert!(d.executed("dc-01").is_err(), "executes only when approved");
        d.decide(true, REG).unwrap();
        assert_eq!(d.state, DestructionState::Approved);
        assert_eq!(d.decided_by.as_deref(), Some(REG));
        d.executed("dc-01").unwrap();
        assert_eq!(d.state, DestructionState::Executed);
        assert!(matches!(
            d.executed("dc-01"),
            Err(TransitionError::WrongState { .. })
        ));
        assert!(d.decide(true, REG).is_err(), "no second decision");
    }

    #[test]
    fn the_requester_cannot_approve_alone() {
        let mut d = request();
        assert!(matches!(
            d.decide(true, OP),
            Err(TransitionError::SamePerson { .. })
        ));
        assert_eq!(d.state, DestructionState::Requested);
    }

    #[test]
    fn rejection_is_final() {
        let mut d = request();
        d.decide(false, REG).unwrap();
        assert_eq!(d.state, DestructionState::Rejected);
        assert!(d.decide(true, REG).is_err());
        assert!(d.executed("dc-01").is_err());
    }

    #[test]
    fn texts_and_names() {
        let object = DestructionObject::Zone("z".parse().unwrap());
        let empty = Destruction::request(
            "dx-1".into(),
            object.clone(),
            "z".parse().unwrap(),
            " ",
            "r",
            OP,
        );
        assert_eq!(empty, Err(TransitionError::BadText { field: "basis" }));
        assert_eq!(object.to_string(), "zone:z");
        assert_eq!(DestructionObject::parse("zone", "z").unwrap(), object);
        assert!(DestructionObject::parse("file", "z").is_err());
        assert_eq!("approved".parse(), Ok(DestructionState::Approved));
        assert_eq!(Destruction::certificate_id_for("dx-ab"), "dc-ab");
    }
}
