//! Quality tickets, feedback data and its applications, operator
//! assessments and terminated authorizations in the catalog.
//!
//! Each is stored as its typed record in JSON (`record`) with the columns
//! the catalog selects on beside it; lists come back in insertion order.
//! Callers hold the catalog for the whole read-check-write of a step.

use rusqlite::{params, OptionalExtension, ToSql};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{sql, Catalog, CatalogError};
use crate::dataset::rfc3339;
use crate::governance::assessment::{Assessment, Termination};
use crate::governance::feedback::{Feedback, FeedbackApplication};
use crate::governance::quality::QualityTicket;

fn corrupt(owner: &str, problem: impl ToString) -> CatalogError {
    CatalogError::Corrupt {
        owner: owner.to_owned(),
        field: "record",
        problem: problem.to_string(),
    }
}

fn to_json<T: Serialize>(owner: &str, value: &T) -> Result<String, CatalogError> {
    serde_json::to_string(value).map_err(|e| corrupt(owner, e))
}

impl Catalog {
    fn wf_records<T: DeserializeOwned>(
        &self,
        query: &str,
        args: &[&dyn ToSql],
    ) -> Result<Vec<T>, CatalogError> {
        let mut stmt = self.conn.prepare(query).map_err(sql(&self.path))?;
        let texts = stmt
            .query_map(args, |r| r.get::<_, String>(0))
            .map_err(sql(&self.path))?;
        texts
            .map(|t| {
                let text = t.map_err(sql(&self.path))?;
                serde_json::from_str(&text).map_err(|e| corrupt(query, e))
            })
            .collect()
    }

    fn wf_record<T: DeserializeOwned>(
        &self,
        query: &str,
        id: &str,
    ) -> Result<Option<T>, CatalogError> {
        let text: Option<String> = self
            .conn
            .query_row(query, [id], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(id, e)))
            .transpose()
    }

    fn wf_write(&mut self, statement: &str, args: &[&dyn ToSql]) -> Result<(), CatalogError> {
        self.conn
            .execute(statement, args)
            .map(drop)
            .map_err(sql(&self.path))
    }

    /// Records a new quality ticket.
    pub fn insert_quality_ticket(&mut self, t: &QualityTicket) -> Result<(), CatalogError> {
        let record = to_json(&t.id, t)?;
        self.wf_write(
            "INSERT INTO quality_tickets(id, dataset, zone_id, state, record, opened_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                t.id,
                t.dataset.as_str(),
                t.zone.as_str(),
                t.state.as_str(),
                record,
                rfc3339(t.opened_at)
            ],
        )
    }

    /// Stores a step of ticket `t`.
    pub fn update_quality_ticket(&mut self, t: &QualityTicket) -> Result<(), CatalogError> {
        let record = to_json(&t.id, t)?;
        self.wf_write(
            "UPDATE quality_tickets SET state = ?2, record = ?3 WHERE id = ?1",
            params![t.id, t.state.as_str(), record],
        )
    }

    /// The ticket `id`, if recorded.
    pub fn quality_ticket(&self, id: &str) -> Result<Option<QualityTicket>, CatalogError> {
        self.wf_record("SELECT record FROM quality_tickets WHERE id = ?1", id)
    }

    /// Every ticket, oldest first.
    pub fn quality_tickets(&self) -> Result<Vec<QualityTicket>, CatalogError> {
        self.wf_records("SELECT record FROM quality_tickets ORDER BY rowid", &[])
    }

    /// Records a new feedback submission.
    pub fn insert_feedback(&mut self, f: &Feedback) -> Result<(), CatalogError> {
        let record = to_json(&f.id, f)?;
        self.wf_write(
            "INSERT INTO feedback(id, dataset, zone_id, state, record, submitted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                f.id,
                f.dataset.as_str(),
                f.zone.as_str(),
                f.state.as_str(),
                record,
                rfc3339(f.submitted_at)
            ],
        )
    }

    /// Stores a step of feedback `f`.
    pub fn update_feedback(&mut self, f: &Feedback) -> Result<(), CatalogError> {
        let record = to_json(&f.id, f)?;
        self.wf_write(
            "UPDATE feedback SET state = ?2, record = ?3 WHERE id = ?1",
            params![f.id, f.state.as_str(), record],
        )
    }

    /// The feedback record `id`, if recorded.
    pub fn feedback(&self, id: &str) -> Result<Option<Feedback>, CatalogError> {
        self.wf_record("SELECT record FROM feedback WHERE id = ?1", id)
    }

    /// Every feedback record, oldest first.
    pub fn feedback_records(&self) -> Result<Vec<Feedback>, CatalogError> {
        self.wf_records("SELECT record FROM feedback ORDER BY rowid", &[])
    }

    /// Records a new department application.
    pub fn insert_feedback_application(
        &mut self,
        a: &FeedbackApplication,
    ) -> Result<(), CatalogError> {
        let record = to_json(&a.id, a)?;
        self.wf_write(
            "INSERT INTO feedback_applications(id, feedback_id, org, state, record)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.id, a.feedback, a.org, a.state.as_str(), record],
        )
    }

    /// Stores a review of application `a`.
    pub fn update_feedback_application(
        &mut self,
        a: &FeedbackApplication,
    ) -> Result<(), CatalogError> {
        let record = to_json(&a.id, a)?;
        self.wf_write(
            "UPDATE feedback_applications SET state = ?2, record = ?3 WHERE id = ?1",
            params![a.id, a.state.as_str(), record],
        )
    }

    /// The application `id`, if recorded.
    pub fn feedback_application(
        &self,
        id: &str,
    ) -> Result<Option<FeedbackApplication>, CatalogError> {
        self.wf_record("SELECT record FROM feedback_applications WHERE id = ?1", id)
    }

    /// The applications for feedback record `feedback`, oldest first.
    pub fn feedback_applications(
        &self,
        feedback: &str,
    ) -> Result<Vec<FeedbackApplication>, CatalogError> {
        self.wf_records(
            "SELECT record FROM feedback_applications WHERE feedback_id = ?1 ORDER BY rowid",
            &[&feedback],
        )
    }

    /// Records an assessment and, when it terminates the operator's
    /// authorization, the termination, in one transaction.
    pub fn insert_assessment(
        &mut self,
        a: &Assessment,
        termination: Option<&Termination>,
    ) -> Result<(), CatalogError> {
        let record = to_json(&a.id, a)?;
        let tx = self.conn.transaction().map_err(sql(&self.path))?;
        tx.execute(
            "INSERT INTO assessments(id, operator, rating, record, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                a.id,
                a.operator,
                a.rating.as_str(),
                record,
                rfc3339(a.recorded_at)
            ],
        )
        .map_err(sql(&self.path))?;
        if let Some(t) = termination {
            tx.execute(
                "INSERT INTO terminations(operator, assessment, record) VALUES (?1, ?2, ?3)",
                params![t.operator, t.assessment, to_json(&t.operator, t)?],
            )
            .map_err(sql(&self.path))?;
        }
        tx.commit().map_err(sql(&self.path))
    }

    /// The assessments of `operator` (all when `None`), oldest first.
    pub fn assessments(&self, operator: Option<&str>) -> Result<Vec<Assessment>, CatalogError> {
        self.wf_records(
            "SELECT record FROM assessments WHERE ?1 IS NULL OR operator = ?1 ORDER BY rowid",
            &[&operator],
        )
    }

    /// The termination of `operator`'s authorization, if it was terminated.
    pub fn termination(&self, operator: &str) -> Result<Option<Termination>, CatalogError> {
        self.wf_record(
            "SELECT record FROM terminations WHERE operator = ?1",
            operator,
        )
    }

    /// Rewrites a termination (to add what carrying it out revoked).
    pub fn update_termination(&mut self, t: &Termination) -> Result<(), CatalogError> {
        let record = to_json(&t.operator, t)?;
        self.wf_write(
            "UPDATE terminations SET record = ?2 WHERE operator = ?1",
            params![t.operator, record],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::assessment::{Indicators, NewAssessment};
    use crate::governance::period::Period;
    use crate::governance::quality::{NewTicket, Parties, Sla, TicketState};

    /// A catalog with zone `z1` and dataset `d1` (provider `bureau-x`).
    fn catalog(dir: &std::path::Path) -> Catalog {
        crate::catalog::fixtures::zone_and_dataset(dir)
    }

    #[test]
    fn tickets_are_stored_and_steps_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = catalog(dir.path());
        let (dataset, zone) = ("d1".parse().unwrap(), "z1".parse().unwrap());
        let new = NewTicket {
            dataset: &dataset,
            zone: &zone,
            provider: "bureau-x",
            columns: &[],
            dimension: "accuracy",
            fields: vec!["amount".into()],
            rows: vec![],
            description: "wrong",
        };
        let mut t = QualityTicket::open("qt-1".into(), new, "me", &Sla::default()).unwrap();
        cat.insert_quality_ticket(&t).unwrap();
        let provider = Parties {
            provider: true,
            ..Parties::default()
        };
        t.respond(provider, "p", "fixed").unwrap();
        cat.update_quality_ticket(&t).unwrap();
        let back = cat.quality_ticket("qt-1").unwrap().unwrap();
        assert_eq!(back.state, TicketState::Responded);
        assert_eq!(back, t);
        assert_eq!(cat.quality_tickets().unwrap(), vec![t]);
        assert!(cat.quality_ticket("qt-2").unwrap().is_none());
    }

    #[test]
    fn a_terminating_assessment_is_stored_with_its_termination() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = catalog(dir.path());
        let period = Period::parse("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z").unwrap();
        let new = NewAssessment {
            operator: "op",
            period,
            rating: "poor",
            notes: "n",
        };
        let a = Assessment::record("as-1".into(), new, Indicators::default(), &[], "r").unwrap();
        let t = Termination {
            operator: "op".into(),
            assessment: "as-1".into(),
            at: a.recorded_at,
            revoked_grants: vec![],
            zones: vec!["z1".parse().unwrap()],
        };
        cat.insert_assessment(&a, Some(&t)).unwrap();
        assert_eq!(cat.assessments(Some("op")).unwrap(), vec![a.clone()]);
        assert!(cat.assessments(Some("other")).unwrap().is_empty());
        let mut stored = cat.termination("op").unwrap().unwrap();
        assert_eq!(stored, t);
        stored.revoked_grants = vec!["g-1".into()];
        cat.update_termination(&stored).unwrap();
        assert_eq!(
            cat.termination("op").unwrap().unwrap().revoked_grants,
            ["g-1"]
        );
        // A duplicate id fails as a whole: nothing half-written.
        assert!(cat.insert_assessment(&a, None).is_err());
        assert_eq!(cat.assessments(None).unwrap().len(), 1);
    }
}
