//! Government data-sharing applications (clause 3) as a state machine.
//!
//! ```text
//! filed ──assess(approve) by the zone's regulator──▶ assessed ──decide(approve) by the provider──▶ approved
//!   │                                                   │
//!   └──assess(refuse)──▶ rejected                       └──decide(refuse)──▶ declined
//! ```
//!
//! The operator applies for named data items (each a list of fields) of a
//! providing department, for one scenario and purpose, over a period. Only
//! an `approved` application, inside its period, lets a `government-share`
//! dataset be created under it ([`ShareApplication::admits_dataset`]), and
//! that dataset's columns must be among the approved fields
//! ([`ShareApplication::excess_columns`]). `rejected`, `declined` and
//! `approved` are final.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::period::{is_org, now, rfc3339, text, Period, Review, StepError};
use crate::ids::ZoneId;

/// Most items in one application, and most fields in one item.
pub const MAX_ITEMS: usize = 64;
/// Most fields in one item.
pub const MAX_FIELDS: usize = 512;

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShareState {
    /// Filed by the operator; awaiting the regulator's assessment.
    Filed,
    /// Assessed and confirmed by the regulator; awaiting the provider.
    Assessed,
    /// Refused by the regulator. Final.
    Rejected,
    /// Approved by the provider after the regulator. Final.
    Approved,
    /// Refused by the provider. Final.
    Declined,
}

const STATES: [ShareState; 5] = [
    ShareState::Filed,
    ShareState::Assessed,
    ShareState::Rejected,
    ShareState::Approved,
    ShareState::Declined,
];

impl ShareState {
    /// The stable name, as serialized and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filed => "filed",
            Self::Assessed => "assessed",
            Self::Rejected => "rejected",
            Self::Approved => "approved",
            Self::Declined => "declined",
        }
    }
}

impl fmt::Display for ShareState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShareState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        STATES
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown share application state {s:?}"))
    }
}

/// One requested data item: a name from the provider's catalog and the
/// fields wanted of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareItem {
    /// The item's name.
    pub name: String,
    /// The fields applied for.
    pub fields: Vec<String>,
}

/// What the operator files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShare {
    /// The zone the data is for (its regulator assesses).
    pub zone: ZoneId,
    /// The concrete scenario.
    pub scenario: String,
    /// The providing department (organization).
    pub provider: String,
    /// The items and fields applied for.
    pub items: Vec<ShareItem>,
    /// The purpose.
    pub purpose: String,
    /// The sharing period.
    pub period: Period,
}

/// A sharing application and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareApplication {
    /// `sa-` and 24 hex digits.
    pub id: String,
    /// The zone.
    pub zone: ZoneId,
    /// The concrete scenario.
    pub scenario: String,
    /// The providing department.
    pub provider: String,
    /// The items and fields applied for.
    pub items: Vec<ShareItem>,
    /// The purpose.
    pub purpose: String,
    /// The sharing period.
    pub period: Period,
    /// Where it stands.
    pub state: ShareState,
    /// The operator who filed it.
    pub filed_by: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub filed_at: OffsetDateTime,
    /// The regulator's assessment, once made.
    pub assessment: Option<Review>,
    /// The provider's decision, once made.
    pub decision: Option<Review>,
}

impl ShareApplication {
    /// Files a new application as `by`, checking every field.
    pub fn file(id: String, new: NewShare, by: &str) -> Result<Self, StepError> {
        if !is_org(&new.provider) {
            return Err(StepError::Invalid {
                field: "provider",
                problem: "must be an organization name matching [a-z0-9][a-z0-9._-]*".into(),
            });
        }
        Ok(ShareApplication {
            id,
            zone: new.zone,
            scenario: text("scenario", &new.scenario)?,
            provider: new.provider,
            items: checked_items(new.items)?,
            purpose: text("purpose", &new.purpose)?,
            period: new.period,
            state: ShareState::Filed,
            filed_by: by.to_owned(),
            filed_at: now(),
            assessment: None,
            decision: None,
        })
    }

    /// The regulator's assessment: `filed` becomes `assessed` or `rejected`.
    pub fn assess(&mut self, review: Review) -> Result<(), StepError> {
        self.expect(ShareState::Filed, "assess it")?;
        self.state = if review.approve {
            ShareState::Assessed
        } else {
            ShareState::Rejected
        };
        self.assessment = Some(review);
        Ok(())
    }

    /// The provider's decision: `assessed` becomes `approved` or `declined`.
    pub fn decide(&mut self, review: Review) -> Result<(), StepError> {
        self.expect(ShareState::Assessed, "decide on it")?;
        self.state = if review.approve {
            ShareState::Approved
        } else {
            ShareState::Declined
        };
        self.decision = Some(review);
        Ok(())
    }

    fn expect(&self, state: ShareState, action: &'static str) -> Result<(), StepError> {
        if self.state == state {
            return Ok(());
        }
        Err(StepError::WrongState {
            what: "share application",
            id: self.id.clone(),
            state: self.state.as_str(),
            action,
        })
    }

    /// Every field approved, over all items.
    pub fn approved_fields(&self) -> BTreeSet<&str> {
        self.items
            .iter()
            .flat_map(|i| i.fields.iter().map(String::as_str))
            .collect()
    }

    /// Why a `government-share` dataset of `zone` from `provider` may not
    /// be created under this application at `at`, if so.
    pub fn admits_dataset(
        &self,
        zone: &ZoneId,
        provider: &str,
        at: OffsetDateTime,
    ) -> Option<String> {
        if self.state != ShareState::Approved {
            let missing = match self.state {
                ShareState::Filed => "it awaits the regulator's assessment",
                ShareState::Assessed => "it awaits the provider's decision",
                _ => "it was refused",
            };
            return Some(format!(
                "share application {} is {}, not approved by both the regulator and the provider: {missing}",
                self.id, self.state
            ));
        }
        if &self.zone != zone {
            return Some(format!(
                "share application {} is for zone {}",
                self.id, self.zone
            ));
        }
        if self.provider != provider {
            return Some(format!(
                "share application {} is for provider {}, not {provider}",
                self.id, self.provider
            ));
        }
        if !self.period.contains(at) {
            return Some(format!(
                "share application {} is valid {}",
                self.id, self.period
            ));
        }
        None
    }

    /// The columns (in their order) that are not among the approved fields.
    pub fn excess_columns<'a>(&self, columns: &'a [String]) -> Vec<&'a str> {
        let approved = self.approved_fields();
        columns
            .iter()
            .map(String::as_str)
            .filter(|c| !approved.contains(c))
            .collect()
    }
}

fn checked_items(items: Vec<ShareItem>) -> Result<Vec<ShareItem>, StepError> {
    let invalid = |problem: String| StepError::Invalid {
        field: "items",
        problem,
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(invalid(format!("must list 1 to {MAX_ITEMS} items")));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let name = text("items.name", &item.name)?;
        if item.fields.is_empty() || item.fields.len() > MAX_FIELDS {
            return Err(invalid(format!(
                "item {name:?} must list 1 to {MAX_FIELDS} fields"
            )));
        }
        let mut fields: Vec<String> = Vec::with_capacity(item.fields.len());
        for f in &item.fields {
            let f = text("items.fields", f)?;
            if fields.contains(&f) {
                return Err(invalid(format!("item {name:?} lists field {f:?} twice")));
            }
            fields.push(f);
        }
        out.push(ShareItem { name, fields });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_share() -> NewShare {
        NewShare {
            zone: "credit".parse().unwrap(),
            scenario: "small business credit".into(),
            provider: "bureau-x".into(),
            items: vec![ShareItem {
                name: "residents".into(),
                fields: vec!["id".into(), "name".into(), "amount".into()],
            }],
            purpose: "credit model".into(),
            period: Period::parse("2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z").unwrap(),
        }
    }

    fn review(approve: bool) -> Review {
        Review::now(approve, "checked", "spiffe://td/regulator/bjeit/bob").unwrap()
    }

    #[test]
    fn approved_by_both_in_order() {
        let mut a = ShareApplication::file("sa-1".into(), new_share(), "op").unwrap();
        assert_eq!(a.state, ShareState::Filed);
        let zone: ZoneId = "credit".parse().unwrap();
        let at = now();
        assert!(a
            .admits_dataset(&zone, "bureau-x", at)
            .unwrap()
            .contains("awaits the regulator"));
        // The provider cannot decide before the regulator assessed.
        let early = a.decide(review(true)).unwrap_err();
        assert_eq!(
            early.to_string(),
            "share application sa-1 is filed; cannot decide on it"
        );
        a.assess(review(true)).unwrap();
        assert_eq!(a.state, ShareState::Assessed);
        assert!(a
            .admits_dataset(&zone, "bureau-x", at)
            .unwrap()
            .contains("awaits the provider"));
        assert!(matches!(
            a.assess(review(true)),
            Err(StepError::WrongState {
                state: "assessed",
                ..
            })
        ));
        a.decide(review(true)).unwrap();
        assert_eq!(a.state, ShareState::Approved);
        assert_eq!(a.admits_dataset(&zone, "bureau-x", at), None);
        assert!(a
            .admits_dataset(&zone, "bureau-y", at)
            .unwrap()
            .contains("provider"));
        assert!(a
            .admits_dataset(&"other".parse().unwrap(), "bureau-x", at)
            .is_some());
        assert!(a.decide(review(false)).is_err());
        let cols = vec!["id".to_owned(), "mobile".to_owned(), "amount".to_owned()];
        assert_eq!(a.excess_columns(&cols), vec!["mobile"]);
    }

    #[test]
    fn refusals_are_final() {
        let mut a = ShareApplication::file("sa-2".into(), new_share(), "op").unwrap();
        a.assess(review(false)).unwrap();
        assert_eq!(a.state, ShareState::Rejected);
        assert!(a.decide(review(true)).is_err());
        let mut b = ShareApplication::file("sa-3".into(), new_share(), "op").unwrap();
        b.assess(review(true)).unwrap();
        b.decide(review(false)).unwrap();
        assert_eq!(b.state, ShareState::Declined);
        assert!(b
            .admits_dataset(&b.zone.clone(), "bureau-x", now())
            .unwrap()
            .contains("declined"));
        for s in STATES {
            assert_eq!(s.as_str().parse::<ShareState>().unwrap(), s);
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        let mut n = new_share();
        n.items.clear();
        assert!(matches!(
            ShareApplication::file("x".into(), n, "op"),
            Err(StepError::Invalid { field: "items", .. })
        ));
        let mut n = new_share();
        n.items[0].fields.push("id".into());
        assert!(matches!(
            ShareApplication::file("x".into(), n, "op"),
            Err(StepError::Invalid { field: "items", .. })
        ));
        let mut n = new_share();
        n.provider = "Bureau X".into();
        assert!(matches!(
            ShareApplication::file("x".into(), n, "op"),
            Err(StepError::Invalid {
                field: "provider",
                ..
            })
        ));
        let mut n = new_share();
        n.scenario = " ".into();
        assert!(matches!(
            ShareApplication::file("x".into(), n, "op"),
            Err(StepError::Invalid {
                field: "scenario",
                ..
            })
        ));
    }
}
