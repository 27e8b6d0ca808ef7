//! What the sharing and filing workflows share: a validity [`Period`], a
//! [`Review`] (one role's approve-or-refuse with its reason), checked
//! free texts, and the [`StepError`] a refused transition returns.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Longest free text (scenario, purpose, reason) accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;

/// A half-open validity period `[from, to)`, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start (inclusive).
    #[serde(with = "rfc3339")]
    pub from: OffsetDateTime,
    /// End (exclusive).
    #[serde(with = "rfc3339")]
    pub to: OffsetDateTime,
}

impl Period {
    /// Parses two RFC 3339 times; `to` must be after `from`.
    pub fn parse(from: &str, to: &str) -> Result<Period, StepError> {
        let time = |field: &'static str, v: &str| {
            OffsetDateTime::parse(v.trim(), &Rfc3339)
                .map(|t| t.to_offset(time::UtcOffset::UTC))
                .map_err(|e| StepError::Invalid {
                    field,
                    problem: format!("not an RFC 3339 time: {e}"),
                })
        };
        let period = Period {
            from: time("period.from", from)?,
            to: time("period.to", to)?,
        };
        if period.to <= period.from {
            return Err(StepError::Invalid {
                field: "period.to",
                problem: "must be after period.from".into(),
            });
        }
        Ok(period)
    }

    /// Whether `t` lies inside the period.
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.from <= t && t < self.to
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", format(self.from), format(self.to))
    }
}

/// One role's review of a workflow step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// Approved (or acknowledged) when true.
    pub approve: bool,
    /// The reviewer's reason.
    pub reason: String,
    /// Who reviewed (SPIFFE identity).
    pub by: String,
    /// When (UTC).
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
}

impl Review {
    /// A review made now by `by`; the reason must be 1 to
    /// [`MAX_TEXT_LEN`] bytes.
    pub fn now(approve: bool, reason: &str, by: &str) -> Result<Review, StepError> {
        Ok(Review {
            approve,
            reason: text("reason", reason)?,
            by: by.to_owned(),
            at: now(),
        })
    }
}

/// Why a workflow step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The record is not in a state that allows the step (409).
    #[error("{what} {id} is {state}; cannot {action}")]
    WrongState {
        /// `share application` or `filing`.
        what: &'static str,
        /// The record's id.
        id: String,
        /// Its state.
        state: &'static str,
        /// What was refused.
        action: &'static str,
    },
    /// A field of the caller's input is wrong (400).
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// `value` trimmed, 1 to [`MAX_TEXT_LEN`] bytes, or [`StepError::Invalid`].
pub fn text(field: &'static str, value: &str) -> Result<String, StepError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_TEXT_LEN {
        return Err(StepError::Invalid {
            field,
            problem: format!("must be 1 to {MAX_TEXT_LEN} bytes"),
        });
    }
    Ok(value.to_owned())
}

/// Whether `s` is an organization name (`[a-z0-9][a-z0-9._-]*`, ≤ 64).
pub fn is_org(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Now, in UTC, to whole seconds.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn format(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Serde of an [`OffsetDateTime`] as RFC 3339 text.
pub mod rfc3339 {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    /// Serializes as RFC 3339.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*t))
    }

    /// Parses RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_contain() {
        let p = Period::parse("2026-01-01T00:00:00Z", "2027-01-01T00:00:00+08:00").unwrap();
        assert!(p.contains(
            Period::parse("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z")
                .unwrap()
                .from
        ));
        assert!(!p.contains(p.to));
        assert!(p.contains(p.from));
        let backwards = Period::parse("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z");
        assert!(matches!(
            backwards,
            Err(StepError::Invalid {
                field: "period.to",
                ..
            })
        ));
        let bad = Period::parse("2026-01-01", "2027-01-01T00:00:00Z");
        assert!(matches!(
            bad,
            Err(StepError::Invalid {
                field: "period.from",
                ..
            })
        ));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"from":"2026-01-01T00:00:00Z","to":"2026-12-31T16:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), p);
    }

    #[test]
    fn texts_and_orgs() {
        assert_eq!(text("reason", "  ok ").unwrap(), "ok");
        assert!(text("reason", " ").is_err());
        assert!(text("reason", &"x".repeat(MAX_TEXT_LEN + 1)).is_err());
        assert!(is_org("bureau-x"));
        assert!(!is_org("Bureau"));
        assert!(!is_org(""));
        assert!(Review::now(true, "", "me").is_err());
    }
}
