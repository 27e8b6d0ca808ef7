//! The periodic usage report of a filing (clause 7: the operator reports
//! usage and effect to the regulator), computed from the ledger alone.
//!
//! [`UsageReport::build`] reads ledger entries and counts, per recipient
//! organization, what was done under the filing's grants in `[from, to)`:
//!
//! - an **extract** is the completion entry (`phase.step = complete`,
//!   decision `allow`) of a `POST /v1/extracts`; its `rows` are summed;
//! - an **aggregate** is an allowed `POST /v1/aggregates`; its result
//!   cells (`details.cells`) are summed;
//! - a **denied attempt** is a `deny` entry of either route that names
//!   one of the grants.
//!
//! The recipient is the organization segment of the caller's identity
//! (`spiffe://<td>/analyst/<org>/<person>`). Renderings as CSV and
//! Markdown carry the same numbers as the JSON.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;

use super::period::rfc3339;
use crate::ledger::{Decision, LedgerEntry, Phase};

/// The extract route as the ledger records it.
pub const EXTRACT_ROUTE: &str = "/v1/extracts";
/// The aggregate route as the ledger records it.
pub const AGGREGATE_ROUTE: &str = "/v1/aggregates";

/// Counts of one recipient organization (or the total).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Completed extracts.
    pub extracts: u64,
    /// Rows released by those extracts.
    pub rows: u64,
    /// Aggregates answered.
    pub aggregates: u64,
    /// Cells released by those aggregates.
    pub aggregate_cells: u64,
    /// Refused extract and aggregate requests under the filing's grants.
    pub denied: u64,
    /// Datasets data was released from.
    pub datasets: BTreeSet<String>,
    /// The analysts who made the requests (SPIFFE identities).
    pub analysts: BTreeSet<String>,
}

/// A filing's usage over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// The filing.
    pub filing: String,
    /// Start of the period (inclusive).
    #[serde(with = "rfc3339")]
    pub from: OffsetDateTime,
    /// End of the period (exclusive).
    #[serde(with = "rfc3339")]
    pub to: OffsetDateTime,
    /// The filing's grants the counts cover.
    pub grants: BTreeSet<String>,
    /// Per recipient organization.
    pub recipients: BTreeMap<String, Usage>,
    /// Over all recipients.
    pub total: Usage,
    /// Ledger entries read.
    pub entries_read: u64,
}

/// What one ledger entry counts as.
enum Counted {
    Extract { rows: u64 },
    Aggregate { cells: u64 },
    Denied,
}

impl UsageReport {
    /// An empty report of `filing` over `[from, to)` for its `grants`.
    pub fn new(
        filing: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        grants: BTreeSet<String>,
    ) -> Self {
        UsageReport {
            filing: filing.to_owned(),
            from,
            to,
            grants,
            recipients: BTreeMap::new(),
            total: Usage::default(),
            entries_read: 0,
        }
    }

    /// Counts one ledger entry (entries outside the period or the grants
    /// are read and ignored).
    pub fn add(&mut self, entry: &LedgerEntry) {
        self.entries_read += 1;
        if entry.time < self.from || entry.time >= self.to {
            return;
        }
        let grants: HashSet<&str> = entry
            .resources
            .iter()
            .filter_map(|r| r.strip_prefix("grant:"))
            .collect();
        if !grants.iter().any(|g| self.grants.contains(*g)) {
            return;
        }
        let Some(counted) = classify(entry) else {
            return;
        };
        let org = analyst_org(&entry.identity)
            .unwrap_or("(unknown)")
            .to_owned();
        let datasets: Vec<String> = entry
            .resources
            .iter()
            .filter_map(|r| r.strip_prefix("dataset:"))
            .map(str::to_owned)
            .collect();
        let per = self.recipients.entry(org).or_default();
        for usage in [per, &mut self.total] {
            usage.analysts.insert(entry.identity.clone());
            match counted {
                Counted::Extract { rows } => {
                    usage.extracts += 1;
                    usage.rows += rows;
                    usage.datasets.extend(datasets.iter().cloned());
                }
                Counted::Aggregate { cells } => {
                    usage.aggregates += 1;
                    usage.aggregate_cells += cells;
                    usage.datasets.extend(datasets.iter().cloned());
                }
                Counted::Denied => usage.denied += 1,
            }
        }
    }

    /// The report as CSV: a header, one line per recipient, then `total`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "filing,from,to,recipient,extracts,rows,aggregates,aggregate_cells,denied,datasets\r\n",
        );
        let rows = self
            .recipients
            .iter()
            .map(|(org, u)| (org.as_str(), u))
            .chain([("total", &self.total)]);
        for (org, u) in rows {
            let _ = write!(
                out,
                "{},{},{},{},{},{},{},{},{},{}\r\n",
                self.filing,
                time_text(self.from),
                time_text(self.to),
                org,
                u.extracts,
                u.rows,
                u.aggregates,
                u.aggregate_cells,
                u.denied,
                join(&u.datasets, ";"),
            );
        }
        out
    }

    /// The report as a Markdown section with one table.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "# Usage report of filing {}\n\nPeriod: {} to {} (computed from the audit ledger, {} entries read).\n\n",
            self.filing,
            time_text(self.from),
            time_text(self.to),
            self.entries_read
        );
        out.push_str("| Recipient | Extracts | Rows | Aggregates | Aggregate cells | Denied attempts | Datasets |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---|\n");
        let rows = self
            .recipients
            .iter()
            .map(|(org, u)| (org.clone(), u))
            .chain([("**total**".to_owned(), &self.total)]);
        for (org, u) in rows {
            let _ = writeln!(
                out,
                "| {org} | {} | {} | {} | {} | {} | {} |",
                u.extracts,
                u.rows,
                u.aggregates,
                u.aggregate_cells,
                u.denied,
                join(&u.datasets, ", "),
            );
        }
        out
    }
}

fn classify(entry: &LedgerEntry) -> Option<Counted> {
    let route = entry.route.as_str();
    if entry.method != "POST" || (route != EXTRACT_ROUTE && route != AGGREGATE_ROUTE) {
        return None;
    }
    match (entry.decision, entry.phase) {
        (Decision::Deny, None) => Some(Counted::Denied),
        (Decision::Allow, Some(Phase::Complete { .. })) if route == EXTRACT_ROUTE => {
            Some(Counted::Extract {
                rows: entry.rows.unwrap_or(0),
            })
        }
        (Decision::Allow, None) if route == AGGREGATE_ROUTE => Some(Counted::Aggregate {
            cells: entry
                .details
                .as_ref()
                .and_then(|d| d.get("cells"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
        }),
        _ => None,
    }
}

/// The organization of an analyst identity `spiffe://td/analyst/org/person`.
fn analyst_org(identity: &str) -> Option<&str> {
    let rest = identity.strip_prefix("spiffe://")?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [_, _, org, _] => Some(org),
        _ => None,
    }
}

fn join(set: &BTreeSet<String>, sep: &str) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(sep)
}

fn time_text(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::EntryKind;
    use time::Duration;

    const CAROL: &str = "spiffe://td/analyst/partner-a/carol";

    fn entry(identity: &str, route: &str, decision: Decision, grant: &str) -> LedgerEntry {
        let mut e = LedgerEntry::new(EntryKind::Request, identity, "POST", route, decision);
        e.resources = vec![format!("grant:{grant}"), "dataset:residents".into()];
        e
    }

    fn extract(rows: u64, phase: Phase) -> LedgerEntry {
        let mut e = entry(CAROL, EXTRACT_ROUTE, Decision::Allow, "g-1");
        e.phase = Some(phase);
        e.rows = Some(rows);
        e
    }

    #[test]
    fn counts_what_happened_under_the_grants() {
        let now = OffsetDateTime::now_utc();
        let grants = ["g-1".to_owned(), "g-2".to_owned()].into_iter().collect();
        let mut r = UsageReport::new(
            "f-1",
            now - Duration::hours(1),
            now + Duration::hours(1),
            grants,
        );
        r.add(&extract(10, Phase::Start));
        r.add(&extract(10, Phase::Complete { start_index: 0 }));
        r.add(&extract(5, Phase::Complete { start_index: 1 }));
        let mut agg = entry(CAROL, AGGREGATE_ROUTE, Decision::Allow, "g-2");
        agg.details = Some(serde_json::json!({"event": "aggregate", "cells": 7}));
        r.add(&agg);
        r.add(&entry(
            "spiffe://td/analyst/partner-b/eve",
            EXTRACT_ROUTE,
            Decision::Deny,
            "g-1",
        ));
        r.add(&entry(CAROL, AGGREGATE_ROUTE, Decision::Deny, "g-2"));
        // Not counted: another grant, another route, an error, outside the period.
        r.add(&entry(CAROL, EXTRACT_ROUTE, Decision::Deny, "g-9"));
        r.add(&entry(CAROL, "/v1/grants", Decision::Deny, "g-1"));
        r.add(&entry(CAROL, EXTRACT_ROUTE, Decision::Error, "g-1"));
        let mut old = extract(99, Phase::Complete { start_index: 0 });
        old.time = now - Duration::hours(2);
        r.add(&old);

        assert_eq!(r.entries_read, 10);
        let a = &r.recipients["partner-a"];
        assert_eq!(
            (
                a.extracts,
                a.rows,
                a.aggregates,
                a.aggregate_cells,
                a.denied
            ),
            (2, 15, 1, 7, 1)
        );
        assert_eq!(a.datasets.iter().collect::<Vec<_>>(), vec!["residents"]);
        let b = &r.recipients["partner-b"];
        assert_eq!((b.extracts, b.denied), (0, 1));
        assert!(b.datasets.is_empty());
        assert_eq!((r.total.extracts, r.total.rows, r.total.denied), (2, 15, 2));

        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].ends_with(",partner-a,2,15,1,7,1,residents"),
            "{csv}"
        );
        assert!(lines[3].contains(",total,2,15,1,7,2,residents"), "{csv}");
        let md = r.to_markdown();
        assert!(
            md.contains("| partner-a | 2 | 15 | 1 | 7 | 1 | residents |"),
            "{md}"
        );
        assert!(
            md.contains("| **total** | 2 | 15 | 1 | 7 | 2 | residents |"),
            "{md}"
        );
    }
}
