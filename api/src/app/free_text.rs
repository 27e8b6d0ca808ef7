//! The detection pass on free text that operators and regulators submit
//! (exit and destruction reasons, legal bases, grant purposes): the
//! [`vault::detect::scan_text`] scanner looks for identifiers embedded in
//! prose, and a text carrying a personal identifier (resident ID, mobile,
//! bank card, passport, licence plate, e-mail) is refused with a 400 that
//! names the field and the kinds found, never the value. Such texts end up
//! in the ledger and in signed certificates, which are kept for ever and
//! shown to regulators; personal data has no place there. Organization
//! codes (USCC) are public and allowed.

use vault::detect::scan_text;
use vault::schema::SemanticType;

use crate::error::ApiError;

/// Refuses `value` (of request field `field`) if it holds a personal
/// identifier; the 400 names the field and the kinds, not the values.
pub fn check(field: &str, value: &str) -> Result<(), ApiError> {
    let mut kinds: Vec<&'static str> = scan_text(value)
        .into_iter()
        .filter(|f| f.semantic_type != SemanticType::Uscc)
        .map(|f| f.semantic_type.as_str())
        .collect();
    kinds.dedup();
    if kinds.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(
        field,
        format!(
            "contains a personal identifier ({}); free text is kept in the ledger and \
             certificates and must not carry personal data",
            kinds.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_identifiers_are_refused_by_kind_not_value() {
        let err = check(
            "reason",
            "借款人 11010519491231002X 已结清，电话13812345678",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bad request: reason: "), "{text}");
        assert!(
            text.contains("resident_id") && text.contains("mobile"),
            "{text}"
        );
        assert!(!text.contains("11010519491231002X"), "{text}");
        assert!(!text.contains("13812345678"), "{text}");
    }

    #[test]
    fn ordinary_text_and_organization_codes_pass() {
        check("reason", "合同终止，依据第7条").unwrap();
        check("basis", "contract with 91350100M000100Y43 ended").unwrap();
        check("reason", "order 2026-11 of 12 March").unwrap();
    }
}
