//! Operator performance assessment (clause 9).
//!
//! The Bureau's regulator records, for one operator organization and one
//! period, the indicators the appliance computes from the catalog and the
//! ledger ([`Indicators`]) and a rating. Periods of one operator follow
//! each other: a new one may not start before the last one ended, so the
//! recorded order is the period order. Two poor ratings in a row terminate
//! the operator's authorization ([`Assessment::terminates`]); what that
//! does (grants revoked, grants and extracts refused, the zones' exit
//! procedure) is a [`Termination`] that the API carries out and the
//! catalog keeps. A terminated operator is assessed no more.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::period::{rfc3339, Period};
use super::refusal::{checked_text, StepRefused};
use crate::ids::ZoneId;
use crate::ledger::{Decision, EntryKind, LedgerEntry};

/// The ledger event of a security-monitoring alert.
pub const ALERT_EVENT: &str = "security.alert";

/// Longest note, in bytes.
pub const MAX_NOTES: usize = 4096;

/// The regulator's rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    /// 优秀.
    Excellent,
    /// 良好.
    Good,
    /// 差: two in a row terminate the authorization.
    Poor,
}

impl Rating {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Excellent => "excellent",
            Self::Good => "good",
            Self::Poor => "poor",
        }
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Rating {
    type Err = StepRefused;
    fn from_str(s: &str) -> Result<Self, StepRefused> {
        [Self::Excellent, Self::Good, Self::Poor]
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| StepRefused::invalid("rating", "must be excellent, good or poor"))
    }
}

/// Quality tickets on the operator's zones opened in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketIndicators {
    /// Opened.
    pub opened: u64,
    /// With a response.
    pub answered: u64,
    /// First response by the deadline.
    pub answered_within_sla: u64,
    /// Unanswered past the deadline at recording time.
    pub overdue: u64,
    /// Mean working days to the first response, of those answered.
    pub mean_response_working_days: Option<f64>,
}

/// Feedback data of the operator's zones submitted in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackIndicators {
    /// Records by state.
    pub by_state: BTreeMap<String, u64>,
    /// Department applications for them, by state.
    pub applications: BTreeMap<String, u64>,
}

/// What the ledger says about the period (entries timed inside it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerIndicators {
    /// Share applications filed by the operator's identities.
    pub share_applications_filed: u64,
    /// Regulator assessments and provider decisions on share applications,
    /// by `approved` / `refused` (from the step's recorded details).
    pub share_application_outcomes: BTreeMap<String, u64>,
    /// Filings the operator's identities filed.
    pub filings_filed: u64,
    /// Usage reports produced.
    pub usage_reports: u64,
    /// Security-monitoring alerts raised (`security.alert` events).
    pub alerts: u64,
    /// Requests by the operator's identities that were refused.
    pub operator_requests_refused: u64,
}

/// Everything an assessment measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Indicators {
    /// From the ledger.
    pub ledger: LedgerIndicators,
    /// From the quality tickets.
    pub quality_tickets: TicketIndicators,
    /// From the feedback records.
    pub feedback: FeedbackIndicators,
    /// Share applications for the operator's zones filed in the period, by
    /// state (outcome).
    pub share_applications: BTreeMap<String, u64>,
    /// The operator's filings acknowledged and in their period at
    /// recording time.
    pub filings_current: u64,
    /// Where an indicator could not be measured, and why.
    pub notes: Vec<String>,
}

/// One recorded assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// `as-` and 16 hex digits.
    pub id: String,
    /// The assessed operator organization.
    pub operator: String,
    /// The period assessed.
    pub period: Period,
    /// The regulator's rating.
    pub rating: Rating,
    /// The regulator's notes.
    pub notes: String,
    /// What the appliance measured.
    pub indicators: Indicators,
    /// Who recorded it.
    pub recorded_by: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// Whether this assessment terminated the operator's authorization.
    pub terminates: bool,
}

/// What the regulator supplies.
#[derive(Debug, Clone)]
pub struct NewAssessment<'a> {
    /// The assessed operator organization.
    pub operator: &'a str,
    /// The period.
    pub period: Period,
    /// The rating, as sent.
    pub rating: &'a str,
    /// Notes.
    pub notes: &'a str,
}

impl Assessment {
    /// Records an assessment after `previous` (this operator's, in recorded
    /// order).
    pub fn record(
        id: String,
        new: NewAssessment<'_>,
        indicators: Indicators,
        previous: &[Assessment],
        by: &str,
    ) -> Result<Assessment, StepRefused> {
        let rating: Rating = new.rating.parse()?;
        let last = previous.last();
        if let Some(last) = last.filter(|l| new.period.from < l.period.to) {
            return Err(StepRefused::WrongState {
                what: "the assessments of",
                id: format!("{} (last: {} for {})", new.operator, last.id, last.period),
                state: "already covering a later time",
                action: "assess a period starting before the last one ended",
            });
        }
        Ok(Assessment {
            id,
            operator: new.operator.to_owned(),
            period: new.period,
            rating,
            notes: checked_text("notes", new.notes, MAX_NOTES)?,
            indicators,
            recorded_by: by.to_owned(),
            recorded_at: super::period::now(),
            terminates: rating == Rating::Poor && last.is_some_and(|l| l.rating == Rating::Poor),
        })
    }
}

/// The end of an operator's authorization, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Termination {
    /// The operator organization.
    pub operator: String,
    /// The assessment (the second poor one) that terminated it.
    pub assessment: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// The grants revoked.
    pub revoked_grants: Vec<String>,
    /// The zones sent into the exit procedure.
    pub zones: Vec<ZoneId>,
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the operating authorization of {} was terminated by assessment {}",
            self.operator, self.assessment
        )
    }
}

/// The organization segment of a SPIFFE identity
/// (`spiffe://<td>/<role>/<org>/<person>`).
fn org_of(identity: &str) -> Option<&str> {
    identity.strip_prefix("spiffe://")?.split('/').nth(2)
}

/// Counts the ledger indicators over `entries` timed inside `period`, for
/// `operator`.
pub fn ledger_indicators<'a>(
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
    period: &Period,
    operator: &str,
) -> LedgerIndicators {
    let mut out = LedgerIndicators::default();
    for e in entries {
        out.add(e, period, operator);
    }
    out
}

impl LedgerIndicators {
    /// Counts `e` if it is timed inside `period` (for streaming a ledger
    /// through in batches).
    pub fn add(&mut self, e: &LedgerEntry, period: &Period, operator: &str) {
        if period.contains(e.time) {
            count(self, e, org_of(&e.identity) == Some(operator));
        }
    }
}

fn count(out: &mut LedgerIndicators, e: &LedgerEntry, by_operator: bool) {
    let allowed = e.decision == Decision::Allow;
    if e.kind == EntryKind::Event {
        out.alerts += u64::from(e.route == ALERT_EVENT);
        return;
    }
    if by_operator && e.decision == Decision::Deny {
        out.operator_requests_refused += 1;
    }
    if !allowed {
        return;
    }
    match (e.method.as_str(), e.route.as_str()) {
        ("POST", "/v1/share-applications") if by_operator => out.share_applications_filed += 1,
        (
            "POST",
            "/v1/share-applications/{id}/assessment" | "/v1/share-applications/{id}/decision",
        ) => {
            let approve = e.details.as_ref().and_then(|d| d.get("approve")?.as_bool());
            let key = match approve {
                Some(true) => "approved",
                Some(false) => "refused",
                None => "unknown",
            };
            *out.share_application_outcomes
                .entry(key.to_owned())
                .or_insert(0) += 1;
        }
        ("POST", "/v1/filings") if by_operator => out.filings_filed += 1,
        ("GET", "/v1/filings/{id}/usage-report") => out.usage_reports += 1,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(from: &str, to: &str) -> Period {
        Period::parse(from, to).unwrap()
    }

    fn record(previous: &[Assessment], p: Period, rating: &str) -> Result<Assessment, StepRefused> {
        let new = NewAssessment {
            operator: "zone-op",
            period: p,
            rating,
            notes: "quarterly review",
        };
        Assessment::record("as-1".into(), new, Indicators::default(), previous, "r")
    }

    #[test]
    fn two_poor_ratings_in_a_row_terminate() {
        let q1 = period("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
        let q2 = period("2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z");
        let q3 = period("2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z");
        let first = record(&[], q1, "poor").unwrap();
        assert!(!first.terminates);
        let good = record(std::slice::from_ref(&first), q2, "good").unwrap();
        assert!(!good.terminates);
        let after_good = record(&[first.clone(), good], q3, "poor").unwrap();
        assert!(!after_good.terminates);
        let second = record(std::slice::from_ref(&first), q2, "poor").unwrap();
        assert!(second.terminates);
    }

    #[test]
    fn periods_may_not_go_back_and_input_is_checked() {
        let q1 = period("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
        let first = record(&[], q1, "good").unwrap();
        let overlapping = period("2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z");
        let err = record(std::slice::from_ref(&first), overlapping, "good").unwrap_err();
        assert!(matches!(err, StepRefused::WrongState { .. }));
        assert!(err.to_string().contains("as-1"), "{err}");
        let err = record(&[], q1, "fine").unwrap_err();
        assert_eq!(err.to_string(), "rating: must be excellent, good or poor");
        let new = NewAssessment {
            operator: "zone-op",
            period: q1,
            rating: "good",
            notes: "",
        };
        let err = Assessment::record("a".into(), new, Indicators::default(), &[], "r");
        assert!(matches!(
            err,
            Err(StepRefused::Invalid { field: "notes", .. })
        ));
    }

    fn entry(identity: &str, method: &str, route: &str, decision: Decision) -> LedgerEntry {
        let mut e = LedgerEntry::new(EntryKind::Request, identity, method, route, decision);
        e.time = OffsetDateTime::parse(
            "2026-02-01T00:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        e
    }

    #[test]
    fn ledger_counts_are_per_operator_and_period() {
        let op = "spiffe://t/operator/zone-op/alice";
        let other = "spiffe://t/operator/other-op/eve";
        let reg = "spiffe://t/regulator/bjeit/bob";
        let mut assessed = entry(
            reg,
            "POST",
            "/v1/share-applications/{id}/assessment",
            Decision::Allow,
        );
        assessed.details = Some(serde_json::json!({"approve": true}));
        let mut alert = entry("system", "EVENT", ALERT_EVENT, Decision::Allow);
        alert.kind = EntryKind::Event;
        let mut outside = entry(op, "POST", "/v1/filings", Decision::Allow);
        outside.time = outside.time.replace_year(2025).unwrap();
        let entries = vec![
            entry(op, "POST", "/v1/share-applications", Decision::Allow),
            entry(other, "POST", "/v1/share-applications", Decision::Allow),
            assessed,
            entry(op, "POST", "/v1/filings", Decision::Allow),
            entry(op, "POST", "/v1/filings", Decision::Deny),
            outside,
            entry(reg, "GET", "/v1/filings/{id}/usage-report", Decision::Allow),
            alert,
        ];
        let q1 = period("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
        let got = ledger_indicators(&entries, &q1, "zone-op");
        assert_eq!(got.share_applications_filed, 1);
        assert_eq!(got.share_application_outcomes.get("approved"), Some(&1));
        assert_eq!(got.filings_filed, 1);
        assert_eq!(got.operator_requests_refused, 1);
        assert_eq!(got.usage_reports, 1);
        assert_eq!(got.alerts, 1);
    }
}
