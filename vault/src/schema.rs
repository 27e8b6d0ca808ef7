//! The shared column vocabulary: what a column holds ([`SemanticType`]), how
//! sensitive it is ([`Grade`]), and the two together with a confidence and a
//! quasi-identifier flag ([`ColumnSchema`]).
//!
//! Grades follow GB/T 43697-2024 (core, important, general with sub-levels 4
//! to 1). Financial levels of JR/T 0197-2020 are accepted on input and mapped
//! onto them; see [`Grade::from_jrt_level`]. Detection proposes a grade from
//! the semantic type ([`SemanticType::default_grade`]); an operator confirms
//! or overrides it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a column's values are, as far as desensitization cares.
///
/// Serialized in snake_case (`resident_id`, `bank_card`, ...); the names are
/// stable because they are stored in the catalog and appear in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SemanticType {
    /// 18-digit (or old 15-digit) resident identity card number, GB 11643.
    ResidentId,
    /// Unified social credit code of an organization, GB 32100-2015.
    Uscc,
    /// Mainland mobile number.
    Mobile,
    /// Bank card number (Luhn).
    BankCard,
    /// Passport number of the People's Republic of China.
    Passport,
    /// Motor vehicle licence plate.
    LicencePlate,
    /// E-mail address.
    Email,
    /// Chinese personal name.
    PersonName,
    /// Postal address.
    Address,
    /// Calendar date.
    Date,
    /// A person's date of birth.
    BirthDate,
    /// Latitude/longitude pair.
    GeoPoint,
    /// Monetary amount.
    Amount,
    /// Prose, which may embed identifiers.
    FreeText,
    /// A short code (category, status, product code).
    Code,
    /// Integer count or number.
    Integer,
    /// Anything else.
    Text,
}

impl SemanticType {
    /// Every semantic type, in declaration order.
    pub const ALL: [SemanticType; 17] = [
        Self::ResidentId,
        Self::Uscc,
        Self::Mobile,
        Self::BankCard,
        Self::Passport,
        Self::LicencePlate,
        Self::Email,
        Self::PersonName,
        Self::Address,
        Self::Date,
        Self::BirthDate,
        Self::GeoPoint,
        Self::Amount,
        Self::FreeText,
        Self::Code,
        Self::Integer,
        Self::Text,
    ];

    /// The stable snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResidentId => "resident_id",
            Self::Uscc => "uscc",
            Self::Mobile => "mobile",
            Self::BankCard => "bank_card",
            Self::Passport => "passport",
            Self::LicencePlate => "licence_plate",
            Self::Email => "email",
            Self::PersonName => "person_name",
            Self::Address => "address",
            Self::Date => "date",
            Self::BirthDate => "birth_date",
            Self::GeoPoint => "geo_point",
            Self::Amount => "amount",
            Self::FreeText => "free_text",
            Self::Code => "code",
            Self::Integer => "integer",
            Self::Text => "text",
        }
    }

    /// The grade detection proposes for a column of this type.
    ///
    /// Sensitive personal information in GB/T 35273-2020 (identity document
    /// numbers, bank accounts, precise location) is `general-4`; other
    /// personal identifiers and organization identifiers are `general-3`;
    /// plain business values are `general-2`. Detection never proposes
    /// `important` or `core`: those need a human decision.
    pub fn default_grade(self) -> Grade {
        match self {
            Self::ResidentId | Self::BankCard | Self::Passport | Self::GeoPoint => Grade::General4,
            Self::PersonName
            | Self::Mobile
            | Self::Address
            | Self::Uscc
            | Self::LicencePlate
            | Self::Email
            | Self::BirthDate => Grade::General3,
            Self::Date
            | Self::Amount
            | Self::FreeText
            | Self::Code
            | Self::Integer
            | Self::Text => Grade::General2,
        }
    }

    /// Whether a column of this type is a quasi-identifier by default.
    ///
    /// Quasi-identifiers (GB/T 37964-2019) are values that single a person
    /// out only in combination: birth date, address, location. Direct
    /// identifiers (ID numbers, names, mobiles, cards, plates, e-mail) are
    /// not quasi-identifiers: they are masked or pseudonymized outright.
    pub fn default_quasi_identifier(self) -> bool {
        matches!(self, Self::BirthDate | Self::Address | Self::GeoPoint)
    }
}

impl fmt::Display for SemanticType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SemanticType {
    type Err = SchemaParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| SchemaParseError::SemanticType(truncated(s)))
    }
}

/// A data grade per GB/T 43697-2024. Ordered so that the more sensitive
/// grade compares greater: `General1 < ... < General4 < Important < Core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    /// General data, sub-level 1 (public or near-public).
    #[serde(rename = "general-1")]
    General1,
    /// General data, sub-level 2.
    #[serde(rename = "general-2")]
    General2,
    /// General data, sub-level 3.
    #[serde(rename = "general-3")]
    General3,
    /// General data, sub-level 4 (the most sensitive general data).
    #[serde(rename = "general-4")]
    General4,
    /// Important data (重要数据).
    #[serde(rename = "important")]
    Important,
    /// Core data (核心数据).
    #[serde(rename = "core")]
    Core,
}

impl Grade {
    /// Every grade, least sensitive first.
    pub const ALL: [Grade; 6] = [
        Self::General1,
        Self::General2,
        Self::General3,
        Self::General4,
        Self::Important,
        Self::Core,
    ];

    /// The stable name, as serialized (`core`, `important`, `general-4`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::General1 => "general-1",
            Self::General2 => "general-2",
            Self::General3 => "general-3",
            Self::General4 => "general-4",
            Self::Important => "important",
            Self::Core => "core",
        }
    }

    /// Maps a JR/T 0197-2020 financial data level (5 most sensitive, 1
    /// least) onto GB/T 43697-2024.
    ///
    /// Level 5 is the financial sector's important data (its disclosure can
    /// harm national security or the public interest), so it maps to
    /// `important`; levels 4 to 1 are general data and keep their number
    /// (4 → `general-4`, ..., 1 → `general-1`). No financial level maps to
    /// `core`: core data is designated by the state's data catalogues, not
    /// by a sector grading. Returns `None` outside 1..=5.
    pub fn from_jrt_level(level: u8) -> Option<Grade> {
        match level {
            5 => Some(Self::Important),
            4 => Some(Self::General4),
            3 => Some(Self::General3),
            2 => Some(Self::General2),
            1 => Some(Self::General1),
            _ => None,
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grade {
    type Err = SchemaParseError;

    /// Accepts the GB/T 43697 names (`core`, `important`, `general-4` ...
    /// `general-1`) and JR/T 0197 levels written `jr-5` ... `jr-1` or just
    /// `5` ... `1`, ASCII case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        if let Some(g) = Self::ALL.into_iter().find(|g| g.as_str() == wanted) {
            return Ok(g);
        }
        let level = wanted.strip_prefix("jr-").unwrap_or(&wanted);
        level
            .parse::<u8>()
            .ok()
            .and_then(Self::from_jrt_level)
            .ok_or_else(|| SchemaParseError::Grade(truncated(s)))
    }
}

/// A string that names no grade or no semantic type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaParseError {
    /// Not a GB/T 43697 grade name nor a JR/T 0197 level.
    #[error("unknown grade {0:?}; expected core, important, general-4..general-1 or jr-5..jr-1")]
    Grade(String),
    /// Not a semantic type name.
    #[error("unknown semantic type {0:?}")]
    SemanticType(String),
}

/// At most 64 bytes of a rejected value, so errors stay small.
fn truncated(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// One column of a dataset: its type, the detector's confidence in it, its
/// grade and whether it is a quasi-identifier.
///
/// Serialized with the type under `"type"`, as the API shows it:
/// `{"name", "type", "confidence", "grade", "quasi_identifier"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// Column name, from the header.
    pub name: String,
    /// What the column holds.
    #[serde(rename = "type")]
    pub semantic_type: SemanticType,
    /// Fraction of non-empty values that matched the type, in `0.0..=1.0`
    /// (1.0 for a type set by an operator).
    pub confidence: f32,
    /// The column's grade.
    pub grade: Grade,
    /// Whether the column takes part in k-anonymity as a quasi-identifier.
    pub quasi_identifier: bool,
}

/// A dataset's grade: the highest grade among its columns, `general-1` for
/// a dataset without columns.
pub fn dataset_grade<'a>(columns: impl IntoIterator<Item = &'a ColumnSchema>) -> Grade {
    columns
        .into_iter()
        .map(|c| c.grade)
        .max()
        .unwrap_or(Grade::General1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_order_by_sensitivity() {
        assert!(Grade::Core > Grade::Important);
        assert!(Grade::Important > Grade::General4);
        assert!(Grade::General4 > Grade::General3);
        assert!(Grade::General2 > Grade::General1);
    }

    #[test]
    fn grade_names_round_trip() {
        for g in Grade::ALL {
            assert_eq!(g.to_string().parse::<Grade>(), Ok(g));
            let json = serde_json::to_string(&g).unwrap();
            assert_eq!(json, format!("\"{g}\""));
            assert_eq!(serde_json::from_str::<Grade>(&json).unwrap(), g);
        }
        assert_eq!("General-4".parse::<Grade>(), Ok(Grade::General4));
    }

    #[test]
    fn jrt_levels_map_onto_gbt_grades() {
        assert_eq!("jr-5".parse::<Grade>(), Ok(Grade::Important));
        assert_eq!("5".parse::<Grade>(), Ok(Grade::Important));
        assert_eq!("jr-4".parse::<Grade>(), Ok(Grade::General4));
        assert_eq!("3".parse::<Grade>(), Ok(Grade::General3));
        assert_eq!("JR-2".parse::<Grade>(), Ok(Grade::General2));
        assert_eq!("1".parse::<Grade>(), Ok(Grade::General1));
        for bad in ["0", "6", "jr-6", "jr-", "general-5", "", "secret"] {
            assert!(bad.parse::<Grade>().is_err(), "{bad}");
        }
    }

    #[test]
    fn semantic_type_names_round_trip() {
        for t in SemanticType::ALL {
            assert_eq!(t.as_str().parse::<SemanticType>(), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert!("ssn".parse::<SemanticType>().is_err());
    }

    #[test]
    fn column_schema_serializes_type_field() {
        let c = ColumnSchema {
            name: "mobile".into(),
            semantic_type: SemanticType::Mobile,
            confidence: 1.0,
            grade: Grade::General3,
            quasi_identifier: false,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["type"], "mobile");
        assert_eq!(v["grade"], "general-3");
        let back: ColumnSchema = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn dataset_grade_is_the_maximum() {
        let col = |grade| ColumnSchema {
            name: "c".into(),
            semantic_type: SemanticType::Text,
            confidence: 1.0,
            grade,
            quasi_identifier: false,
        };
        let cols = [
            col(Grade::General2),
            col(Grade::General4),
            col(Grade::General3),
        ];
        assert_eq!(dataset_grade(&cols), Grade::General4);
        assert_eq!(dataset_grade(&[]), Grade::General1);
    }
}
