//! Partners and grants: who may receive desensitized extracts of what.
//!
//! A [`Partner`] is an organization in a tier (1 = most trusted … 3) with
//! four permission flags (data access, product authorization, scenario
//! authorization, ownership control), set by the operator (clause 7:
//! partners are managed in tiers, each granted permissions). A [`Grant`] lets one analyst, or every analyst of one
//! partner organization, pull extracts of some columns of one dataset, for
//! one declared purpose, under an optional row filter, a row limit, a
//! maximum number of extracts and an expiry. An [`ExtractRecord`] is what
//! the catalog keeps of one extract: its signed manifest.
//!
//! These are plain records: the checks that need a caller's identity and a
//! dataset's schema live where those are known (the API), through
//! [`Grant::refusal`].

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::desensitize::Tier;
use crate::ids::DatasetId;

/// A partner organization and what the operator allows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partner {
    /// The organization (the SPIFFE identity's organization segment).
    pub org: String,
    /// Its tier; selects the desensitization policy row.
    pub tier: Tier,
    /// Data access: whether grants may name it (and its analysts use them).
    pub data_access: bool,
    /// Product authorization: whether it may receive derived data products
    /// (aggregates); required to be a recipient of a filing whose method
    /// includes aggregates, and again at each aggregate.
    pub product_authorization: bool,
    /// Scenario authorization: whether it may be a recipient of a data-use
    /// filing (a scenario filed with the regulator).
    pub scenario_authorization: bool,
    /// Ownership control: whether it controls which of its own analysts
    /// receive data, i.e. may hold grants made to the whole organization;
    /// without it, grants must name individual analysts.
    pub ownership_control: bool,
    /// Who set this (SPIFFE identity).
    pub updated_by: String,
    /// When (UTC).
    #[serde(serialize_with = "ser_time")]
    pub updated_at: OffsetDateTime,
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// One analyst, by SPIFFE identity (`spiffe://td/analyst/org/person`).
    Analyst {
        /// The full identity URI.
        uri: String,
        /// Its organization segment.
        org: String,
    },
    /// Every analyst of a partner organization.
    Org(String),
}

impl Recipient {
    /// The organization whose partner tier applies.
    pub fn org(&self) -> &str {
        match self {
            Recipient::Analyst { org, .. } | Recipient::Org(org) => org,
        }
    }

    /// Whether the analyst `uri` of organization `org` is (one of) the
    /// recipient(s).
    pub fn includes(&self, uri: &str, org: &str) -> bool {
        match self {
            Recipient::Analyst { uri: u, .. } => u == uri,
            Recipient::Org(o) => o == org,
        }
    }

    /// Parses the stored form: a `spiffe://` analyst URI or an org name.
    /// The org of an analyst URI is its fourth path segment
    /// (`spiffe://<td>/analyst/<org>/<person>`).
    pub fn parse(s: &str) -> Result<Recipient, GrantError> {
        let bad = |problem: &str| GrantError::Recipient {
            value: s.chars().take(128).collect(),
            problem: problem.to_owned(),
        };
        let Some(rest) = s.strip_prefix("spiffe://") else {
            return if is_segment(s) {
                Ok(Recipient::Org(s.to_owned()))
            } else {
                Err(bad("an organization name must match [a-z0-9][a-z0-9._-]*"))
            };
        };
        match rest.split('/').collect::<Vec<_>>()[..] {
            [td, "analyst", org, person]
                if !td.is_empty() && is_segment(org) && is_segment(person) =>
            {
                Ok(Recipient::Analyst {
                    uri: s.to_owned(),
                    org: org.to_owned(),
                })
            }
            _ => Err(bad(
                "an identity must be spiffe://<trust-domain>/analyst/<org>/<person>",
            )),
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Analyst { uri, .. } => f.write_str(uri),
            Recipient::Org(org) => f.write_str(org),
        }
    }
}

impl Serialize for Recipient {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Recipient::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_segment(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && s.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Errors of the grant vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// A recipient that is neither an analyst identity nor an org name.
    #[error("recipient {value:?}: {problem}")]
    Recipient {
        /// The rejected value (at most 128 characters).
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A grant as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    /// The grant's id (`g-` and 24 hex digits).
    pub id: String,
    /// Who may use it.
    pub recipient: Recipient,
    /// The dataset.
    pub dataset: DatasetId,
    /// The columns that may be extracted, in dataset order.
    pub columns: Vec<String>,
    /// The declared purpose.
    pub purpose: String,
    /// The data-use filing it is made under, once filings exist.
    pub filing: Option<String>,
    /// A row filter the analyst cannot widen (filter language text).
    pub filter: Option<String>,
    /// Most rows per extract.
    pub row_limit: u64,
    /// Most extracts; `None` is unlimited.
    pub max_extracts: Option<u64>,
    /// Extracts made so far.
    pub extracts_used: u64,
    /// When it expires (UTC).
    #[serde(serialize_with = "ser_time")]
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(serialize_with = "ser_opt_time")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The operator who made it (SPIFFE identity).
    pub created_by: String,
    /// When (UTC).
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
}

/// Why a grant cannot be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantRefusal {
    /// The caller is not the recipient (nor of the recipient org).
    NotRecipient,
    /// Revoked by an operator.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Every allowed extract has been made.
    Exhausted,
}

impl fmt::Display for GrantRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrantRefusal::NotRecipient => "the grant belongs to another recipient",
            GrantRefusal::Revoked => "the grant is revoked",
            GrantRefusal::Expired => "the grant has expired",
            GrantRefusal::Exhausted => "the grant's extracts are used up",
        })
    }
}

impl Grant {
    /// Why analyst `uri` of `org` may not use this grant at `now`, if so.
    /// Checked in this order: recipient, revocation, expiry, count.
    pub fn refusal(&self, uri: &str, org: &str, now: OffsetDateTime) -> Option<GrantRefusal> {
        if !self.recipient.includes(uri, org) {
            Some(GrantRefusal::NotRecipient)
        } else if self.revoked_at.is_some() {
            Some(GrantRefusal::Revoked)
        } else if self.expires_at <= now {
            Some(GrantRefusal::Expired)
        } else if self.max_extracts.is_some_and(|m| self.extracts_used >= m) {
            Some(GrantRefusal::Exhausted)
        } else {
            None
        }
    }
}

/// One extract as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtractRecord {
    /// The extract's id (`x-` and 24 hex digits).
    pub id: String,
    /// The grant it was made under.
    pub grant: String,
    /// The analyst who received it (SPIFFE identity).
    pub recipient: String,
    /// The signed manifest note.
    pub manifest: String,
    /// Index of the ledger entry that started the extract.
    pub ledger_index: u64,
    /// When (UTC).
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
}

fn ser_time<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::dataset::rfc3339(*t))
}

fn ser_opt_time<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&crate::dataset::rfc3339(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(recipient: &str) -> Grant {
        let now = OffsetDateTime::now_utc();
        Grant {
            id: "g-1".into(),
            recipient: Recipient::parse(recipient).unwrap(),
            dataset: "d1".parse().unwrap(),
            columns: vec!["a".into()],
            purpose: "p".into(),
            filing: None,
            filter: None,
            row_limit: 10,
            max_extracts: Some(1),
            extracts_used: 0,
            expires_at: now + time::Duration::days(1),
            revoked_at: None,
            created_by: "op".into(),
            created_at: now,
        }
    }

    #[test]
    fn recipients_parse() {
        let a = Recipient::parse("spiffe://td/analyst/partner-a/carol").unwrap();
        assert_eq!(a.org(), "partner-a");
        assert!(a.includes("spiffe://td/analyst/partner-a/carol", "partner-a"));
        assert!(!a.includes("spiffe://td/analyst/partner-a/dan", "partner-a"));
        let o = Recipient::parse("partner-a").unwrap();
        assert!(o.includes("spiffe://td/analyst/partner-a/dan", "partner-a"));
        for bad in [
            "",
            "Partner",
            "spiffe://td/operator/x/y",
            "spiffe://td/analyst/x",
            "spiffe:///analyst/x/y",
        ] {
            assert!(Recipient::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_in_order() {
        let me = "spiffe://td/analyst/partner-a/carol";
        let now = OffsetDateTime::now_utc();
        let mut g = grant(me);
        assert_eq!(g.refusal(me, "partner-a", now), None);
        assert_eq!(
            g.refusal("spiffe://td/analyst/partner-a/dan", "partner-a", now),
            Some(GrantRefusal::NotRecipient)
        );
        g.extracts_used = 1;
        assert_eq!(
            g.refusal(me, "partner-a", now),
            Some(GrantRefusal::Exhausted)
        );
        g.expires_at = now;
        assert_eq!(g.refusal(me, "partner-a", now), Some(GrantRefusal::Expired));
        g.revoked_at = Some(now);
        assert_eq!(g.refusal(me, "partner-a", now), Some(GrantRefusal::Revoked));
    }
}
