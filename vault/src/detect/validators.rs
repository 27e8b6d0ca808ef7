//! Identifiers with check digits or a fixed national format: resident ID
//! (GB 11643), unified social credit code (GB 32100), mobile number, bank
//! card (Luhn), passport, licence plate and e-mail.
//!
//! The `is_*` functions normalize their input (see [`super::normalize`]);
//! the crate-internal functions without the prefix expect input that is
//! already normalized, so the profiler normalizes each value once.

use std::sync::OnceLock;

use super::normalize;

/// ISO 7064 MOD 11-2 weights of the first 17 digits of a resident ID.
const RID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each value of the weighted sum mod 11.
const RID_CHECK: &[u8; 11] = b"10X98765432";

/// The 31 characters a unified social credit code is written in.
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100-2015 weights of the first 17 characters (3^i mod 31).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Province-level abbreviations that open a licence plate.
const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
/// Han suffixes of special plates (coach, police, trailer, HK/Macao ...).
const PLATE_SUFFIXES: &str = "学警挂港澳领试超使";

/// Whether `code` is a province-level division code (GB/T 2260), the first
/// two digits of a resident ID.
pub(crate) fn known_province(code: u32) -> bool {
    matches!(code, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82)
}

/// Days in `month` of `year` (proleptic Gregorian), 0 for a bad month.
pub(crate) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if i32::try_from(year).is_ok_and(time::util::is_leap_year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whether year-month-day is a real calendar date.
pub(crate) fn valid_ymd(year: u32, month: u32, day: u32) -> bool {
    day >= 1 && day <= days_in_month(year, month)
}

/// Today as `yyyymmdd` (UTC), computed once per process.
fn today() -> u32 {
    static TODAY: OnceLock<u32> = OnceLock::new();
    *TODAY.get_or_init(|| {
        let d = time::OffsetDateTime::now_utc().date();
        let year = u32::try_from(d.year()).unwrap_or(0);
        year * 10_000 + u32::from(u8::from(d.month())) * 100 + u32::from(d.day())
    })
}

/// The decimal value of an all-digit byte slice (at most 9 digits), or
/// `None` if a byte is not a digit.
pub(crate) fn digits_value(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Whether `yyyymmdd` is a real birth date between 1900-01-01 and today.
fn plausible_birth_date(b: &[u8]) -> bool {
    let (Some(y), Some(m), Some(d)) = (
        digits_value(&b[0..4]),
        digits_value(&b[4..6]),
        digits_value(&b[6..8]),
    ) else {
        return false;
    };
    y >= 1900 && valid_ymd(y, m, d) && y * 10_000 + m * 100 + d <= today()
}

/// The MOD 11-2 check character for the first 17 digits of a resident ID,
/// or `None` if `body` is not 17 ASCII digits.
pub(crate) fn resident_id_check_char(body: &[u8]) -> Option<u8> {
    if body.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in body.iter().zip(RID_WEIGHTS) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        sum += u32::from(d) * w;
    }
    Some(RID_CHECK[(sum % 11) as usize])
}

/// 18-digit resident ID: known province, real birth date, MOD 11-2 check
/// (a final `x` is accepted for `X`). Old 15-digit IDs: known province and
/// a real 19YY birth date (they carry no check digit).
pub(crate) fn resident_id(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        18 => resident_id_18(b),
        15 => resident_id_15(b),
        _ => false,
    }
}

fn resident_id_18(b: &[u8]) -> bool {
    let Some(expected) = resident_id_check_char(&b[..17]) else {
        return false;
    };
    let region_ok = digits_value(&b[0..2]).is_some_and(known_province);
    region_ok && b[17].to_ascii_uppercase() == expected && plausible_birth_date(&b[6..14])
}

fn resident_id_15(b: &[u8]) -> bool {
    if !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut date = *b"19000000";
    date[2..].copy_from_slice(&b[6..12]);
    digits_value(&b[0..2]).is_some_and(known_province) && plausible_birth_date(&date)
}

/// Whether `s` is a resident identity number (GB 11643, 18 or 15 digits).
pub fn is_resident_id(s: &str) -> bool {
    resident_id(&normalize(s))
}

/// Value of each byte in the USCC charset (lowercase accepted), 0xFF for
/// bytes outside it.
const USCC_VALUES: [u8; 128] = {
    let mut table = [0xFF; 128];
    let mut i = 0;
    while i < USCC_CHARSET.len() {
        let c = USCC_CHARSET[i];
        table[c as usize] = i as u8;
        table[c.to_ascii_lowercase() as usize] = i as u8;
        i += 1;
    }
    table
};

fn uscc_value(c: u8) -> Option<u32> {
    match USCC_VALUES.get(usize::from(c)) {
        Some(&v) if v != 0xFF => Some(u32::from(v)),
        _ => None,
    }
}

/// Unified social credit code: 18 characters of the GB 32100 charset,
/// positions 3 to 8 a division code (digits), and the weighted check.
pub(crate) fn uscc(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[2..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (&c, w) in b[..17].iter().zip(USCC_WEIGHTS) {
        match uscc_value(c) {
            Some(v) => sum += v * w,
            None => return false,
        }
    }
    let check = (31 - sum % 31) % 31;
    uscc_value(b[17]) == Some(check)
}

/// Whether `s` is a unified social credit code (GB 32100-2015).
pub fn is_uscc(s: &str) -> bool {
    uscc(&normalize(s))
}

/// Collects the digits of `b`, allowing single spaces or hyphens between
/// digit groups. Returns the digits and their count, or `None` on any other
/// byte, a leading/trailing/double separator, or more than 19 digits.
fn grouped_digits(b: &[u8]) -> Option<([u8; 19], usize)> {
    let mut digits = [0u8; 19];
    let mut n = 0;
    let mut after_sep = true;
    for &c in b {
        if c.is_ascii_digit() {
            *digits.get_mut(n)? = c;
            n += 1;
            after_sep = false;
        } else if (c == b' ' || c == b'-') && !after_sep {
            after_sep = true;
        } else {
            return None;
        }
    }
    (!after_sep).then_some((digits, n))
}

/// Mainland mobile number `1[3-9]` + 9 digits, optionally prefixed with
/// `+86`, `0086` or `86`, with spaces or hyphens between groups.
pub(crate) fn mobile(s: &str) -> bool {
    let b = s.as_bytes();
    let (plus, rest) = match b.split_first() {
        Some((b'+', rest)) => (true, rest),
        _ => (false, b),
    };
    let Some((d, n)) = grouped_digits(rest) else {
        return false;
    };
    let national = match n {
        11 if !plus => &d[..11],
        13 if d.starts_with(b"86") => &d[2..13],
        15 if !plus && d.starts_with(b"0086") => &d[4..15],
        _ => return false,
    };
    national[0] == b'1' && (b'3'..=b'9').contains(&national[1])
}

/// Whether `s` is a mainland mobile number.
pub fn is_mobile(s: &str) -> bool {
    mobile(&normalize(s))
}

/// Whether `digits` (ASCII, check digit last) pass the Luhn check.
fn luhn_valid(digits: &[u8]) -> bool {
    match digits.split_last() {
        Some((&check, body)) => luhn_check_digit(body) == Some(check),
        None => false,
    }
}

fn luhn_term(v: u32, doubled: bool) -> u32 {
    match (doubled, v * 2) {
        (false, _) => v,
        (true, d) if d > 9 => d - 9,
        (true, d) => d,
    }
}

/// The Luhn check digit to append to `body` (ASCII digits), or `None` if
/// `body` holds a non-digit.
pub(crate) fn luhn_check_digit(body: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    let mut doubled = true;
    for &c in body.iter().rev() {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        sum += luhn_term(u32::from(d), doubled);
        doubled = !doubled;
    }
    Some(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Bank card: 16 to 19 digits (groups separated by spaces or hyphens
/// allowed), not starting with 0, Luhn-valid.
pub(crate) fn bank_card(s: &str) -> bool {
    match grouped_digits(s.as_bytes()) {
        Some((d, n)) if (16..=19).contains(&n) => d[0] != b'0' && luhn_valid(&d[..n]),
        _ => false,
    }
}

/// Whether `s` is a Luhn-valid bank card number.
pub fn is_bank_card(s: &str) -> bool {
    bank_card(&normalize(s))
}

/// Whether `s` is a bank card issued under China UnionPay (`62` prefix).
pub fn is_unionpay(s: &str) -> bool {
    let n = normalize(s);
    bank_card(&n) && n.starts_with("62")
}

/// Passport of the People's Republic of China: `E`/`G` + 8 digits, or `E`
/// + a letter other than I and O + 7 digits.
pub(crate) fn passport(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 || !b[2..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    match (b[0], b[1]) {
        (b'E' | b'G', d) if d.is_ascii_digit() => true,
        (b'E', l) => l.is_ascii_uppercase() && l != b'I' && l != b'O',
        _ => false,
    }
}

/// Whether `s` is a PRC passport number.
pub fn is_passport(s: &str) -> bool {
    passport(&normalize(s))
}

/// Characters allowed in the serial part of a plate: digits and capital
/// letters except I and O.
fn plate_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && c != 'I' && c != 'O')
}

/// Licence plate: province abbreviation, issuing-office letter, an optional
/// `·`, then 5 (ordinary) or 6 (new energy) serial characters, or 4 serial
/// characters and a special suffix such as 学 or 警.
pub(crate) fn licence_plate(s: &str) -> bool {
    // Longest form: province (3 bytes), letter, `·` (2 bytes), 4 + suffix.
    if !(8..=13).contains(&s.len()) {
        return false;
    }
    let mut chars = s.chars();
    let (Some(province), Some(office)) = (chars.next(), chars.next()) else {
        return false;
    };
    if !PLATE_PROVINCES.contains(province) || !office.is_ascii_uppercase() {
        return false;
    }
    let rest = chars.as_str();
    let rest = rest.strip_prefix(['·', '•', ' ', '-']).unwrap_or(rest);
    let serial = rest.chars().take_while(|&c| plate_char(c)).count();
    let tail = &rest[serial..];
    match (serial, tail.chars().next()) {
        (5 | 6, None) => true,
        (4, Some(suffix)) => tail.len() == suffix.len_utf8() && PLATE_SUFFIXES.contains(suffix),
        _ => false,
    }
}

/// Whether `s` is a mainland motor vehicle licence plate.
pub fn is_licence_plate(s: &str) -> bool {
    licence_plate(&normalize(s))
}

fn email_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c)
}

fn domain_label(label: &[u8]) -> bool {
    (1..=63).contains(&label.len())
        && label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && label.first() != Some(&b'-')
        && label.last() != Some(&b'-')
}

/// E-mail address `local@domain.tld` (ASCII; the top-level domain is at
/// least two letters).
pub(crate) fn email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let (l, d) = (local.as_bytes(), domain.as_bytes());
    let local_ok = (1..=64).contains(&l.len())
        && l.iter().all(|&c| email_local_char(c))
        && l.first() != Some(&b'.')
        && l.last() != Some(&b'.')
        && !local.contains("..");
    let tld_ok = domain
        .rsplit_once('.')
        .is_some_and(|(_, tld)| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()));
    local_ok && d.len() <= 253 && tld_ok && d.split(|&c| c == b'.').all(domain_label)
}

/// Whether `s` is an e-mail address.
pub fn is_email(s: &str) -> bool {
    email(&normalize(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a resident ID with a correct check character.
    fn rid(body: &str) -> String {
        let c = resident_id_check_char(body.as_bytes()).unwrap();
        format!("{body}{}", c as char)
    }

    #[test]
    fn resident_id_18_checks_digit_date_and_region() {
        assert!(is_resident_id("11010519491231002X"));
        assert!(is_resident_id("11010519491231002x"));
        assert!(is_resident_id("１１０１０５１９４９１２３１００２Ｘ"));
        let good = rid("44010619900307123");
        assert!(is_resident_id(&good));
        // Wrong check digit.
        assert!(!is_resident_id("110105194912310021"));
        // 30 February.
        assert!(!is_resident_id(&rid("11010519900230123")));
        // Born in the future and before 1900.
        assert!(!is_resident_id(&rid("11010530000101123")));
        assert!(!is_resident_id(&rid("11010518991231123")));
        // Unknown province 99 and 10.
        assert!(!is_resident_id(&rid("99010519900101123")));
        assert!(!is_resident_id(&rid("10010519900101123")));
        assert!(!is_resident_id("1101051949123100"));
        assert!(!is_resident_id("11010519491231002Y"));
    }

    #[test]
    fn resident_id_15_checks_date_and_region() {
        assert!(is_resident_id("110105491231002"));
        assert!(!is_resident_id("110105490231002"));
        assert!(!is_resident_id("990105491231002"));
        assert!(!is_resident_id("11010549123100A"));
    }

    #[test]
    fn uscc_checks_gb32100_digit() {
        // Check character computed from the GB 32100 weights.
        assert!(is_uscc("91110108MA01ABCDEN"));
        assert!(is_uscc("91350100M000100Y43"));
        assert!(!is_uscc("91350100M000100Y44"));
        assert!(!is_uscc("91110108MA01ABCDE8"));
        // I, O, S, V, Z are outside the charset.
        assert!(!is_uscc("91110108MA01ABCDIN"));
        // Division code must be digits.
        assert!(!is_uscc("9111A108MA01ABCDEN"));
        assert!(!is_uscc("91110108MA01ABCDE"));
    }

    #[test]
    fn mobile_accepts_prefixes_and_separators() {
        for ok in [
            "13812345678",
            "19912345678",
            "+8613812345678",
            "+86 138 1234 5678",
            "008613812345678",
            "8613812345678",
            "138-1234-5678",
        ] {
            assert!(is_mobile(ok), "{ok}");
        }
        for bad in [
            "12812345678",
            "1381234567",
            "138123456789",
            "+13812345678",
            "138--1234-5678",
            "-13812345678",
            "1381234567a",
        ] {
            assert!(!is_mobile(bad), "{bad}");
        }
    }

    #[test]
    fn bank_card_is_luhn_checked() {
        let body = b"622202123456789012";
        let card = format!(
            "{}{}",
            std::str::from_utf8(body).unwrap(),
            luhn_check_digit(body).unwrap() as char
        );
        assert!(is_bank_card(&card));
        assert!(is_unionpay(&card));
        assert!(is_bank_card("4111 1111 1111 1111"));
        assert!(!is_unionpay("4111111111111111"));
        assert!(!is_bank_card("4111111111111112"));
        assert!(!is_bank_card("411111111111111"));
        assert!(!is_bank_card("0000000000000000"));
        assert!(!is_bank_card("41111111111111111111111"));
    }

    #[test]
    fn passport_formats() {
        assert!(is_passport("E12345678"));
        assert!(is_passport("G12345678"));
        assert!(is_passport("EA1234567"));
        assert!(!is_passport("EI1234567"));
        assert!(!is_passport("EO1234567"));
        assert!(!is_passport("D12345678"));
        assert!(!is_passport("E1234567"));
        assert!(!is_passport("GA1234567"));
    }

    #[test]
    fn licence_plate_formats() {
        for ok in [
            "京A12345",
            "沪B·D12345",
            "粤BD12345",
            "京A1234学",
            "川A1234警",
        ] {
            assert!(is_licence_plate(ok), "{ok}");
        }
        for bad in [
            "京a12345",
            "京A1234",
            "京A1234567",
            "港A12345",
            "京AI2345",
            "京A12345学",
        ] {
            assert!(!is_licence_plate(bad), "{bad}");
        }
    }

    #[test]
    fn email_formats() {
        assert!(is_email("zhang.san@example.com"));
        assert!(is_email("a+b@mail.example.cn"));
        assert!(!is_email("zhang@example"));
        assert!(!is_email("@example.com"));
        assert!(!is_email("a..b@example.com"));
        assert!(!is_email("a@-example.com"));
        assert!(!is_email("a@b@example.com"));
        assert!(!is_email("张三@example.com"));
    }
}
