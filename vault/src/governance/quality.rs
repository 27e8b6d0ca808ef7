//! Data quality feedback (clause 4): tickets on a dataset's quality, the
//! providing organization's response, and the SLA per quality dimension.
//!
//! Any role opens a ticket on a dataset it can see. Then:
//!
//! | step      | who                                        | from                    | to          |
//! |-----------|--------------------------------------------|-------------------------|-------------|
//! | respond   | the dataset's provider organization        | `open`, `disputed`      | `responded` |
//! | dispute   | the opener (the response does not settle it)| `responded`             | `disputed`  |
//! | resolve   | the opener, or the zone's regulator (as arbiter) | `responded`, `disputed` | `resolved`  |
//!
//! The SLA is a number of working days per dimension
//! ([`crate::governance::workdays`]); a ticket's deadline is fixed when it
//! is opened. A ticket is overdue while it has no response and its
//! deadline has passed. The first response time is kept, so the operator's
//! assessment can count tickets answered within the SLA.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::period::rfc3339;
use super::refusal::{checked_text, StepRefused};
use super::workdays::{add_working_days, working_days_between};
use crate::ids::{DatasetId, ZoneId};

/// Longest description, response or note, in bytes.
pub const MAX_TEXT: usize = 4096;
/// Most fields or row numbers one ticket may name.
pub const MAX_ITEMS: usize = 1000;

/// The quality dimensions of clause 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// The values are wrong.
    Accuracy,
    /// The data does not fit the declared use.
    Relevance,
    /// Values or rows are missing.
    Completeness,
    /// The data is out of date.
    Timeliness,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Dimension; 4] = [
        Self::Accuracy,
        Self::Relevance,
        Self::Completeness,
        Self::Timeliness,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::Relevance => "relevance",
            Self::Completeness => "completeness",
            Self::Timeliness => "timeliness",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dimension {
    type Err = StepRefused;
    fn from_str(s: &str) -> Result<Self, StepRefused> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim())
            .ok_or_else(|| {
                StepRefused::invalid(
                    "dimension",
                    "must be accuracy, relevance, completeness or timeliness",
                )
            })
    }
}

/// Working days the provider has to respond, per dimension
/// (`[quality_sla]` in the server configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sla {
    /// Wrong values: 5 working days by default.
    pub accuracy: u32,
    /// Unfit data: 10 by default.
    pub relevance: u32,
    /// Missing data: 5 by default.
    pub completeness: u32,
    /// Stale data: 3 by default.
    pub timeliness: u32,
}

impl Default for Sla {
    fn default() -> Self {
        Sla {
            accuracy: 5,
            relevance: 10,
            completeness: 5,
            timeliness: 3,
        }
    }
}

impl Sla {
    /// The working days allowed for `dimension`.
    pub fn days(&self, dimension: Dimension) -> u32 {
        match dimension {
            Dimension::Accuracy => self.accuracy,
            Dimension::Relevance => self.relevance,
            Dimension::Completeness => self.completeness,
            Dimension::Timeliness => self.timeliness,
        }
    }
}

/// Where a ticket is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketState {
    /// Opened, awaiting the provider.
    Open,
    /// The provider has responded.
    Responded,
    /// The opener does not accept the response; back to the provider.
    Disputed,
    /// Closed.
    Resolved,
}

impl TicketState {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Responded => "responded",
            Self::Disputed => "disputed",
            Self::Resolved => "resolved",
        }
    }
}

/// One step's text, author and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Who (SPIFFE identity).
    pub by: String,
    /// When (UTC).
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// What they said.
    pub text: String,
}

/// What the opener supplies.
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    /// The dataset, its zone and its provider organization.
    pub dataset: &'a DatasetId,
    /// The dataset's zone.
    pub zone: &'a ZoneId,
    /// The organization that provided the dataset.
    pub provider: &'a str,
    /// The dataset's columns (empty before its import).
    pub columns: &'a [String],
    /// The dimension, as sent.
    pub dimension: &'a str,
    /// Affected fields.
    pub fields: Vec<String>,
    /// Affected rows (1-based).
    pub rows: Vec<u64>,
    /// The description.
    pub description: &'a str,
}

/// The caller's parts in a ticket, as the API establishes them from its
/// identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parties {
    /// The identity that opened it.
    pub opener: bool,
    /// A provider of the dataset's provider organization.
    pub provider: bool,
    /// The regulator supervising the dataset's zone.
    pub zone_regulator: bool,
}

/// A quality ticket as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityTicket {
    /// `qt-` and 16 hex digits.
    pub id: String,
    /// The dataset.
    pub dataset: DatasetId,
    /// Its zone.
    pub zone: ZoneId,
    /// The organization that must respond.
    pub provider: String,
    /// The quality dimension.
    pub dimension: Dimension,
    /// Affected fields.
    pub fields: Vec<String>,
    /// Affected rows (1-based).
    pub rows: Vec<u64>,
    /// What is wrong.
    pub description: String,
    /// Who opened it.
    pub opened_by: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub opened_at: OffsetDateTime,
    /// The SLA in working days when it was opened.
    pub sla_days: u32,
    /// When the first response is due.
    #[serde(with = "rfc3339")]
    pub due_at: OffsetDateTime,
    /// Workflow state.
    pub state: TicketState,
    /// The provider's responses, oldest first.
    pub responses: Vec<Note>,
    /// The opener's disputes, oldest first.
    pub disputes: Vec<Note>,
    /// How it was resolved.
    pub resolution: Option<Note>,
}

impl QualityTicket {
    /// Opens a ticket now, by `by`, under `sla`.
    pub fn open(id: String, new: NewTicket<'_>, by: &str, sla: &Sla) -> Result<Self, StepRefused> {
        let dimension: Dimension = new.dimension.parse()?;
        check_items(&new)?;
        let now = super::period::now();
        let sla_days = sla.days(dimension);
        Ok(QualityTicket {
            id,
            dataset: new.dataset.clone(),
            zone: new.zone.clone(),
            provider: new.provider.to_owned(),
            dimension,
            fields: new.fields,
            rows: new.rows,
            description: checked_text("description", new.description, MAX_TEXT)?,
            opened_by: by.to_owned(),
            opened_at: now,
            sla_days,
            due_at: add_working_days(now, sla_days),
            state: TicketState::Open,
            responses: Vec::new(),
            disputes: Vec::new(),
            resolution: None,
        })
    }

    /// The provider's response.
    pub fn respond(&mut self, parties: Parties, by: &str, text: &str) -> Result<(), StepRefused> {
        if !parties.provider {
            return Err(not_allowed(
                "respond",
                format!("only the provider organization {} responds", self.provider),
            ));
        }
        self.expect(&[TicketState::Open, TicketState::Disputed], "respond")?;
        self.responses.push(note(by, text)?);
        self.state = TicketState::Responded;
        Ok(())
    }

    /// The opener does not accept the response.
    pub fn dispute(&mut self, parties: Parties, by: &str, text: &str) -> Result<(), StepRefused> {
        if !parties.opener {
            return Err(not_allowed("dispute", "only the opener disputes".into()));
        }
        self.expect(&[TicketState::Responded], "dispute")?;
        self.disputes.push(note(by, text)?);
        self.state = TicketState::Disputed;
        Ok(())
    }

    /// Closes the ticket: the opener accepts, or the regulator arbitrates.
    pub fn resolve(&mut self, parties: Parties, by: &str, text: &str) -> Result<(), StepRefused> {
        if !(parties.opener || parties.zone_regulator) {
            let why = "only the opener or the zone's regulator resolves".into();
            return Err(not_allowed("resolve", why));
        }
        self.expect(&[TicketState::Responded, TicketState::Disputed], "resolve")?;
        self.resolution = Some(note(by, text)?);
        self.state = TicketState::Resolved;
        Ok(())
    }

    /// When the provider first responded.
    pub fn first_response_at(&self) -> Option<OffsetDateTime> {
        self.responses.first().map(|r| r.at)
    }

    /// Working days the first response took (so far, if none yet).
    pub fn response_working_days(&self, now: OffsetDateTime) -> f64 {
        working_days_between(self.opened_at, self.first_response_at().unwrap_or(now))
    }

    /// Whether the first response came by the deadline.
    pub fn answered_within_sla(&self) -> bool {
        self.first_response_at().is_some_and(|t| t <= self.due_at)
    }

    /// Unanswered past its deadline at `now`.
    pub fn is_overdue(&self, now: OffsetDateTime) -> bool {
        self.first_response_at().is_none()
            && self.state != TicketState::Resolved
            && now > self.due_at
    }

    fn expect(&self, allowed: &[TicketState], action: &'static str) -> Result<(), StepRefused> {
        if allowed.contains(&self.state) {
            return Ok(());
        }
        Err(StepRefused::WrongState {
            what: "quality ticket",
            id: self.id.clone(),
            state: self.state.as_str(),
            action,
        })
    }
}

fn not_allowed(action: &'static str, why: String) -> StepRefused {
    StepRefused::NotAllowed { action, why }
}

fn note(by: &str, text: &str) -> Result<Note, StepRefused> {
    Ok(Note {
        by: by.to_owned(),
        at: super::period::now(),
        text: checked_text("text", text, MAX_TEXT)?,
    })
}

/// At least one field or row; fields must be columns of the dataset (once
/// it has columns), each once; rows are 1-based.
fn check_items(new: &NewTicket<'_>) -> Result<(), StepRefused> {
    if new.fields.is_empty() && new.rows.is_empty() {
        return Err(StepRefused::invalid(
            "fields",
            "name the affected fields or rows",
        ));
    }
    if new.fields.len() > MAX_ITEMS || new.rows.len() > MAX_ITEMS {
        return Err(StepRefused::invalid(
            "fields",
            format!("at most {MAX_ITEMS} fields and {MAX_ITEMS} rows"),
        ));
    }
    for (i, f) in new.fields.iter().enumerate() {
        if !new.columns.is_empty() && !new.columns.contains(f) {
            let problem = format!("no column {f:?} in dataset {}", new.dataset);
            return Err(StepRefused::invalid("fields", problem));
        }
        if new.fields[..i].contains(f) {
            return Err(StepRefused::invalid(
                "fields",
                format!("{f:?} appears twice"),
            ));
        }
    }
    if new.rows.contains(&0) {
        return Err(StepRefused::invalid("rows", "row numbers start at 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(dimension: &str, sla: &Sla) -> Result<QualityTicket, StepRefused> {
        let dataset: DatasetId = "loans".parse().unwrap();
        let zone: ZoneId = "finance".parse().unwrap();
        let columns = vec!["id".to_owned(), "amount".to_owned()];
        let new = NewTicket {
            dataset: &dataset,
            zone: &zone,
            provider: "bureau-x",
            columns: &columns,
            dimension,
            fields: vec!["amount".into()],
            rows: vec![3, 9],
            description: "amounts are in fen, not yuan",
        };
        QualityTicket::open("qt-1".into(), new, "spiffe://t/analyst/a/carol", sla)
    }

    const PROVIDER: Parties = Parties {
        opener: false,
        provider: true,
        zone_regulator: false,
    };
    const OPENER: Parties = Parties {
        opener: true,
        provider: false,
        zone_regulator: false,
    };
    const REGULATOR: Parties = Parties {
        opener: false,
        provider: false,
        zone_regulator: true,
    };

    #[test]
    fn the_full_cycle_with_a_dispute() {
        let mut t = ticket("accuracy", &Sla::default()).unwrap();
        assert_eq!((t.state, t.sla_days), (TicketState::Open, 5));
        t.respond(PROVIDER, "p", "fixed upstream").unwrap();
        let first = t.first_response_at().unwrap();
        t.dispute(OPENER, "o", "still wrong in row 9").unwrap();
        assert_eq!(t.state, TicketState::Disputed);
        t.respond(PROVIDER, "p", "row 9 fixed").unwrap();
        assert_eq!(t.first_response_at(), Some(first));
        t.resolve(OPENER, "o", "thanks").unwrap();
        assert_eq!(t.state, TicketState::Resolved);
        assert_eq!(t.responses.len(), 2);
        assert!(t.answered_within_sla());
    }

    #[test]
    fn wrong_parties_are_not_allowed_and_change_nothing() {
        let mut t = ticket("timeliness", &Sla::default()).unwrap();
        let before = t.clone();
        let err = t.respond(OPENER, "o", "x").unwrap_err();
        assert!(matches!(
            err,
            StepRefused::NotAllowed {
                action: "respond",
                ..
            }
        ));
        t.respond(PROVIDER, "p", "done").unwrap();
        assert!(matches!(
            t.dispute(REGULATOR, "r", "no"),
            Err(StepRefused::NotAllowed { .. })
        ));
        assert!(matches!(
            t.resolve(PROVIDER, "p", "closing my own"),
            Err(StepRefused::NotAllowed { .. })
        ));
        t.resolve(REGULATOR, "r", "arbitrated").unwrap();
        assert_ne!(t, before);
    }

    #[test]
    fn wrong_states_are_conflicts() {
        let mut t = ticket("completeness", &Sla::default()).unwrap();
        let err = t.resolve(OPENER, "o", "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "quality ticket qt-1 is open; cannot resolve"
        );
        assert!(matches!(
            t.dispute(OPENER, "o", "x"),
            Err(StepRefused::WrongState { .. })
        ));
        t.respond(PROVIDER, "p", "ok").unwrap();
        assert!(matches!(
            t.respond(PROVIDER, "p", "again"),
            Err(StepRefused::WrongState { .. })
        ));
        t.resolve(OPENER, "o", "ok").unwrap();
        let err = t.resolve(OPENER, "o", "x").unwrap_err();
        assert!(err.to_string().contains("is resolved"), "{err}");
    }

    #[test]
    fn bad_input_names_the_field() {
        let sla = Sla::default();
        let err = ticket("speed", &sla).unwrap_err();
        assert!(matches!(
            err,
            StepRefused::Invalid {
                field: "dimension",
                ..
            }
        ));
        let dataset: DatasetId = "loans".parse().unwrap();
        let zone: ZoneId = "finance".parse().unwrap();
        let cols = vec!["id".to_owned()];
        let mut new = NewTicket {
            dataset: &dataset,
            zone: &zone,
            provider: "p",
            columns: &cols,
            dimension: "accuracy",
            fields: vec!["nope".into()],
            rows: vec![],
            description: "d",
        };
        let err = QualityTicket::open("q".into(), new.clone(), "o", &sla).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fields: no column \"nope\" in dataset loans"
        );
        new.fields = vec![];
        let err = QualityTicket::open("q".into(), new.clone(), "o", &sla).unwrap_err();
        assert!(matches!(
            err,
            StepRefused::Invalid {
                field: "fields",
                ..
            }
        ));
        new.rows = vec![0];
        let err = QualityTicket::open("q".into(), new.clone(), "o", &sla).unwrap_err();
        assert!(matches!(err, StepRefused::Invalid { field: "rows", .. }));
        new.rows = vec![1];
        new.description = " ";
        let err = QualityTicket::open("q".into(), new, "o", &sla).unwrap_err();
        assert!(matches!(
            err,
            StepRefused::Invalid {
                field: "description",
                ..
            }
        ));
    }

    #[test]
    fn zero_day_sla_is_overdue_at_once_until_answered() {
        let sla = Sla {
            timeliness: 0,
            ..Sla::default()
        };
        let mut t = ticket("timeliness", &sla).unwrap();
        assert_eq!(t.due_at, t.opened_at);
        let later = t.opened_at + time::Duration::seconds(1);
        assert!(t.is_overdue(later));
        assert!(!ticket("accuracy", &sla).unwrap().is_overdue(later));
        t.respond(PROVIDER, "p", "ok").unwrap();
        assert!(!t.is_overdue(later + time::Duration::days(30)));
    }

    #[test]
    fn stored_form_round_trips() {
        let t = ticket("relevance", &Sla::default()).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"dimension\":\"relevance\""), "{json}");
        let back: QualityTicket = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn sla_config_has_defaults_and_refuses_unknown_keys() {
        let sla: Sla = toml_like(r#"{"timeliness": 0}"#).unwrap();
        assert_eq!((sla.timeliness, sla.accuracy), (0, 5));
        assert!(toml_like(r#"{"speed": 1}"#).is_err());
    }

    fn toml_like(json: &str) -> Result<Sla, serde_json::Error> {
        serde_json::from_str(json)
    }
}
