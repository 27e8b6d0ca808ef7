//! The de-identification techniques of GB/T 37964-2019 that a policy can
//! name, with their parameters.
//!
//! Serialized internally tagged, in snake_case, so a policy file reads
//! `{ technique = "mask", keep_first = 3, keep_last = 4 }` or
//! `{ technique = "generalize", to = "age_band", years = 10 }`. The names
//! are stable: they appear in policies and signed manifests.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::schema::SemanticType;

/// What happens to one column's values on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "technique", rename_all = "snake_case")]
pub enum Technique {
    /// The value as stored.
    Keep,
    /// Keep the first and last characters (Unicode scalar values, after
    /// NFKC), replace the others with `*`. A value of at most
    /// `keep_first + keep_last` characters is masked entirely. For e-mail
    /// columns the mask applies to the local part and the domain is kept.
    Mask {
        /// Characters kept at the start.
        keep_first: u8,
        /// Characters kept at the end.
        keep_last: u8,
    },
    /// HMAC-SHA256 under the grant's key, rendered as a typed token such as
    /// `RID-3f9a0c21d4e5b687`: stable within a grant, unlinkable across
    /// grants.
    Pseudonymize,
    /// Replace the value with a coarser one.
    Generalize(Generalization),
    /// Replace identifiers found inside free text (resident IDs, cards,
    /// mobiles, USCCs, passports, plates, e-mails) with `[type]`.
    RedactIdentifiers,
    /// Remove the value: the cell is empty.
    Suppress,
    /// No row-level output at all; the column may only be aggregated.
    AggregateOnly,
}

/// How [`Technique::Generalize`] coarsens a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Generalization {
    /// A date to `YYYY-MM`.
    DateToMonth,
    /// A date to `YYYY`.
    DateToYear,
    /// A birth date (or the birth date inside a resident ID) to an age band
    /// `30-39`, relative to the desensitizer's reference date.
    AgeBand {
        /// Width of a band in years (at least 1).
        years: u8,
    },
    /// A postal address to its district or county (`北京市海淀区`).
    AddressToDistrict,
    /// A postal address to its city (`北京市`), or province when it names
    /// no city: one step coarser than [`Generalization::AddressToDistrict`].
    AddressToCity,
    /// A `lat,lon` point to the south-west corner of its grid cell.
    GeoGrid {
        /// Cell size in degrees (positive, finite).
        cell_deg: f64,
    },
    /// An amount to the half-open range `[lo,hi)` containing it.
    AmountRange {
        /// Width of a range, in the amount's unit (at least 1).
        width: u64,
    },
}

impl Technique {
    /// Whether the technique's parameters make sense (a band, cell or range
    /// of positive size). A policy with an invalid technique is rejected.
    pub fn is_valid(&self) -> bool {
        match self {
            Technique::Generalize(g) => g.is_valid(),
            _ => true,
        }
    }
}

impl Technique {
    /// The technique `steps` levels coarser, for k-anonymity: dates go to
    /// months then years, addresses to districts then cities, and ranges,
    /// bands and grid cells double in size per step. A value kept as
    /// stored starts on that ladder (for dates, addresses, points and
    /// amounts); every other technique stays as it is (suppression of
    /// small classes covers it).
    pub fn coarser(self, ty: SemanticType, steps: u32) -> Technique {
        (0..steps).fold(self, |t, _| t.one_step_coarser(ty))
    }

    fn one_step_coarser(self, ty: SemanticType) -> Technique {
        use Generalization as G;
        let g = match self {
            Technique::Keep => match ty {
                SemanticType::Date | SemanticType::BirthDate => G::DateToMonth,
                SemanticType::Address => G::AddressToDistrict,
                SemanticType::GeoPoint => G::GeoGrid { cell_deg: 0.01 },
                SemanticType::Amount => G::AmountRange { width: 1000 },
                _ => return self,
            },
            Technique::Generalize(g) => match g {
                G::DateToMonth | G::DateToYear => G::DateToYear,
                G::AgeBand { years } => G::AgeBand {
                    years: years.saturating_mul(2).min(100),
                },
                G::AddressToDistrict | G::AddressToCity => G::AddressToCity,
                G::GeoGrid { cell_deg } => G::GeoGrid {
                    cell_deg: (cell_deg * 2.0).min(180.0),
                },
                G::AmountRange { width } => G::AmountRange {
                    width: width.saturating_mul(2),
                },
            },
            _ => return self,
        };
        Technique::Generalize(g)
    }
}

impl Generalization {
    /// Whether the parameters describe a non-empty band, cell or range.
    pub fn is_valid(&self) -> bool {
        match *self {
            Generalization::AgeBand { years } => years > 0,
            Generalization::GeoGrid { cell_deg } => {
                cell_deg.is_finite() && cell_deg > 0.0 && cell_deg <= 180.0
            }
            Generalization::AmountRange { width } => width > 0,
            _ => true,
        }
    }
}

impl fmt::Display for Technique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Technique::Keep => f.write_str("keep"),
            Technique::Mask {
                keep_first,
                keep_last,
            } => write!(f, "mask(first {keep_first}, last {keep_last})"),
            Technique::Pseudonymize => f.write_str("pseudonymize"),
            Technique::Generalize(g) => write!(f, "generalize({g})"),
            Technique::RedactIdentifiers => f.write_str("redact_identifiers"),
            Technique::Suppress => f.write_str("suppress"),
            Technique::AggregateOnly => f.write_str("aggregate_only"),
        }
    }
}

impl fmt::Display for Generalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generalization::DateToMonth => f.write_str("date_to_month"),
            Generalization::DateToYear => f.write_str("date_to_year"),
            Generalization::AgeBand { years } => write!(f, "age_band {years} years"),
            Generalization::AddressToDistrict => f.write_str("address_to_district"),
            Generalization::AddressToCity => f.write_str("address_to_city"),
            Generalization::GeoGrid { cell_deg } => write!(f, "geo_grid {cell_deg} deg"),
            Generalization::AmountRange { width } => write!(f, "amount_range {width}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_stable() {
        let cases = [
            (Technique::Keep, r#"{"technique":"keep"}"#),
            (
                Technique::Mask {
                    keep_first: 3,
                    keep_last: 4,
                },
                r#"{"technique":"mask","keep_first":3,"keep_last":4}"#,
            ),
            (Technique::Pseudonymize, r#"{"technique":"pseudonymize"}"#),
            (
                Technique::Generalize(Generalization::DateToMonth),
                r#"{"technique":"generalize","to":"date_to_month"}"#,
            ),
            (
                Technique::Generalize(Generalization::AgeBand { years: 10 }),
                r#"{"technique":"generalize","to":"age_band","years":10}"#,
            ),
            (
                Technique::Generalize(Generalization::GeoGrid { cell_deg: 0.05 }),
                r#"{"technique":"generalize","to":"geo_grid","cell_deg":0.05}"#,
            ),
            (
                Technique::Generalize(Generalization::AmountRange { width: 1000 }),
                r#"{"technique":"generalize","to":"amount_range","width":1000}"#,
            ),
            (
                Technique::RedactIdentifiers,
                r#"{"technique":"redact_identifiers"}"#,
            ),
            (Technique::Suppress, r#"{"technique":"suppress"}"#),
            (
                Technique::AggregateOnly,
                r#"{"technique":"aggregate_only"}"#,
            ),
        ];
        for (t, json) in cases {
            assert_eq!(serde_json::to_string(&t).unwrap(), json);
            assert_eq!(serde_json::from_str::<Technique>(json).unwrap(), t);
        }
        assert!(serde_json::from_str::<Technique>(r#"{"technique":"encrypt"}"#).is_err());
    }

    #[test]
    fn display_and_validity() {
        let t = Technique::Mask {
            keep_first: 1,
            keep_last: 0,
        };
        assert_eq!(t.to_string(), "mask(first 1, last 0)");
        let g = Technique::Generalize(Generalization::AmountRange { width: 1000 });
        assert_eq!(g.to_string(), "generalize(amount_range 1000)");
        assert!(g.is_valid());
        assert!(!Technique::Generalize(Generalization::AgeBand { years: 0 }).is_valid());
        for cell_deg in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(!Generalization::GeoGrid { cell_deg }.is_valid());
        }
        assert!(!Generalization::AmountRange { width: 0 }.is_valid());
    }

    #[test]
    fn coarser_climbs_the_ladder() {
        use Generalization as G;
        let g = Technique::Generalize;
        let ty = SemanticType::Address;
        assert_eq!(Technique::Keep.coarser(ty, 0), Technique::Keep);
        assert_eq!(Technique::Keep.coarser(ty, 1), g(G::AddressToDistrict));
        assert_eq!(Technique::Keep.coarser(ty, 5), g(G::AddressToCity));
        let amount = g(G::AmountRange { width: 1000 });
        assert_eq!(
            amount.coarser(SemanticType::Amount, 3),
            g(G::AmountRange { width: 8000 })
        );
        let date = Technique::Keep.coarser(SemanticType::Date, 2);
        assert_eq!(date, g(G::DateToYear));
        let band = g(G::AgeBand { years: 40 }).coarser(SemanticType::BirthDate, 3);
        assert_eq!(band, g(G::AgeBand { years: 100 }));
        assert_eq!(
            Technique::Pseudonymize.coarser(SemanticType::Code, 2),
            Technique::Pseudonymize
        );
        assert_eq!(
            Technique::Keep.coarser(SemanticType::Integer, 2),
            Technique::Keep
        );
    }
}
