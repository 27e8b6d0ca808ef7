//! Feedback data (反哺, clause 5): derived datasets the operator gives back
//! to government departments.
//!
//! 1. The zone's operator submits a dataset whose source is `feedback`
//!    ([`Feedback::submit`]); the sensitive-data detection pass runs over
//!    its rows ([`scan`]) and its [`Findings`] are part of the record.
//! 2. The zone's regulator approves it (`available`) or rejects it,
//!    seeing the findings ([`Feedback::review`]).
//! 3. A provider-role department applies for an available feedback dataset,
//!    naming a purpose and columns ([`FeedbackApplication::apply`]).
//! 4. The zone's regulator and the zone's operator each review the
//!    application, in either order ([`FeedbackApplication::review`]); one
//!    refusal rejects it, two approvals approve it.
//! 5. Only then may the operator grant the department's organization (or
//!    one of its analysts) the approved columns, with an ordinary grant:
//!    [`grant_refusal`] is the check the grant route makes on a feedback
//!    dataset, so every grant stays one model with one audit trail.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::period::{rfc3339, Review};
use super::refusal::{checked_text, StepRefused};
use crate::detect::ColumnProfiler;
use crate::ids::{DatasetId, ZoneId};
use crate::schema::{ColumnSchema, Grade, SemanticType};

/// Longest description, purpose or reason, in bytes.
pub const MAX_TEXT: usize = 2048;

/// Where a feedback dataset is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedbackState {
    /// Submitted by the operator, awaiting the regulator.
    Submitted,
    /// Approved by the regulator: departments may apply.
    Available,
    /// Refused by the regulator.
    Rejected,
}

impl FeedbackState {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Available => "available",
            Self::Rejected => "rejected",
        }
    }
}

/// How much of a column matched one detected type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeMatch {
    /// The type.
    #[serde(rename = "type")]
    pub semantic_type: SemanticType,
    /// Fraction of non-empty values that matched it.
    pub fraction: f32,
}

/// What detection found in one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnFinding {
    /// The column.
    pub column: String,
    /// The type detection proposes.
    #[serde(rename = "type")]
    pub semantic_type: SemanticType,
    /// The grade detection proposes.
    pub grade: Grade,
    /// `general-3` or above: personal or sensitive information.
    pub sensitive: bool,
    /// Every type some value matched, best first.
    pub matches: Vec<TypeMatch>,
}

/// The detection pass over a feedback dataset's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// Rows scanned (every row).
    pub rows_scanned: u64,
    /// One entry per column, in dataset order.
    pub columns: Vec<ColumnFinding>,
    /// The columns found sensitive.
    pub sensitive_columns: Vec<String>,
}

/// Runs the import's detection (a [`ColumnProfiler`] per column) over every
/// row of a dataset file's `rows` table.
pub fn scan(conn: &Connection, columns: &[ColumnSchema]) -> Result<Findings, rusqlite::Error> {
    let names: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
        .collect();
    let mut profilers = vec![ColumnProfiler::new(); columns.len()];
    let mut rows_scanned = 0u64;
    if !names.is_empty() {
        let mut stmt = conn.prepare(&format!("SELECT {} FROM rows", names.join(", ")))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            rows_scanned += 1;
            for (i, p) in profilers.iter_mut().enumerate() {
                if let Some(v) = row.get::<_, Option<String>>(i)? {
                    p.observe(&v);
                }
            }
        }
    }
    let found: Vec<ColumnFinding> = columns
        .iter()
        .zip(profilers)
        .map(|(c, p)| finding(&c.name, p))
        .collect();
    Ok(Findings {
        rows_scanned,
        sensitive_columns: found
            .iter()
            .filter(|f| f.sensitive)
            .map(|f| f.column.clone())
            .collect(),
        columns: found,
    })
}

fn finding(column: &str, profiler: ColumnProfiler) -> ColumnFinding {
    let matches = profiler
        .candidates()
        .into_iter()
        .map(|(semantic_type, fraction)| TypeMatch {
            semantic_type,
            fraction,
        })
        .collect();
    let schema = profiler.finish(column);
    ColumnFinding {
        column: column.to_owned(),
        semantic_type: schema.semantic_type,
        grade: schema.grade,
        sensitive: schema.grade >= Grade::General3,
        matches,
    }
}

/// A feedback dataset as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// `fb-` and 16 hex digits.
    pub id: String,
    /// The derived dataset (source `feedback`).
    pub dataset: DatasetId,
    /// Its zone.
    pub zone: ZoneId,
    /// What it is and what it is derived from.
    pub description: String,
    /// The operator who submitted it.
    pub submitted_by: String,
    /// When.
    #[serde(with = "rfc3339")]
    pub submitted_at: OffsetDateTime,
    /// Workflow state.
    pub state: FeedbackState,
    /// The detection pass, for the regulator's review.
    pub findings: Findings,
    /// The regulator's review.
    pub review: Option<Review>,
}

impl Feedback {
    /// A submission made now by `by`.
    pub fn submit(
        id: String,
        dataset: DatasetId,
        zone: ZoneId,
        description: &str,
        findings: Findings,
        by: &str,
    ) -> Result<Feedback, StepRefused> {
        Ok(Feedback {
            id,
            dataset,
            zone,
            description: checked_text("description", description, MAX_TEXT)?,
            submitted_by: by.to_owned(),
            submitted_at: super::period::now(),
            state: FeedbackState::Submitted,
            findings,
            review: None,
        })
    }

    /// The regulator's decision (`zone_regulator`: the caller supervises
    /// the dataset's zone).
    pub fn review(
        &mut self,
        zone_regulator: bool,
        approve: bool,
        reason: &str,
        by: &str,
    ) -> Result<(), StepRefused> {
        if !zone_regulator {
            return Err(StepRefused::NotAllowed {
                action: "review feedback",
                why: format!("only the regulator of zone {} reviews it", self.zone),
            });
        }
        self.expect(FeedbackState::Submitted, "review")?;
        self.review = Some(review(approve, reason, by)?);
        self.state = if approve {
            FeedbackState::Available
        } else {
            FeedbackState::Rejected
        };
        Ok(())
    }

    fn expect(&self, state: FeedbackState, action: &'static str) -> Result<(), StepRefused> {
        if self.state == state {
            return Ok(());
        }
        Err(StepRefused::WrongState {
            what: "feedback",
            id: self.id.clone(),
            state: self.state.as_str(),
            action,
        })
    }
}

fn review(approve: bool, reason: &str, by: &str) -> Result<Review, StepRefused> {
    Ok(Review {
        approve,
        reason: checked_text("reason", reason, MAX_TEXT)?,
        by: by.to_owned(),
        at: super::period::now(),
    })
}

/// Where a department's application is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplicationState {
    /// Awaiting both reviews.
    Applied,
    /// The regulator approved; the operator has not reviewed.
    RegulatorApproved,
    /// The operator approved; the regulator has not reviewed.
    OperatorApproved,
    /// Both approved: the department may be granted the columns.
    Approved,
    /// One of them refused.
    Rejected,
}

impl ApplicationState {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::RegulatorApproved => "regulator-approved",
            Self::OperatorApproved => "operator-approved",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

/// Which of the two reviews a caller gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reviewer {
    /// The regulator supervising the zone.
    ZoneRegulator,
    /// The operator running the zone.
    ZoneOperator,
}

/// A department's application for a feedback dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackApplication {
    /// `fa-` and 16 hex digits.
    pub id: String,
    /// The feedback record.
    pub feedback: String,
    /// Its dataset.
    pub dataset: DatasetId,
    /// The department (provider organization) applying.
    pub org: String,
    /// The provider who applied.
    pub applicant: String,
    /// What the department will use it for.
    pub purpose: String,
    /// The columns asked for, in dataset order.
    pub columns: Vec<String>,
    /// When.
    #[serde(with = "rfc3339")]
    pub applied_at: OffsetDateTime,
    /// Workflow state.
    pub state: ApplicationState,
    /// The regulator's review.
    pub regulator: Option<Review>,
    /// The operator's review.
    pub operator: Option<Review>,
}

/// What a department asks for.
#[derive(Debug, Clone)]
pub struct NewApplication<'a> {
    /// The department's organization.
    pub org: &'a str,
    /// The provider applying (SPIFFE identity).
    pub applicant: &'a str,
    /// The purpose.
    pub purpose: &'a str,
    /// The columns; empty means every column.
    pub columns: Vec<String>,
}

impl FeedbackApplication {
    /// An application for `feedback`, which must be available; `dataset_columns`
    /// are the dataset's columns in order.
    pub fn apply(
        id: String,
        feedback: &Feedback,
        dataset_columns: &[String],
        new: NewApplication<'_>,
    ) -> Result<Self, StepRefused> {
        feedback.expect(FeedbackState::Available, "apply for it")?;
        Ok(FeedbackApplication {
            id,
            feedback: feedback.id.clone(),
            dataset: feedback.dataset.clone(),
            org: new.org.to_owned(),
            applicant: new.applicant.to_owned(),
            purpose: checked_text("purpose", new.purpose, MAX_TEXT)?,
            columns: asked_columns(dataset_columns, &new.columns)?,
            applied_at: super::period::now(),
            state: ApplicationState::Applied,
            regulator: None,
            operator: None,
        })
    }

    /// One review; the other's may come before or after.
    pub fn review(
        &mut self,
        reviewer: Reviewer,
        approve: bool,
        reason: &str,
        by: &str,
    ) -> Result<(), StepRefused> {
        let slot = match reviewer {
            Reviewer::ZoneRegulator => &self.regulator,
            Reviewer::ZoneOperator => &self.operator,
        };
        if slot.is_some()
            || matches!(
                self.state,
                ApplicationState::Approved | ApplicationState::Rejected
            )
        {
            return Err(StepRefused::WrongState {
                what: "feedback application",
                id: self.id.clone(),
                state: self.state.as_str(),
                action: "review it again",
            });
        }
        let given = Some(review(approve, reason, by)?);
        match reviewer {
            Reviewer::ZoneRegulator => self.regulator = given,
            Reviewer::ZoneOperator => self.operator = given,
        }
        self.state = self.next_state();
        Ok(())
    }

    fn next_state(&self) -> ApplicationState {
        let ok = |r: &Option<Review>| r.as_ref().map(|r| r.approve);
        match (ok(&self.regulator), ok(&self.operator)) {
            (Some(false), _) | (_, Some(false)) => ApplicationState::Rejected,
            (Some(true), Some(true)) => ApplicationState::Approved,
            (Some(true), None) => ApplicationState::RegulatorApproved,
            (None, Some(true)) => ApplicationState::OperatorApproved,
            (None, None) => ApplicationState::Applied,
        }
    }
}

/// The asked columns in dataset order; empty means all.
fn asked_columns(dataset: &[String], asked: &[String]) -> Result<Vec<String>, StepRefused> {
    for (i, c) in asked.iter().enumerate() {
        if !dataset.contains(c) {
            return Err(StepRefused::invalid("columns", format!("no column {c:?}")));
        }
        if asked[..i].contains(c) {
            return Err(StepRefused::invalid(
                "columns",
                format!("{c:?} appears twice"),
            ));
        }
    }
    Ok(dataset
        .iter()
        .filter(|c| asked.is_empty() || asked.contains(c))
        .cloned()
        .collect())
}

/// Why a grant on a feedback dataset is refused, if it is: the feedback
/// must be available (regulator-approved) and the recipient's organization
/// must hold an approved application covering every granted column.
pub fn grant_refusal(
    dataset: &DatasetId,
    feedback: Option<&Feedback>,
    applications: &[FeedbackApplication],
    recipient_org: &str,
    columns: &[String],
) -> Option<String> {
    let Some(feedback) = feedback.filter(|f| f.state == FeedbackState::Available) else {
        return Some(format!(
            "feedback dataset {dataset} has not been approved by the regulator"
        ));
    };
    let covered = applications.iter().any(|a| {
        a.feedback == feedback.id
            && a.org == recipient_org
            && a.state == ApplicationState::Approved
            && columns.iter().all(|c| a.columns.contains(c))
    });
    if covered {
        return None;
    }
    Some(format!(
        "feedback dataset {dataset}: {recipient_org} holds no application approved by the \
         regulator and the operator covering these columns"
    ))
}

/// Counts of feedback records by state, for the assessment.
pub fn volume(records: &[Feedback]) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for f in records {
        *counts.entry(f.state.as_str()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<String> {
        vec!["id".into(), "district".into(), "score".into()]
    }

    fn submitted() -> Feedback {
        let findings = Findings {
            rows_scanned: 0,
            columns: vec![],
            sensitive_columns: vec![],
        };
        Feedback::submit(
            "fb-1".into(),
            "derived".parse().unwrap(),
            "finance".parse().unwrap(),
            "credit scores by district",
            findings,
            "spiffe://t/operator/op/alice",
        )
        .unwrap()
    }

    fn application(f: &Feedback, cols: Vec<String>) -> Result<FeedbackApplication, StepRefused> {
        let new = NewApplication {
            org: "bureau-x",
            applicant: "spiffe://t/provider/bureau-x/dave",
            purpose: "policy evaluation",
            columns: cols,
        };
        FeedbackApplication::apply("fa-1".into(), f, &columns(), new)
    }

    #[test]
    fn the_five_steps_end_in_a_grantable_application() {
        let mut f = submitted();
        let dataset = f.dataset.clone();
        let cols = vec!["district".to_owned()];
        assert!(grant_refusal(&dataset, Some(&f), &[], "bureau-x", &cols)
            .unwrap()
            .contains("not been approved"));
        f.review(true, true, "no personal data found", "r").unwrap();
        assert_eq!(f.state, FeedbackState::Available);
        let mut a = application(&f, vec!["score".into(), "district".into()]).unwrap();
        assert_eq!(a.columns, vec!["district", "score"]);
        assert!(grant_refusal(&dataset, Some(&f), &[a.clone()], "bureau-x", &cols).is_some());
        a.review(Reviewer::ZoneOperator, true, "ok", "o").unwrap();
        assert_eq!(a.state, ApplicationState::OperatorApproved);
        assert!(grant_refusal(&dataset, Some(&f), &[a.clone()], "bureau-x", &cols).is_some());
        a.review(Reviewer::ZoneRegulator, true, "ok", "r").unwrap();
        assert_eq!(a.state, ApplicationState::Approved);
        let apps = [a];
        assert_eq!(
            grant_refusal(&dataset, Some(&f), &apps, "bureau-x", &cols),
            None
        );
        assert!(grant_refusal(&dataset, Some(&f), &apps, "other", &cols).is_some());
        let wider = vec!["id".to_owned()];
        assert!(grant_refusal(&dataset, Some(&f), &apps, "bureau-x", &wider).is_some());
    }

    #[test]
    fn feedback_steps_check_party_and_state() {
        let mut f = submitted();
        assert!(matches!(
            application(&f, vec![]),
            Err(StepRefused::WrongState {
                what: "feedback",
                ..
            })
        ));
        assert!(matches!(
            f.review(false, true, "ok", "o"),
            Err(StepRefused::NotAllowed { .. })
        ));
        f.review(true, false, "contains resident ids", "r").unwrap();
        assert_eq!(f.state, FeedbackState::Rejected);
        let err = f.review(true, true, "ok", "r").unwrap_err();
        assert_eq!(err.to_string(), "feedback fb-1 is rejected; cannot review");
        assert!(grant_refusal(&f.dataset.clone(), Some(&f), &[], "b", &[]).is_some());
    }

    #[test]
    fn one_refusal_rejects_and_reviews_happen_once() {
        let mut f = submitted();
        f.review(true, true, "ok", "r").unwrap();
        let mut a = application(&f, vec![]).unwrap();
        assert_eq!(a.columns, columns());
        a.review(Reviewer::ZoneRegulator, true, "ok", "r").unwrap();
        assert_eq!(a.state, ApplicationState::RegulatorApproved);
        let err = a
            .review(Reviewer::ZoneRegulator, true, "again", "r")
            .unwrap_err();
        assert!(err.to_string().contains("regulator-approved"), "{err}");
        a.review(Reviewer::ZoneOperator, false, "no capacity", "o")
            .unwrap();
        assert_eq!(a.state, ApplicationState::Rejected);
        assert!(application(&f, vec!["nope".into()]).is_err());
        assert!(application(&f, vec!["id".into(), "id".into()]).is_err());
    }

    #[test]
    fn detection_pass_finds_identifiers_in_rows() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE rows (\"id\" TEXT, \"district\" TEXT);
             INSERT INTO rows VALUES ('11010519491231002X', '海淀区'),
                                     ('110105198001010016', '朝阳区'), (NULL, '西城区');",
        )
        .unwrap();
        let schema = |name: &str| ColumnSchema {
            name: name.into(),
            semantic_type: SemanticType::Text,
            confidence: 1.0,
            grade: Grade::General1,
            quasi_identifier: false,
        };
        let found = scan(&conn, &[schema("id"), schema("district")]).unwrap();
        assert_eq!(found.rows_scanned, 3);
        assert_eq!(found.columns[0].semantic_type, SemanticType::ResidentId);
        assert!(found.columns[0].sensitive);
        assert_eq!(found.sensitive_columns, vec!["id"]);
        assert!(!found.columns[1].sensitive, "{:?}", found.columns[1]);
    }
}
