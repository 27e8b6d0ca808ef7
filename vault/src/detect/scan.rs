//! Finds identifiers embedded in prose: resident IDs, USCCs, bank cards,
//! mobiles, passports, licence plates and e-mail addresses.
//!
//! Boundaries are ASCII-aware: an identifier is a maximal run of ASCII
//! letters and digits, so a Han character or punctuation next to it is a
//! boundary (`身份证号11010519491231002X` is found) while an adjacent ASCII
//! letter or digit is not (`ID11010519491231002X` is a 20-character token,
//! not an ID). Digit groups joined by single spaces or hyphens are tried as
//! one mobile or card number (`138 1234 5678`).
//!
//! Full-width forms are folded to ASCII character by character (the part
//! of NFKC that matters for identifiers), so reported offsets are byte
//! offsets into the original text.

use crate::schema::SemanticType;

use super::validators::{bank_card, email, licence_plate, mobile, passport, resident_id, uscc};

/// Province abbreviations that open a licence plate.
const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
/// Han suffixes of special plates.
const PLATE_SUFFIXES: &str = "学警挂港澳领试超使";
/// Most digit groups tried as one spaced-out number.
const MAX_GROUPS: usize = 6;

/// An identifier found in a text: its type and its byte range in the text
/// given to [`scan_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub semantic_type: SemanticType,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// The text as folded characters with their byte offsets (one extra
/// offset at the end for the text's length).
struct Folded {
    chars: Vec<char>,
    offsets: Vec<usize>,
}

/// Full-width ASCII forms to ASCII and the ideographic space to a space.
fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

impl Folded {
    fn new(text: &str) -> Self {
        let (offsets, chars): (Vec<usize>, Vec<char>) =
            text.char_indices().map(|(i, c)| (i, fold(c))).unzip();
        let mut offsets = offsets;
        offsets.push(text.len());
        Folded { chars, offsets }
    }

    fn len(&self) -> usize {
        self.chars.len()
    }

    /// End of the run of ASCII letters and digits starting at `i`.
    fn run_end(&self, i: usize) -> usize {
        i + self.chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count()
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().collect()
    }

    fn finding(&self, semantic_type: SemanticType, from: usize, to: usize) -> Finding {
        Finding {
            semantic_type,
            start: self.offsets[from],
            end: self.offsets[to],
        }
    }
}

/// Every identifier in `text`, ordered by position. Never panics, whatever
/// the input.
pub fn scan_text(text: &str) -> Vec<Finding> {
    let f = Folded::new(text);
    let mut found = emails(&f);
    let email_spans: Vec<(usize, usize)> = found.iter().map(|x| (x.start, x.end)).collect();
    let mut i = 0;
    while i < f.len() {
        if let Some(&(_, end)) = email_spans
            .iter()
            .find(|(s, e)| (*s..*e).contains(&f.offsets[i]))
        {
            i = f.offsets.partition_point(|&o| o < end);
            continue;
        }
        let next = token_at(&f, i, &mut found);
        i = next.max(i + 1);
    }
    found.sort_by_key(|x| x.start);
    found
}

/// Looks for an identifier starting at char `i`; records it and returns
/// where scanning continues.
fn token_at(f: &Folded, i: usize, found: &mut Vec<Finding>) -> usize {
    let c = f.chars[i];
    if PLATE_PROVINCES.contains(c) {
        if let Some(end) = plate_at(f, i) {
            found.push(f.finding(SemanticType::LicencePlate, i, end));
            return end;
        }
        return i + 1;
    }
    if !c.is_ascii_alphanumeric() {
        return i + 1;
    }
    let end = f.run_end(i);
    if let Some(t) = classify_token(&f.text(i, end)) {
        found.push(f.finding(t, with_plus(f, i, t), end));
        return end;
    }
    if let Some((t, chain_end)) = digit_chain_at(f, i) {
        found.push(f.finding(t, with_plus(f, i, t), chain_end));
        return chain_end;
    }
    end
}

/// Includes a `+` right before a mobile number in its span.
fn with_plus(f: &Folded, i: usize, t: SemanticType) -> usize {
    match i.checked_sub(1) {
        Some(p) if t == SemanticType::Mobile && f.chars[p] == '+' => p,
        _ => i,
    }
}

/// The identifier type of a whole ASCII token, if any. UnionPay cards go
/// before USCCs because an all-digit USCC is rarer than a `62` card.
fn classify_token(token: &str) -> Option<SemanticType> {
    if resident_id(token) {
        Some(SemanticType::ResidentId)
    } else if token.starts_with("62") && bank_card(token) {
        Some(SemanticType::BankCard)
    } else if uscc(token) {
        Some(SemanticType::Uscc)
    } else if bank_card(token) {
        Some(SemanticType::BankCard)
    } else if mobile(token) {
        Some(SemanticType::Mobile)
    } else if passport(token) {
        Some(SemanticType::Passport)
    } else {
        None
    }
}

/// Digit groups of 2 to 6 digits joined by single spaces or hyphens, tried
/// longest first as one mobile or bank card number. Returns the type and
/// the end of the matched groups.
fn digit_chain_at(f: &Folded, i: usize) -> Option<(SemanticType, usize)> {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut at = i;
    while groups.len() < MAX_GROUPS {
        let end = f.run_end(at);
        let all_digits = f.chars[at..end].iter().all(char::is_ascii_digit);
        if !all_digits || !(2..=6).contains(&(end - at)) {
            break;
        }
        groups.push((at, end));
        let sep = f.chars.get(end).is_some_and(|c| *c == ' ' || *c == '-');
        if !sep || !f.chars.get(end + 1).is_some_and(char::is_ascii_digit) {
            break;
        }
        at = end + 1;
    }
    (2..=groups.len()).rev().find_map(|k| {
        let digits: String = groups[..k].iter().map(|&(s, e)| f.text(s, e)).collect();
        let end = groups[k - 1].1;
        if mobile(&digits) {
            Some((SemanticType::Mobile, end))
        } else {
            bank_card(&digits).then_some((SemanticType::BankCard, end))
        }
    })
}

/// A licence plate starting at the province character `i`; returns its end.
fn plate_at(f: &Folded, i: usize) -> Option<usize> {
    if !f.chars.get(i + 1)?.is_ascii_uppercase() {
        return None;
    }
    // Without a separator the ASCII run starts at the office letter.
    let serial = match f.chars.get(i + 2) {
        Some('·' | '•' | ' ' | '-') => (i + 3).min(f.len()),
        _ => i + 1,
    };
    let end = f.run_end(serial);
    let suffixed = f
        .chars
        .get(end)
        .filter(|c| PLATE_SUFFIXES.contains(**c))
        .map(|_| end + 1);
    [suffixed, Some(end)]
        .into_iter()
        .flatten()
        .find(|&e| licence_plate(&f.text(i, e)))
}

fn local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-".contains(c)
}

fn domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

/// Every e-mail address in the text: each `@` grown left over local-part
/// characters and right over domain characters, then validated.
fn emails(f: &Folded) -> Vec<Finding> {
    let mut found = Vec::new();
    for at in (0..f.len()).filter(|&k| f.chars[k] == '@') {
        let mut start = at;
        while start > 0 && local_char(f.chars[start - 1]) {
            start -= 1;
        }
        while start < at && f.chars[start] == '.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < f.len() && domain_char(f.chars[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(f.chars[end - 1], '.' | '-') {
            end -= 1;
        }
        if email(&f.text(start, end)) {
            found.push(f.finding(SemanticType::Email, start, end));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use SemanticType as T;

    fn types(text: &str) -> Vec<(SemanticType, &str)> {
        scan_text(text)
            .into_iter()
            .map(|f| (f.semantic_type, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn finds_resident_id_glued_to_han_text() {
        let text = "身份证号11010519491231002X，请核对";
        assert_eq!(types(text), vec![(T::ResidentId, "11010519491231002X")]);
    }

    #[test]
    fn ascii_neighbours_are_not_boundaries() {
        assert!(scan_text("ID11010519491231002X").is_empty());
        assert!(scan_text("911010519491231002X").is_empty());
        assert!(scan_text("订单号138123456789").is_empty());
    }

    #[test]
    fn finds_full_width_mobile_with_original_offsets() {
        let text = "联系电话：１３８１２３４５６７８。";
        let found = scan_text(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].semantic_type, T::Mobile);
        assert_eq!(
            &text[found[0].start..found[0].end],
            "１３８１２３４５６７８"
        );
    }

    #[test]
    fn finds_spaced_mobile_and_card() {
        assert_eq!(
            types("电话 +86 138 1234 5678 谢谢"),
            vec![(T::Mobile, "+86 138 1234 5678")]
        );
        assert_eq!(
            types("卡号4111-1111-1111-1111"),
            vec![(T::BankCard, "4111-1111-1111-1111")]
        );
        assert_eq!(types("日期2023-01-05"), vec![]);
    }

    #[test]
    fn finds_each_identifier_kind() {
        let text = "张三，手机13812345678，卡号4111111111111111，公司91350100M000100Y43，\
                    护照E12345678，车牌京A12345，沪B·D12345，邮箱zhang.san@example.com。";
        assert_eq!(
            types(text),
            vec![
                (T::Mobile, "13812345678"),
                (T::BankCard, "4111111111111111"),
                (T::Uscc, "91350100M000100Y43"),
                (T::Passport, "E12345678"),
                (T::LicencePlate, "京A12345"),
                (T::LicencePlate, "沪B·D12345"),
                (T::Email, "zhang.san@example.com"),
            ]
        );
    }

    #[test]
    fn email_local_part_is_not_reported_twice() {
        assert_eq!(
            types("13812345678@qq.com"),
            vec![(T::Email, "13812345678@qq.com")]
        );
    }

    #[test]
    fn odd_input_does_not_panic() {
        for text in [
            "",
            "京",
            "京A",
            "@",
            "a@",
            "@b.cn",
            "+",
            "12 ",
            "京A·",
            "１２ ３４",
        ] {
            let _ = scan_text(text);
        }
    }
}
