//! The default policy table, version `v1`, as Rust: the reference the
//! shipped `vault/policy/default.toml` is checked against.

use super::{Policy, Rule};
use crate::desensitize::technique::{Generalization as G, Technique as T};
use crate::schema::{Grade, SemanticType as S};

const ALL: &[Grade] = &[
    Grade::General1,
    Grade::General2,
    Grade::General3,
    Grade::General4,
];
const LOW: &[Grade] = &[Grade::General1, Grade::General2];
const LOW3: &[Grade] = &[Grade::General1, Grade::General2, Grade::General3];
const G3: &[Grade] = &[Grade::General3];
const G4: &[Grade] = &[Grade::General4];
const HIGH: &[Grade] = &[Grade::General3, Grade::General4];

const SENSITIVE_PI: &str = "GB/T 35273-2020 annex B: sensitive personal information";
const PERSONAL: &str = "GB/T 35273-2020 3.1: personal information";
const QUASI_ID: &str = "GB/T 37964-2019: generalize quasi-identifiers; k-anonymity";
const BUSINESS: &str = "GB/T 43697-2024: general data, controls follow the level";

fn mask(keep_first: u8, keep_last: u8) -> T {
    T::Mask {
        keep_first,
        keep_last,
    }
}

fn rule(semantic_type: S, grades: &[Grade], tiers: [T; 3], basis: &str) -> Rule {
    let [tier1, tier2, tier3] = tiers;
    Rule {
        semantic_type,
        grades: grades.to_vec(),
        tier1,
        tier2,
        tier3,
        basis: basis.to_owned(),
    }
}

fn identifier_rules() -> Vec<Rule> {
    let (p, x) = (T::Pseudonymize, T::Suppress);
    vec![
        rule(S::ResidentId, ALL, [p, p, x], SENSITIVE_PI),
        rule(S::Passport, ALL, [p, p, x], SENSITIVE_PI),
        rule(S::BankCard, ALL, [mask(6, 4), mask(0, 4), x], SENSITIVE_PI),
        rule(S::Mobile, ALL, [mask(3, 4), mask(3, 4), x], PERSONAL),
        rule(S::PersonName, ALL, [mask(1, 0), p, x], PERSONAL),
        rule(S::LicencePlate, ALL, [mask(2, 0), mask(1, 0), x], PERSONAL),
        rule(S::Email, ALL, [mask(1, 0), mask(0, 0), x], PERSONAL),
        rule(S::Uscc, LOW3, [T::Keep, T::Keep, mask(8, 0)], BUSINESS),
        rule(S::Uscc, G4, [T::Keep, p, x], BUSINESS),
    ]
}

fn quasi_identifier_rules() -> Vec<Rule> {
    let g = T::Generalize;
    let (month, year) = (g(G::DateToMonth), g(G::DateToYear));
    let grid = |cell_deg| g(G::GeoGrid { cell_deg });
    let range = |width| g(G::AmountRange { width });
    let district = g(G::AddressToDistrict);
    vec![
        rule(S::Address, ALL, [district, district, district], QUASI_ID),
        rule(
            S::BirthDate,
            ALL,
            [month, year, g(G::AgeBand { years: 10 })],
            QUASI_ID,
        ),
        rule(S::Date, LOW, [T::Keep, month, year], QUASI_ID),
        rule(S::Date, HIGH, [month, year, year], QUASI_ID),
        rule(
            S::GeoPoint,
            ALL,
            [grid(0.01), grid(0.05), grid(0.1)],
            SENSITIVE_PI,
        ),
        rule(
            S::Amount,
            LOW3,
            [T::Keep, range(1_000), range(10_000)],
            BUSINESS,
        ),
        rule(
            S::Amount,
            G4,
            [range(100), range(1_000), range(10_000)],
            BUSINESS,
        ),
    ]
}

fn value_rules() -> Vec<Rule> {
    let (k, p, x) = (T::Keep, T::Pseudonymize, T::Suppress);
    vec![
        rule(S::FreeText, ALL, [T::RedactIdentifiers, x, x], PERSONAL),
        rule(S::Code, LOW, [k, k, k], BUSINESS),
        rule(S::Code, G3, [k, k, p], BUSINESS),
        rule(S::Code, G4, [p, p, x], BUSINESS),
        rule(S::Integer, LOW, [k, k, k], BUSINESS),
        rule(S::Integer, G3, [k, k, x], BUSINESS),
        rule(S::Integer, G4, [k, x, x], BUSINESS),
        rule(S::Text, LOW, [k, k, k], BUSINESS),
        rule(S::Text, G3, [k, p, x], BUSINESS),
        rule(S::Text, G4, [p, x, x], BUSINESS),
    ]
}

impl Policy {
    /// The default policy, version `v1`, k = 5, after GB/T 37964-2019
    /// (techniques) and GB/T 35273-2020 (sensitive personal information).
    ///
    /// `important` → aggregate only and `core` → refused, for every type
    /// and tier; the table covers the general grades (`g1`..`g4`):
    ///
    /// | type          | grades | tier 1              | tier 2             | tier 3              |
    /// |---------------|--------|---------------------|--------------------|---------------------|
    /// | resident_id   | g1–g4  | pseudonymize        | pseudonymize       | suppress            |
    /// | passport      | g1–g4  | pseudonymize        | pseudonymize       | suppress            |
    /// | bank_card     | g1–g4  | mask first 6 last 4 | mask last 4        | suppress            |
    /// | mobile        | g1–g4  | mask first 3 last 4 | mask first 3 last 4| suppress            |
    /// | person_name   | g1–g4  | mask first 1 (张*)  | pseudonymize       | suppress            |
    /// | licence_plate | g1–g4  | mask first 2        | mask first 1       | suppress            |
    /// | email         | g1–g4  | mask local, first 1 | mask local         | suppress            |
    /// | uscc          | g1–g3  | keep                | keep               | mask first 8        |
    /// | uscc          | g4     | keep                | pseudonymize       | suppress            |
    /// | address       | g1–g4  | district (区/县)    | district           | district            |
    /// | birth_date    | g1–g4  | month               | year               | age band 10 years   |
    /// | date          | g1–g2  | keep                | month              | year                |
    /// | date          | g3–g4  | month               | year               | year                |
    /// | geo_point     | g1–g4  | grid 0.01°          | grid 0.05°         | grid 0.1°           |
    /// | amount        | g1–g3  | keep                | range 1 000        | range 10 000        |
    /// | amount        | g4     | range 100           | range 1 000        | range 10 000        |
    /// | free_text     | g1–g4  | redact identifiers  | suppress           | suppress            |
    /// | code          | g1–g2  | keep                | keep               | keep                |
    /// | code          | g3     | keep                | keep               | pseudonymize        |
    /// | code          | g4     | pseudonymize        | pseudonymize       | suppress            |
    /// | integer       | g1–g2  | keep                | keep               | keep                |
    /// | integer       | g3     | keep                | keep               | suppress            |
    /// | integer       | g4     | keep                | suppress           | suppress            |
    /// | text          | g1–g2  | keep                | keep               | keep                |
    /// | text          | g3     | keep                | pseudonymize       | suppress            |
    /// | text          | g4     | pseudonymize        | suppress           | suppress            |
    ///
    /// Free text is released only to tier 1 and only with embedded
    /// identifiers redacted, since names and places in prose are not
    /// reliably detectable. No `general-4` column is kept as is for tier 2
    /// or 3.
    pub(crate) fn reference_v1() -> Policy {
        let mut rules = identifier_rules();
        rules.extend(quasi_identifier_rules());
        rules.extend(value_rules());
        // Built directly: the table is a constant, and a unit test checks
        // that `Policy::new` accepts it.
        Policy {
            version: "v1".to_owned(),
            k: 5,
            rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_passes_validation() {
        let p = Policy::reference_v1();
        let again = Policy::new(p.version.clone(), p.k, p.rules.clone());
        assert_eq!(again, Ok(p));
    }
}
