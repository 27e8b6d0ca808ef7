//! The desensitization engine: what an analyst may see of a dataset, and
//! the proof of what was released.
//!
//! A [`Policy`] maps a column's grade, semantic type and the recipient's
//! [`Tier`] to a [`Technique`] (GB/T 37964-2019: masking, suppression,
//! pseudonymization, generalization, aggregation). A [`Desensitizer`] is the
//! row-level plan for one extract, and applies it row by row. [`kanon`]
//! measures and enforces k-anonymity over quasi-identifiers and builds
//! small-cell-suppressed aggregates; [`manifest`] signs what an extract
//! contained, so a leaked file can be traced back to it.
//!
//! What the engine never does:
//! - release a `core` column in any form, or an `important` column row by
//!   row (those leave only through [`kanon::aggregate`]);
//! - release a column the policy does not cover: uncovered combinations are
//!   suppressed (fail closed), and so is any value a technique cannot parse
//!   (a date that is not a date becomes an empty cell, not the raw value);
//! - keep state between rows, perform I/O, or open a socket.
//!
//! This module is pure: the HTTP wiring (grants, filters, formats, ledger
//! entries) lives in the API crate.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod apply;
pub mod fingerprint;
pub mod kanon;
pub mod manifest;
mod policy;
mod prf;
mod technique;
mod transform;

pub use apply::{grant_key, Desensitizer, PseudonymKey};
pub use fingerprint::FingerprintKey;
pub use manifest::{ExtractManifest, ManifestError, ManifestSigner, ManifestVerifier};
pub use policy::{
    ColumnPlan, Policy, PolicyDecision, PolicyError, PolicyTomlError, Refusal, RefusalReason, Rule,
    DEFAULT_TOML,
};
pub use technique::{Generalization, Technique};

/// A partner's trust tier, set by the operator: 1 is the most trusted, 3
/// the least. The tier selects the policy row.
///
/// Serialized as the number (`{"tier": 2}`); parsed from `1`..`3` or
/// `tier1`..`tier3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Tier {
    /// Tier 1: the most trusted partners.
    One = 1,
    /// Tier 2.
    Two = 2,
    /// Tier 3: the least trusted partners.
    Three = 3,
}

impl Tier {
    /// Every tier, most trusted first.
    pub const ALL: [Tier; 3] = [Tier::One, Tier::Two, Tier::Three];

    /// The tier's number, 1 to 3.
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// A tier outside 1 to 3, or a string that names none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier {0:?}; expected 1, 2 or 3")]
pub struct TierParseError(String);

impl TryFrom<u8> for Tier {
    type Error = TierParseError;

    fn try_from(n: u8) -> Result<Self, Self::Error> {
        match n {
            1 => Ok(Tier::One),
            2 => Ok(Tier::Two),
            3 => Ok(Tier::Three),
            _ => Err(TierParseError(n.to_string())),
        }
    }
}

impl From<Tier> for u8 {
    fn from(t: Tier) -> u8 {
        t.number()
    }
}

impl FromStr for Tier {
    type Err = TierParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let digits = t.strip_prefix("tier").unwrap_or(&t).trim_start();
        match digits {
            "1" => Ok(Tier::One),
            "2" => Ok(Tier::Two),
            "3" => Ok(Tier::Three),
            _ => Err(TierParseError(s.chars().take(16).collect())),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tier{}", self.number())
    }
}

/// Neutralizes spreadsheet formula injection in one CSV output cell: a cell
/// starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
/// leading `'`, so Excel and LibreOffice show it as text instead of
/// evaluating it. Everything else is borrowed unchanged. Quoting per
/// RFC 4180 is the CSV writer's job, after this.
pub fn csv_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        let mut safe = String::with_capacity(cell.len() + 1);
        safe.push('\'');
        safe.push_str(cell);
        Cow::Owned(safe)
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_parses_and_serializes_as_number() {
        for t in Tier::ALL {
            assert_eq!(t.number().to_string().parse::<Tier>(), Ok(t));
            assert_eq!(t.to_string().parse::<Tier>(), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, t.number().to_string());
            assert_eq!(serde_json::from_str::<Tier>(&json).unwrap(), t);
        }
        assert_eq!("Tier 2".parse::<Tier>(), Ok(Tier::Two));
        assert!(Tier::One < Tier::Three);
        for bad in ["0", "4", "", "tier", "one"] {
            assert!(bad.parse::<Tier>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Tier>("4").is_err());
    }

    #[test]
    fn csv_safe_neutralizes_formula_prefixes_only() {
        for bad in ["=1+1", "+86", "-3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_safe(bad), format!("'{bad}"));
        }
        for ok in ["", "abc", "138****5678", "[1000,2000)", "北京市", " =x"] {
            assert!(matches!(csv_safe(ok), Cow::Borrowed(s) if s == ok));
        }
    }
}
