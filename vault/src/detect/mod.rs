//! Sensitive-data detection: validators for Chinese identifiers with their
//! real check digits, a scanner for identifiers embedded in prose, and a
//! streaming per-column profiler that proposes a semantic type and a grade.
//!
//! Every input is normalized first ([`normalize`]): NFKC, so full-width
//! digits and letters (`１３８…`) become ASCII, then trimmed. The validators
//! (`is_*`) are pure functions on `&str`; they check structure *and* check
//! digits, birth dates and region prefixes, not just a pattern.
//!
//! What detection never does: decide `important` or `core` on its own (that
//! needs a human), or keep any value it has seen: the profiler keeps counts
//! only, so a profile can be logged without leaking data.

use std::borrow::Cow;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

mod profile;
mod scan;
mod validators;
mod values;

pub use profile::ColumnProfiler;
pub use scan::{scan_text, Finding};
pub use validators::{
    is_bank_card, is_email, is_licence_plate, is_mobile, is_passport, is_resident_id, is_unionpay,
    is_uscc,
};
pub use values::{
    is_address, is_amount, is_code, is_date, is_free_text, is_geo_point, is_integer, is_person_name,
};

pub(crate) use validators::{days_in_month, luhn_check_digit, resident_id_check_char};

/// NFKC-normalizes and trims `value`, borrowing when nothing changes.
///
/// Input of only ASCII and CJK unified ideographs (which NFKC leaves
/// alone, and which leave no room for combining marks), and input that the
/// NFKC quick check accepts, are returned borrowed, so the common case
/// allocates nothing.
pub fn normalize(value: &str) -> Cow<'_, str> {
    let trimmed = value.trim();
    if trimmed.is_ascii()
        || trimmed.chars().all(nfkc_stable)
        || is_nfkc_quick(trimmed.chars()) == IsNormalized::Yes
    {
        return Cow::Borrowed(trimmed);
    }
    let folded: String = trimmed.nfkc().collect();
    match folded.trim() {
        t if t.len() == folded.len() => Cow::Owned(folded),
        t => Cow::Owned(t.to_owned()),
    }
}

/// Characters NFKC never changes, whatever follows them here: ASCII and
/// the CJK unified ideographs (basic block and extension A).
fn nfkc_stable(c: char) -> bool {
    c.is_ascii() || matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_full_width_and_trims() {
        assert_eq!(normalize(" １３８１２３４５６７８ "), "13812345678");
        assert_eq!(normalize("\u{3000}Ｅ１２３４５６７８"), "E12345678");
        assert!(matches!(normalize(" abc "), Cow::Borrowed("abc")));
        assert!(matches!(normalize("北京市海淀区"), Cow::Borrowed(_)));
    }
}
