//! A streaming per-column profiler: counts, for every value of a column,
//! which semantic types the value matches, then proposes the column's type,
//! confidence, grade and quasi-identifier flag.
//!
//! Every value is fully validated (check digits included); the work is
//! O(len) per value and allocates only for the rare value that NFKC
//! changes. The first [`SCAN_SAMPLE`] values that look like prose (free
//! text, a code, or nothing recognized) are also scanned for embedded
//! identifiers, which raise the grade of a free-text column. The profiler keeps counts, never values.

use crate::schema::{ColumnSchema, Grade, SemanticType};

use super::normalize;
use super::scan::scan_text;
use super::validators::{bank_card, email, licence_plate, mobile, passport, resident_id, uscc};
use super::values::{address, amount, code, date, free_text, geo_point, integer, person_name};

/// Values scanned for embedded identifiers, per column.
pub const SCAN_SAMPLE: u64 = 10_000;
/// Match fraction from which a type is taken for the whole column.
const TYPE_THRESHOLD: f64 = 0.8;
/// Match fraction of an identifier type that raises a column's grade even
/// when the column is classified as something else (Luhn alone passes 10%
/// of random digit strings, so this stays well above that).
const RAISE_THRESHOLD: f64 = 0.2;
/// Score added to the type the header name suggests.
const HEADER_BONUS: f64 = 0.1;
/// Score added to a bank card column that is all UnionPay (`62`).
const UNIONPAY_BONUS: f64 = 0.05;

/// Types the profiler counts, in priority order: on equal scores the
/// earlier type wins, so a check-digit identifier beats a plain number.
const CANDIDATES: [SemanticType; 15] = [
    SemanticType::ResidentId,
    SemanticType::Uscc,
    SemanticType::BankCard,
    SemanticType::Mobile,
    SemanticType::Passport,
    SemanticType::LicencePlate,
    SemanticType::Email,
    SemanticType::GeoPoint,
    SemanticType::Date,
    SemanticType::PersonName,
    SemanticType::Address,
    SemanticType::Integer,
    SemanticType::Amount,
    SemanticType::Code,
    SemanticType::FreeText,
];
/// Candidates that identify a person or an organization by themselves.
const IDENTIFIERS: u32 = 0b1111_1111;
/// Values that match nothing but these may be prose with identifiers in
/// it; only they are scanned.
const PROSE: u32 = bit(SemanticType::FreeText) | bit(SemanticType::Code);
/// Bit of [`SemanticType::BankCard`] in a match set.
const BANK_CARD_BIT: u32 = bit(SemanticType::BankCard);

/// Header-name fragments (lowercase) and the type they suggest; the first
/// match wins, so `出生日期` suggests a birth date, not a date.
const HEADER_HINTS: [(&str, SemanticType); 34] = [
    ("身份证", SemanticType::ResidentId),
    ("证件号", SemanticType::ResidentId),
    ("id_card", SemanticType::ResidentId),
    ("idcard", SemanticType::ResidentId),
    ("resident", SemanticType::ResidentId),
    ("信用代码", SemanticType::Uscc),
    ("uscc", SemanticType::Uscc),
    ("credit_code", SemanticType::Uscc),
    ("银行卡", SemanticType::BankCard),
    ("卡号", SemanticType::BankCard),
    ("bank", SemanticType::BankCard),
    ("card", SemanticType::BankCard),
    ("手机", SemanticType::Mobile),
    ("电话", SemanticType::Mobile),
    ("mobile", SemanticType::Mobile),
    ("phone", SemanticType::Mobile),
    ("护照", SemanticType::Passport),
    ("passport", SemanticType::Passport),
    ("车牌", SemanticType::LicencePlate),
    ("plate", SemanticType::LicencePlate),
    ("邮箱", SemanticType::Email),
    ("mail", SemanticType::Email),
    ("出生", SemanticType::BirthDate),
    ("生日", SemanticType::BirthDate),
    ("birth", SemanticType::BirthDate),
    ("dob", SemanticType::BirthDate),
    ("坐标", SemanticType::GeoPoint),
    ("经纬", SemanticType::GeoPoint),
    ("姓名", SemanticType::PersonName),
    ("name", SemanticType::PersonName),
    ("地址", SemanticType::Address),
    ("住址", SemanticType::Address),
    ("address", SemanticType::Address),
    ("金额", SemanticType::Amount),
];

fn candidate_index(t: SemanticType) -> Option<usize> {
    CANDIDATES.iter().position(|&c| c == t)
}

/// A validator on a normalized value.
type Check = fn(&str) -> bool;

const NEVER: Check = |_| false;

/// Bit of candidate `t` in a match set (0 for a type that is not one).
const fn bit(t: SemanticType) -> u32 {
    let mut i = 0;
    while i < CANDIDATES.len() {
        if CANDIDATES[i] as u8 == t as u8 {
            return 1 << i;
        }
        i += 1;
    }
    0
}

/// Bit set of the candidates an all-digit value matches: the common case
/// for identifier columns, so only the checks whose length fits run, and
/// integer, amount and code follow from the length and the first digit
/// (a test pins this to the general path).
fn digit_matches(v: &str) -> u32 {
    let len = v.len();
    let checks: [(bool, Check, SemanticType); 5] = [
        (
            matches!(len, 15 | 18),
            resident_id,
            SemanticType::ResidentId,
        ),
        (len == 18, uscc, SemanticType::Uscc),
        ((16..=19).contains(&len), bank_card, SemanticType::BankCard),
        (matches!(len, 11 | 13 | 15), mobile, SemanticType::Mobile),
        (len == 8, date, SemanticType::Date),
    ];
    let mut m = checks
        .iter()
        .filter(|(fits, check, _)| *fits && check(v))
        .fold(0, |m, &(_, _, t)| m | bit(t));
    let leading_zero = v.starts_with('0');
    if len <= 19 {
        m |= bit(SemanticType::Amount);
        if len == 1 || !leading_zero {
            m |= bit(SemanticType::Integer);
        }
    }
    if leading_zero && len <= 64 {
        m |= bit(SemanticType::Code);
    }
    m
}

/// Bit set of the candidates any other ASCII value matches.
fn ascii_matches(v: &str) -> u32 {
    let checks: [Check; 15] = [
        resident_id,
        uscc,
        bank_card,
        mobile,
        passport,
        NEVER,
        email,
        geo_point,
        date,
        NEVER,
        NEVER,
        integer,
        amount,
        code,
        free_text,
    ];
    bits(&checks, v)
}

/// Bit set of the candidates a non-ASCII value matches.
fn unicode_matches(v: &str) -> u32 {
    let checks: [Check; 15] = [
        NEVER,
        NEVER,
        NEVER,
        NEVER,
        NEVER,
        licence_plate,
        NEVER,
        NEVER,
        date,
        person_name,
        address,
        NEVER,
        amount,
        NEVER,
        free_text,
    ];
    bits(&checks, v)
}

fn bits(checks: &[Check; 15], v: &str) -> u32 {
    checks
        .iter()
        .enumerate()
        .filter(|(_, check)| check(v))
        .fold(0, |m, (i, _)| m | 1 << i)
}

/// Streaming profile of one column. Feed every value to
/// [`observe`](Self::observe), then call [`finish`](Self::finish).
#[derive(Debug, Clone, Default)]
pub struct ColumnProfiler {
    non_empty: u64,
    unionpay: u64,
    scanned: u64,
    counts: [u64; 15],
    embedded: [u64; 15],
}

impl ColumnProfiler {
    /// An empty profile.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one value of the column.
    pub fn observe(&mut self, value: &str) {
        let v = normalize(value);
        if v.is_empty() {
            return;
        }
        self.non_empty += 1;
        let mask = if v.bytes().all(|b| b.is_ascii_digit()) {
            digit_matches(&v)
        } else if v.is_ascii() {
            ascii_matches(&v)
        } else {
            unicode_matches(&v)
        };
        let mut rest = mask;
        while rest != 0 {
            self.counts[rest.trailing_zeros() as usize] += 1;
            rest &= rest - 1;
        }
        self.unionpay += u64::from(mask & BANK_CARD_BIT != 0 && v.starts_with("62"));
        if mask & PROSE == mask && v.len() >= 6 && self.scanned < SCAN_SAMPLE {
            self.scan(&v);
        }
    }

    fn scan(&mut self, v: &str) {
        self.scanned += 1;
        for finding in scan_text(v) {
            if let Some(i) = candidate_index(finding.semantic_type) {
                self.embedded[i] += 1;
            }
        }
    }

    fn fraction(&self, i: usize) -> f64 {
        self.counts[i] as f64 / self.non_empty.max(1) as f64
    }

    /// Candidate types with the fraction of non-empty values that matched
    /// each, best first; types no value matched are left out.
    pub fn candidates(&self) -> Vec<(SemanticType, f32)> {
        let mut out: Vec<(SemanticType, f32)> = (0..CANDIDATES.len())
            .filter(|&i| self.counts[i] > 0)
            .map(|i| (CANDIDATES[i], self.fraction(i) as f32))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    /// The proposed schema of the column named `header_name`.
    pub fn finish(self, header_name: &str) -> ColumnSchema {
        let name = header_name.to_owned();
        if self.non_empty == 0 {
            return ColumnSchema {
                name,
                semantic_type: SemanticType::Text,
                confidence: 0.0,
                grade: Grade::General1,
                quasi_identifier: false,
            };
        }
        let hint = header_hint(header_name);
        let (semantic_type, confidence) = self.classify(hint);
        ColumnSchema {
            name,
            semantic_type,
            confidence: confidence.clamp(0.0, 1.0) as f32,
            grade: self.grade(semantic_type),
            quasi_identifier: semantic_type.default_quasi_identifier(),
        }
    }

    /// Selection score of candidate `i`: match fraction plus the header and
    /// UnionPay bonuses.
    fn score(&self, i: usize, hint: Option<SemanticType>) -> f64 {
        let t = CANDIDATES[i];
        let hinted =
            hint == Some(t) || (hint == Some(SemanticType::BirthDate) && t == SemanticType::Date);
        let mut score = self.fraction(i) + if hinted { HEADER_BONUS } else { 0.0 };
        if t == SemanticType::BankCard && self.counts[i] > 0 {
            score += UNIONPAY_BONUS * self.unionpay as f64 / self.counts[i] as f64;
        }
        score
    }

    fn classify(&self, hint: Option<SemanticType>) -> (SemanticType, f64) {
        let (best, score) = (0..CANDIDATES.len())
            .map(|i| (i, self.score(i, hint)))
            .fold((0, f64::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
        let best_fraction = self.fraction(best);
        if score >= TYPE_THRESHOLD {
            let t = match CANDIDATES[best] {
                SemanticType::Date if hint == Some(SemanticType::BirthDate) => {
                    SemanticType::BirthDate
                }
                t => t,
            };
            return (t, score);
        }
        let free = candidate_index(SemanticType::FreeText).map_or(0.0, |i| self.fraction(i));
        if free >= 0.5 {
            (SemanticType::FreeText, free)
        } else {
            (SemanticType::Text, 1.0 - best_fraction)
        }
    }

    /// The type's grade, raised by identifiers that make up a good part of
    /// the column and, for text columns, by identifiers embedded in it.
    fn grade(&self, t: SemanticType) -> Grade {
        let textual = matches!(
            t,
            SemanticType::FreeText | SemanticType::Text | SemanticType::Code
        );
        (0..CANDIDATES.len())
            .filter(|&i| {
                let whole = IDENTIFIERS & 1 << i != 0 && self.fraction(i) >= RAISE_THRESHOLD;
                whole || (textual && self.embedded[i] > 0)
            })
            .map(|i| CANDIDATES[i].default_grade())
            .fold(t.default_grade(), Grade::max)
    }
}

/// The type a header name suggests, if any.
fn header_hint(header: &str) -> Option<SemanticType> {
    let lower = header.to_lowercase();
    HEADER_HINTS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|&(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(header: &str, values: &[&str]) -> ColumnSchema {
        let mut p = ColumnProfiler::new();
        for v in values {
            p.observe(v);
        }
        p.finish(header)
    }

    #[test]
    fn empty_column_is_general_1() {
        let c = profile("x", &["", "  ", ""]);
        assert_eq!(
            (c.semantic_type, c.grade),
            (SemanticType::Text, Grade::General1)
        );
    }

    #[test]
    fn identifiers_win_over_plain_numbers() {
        let c = profile("c", &["13812345678", "13912345678", "", "15012345678"]);
        assert_eq!(c.semantic_type, SemanticType::Mobile);
        assert_eq!(c.grade, Grade::General3);
        assert!((c.confidence - 1.0).abs() < f32::EPSILON);
    }

    #[test]
    fn header_hint_turns_date_into_birth_date() {
        let c = profile("出生日期", &["1990-01-02", "1985-12-31"]);
        assert_eq!(c.semantic_type, SemanticType::BirthDate);
        assert!(c.quasi_identifier);
        let c = profile("registered", &["1990-01-02", "1985-12-31"]);
        assert_eq!(c.semantic_type, SemanticType::Date);
        assert!(!c.quasi_identifier);
    }

    #[test]
    fn header_hint_resolves_a_borderline_column() {
        let values = ["13812345678", "13912345678", "13712345678", "n/a"];
        let unhinted = profile("c", &values);
        assert_eq!(unhinted.semantic_type, SemanticType::Text);
        // Three in four values are mobiles: the grade is raised anyway.
        assert_eq!(unhinted.grade, Grade::General3);
        assert_eq!(
            profile("手机号", &values).semantic_type,
            SemanticType::Mobile
        );
    }

    #[test]
    fn free_text_with_embedded_id_takes_its_grade() {
        let c = profile(
            "备注",
            &[
                "客户来电咨询业务办理进度，已经告知预计三个工作日内完成。",
                "客户身份证号11010519491231002X，要求更正登记信息，已转交。",
            ],
        );
        assert_eq!(c.semantic_type, SemanticType::FreeText);
        assert_eq!(c.grade, Grade::General4);
        let plain = profile(
            "备注",
            &["客户来电咨询业务办理进度，已经告知预计三个工作日内完成。"],
        );
        assert_eq!(plain.grade, Grade::General2);
    }

    #[test]
    fn mixed_column_with_many_ids_is_raised() {
        let c = profile("x", &["11010519491231002X", "不详", "待补充", "无"]);
        assert_eq!(c.semantic_type, SemanticType::Text);
        assert_eq!(c.grade, Grade::General4);
    }

    #[test]
    fn digit_fast_path_agrees_with_general_path() {
        let mut values: Vec<String> = [
            "0",
            "7",
            "007",
            "42",
            "20230105",
            "20231301",
            "13812345678",
            "8613812345678",
            "008613812345678",
            "110105491231002",
            "110105194912310021",
            "4111111111111111",
            "6222021234567890123",
            "91350100900010043",
            "12345678901234567890",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        values.push("1".repeat(70));
        let mut buf = Vec::new();
        crate::sample::write_csv(200, 3, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            values.extend([f[0], f[2], f[3], f[4]].map(str::to_owned));
        }
        for v in values
            .iter()
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
        {
            assert_eq!(digit_matches(v), ascii_matches(v), "{v}");
        }
    }

    #[test]
    fn candidates_lists_matching_types() {
        let mut p = ColumnProfiler::new();
        p.observe("20230105");
        let cands = p.candidates();
        assert!(cands.contains(&(SemanticType::Date, 1.0)));
        assert!(cands.contains(&(SemanticType::Integer, 1.0)));
    }
}
