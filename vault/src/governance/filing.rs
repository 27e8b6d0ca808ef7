//! Data-use filings (备案, clause 7) as a state machine, and the scope
//! checks that grants, extracts and aggregates make against them.
//!
//! ```text
//! filed ──acknowledge by the zone's regulator──▶ acknowledged
//!   │
//!   └──reject──▶ rejected
//! ```
//!
//! Before serving data outward the operator files the scenario, the scope
//! (datasets and their columns), the method (extract, aggregate or both),
//! the recipient partner organizations and the period. A grant must name
//! an `acknowledged` filing that is in its period, and lie inside it
//! ([`Filing::grant_refusal`]); each extract or aggregate made under the
//! grant is checked again ([`Filing::use_refusal`]), so a filing that has
//! run out, or whose method does not cover the use, stops the data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::period::{is_org, now, rfc3339, text, Period, Review, StepError};
use crate::ids::{DatasetId, ZoneId};

/// Most datasets in a filing's scope, and most recipients.
pub const MAX_SCOPE: usize = 64;

/// How data may leave under a filing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Row-level desensitized extracts only.
    Extract,
    /// Aggregates (statistical products) only.
    Aggregate,
    /// Both.
    Both,
}

/// One use of data under a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `POST /v1/extracts`.
    Extract,
    /// `POST /v1/aggregates`.
    Aggregate,
}

impl Method {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Extract => "extract",
            Method::Aggregate => "aggregate",
            Method::Both => "both",
        }
    }

    /// Whether the method covers `use_`.
    pub fn allows(self, use_: Use) -> bool {
        matches!(
            (self, use_),
            (Method::Both, _)
                | (Method::Extract, Use::Extract)
                | (Method::Aggregate, Use::Aggregate)
        )
    }

    /// Whether aggregates (derived data products) may be made.
    pub fn includes_products(self) -> bool {
        self.allows(Use::Aggregate)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        [Method::Extract, Method::Aggregate, Method::Both]
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| StepError::Invalid {
                field: "method",
                problem: "must be extract, aggregate or both".into(),
            })
    }
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Use::Extract => "extracts",
            Use::Aggregate => "aggregates",
        })
    }
}

/// Where a filing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilingState {
    /// Filed by the operator; awaiting the regulator.
    Filed,
    /// Acknowledged by the regulator: grants may be made under it. Final.
    Acknowledged,
    /// Rejected by the regulator. Final.
    Rejected,
}

impl FilingState {
    /// The stable name, as serialized and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filed => "filed",
            Self::Acknowledged => "acknowledged",
            Self::Rejected => "rejected",
        }
    }
}

impl fmt::Display for FilingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One dataset in a filing's scope, with the columns that may leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeEntry {
    /// The dataset.
    pub dataset: DatasetId,
    /// Its columns in scope.
    pub columns: Vec<String>,
}

/// What the operator files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFiling {
    /// The zone of every dataset in scope (its regulator acknowledges).
    pub zone: ZoneId,
    /// The scenario the data serves.
    pub scenario: String,
    /// Datasets and columns.
    pub scope: Vec<ScopeEntry>,
    /// Extract, aggregate or both.
    pub method: Method,
    /// Recipient partner organizations.
    pub recipients: Vec<String>,
    /// The period of use.
    pub period: Period,
}

/// A data-use filing and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filing {
    /// `f-` and 24 hex digits.
    pub id: String,
    /// The zone.
    pub zone: ZoneId,
    /// The scenario.
    pub scenario: String,
    /// Datasets and columns.
    pub scope: Vec<ScopeEntry>,
    /// Extract, aggregate or both.
    pub method: Method,
    /// Recipient partner organizations.
    pub recipients: Vec<String>,
    /// The period of use.
    pub period: Period,
    /// Where it stands.
    pub state: FilingState,
    /// The operator who filed it.
    pub filed_by: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub filed_at: OffsetDateTime,
    /// The regulator's acknowledgement or rejection, once made.
    pub acknowledgement: Option<Review>,
}

impl Filing {
    /// Files a new filing as `by`, checking every field.
    pub fn file(id: String, new: NewFiling, by: &str) -> Result<Self, StepError> {
        Ok(Filing {
            id,
            zone: new.zone,
            scenario: text("scenario", &new.scenario)?,
            scope: checked_scope(new.scope)?,
            method: new.method,
            recipients: checked_recipients(new.recipients)?,
            period: new.period,
            state: FilingState::Filed,
            filed_by: by.to_owned(),
            filed_at: now(),
            acknowledgement: None,
        })
    }

    /// The regulator's answer: `filed` becomes `acknowledged` or `rejected`.
    pub fn acknowledge(&mut self, review: Review) -> Result<(), StepError> {
        if self.state != FilingState::Filed {
            return Err(StepError::WrongState {
                what: "filing",
                id: self.id.clone(),
                state: self.state.as_str(),
                action: "acknowledge or reject it",
            });
        }
        self.state = if review.approve {
            FilingState::Acknowledged
        } else {
            FilingState::Rejected
        };
        self.acknowledgement = Some(review);
        Ok(())
    }

    /// Why data may not be used under this filing at `at`: it must be
    /// acknowledged and in its period.
    pub fn standing_refusal(&self, at: OffsetDateTime) -> Option<String> {
        if self.state != FilingState::Acknowledged {
            return Some(format!(
                "filing {} is {}, not acknowledged by the regulator",
                self.id, self.state
            ));
        }
        if !self.period.contains(at) {
            return Some(format!("filing {} is valid {}", self.id, self.period));
        }
        None
    }

    /// Why a grant of `columns` of `dataset` to organization `org`,
    /// expiring at `expires`, may not be made under this filing at `at`.
    pub fn grant_refusal(
        &self,
        dataset: &DatasetId,
        columns: &[String],
        org: &str,
        expires: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Option<String> {
        if let Some(refusal) = self.standing_refusal(at) {
            return Some(refusal);
        }
        let Some(entry) = self.scope.iter().find(|e| &e.dataset == dataset) else {
            return Some(format!("dataset {dataset} is outside filing {}", self.id));
        };
        if let Some(c) = columns.iter().find(|c| !entry.columns.contains(c)) {
            return Some(format!(
                "column {c:?} of dataset {dataset} is outside filing {}",
                self.id
            ));
        }
        if !self.recipients.iter().any(|r| r == org) {
            return Some(format!(
                "organization {org} is not a recipient of filing {}",
                self.id
            ));
        }
        if expires > self.period.to {
            return Some(format!(
                "the grant would outlive filing {}, valid {}",
                self.id, self.period
            ));
        }
        None
    }

    /// Why `use_` under this filing is refused at `at`, if it is.
    pub fn use_refusal(&self, use_: Use, at: OffsetDateTime) -> Option<String> {
        if let Some(refusal) = self.standing_refusal(at) {
            return Some(refusal);
        }
        if !self.method.allows(use_) {
            return Some(format!(
                "filing {} covers {} only, not {use_}",
                self.id, self.method
            ));
        }
        None
    }
}

fn checked_scope(scope: Vec<ScopeEntry>) -> Result<Vec<ScopeEntry>, StepError> {
    let invalid = |problem: String| StepError::Invalid {
        field: "scope",
        problem,
    };
    if scope.is_empty() || scope.len() > MAX_SCOPE {
        return Err(invalid(format!("must list 1 to {MAX_SCOPE} datasets")));
    }
    for (i, entry) in scope.iter().enumerate() {
        if scope[..i].iter().any(|e| e.dataset == entry.dataset) {
            return Err(invalid(format!("dataset {} appears twice", entry.dataset)));
        }
        if entry.columns.is_empty() {
            return Err(invalid(format!(
                "dataset {} lists no columns",
                entry.dataset
            )));
        }
        for (j, c) in entry.columns.iter().enumerate() {
            if entry.columns[..j].contains(c) {
                return Err(invalid(format!(
                    "dataset {} lists {c:?} twice",
                    entry.dataset
                )));
            }
        }
    }
    Ok(scope)
}

fn checked_recipients(recipients: Vec<String>) -> Result<Vec<String>, StepError> {
    let invalid = |problem: String| StepError::Invalid {
        field: "recipients",
        problem,
    };
    if recipients.is_empty() || recipients.len() > MAX_SCOPE {
        return Err(invalid(format!("must list 1 to {MAX_SCOPE} organizations")));
    }
    for (i, r) in recipients.iter().enumerate() {
        if !is_org(r) {
            return Err(invalid(format!(
                "{r:?} is not an organization name ([a-z0-9][a-z0-9._-]*)"
            )));
        }
        if recipients[..i].contains(r) {
            return Err(invalid(format!("{r} appears twice")));
        }
    }
    Ok(recipients)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn filing(method: Method) -> Filing {
        let new = NewFiling {
            zone: "credit".parse().unwrap(),
            scenario: "credit risk".into(),
            scope: vec![ScopeEntry {
                dataset: "residents".parse().unwrap(),
                columns: vec!["id".into(), "amount".into()],
            }],
            method,
            recipients: vec!["partner-a".into()],
            period: Period::parse("2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z").unwrap(),
        };
        Filing::file("f-1".into(), new, "op").unwrap()
    }

    fn ack(approve: bool) -> Review {
        Review::now(approve, "ok", "spiffe://td/regulator/bjeit/bob").unwrap()
    }

    #[test]
    fn acknowledged_once() {
        let mut f = filing(Method::Both);
        let at = now();
        let ds: DatasetId = "residents".parse().unwrap();
        let cols = vec!["id".to_owned()];
        let until = at + Duration::days(1);
        let pending = f.grant_refusal(&ds, &cols, "partner-a", until, at).unwrap();
        assert_eq!(
            pending,
            "filing f-1 is filed, not acknowledged by the regulator"
        );
        f.acknowledge(ack(true)).unwrap();
        assert_eq!(f.state, FilingState::Acknowledged);
        let again = f.acknowledge(ack(false)).unwrap_err();
        assert_eq!(
            again.to_string(),
            "filing f-1 is acknowledged; cannot acknowledge or reject it"
        );
        assert_eq!(f.grant_refusal(&ds, &cols, "partner-a", until, at), None);
        let mut r = filing(Method::Both);
        r.acknowledge(ack(false)).unwrap();
        assert_eq!(r.state, FilingState::Rejected);
        assert!(r
            .use_refusal(Use::Extract, at)
            .unwrap()
            .contains("rejected"));
    }

    #[test]
    fn scope_recipients_period_and_method() {
        let mut f = filing(Method::Extract);
        f.acknowledge(ack(true)).unwrap();
        let at = now();
        let until = at + Duration::days(1);
        let ds: DatasetId = "residents".parse().unwrap();
        let other: DatasetId = "loans".parse().unwrap();
        let id = vec!["id".to_owned()];
        let mobile = vec!["id".to_owned(), "mobile".to_owned()];
        assert!(f
            .grant_refusal(&other, &id, "partner-a", until, at)
            .unwrap()
            .contains("dataset loans is outside"));
        assert!(f
            .grant_refusal(&ds, &mobile, "partner-a", until, at)
            .unwrap()
            .contains("\"mobile\""));
        assert!(f
            .grant_refusal(&ds, &id, "partner-b", until, at)
            .unwrap()
            .contains("not a recipient"));
        let late = f.period.to + Duration::days(1);
        assert!(f
            .grant_refusal(&ds, &id, "partner-a", late, at)
            .unwrap()
            .contains("outlive"));
        assert!(f
            .grant_refusal(&ds, &id, "partner-a", until, late)
            .unwrap()
            .contains("valid"));
        assert_eq!(f.use_refusal(Use::Extract, at), None);
        assert_eq!(
            f.use_refusal(Use::Aggregate, at).unwrap(),
            "filing f-1 covers extract only, not aggregates"
        );
        assert!(Method::Both.allows(Use::Aggregate) && Method::Both.allows(Use::Extract));
        assert!(!Method::Aggregate.allows(Use::Extract));
        assert_eq!("both".parse::<Method>().unwrap(), Method::Both);
        assert!("all".parse::<Method>().is_err());
    }

    #[test]
    fn bad_scopes_and_recipients_name_the_field() {
        let base = || NewFiling {
            zone: "credit".parse().unwrap(),
            scenario: "s".into(),
            scope: vec![ScopeEntry {
                dataset: "d".parse().unwrap(),
                columns: vec!["a".into()],
            }],
            method: Method::Both,
            recipients: vec!["partner-a".into()],
            period: Period::parse("2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z").unwrap(),
        };
        let field = |n: NewFiling| match Filing::file("f".into(), n, "op") {
            Err(StepError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut n = base();
        n.scope[0].columns.clear();
        assert_eq!(field(n), "scope");
        let mut n = base();
        n.scope.push(n.scope[0].clone());
        assert_eq!(field(n), "scope");
        let mut n = base();
        n.recipients = vec!["Partner A".into()];
        assert_eq!(field(n), "recipients");
        let mut n = base();
        n.recipients.clear();
        assert_eq!(field(n), "recipients");
    }
}
