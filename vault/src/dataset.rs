//! Datasets: where the data came from, how long it may be kept, where it is
//! in its lifecycle, and its column schema and grade.
//!
//! A dataset is created empty ([`DatasetState::Created`]), gets its rows
//! and a detected schema from one import ([`DatasetState::Imported`]), and
//! becomes extractable only once an operator confirms the schema
//! ([`DatasetState::Confirmed`]). Retention then leads to
//! [`DatasetState::DueForDestruction`] and, by cryptographic erase, to
//! [`DatasetState::Destroyed`]. The rows themselves live in the dataset's
//! own encrypted file (`crate::dataset_file`), never here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};

use crate::ids::{DatasetId, ZoneId};
use crate::schema::{ColumnSchema, Grade, SemanticType};

/// Where a dataset's data came from (clauses 3 and 5 of the guidance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetSource {
    /// Government data shared into the zone under an approved application.
    GovernmentShare,
    /// The operator's own data.
    OperatorOwn,
    /// Feedback data (反哺) produced in the zone.
    Feedback,
}

/// A dataset's place in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetState {
    /// Recorded, no rows yet.
    Created,
    /// Rows imported, schema detected but not confirmed.
    Imported,
    /// Schema confirmed by an operator; extracts may be made.
    Confirmed,
    /// Retention has run out; awaiting destruction.
    DueForDestruction,
    /// Key destroyed; the rows are unreadable everywhere.
    Destroyed,
}

macro_rules! named_enum {
    ($ty:ident, $err:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            /// The stable name, as serialized and stored.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = DatasetError;
            fn from_str(s: &str) -> Result<Self, DatasetError> {
                match s.trim() {
                    $($name => Ok(Self::$variant),)+
                    other => Err(DatasetError::Unknown {
                        what: $err,
                        value: other.chars().take(64).collect(),
                    }),
                }
            }
        }
    };
}

named_enum!(DatasetSource, "dataset source (government-share, operator-own, feedback)",
    GovernmentShare => "government-share", OperatorOwn => "operator-own", Feedback => "feedback");
named_enum!(DatasetState, "dataset state",
    Created => "created", Imported => "imported", Confirmed => "confirmed",
    DueForDestruction => "due-for-destruction", Destroyed => "destroyed");

impl DatasetState {
    /// Whether rows may be (re)imported: only before the schema is
    /// confirmed.
    pub fn accepts_import(self) -> bool {
        matches!(self, Self::Created | Self::Imported)
    }
}

/// Errors of the dataset vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    /// A name that is not one of an enum's values.
    #[error("unknown {what} {value:?}")]
    Unknown {
        /// What was expected.
        what: &'static str,
        /// The rejected value (at most 64 characters).
        value: String,
    },
    /// A retention that is neither `<days>d` nor an RFC 3339 date.
    #[error("retention {value:?}: {problem}")]
    Retention {
        /// The rejected value (at most 64 characters).
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Government-shared data needs the application it was shared under.
    #[error("a government-share dataset needs the application it was shared under")]
    MissingApplication,
}

/// How long a dataset may be kept.
///
/// Written `365d` (days after import) or as an RFC 3339 date-time
/// (`2030-12-31T00:00:00Z`) or full date (`2030-12-31`, meaning midnight
/// UTC at its start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// This many days after the rows are imported (or after creation,
    /// before an import).
    Days(u32),
    /// Until this instant.
    Until(OffsetDateTime),
}

impl Retention {
    /// When the dataset falls due for destruction, counting `Days` from
    /// `start`; `None` if that is beyond the representable range.
    pub fn expires_at(self, start: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Self::Days(d) => start.checked_add(time::Duration::days(i64::from(d))),
            Self::Until(t) => Some(t),
        }
    }
}

impl FromStr for Retention {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, DatasetError> {
        let v = s.trim();
        let err = |problem: &str| DatasetError::Retention {
            value: v.chars().take(64).collect(),
            problem: problem.to_owned(),
        };
        if v.is_empty() {
            return Err(err(
                "empty; expected a number of days like 365d or an RFC 3339 date",
            ));
        }
        if let Some(days) = v.strip_suffix('d') {
            return match days.parse::<u32>() {
                Ok(0) => Err(err("must be at least 1 day")),
                Ok(d) if days.bytes().all(|b| b.is_ascii_digit()) => Ok(Self::Days(d)),
                _ => Err(err("the number of days must be a whole number like 365d")),
            };
        }
        if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
            return Ok(Self::Until(t));
        }
        let day = time::macros::format_description!("[year]-[month]-[day]");
        Date::parse(v, &day)
            .map(|d| Self::Until(d.with_time(Time::MIDNIGHT).assume_utc()))
            .map_err(|_| err("neither a number of days like 365d nor an RFC 3339 date"))
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Days(d) => write!(f, "{d}d"),
            Self::Until(t) => f.write_str(&rfc3339(*t)),
        }
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What an operator supplies to create a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Title.
    pub title: String,
    /// The providing organization (a government department for shared data).
    pub provider: String,
    /// Where the data came from.
    pub source: DatasetSource,
    /// The approved sharing application; required with
    /// [`DatasetSource::GovernmentShare`].
    pub application: Option<String>,
    /// How long the data may be kept.
    pub retention: Retention,
    /// Columns to treat as quasi-identifiers, by header name.
    pub quasi_identifiers: Vec<String>,
}

/// A dataset as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    /// The dataset's id.
    pub id: DatasetId,
    /// The zone it belongs to.
    pub zone: ZoneId,
    /// Title.
    pub title: String,
    /// The providing organization.
    pub provider: String,
    /// Where the data came from.
    pub source: DatasetSource,
    /// The sharing application, for government-shared data.
    pub application: Option<String>,
    /// How long the data may be kept.
    pub retention: Retention,
    /// Lifecycle state.
    pub state: DatasetState,
    /// Rows imported (0 before the import).
    pub row_count: u64,
    /// The highest grade among the columns; `None` before the import.
    pub grade: Option<Grade>,
    /// The column schemas, in header order; empty before the import.
    pub columns: Vec<ColumnSchema>,
    /// The quasi-identifier columns: as requested at creation, and after
    /// the import the columns whose flag is set.
    pub quasi_identifiers: Vec<String>,
    /// Whether an operator has confirmed the schema.
    pub schema_confirmed: bool,
    /// When the dataset was created (UTC).
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    /// When the rows were imported (UTC).
    #[serde(serialize_with = "ser_opt_time")]
    pub imported_at: Option<OffsetDateTime>,
}

impl Dataset {
    /// A new, empty dataset in zone `zone`, created now.
    pub fn new(id: DatasetId, zone: ZoneId, spec: DatasetSpec) -> Result<Dataset, DatasetError> {
        let application = spec.application.filter(|a| !a.trim().is_empty());
        if spec.source == DatasetSource::GovernmentShare && application.is_none() {
            return Err(DatasetError::MissingApplication);
        }
        Ok(Dataset {
            id,
            zone,
            title: spec.title,
            provider: spec.provider,
            source: spec.source,
            application,
            retention: spec.retention,
            state: DatasetState::Created,
            row_count: 0,
            grade: None,
            columns: Vec::new(),
            quasi_identifiers: spec.quasi_identifiers,
            schema_confirmed: false,
            created_at: now_utc_seconds(),
            imported_at: None,
        })
    }
}

/// An operator's change to one column of a detected schema; fields left
/// `None` keep the detected value. Deserializes from the API's
/// `{"name", "type", "grade", "quasi_identifier"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnOverride {
    /// The column, by header name (exact match).
    pub name: String,
    /// The semantic type to set.
    #[serde(rename = "type", default)]
    pub semantic_type: Option<SemanticType>,
    /// The grade to set.
    #[serde(default)]
    pub grade: Option<Grade>,
    /// The quasi-identifier flag to set.
    #[serde(default)]
    pub quasi_identifier: Option<bool>,
}

impl ColumnOverride {
    /// Applies the override to `column` (whose name it must match). A type
    /// set by an operator has confidence 1.0.
    pub fn apply(&self, column: &mut ColumnSchema) {
        if let Some(t) = self.semantic_type {
            column.semantic_type = t;
            column.confidence = 1.0;
        }
        if let Some(g) = self.grade {
            column.grade = g;
        }
        if let Some(q) = self.quasi_identifier {
            column.quasi_identifier = q;
        }
    }
}

/// Now, in UTC, to whole seconds (so it round-trips through RFC 3339
/// unchanged).
pub(crate) fn now_utc_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// `t` in RFC 3339; Unix seconds for the years RFC 3339 cannot express.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn ser_time<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

fn ser_opt_time<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses_days_and_dates() {
        assert_eq!("365d".parse::<Retention>(), Ok(Retention::Days(365)));
        let until = "2030-12-31T08:00:00+08:00".parse::<Retention>().unwrap();
        assert_eq!(until.to_string(), "2030-12-31T08:00:00+08:00");
        let day = "2030-12-31".parse::<Retention>().unwrap();
        assert_eq!(day.to_string(), "2030-12-31T00:00:00Z");
        assert_eq!(day.to_string().parse::<Retention>(), Ok(day));
        for (bad, says) in [
            ("", "empty"),
            ("0d", "at least 1"),
            ("-5d", "whole number"),
            ("1.5d", "whole number"),
            ("99999999999d", "whole number"),
            ("next year", "neither"),
            ("2030-13-01", "neither"),
        ] {
            let e = bad.parse::<Retention>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let start = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            Retention::Days(1).expires_at(start),
            Some(start + time::Duration::days(1))
        );
    }

    #[test]
    fn enums_use_kebab_case_names() {
        let s = serde_json::to_string(&DatasetSource::GovernmentShare).unwrap();
        assert_eq!(s, "\"government-share\"");
        assert_eq!("operator-own".parse(), Ok(DatasetSource::OperatorOwn));
        assert!("own".parse::<DatasetSource>().is_err());
        for st in [
            "created",
            "imported",
            "confirmed",
            "due-for-destruction",
            "destroyed",
        ] {
            let parsed: DatasetState = st.parse().unwrap();
            assert_eq!(parsed.to_string(), st);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), format!("\"{st}\""));
        }
    }

    #[test]
    fn government_share_needs_an_application() {
        let spec = DatasetSpec {
            title: "t".into(),
            provider: "p".into(),
            source: DatasetSource::GovernmentShare,
            application: Some(" ".into()),
            retention: Retention::Days(30),
            quasi_identifiers: vec![],
        };
        let (id, zone) = ("d".parse().unwrap(), "z".parse().unwrap());
        assert_eq!(
            Dataset::new(id, zone, spec.clone()),
            Err(DatasetError::MissingApplication)
        );
        let ok = DatasetSpec {
            application: Some("app-1".into()),
            ..spec
        };
        let ds = Dataset::new("d".parse().unwrap(), "z".parse().unwrap(), ok).unwrap();
        assert_eq!(ds.state, DatasetState::Created);
        let json = serde_json::to_value(&ds).unwrap();
        assert_eq!(json["retention"], "30d");
        assert_eq!(json["imported_at"], serde_json::Value::Null);
    }

    #[test]
    fn override_deserializes_api_shape() {
        let o: ColumnOverride =
            serde_json::from_str(r#"{"name":"a","type":"mobile","quasi_identifier":true}"#)
                .unwrap();
        assert_eq!(o.semantic_type, Some(SemanticType::Mobile));
        assert_eq!(o.grade, None);
        assert_eq!(o.quasi_identifier, Some(true));
    }
}
