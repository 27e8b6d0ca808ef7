//! The value-level transformations behind each technique. Each writes into
//! a caller's `String` and writes nothing when it cannot parse its input:
//! an unparseable value is suppressed, never passed through.

use hmac::Mac;

use super::fingerprint::Cells;
use super::prf::Prf;
use super::technique::Generalization;
use crate::detect::{self, days_in_month, normalize};
use crate::schema::SemanticType;

/// A calendar date as (year, month, day).
pub(super) type Ymd = (u32, u32, u32);

/// What replaces the hidden part of an e-mail local part.
const EMAIL_STARS: &str = "***";

/// Keeps the first `first` and last `last` characters of `value` (after
/// NFKC) and masks the rest with `*`; masks all of a value that is not
/// longer than `first + last`. E-mails keep their domain.
pub(super) fn mask(value: &str, first: u8, last: u8, ty: SemanticType, out: &mut String) {
    let v = normalize(value);
    let (first, last) = (usize::from(first), usize::from(last));
    if ty == SemanticType::Email {
        if let Some((local, domain)) = v.rsplit_once('@') {
            mask_email_local(local, first, last, out);
            out.push('@');
            out.push_str(domain);
            return;
        }
    }
    let n = v.chars().count();
    if n <= first + last {
        out.extend(std::iter::repeat_n('*', n));
        return;
    }
    for (i, c) in v.chars().enumerate() {
        out.push(if i < first || i >= n - last { c } else { '*' });
    }
}

/// `z***@` style: the kept characters around a fixed run of stars, so the
/// local part's length does not show.
fn mask_email_local(local: &str, first: usize, last: usize, out: &mut String) {
    let n = local.chars().count();
    if n <= first + last {
        out.push_str(EMAIL_STARS);
        return;
    }
    out.extend(local.chars().take(first));
    out.push_str(EMAIL_STARS);
    out.extend(local.chars().skip(n - last));
}

/// The token prefix of a pseudonym for each type.
fn pseudonym_prefix(ty: SemanticType) -> &'static str {
    match ty {
        SemanticType::ResidentId => "RID",
        SemanticType::Passport => "PPN",
        SemanticType::BankCard => "CARD",
        SemanticType::Mobile => "MOB",
        SemanticType::PersonName => "NAME",
        SemanticType::Email => "MAIL",
        SemanticType::LicencePlate => "PLATE",
        SemanticType::Uscc => "ORG",
        SemanticType::Code => "CODE",
        _ => "P",
    }
}

/// The canonical form of one character for pseudonymization, so spellings
/// of one identifier (`x`/`X`, `138 1234 5678`) map to one token.
fn canonical_char(ty: SemanticType, c: char) -> Option<char> {
    match ty {
        SemanticType::Mobile | SemanticType::BankCard if matches!(c, ' ' | '-') => None,
        SemanticType::Email => Some(c.to_ascii_lowercase()),
        SemanticType::ResidentId
        | SemanticType::Passport
        | SemanticType::Uscc
        | SemanticType::LicencePlate => Some(c.to_ascii_uppercase()),
        _ => Some(c),
    }
}

/// `PREFIX-` and 16 letters `a`–`p` (64 bits) of HMAC-SHA256 over the type name,
/// a 0x1F separator and the canonical value.
pub(super) fn pseudonymize(key: &Prf, ty: SemanticType, value: &str, out: &mut String) {
    let v = normalize(value);
    let v = match ty {
        SemanticType::Mobile => v.strip_prefix("+86").unwrap_or(&v).trim_start(),
        _ => &v,
    };
    let mut ctx = key.start();
    ctx.update(ty.as_str().as_bytes());
    ctx.update(&[0x1f]);
    let mut buf = [0u8; 64];
    let mut len = 0;
    for c in v.chars().filter_map(|c| canonical_char(ty, c)) {
        if len + 4 > buf.len() {
            ctx.update(&buf[..len]);
            len = 0;
        }
        len += c.encode_utf8(&mut buf[len..]).len();
    }
    ctx.update(&buf[..len]);
    let tag = ctx.finalize().into_bytes();
    out.push_str(pseudonym_prefix(ty));
    out.push('-');
    for &b in &tag[..8] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// Token alphabet: one letter per 4 bits. Letters only, so a token can
/// never read as a number (a card, a mobile, an ID) to a scanner.
const HEX: &[u8; 16] = b"abcdefghijklmnop";

/// Replaces every identifier [`detect::scan_text`] finds with `[type]`.
pub(super) fn redact_identifiers(value: &str, out: &mut String) {
    let mut at = 0;
    for f in detect::scan_text(value) {
        if f.start < at {
            continue;
        }
        out.push_str(&value[at..f.start]);
        out.push('[');
        out.push_str(f.semantic_type.as_str());
        out.push(']');
        at = f.end;
    }
    out.push_str(&value[at..]);
}

/// Applies a generalization; `today` is the reference for age bands;
/// `cells` picks the released cell of ranges and bands (see
/// [`super::fingerprint`]).
pub(super) fn generalize(
    g: Generalization,
    ty: SemanticType,
    value: &str,
    today: Ymd,
    cells: Cells<'_>,
    out: &mut String,
) {
    use std::fmt::Write as _;
    let v = normalize(value);
    // Writing to a String cannot fail, hence the ignored results.
    match g {
        Generalization::DateToMonth => {
            if let Some((y, m, _)) = parse_ymd(&v) {
                let _ = write!(out, "{y:04}-{m:02}");
            }
        }
        Generalization::DateToYear => {
            if let Some((y, _, _)) = parse_ymd(&v) {
                let _ = write!(out, "{y:04}");
            }
        }
        Generalization::AgeBand { years } => {
            if let Some((lo, hi)) = age_band(&v, ty, today, years, cells) {
                let _ = write!(out, "{lo}-{hi}");
            }
        }
        Generalization::AddressToDistrict => out.push_str(district(&v).unwrap_or("")),
        Generalization::AddressToCity => out.push_str(city(&v).unwrap_or("")),
        Generalization::GeoGrid { cell_deg } => {
            if let Some((a, b, p)) = grid_cell(&v, cell_deg) {
                let _ = write!(out, "{a:.p$},{b:.p$}");
            }
        }
        Generalization::AmountRange { width } => {
            if let Some((lo, hi)) = amount_range(&v, width, cells) {
                out.push('[');
                push_whole(out, lo);
                out.push(',');
                push_whole(out, hi);
                out.push(')');
            }
        }
    }
}

/// Writes `x` rounded to a whole number, as `{x:.0}` would, without the
/// float formatter's slow exact mode when `x` is already whole.
fn push_whole(out: &mut String, x: f64) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    if x.fract() == 0.0 && x.abs() < 1e15 {
        let _ = write!(out, "{}", x as i64);
    } else {
        let _ = write!(out, "{x:.0}");
    }
}

/// The first three runs of ASCII digits in `s`.
fn digit_runs(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .take(3)
}

/// A date `YYYYMMDD`, or `YYYY?M?D` with any separators (`-`, `/`, `.`,
/// `年月日`), optionally followed by a time; between 1900 and 2100.
pub(super) fn parse_ymd(s: &str) -> Option<Ymd> {
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut runs = digit_runs(s);
    let first = runs.next()?;
    let (y, m, d) = if first.len() == 8 {
        (&first[..4], &first[4..6], &first[6..])
    } else {
        (first, runs.next()?, runs.next()?)
    };
    let ok = y.len() == 4 && (1..=2).contains(&m.len()) && (1..=2).contains(&d.len());
    let (y, m, d) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let valid = ok && (1900..=2100).contains(&y) && d >= 1 && d <= days_in_month(y, m);
    valid.then_some((y, m, d))
}

/// The birth date inside an 18- or 15-digit resident ID.
fn resident_id_birth(v: &str) -> Option<Ymd> {
    if !detect::is_resident_id(v) {
        return None;
    }
    match v.len() {
        18 => parse_ymd(&v[6..14]),
        _ => parse_ymd(&format!("19{}", &v[6..12])),
    }
}

/// The age band `(lo, hi)` of a birth date (or resident ID) at `today`.
fn age_band(
    v: &str,
    ty: SemanticType,
    today: Ymd,
    years: u8,
    cells: Cells<'_>,
) -> Option<(i64, i64)> {
    let birth = match ty {
        SemanticType::ResidentId => resident_id_birth(v)?,
        _ => parse_ymd(v)?,
    };
    let width = u32::from(years);
    if width == 0 || birth > today {
        return None;
    }
    let before_birthday = (today.1, today.2) < (birth.1, birth.2);
    let age = today.0 - birth.0 - u32::from(before_birthday);
    let width = i64::from(width);
    let (first, n) = cells.of(width as u64, i64::from(age) / width);
    Some((first * width, (first + n) * width - 1))
}

/// How far into an address to look for its district (characters).
const DISTRICT_WITHIN: usize = 20;

/// The prefix of an address up to its district or county (`区`/`县`, not
/// `自治区` or `地区`), else up to its last city (`市`) in the first
/// characters; `None` when neither is found or the prefix holds digits.
fn district(v: &str) -> Option<&str> {
    let mut city = None;
    let mut prev: [char; 2] = [' ', ' '];
    for (n, (i, c)) in v.char_indices().enumerate() {
        if n >= DISTRICT_WITHIN {
            break;
        }
        let end = i + c.len_utf8();
        let regional = prev == ['自', '治'] || prev[1] == '地';
        match c {
            '区' if !regional => return clean_prefix(&v[..end]),
            '县' => return clean_prefix(&v[..end]),
            '市' => city = Some(end),
            _ => {}
        }
        prev = [prev[1], c];
    }
    city.and_then(|end| clean_prefix(&v[..end]))
}

/// The prefix of an address up to its first city (`市`), else its
/// province (`省`, `自治区`), in the first characters; `None` when neither
/// is found or the prefix holds digits.
fn city(v: &str) -> Option<&str> {
    let head: String = v.chars().take(DISTRICT_WITHIN).collect();
    let end = head
        .find('市')
        .map(|i| i + '市'.len_utf8())
        .or_else(|| head.find('省').map(|i| i + '省'.len_utf8()))
        .or_else(|| head.find("自治区").map(|i| i + "自治区".len()))?;
    clean_prefix(&v[..end])
}

/// A district prefix with a digit in it was cut in the wrong place.
fn clean_prefix(p: &str) -> Option<&str> {
    (!p.chars().any(|c| c.is_ascii_digit())).then_some(p)
}

/// Decimal places that print `cell` exactly (at most 9).
fn places(cell: f64) -> usize {
    (0..9)
        .find(|&p| {
            let scaled = cell * 10f64.powi(p as i32);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(9)
}

/// The south-west corner of the grid cell of `lat,lon` (either order, as
/// written), with the decimal places the cell needs.
fn grid_cell(v: &str, cell: f64) -> Option<(f64, f64, usize)> {
    let (a, b) = v.split_once(',').or_else(|| v.split_once(' '))?;
    let (a, b): (f64, f64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let lat = |x: f64| (-90.0..=90.0).contains(&x);
    let lon = |x: f64| (-180.0..=180.0).contains(&x);
    if !(cell.is_finite() && cell > 0.0 && ((lat(a) && lon(b)) || (lon(a) && lat(b)))) {
        return None;
    }
    let corner = |x: f64| (x / cell + 1e-9).floor() * cell + 0.0;
    Some((corner(a), corner(b), places(cell)))
}

/// An amount: optional sign and `¥`, digits with optional thousands commas,
/// optional decimals, optional `元`/`万元`/`亿元`.
fn parse_amount(v: &str) -> Option<f64> {
    let (neg, s) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let s = s.strip_prefix('¥').unwrap_or(s);
    let (s, unit) = [("亿元", 1e8), ("万元", 1e4), ("元", 1.0)]
        .iter()
        .find_map(|(suffix, unit)| s.strip_suffix(suffix).map(|s| (s, *unit)))
        .unwrap_or((s, 1.0));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int_ok = int.starts_with(|c: char| c.is_ascii_digit())
        && int.bytes().all(|b| b.is_ascii_digit() || b == b',');
    if !int_ok || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value = int
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0f64, |acc, b| acc * 10.0 + f64::from(b - b'0'));
    let mut scale = 0.1;
    for b in frac.bytes() {
        value += f64::from(b - b'0') * scale;
        scale /= 10.0;
    }
    let value = if neg { -value } else { value } * unit;
    (value.is_finite() && value.abs() < 1e18).then_some(value)
}

/// The range `[lo, hi)` of width `width` (or `2 * width`, see
/// [`super::fingerprint`]) that holds the amount.
fn amount_range(v: &str, width: u64, cells: Cells<'_>) -> Option<(f64, f64)> {
    let value = parse_amount(v)?;
    if width == 0 {
        return None;
    }
    let w = width as f64;
    // |value| < 1e18 and w >= 1, so the cell index fits an i64.
    let (first, n) = cells.of(width, (value / w).floor() as i64);
    let lo = first as f64 * w + 0.0;
    Some((lo, lo + n as f64 * w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    fn gen(g: Generalization, ty: SemanticType, v: &str) -> String {
        run(|o| generalize(g, ty, v, (2025, 6, 15), Cells { key: None }, o))
    }

    #[test]
    fn mask_keeps_exactly_first_and_last_characters() {
        let id = "11010519491231002X";
        let m = run(|o| mask(id, 6, 4, SemanticType::ResidentId, o));
        assert_eq!(m, "110105********002X");
        let m = run(|o| mask("１３８１２３４５６７８", 3, 4, SemanticType::Mobile, o));
        assert_eq!(m, "138****5678");
        assert_eq!(
            run(|o| mask("张三", 1, 0, SemanticType::PersonName, o)),
            "张*"
        );
        assert_eq!(
            run(|o| mask("欧阳娜娜", 1, 0, SemanticType::PersonName, o)),
            "欧***"
        );
        assert_eq!(
            run(|o| mask("京A12345", 2, 0, SemanticType::LicencePlate, o)),
            "京A*****"
        );
    }

    #[test]
    fn mask_of_short_value_masks_everything() {
        assert_eq!(run(|o| mask("1234", 3, 4, SemanticType::Mobile, o)), "****");
        assert_eq!(run(|o| mask("张", 1, 0, SemanticType::PersonName, o)), "*");
        assert_eq!(
            run(|o| mask("abcdefg", 3, 4, SemanticType::Code, o)),
            "*******"
        );
    }

    #[test]
    fn email_mask_keeps_domain_and_hides_length() {
        let e = SemanticType::Email;
        assert_eq!(
            run(|o| mask("zhangsan@example.cn", 1, 0, e, o)),
            "z***@example.cn"
        );
        assert_eq!(run(|o| mask("z@example.cn", 1, 0, e, o)), "***@example.cn");
        assert_eq!(
            run(|o| mask("zhangsan@example.cn", 0, 0, e, o)),
            "***@example.cn"
        );
    }

    #[test]
    fn pseudonyms_are_typed_canonical_and_keyed() {
        use ring::hmac;
        let (k1, k2) = (Prf::new(&[1; 32]), Prf::new(&[2; 32]));
        let id = SemanticType::ResidentId;
        let a = run(|o| pseudonymize(&k1, id, "11010519491231002X", o));
        assert!(a.starts_with("RID-") && a.len() == 20, "{a}");
        // The token is HMAC-SHA256 of type, 0x1F and value, one letter per
        // 4 bits of its first 8 bytes (checked with ring's HMAC).
        let reference = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
        let message = format!("{}\u{1f}11010519491231002X", id.as_str());
        let tag = hmac::sign(&reference, message.as_bytes());
        let letters: String = tag.as_ref()[..8]
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .map(|n| char::from(HEX[usize::from(n)]))
            .collect();
        assert_eq!(a[4..], letters);
        assert!(a[4..].bytes().all(|b| (b'a'..=b'p').contains(&b)));
        assert_eq!(a, run(|o| pseudonymize(&k1, id, " 11010519491231002x", o)));
        assert_ne!(a, run(|o| pseudonymize(&k2, id, "11010519491231002X", o)));
        let m = SemanticType::Mobile;
        let mob = run(|o| pseudonymize(&k1, m, "13812345678", o));
        assert_eq!(mob, run(|o| pseudonymize(&k1, m, "+86 138-1234-5678", o)));
        assert_ne!(
            &mob[4..],
            &run(|o| pseudonymize(&k1, SemanticType::Code, "13812345678", o))[5..]
        );
        let long = "x".repeat(200);
        assert_ne!(
            run(|o| pseudonymize(&k1, m, &long, o)),
            run(|o| pseudonymize(&k1, m, &long[1..], o))
        );
    }

    #[test]
    fn dates_generalize_to_month_and_year() {
        let d = SemanticType::Date;
        for v in [
            "2024-03-05",
            "2024/3/5",
            "20240305",
            "2024年3月5日",
            "2024-03-05 12:30:00",
        ] {
            assert_eq!(gen(Generalization::DateToMonth, d, v), "2024-03", "{v}");
            assert_eq!(gen(Generalization::DateToYear, d, v), "2024", "{v}");
        }
        for bad in ["2024-02-30", "yesterday", "03/05/2024", "1800-01-01", ""] {
            assert_eq!(gen(Generalization::DateToMonth, d, bad), "", "{bad}");
        }
    }

    #[test]
    fn age_bands_from_birth_dates_and_resident_ids() {
        let band = Generalization::AgeBand { years: 10 };
        assert_eq!(gen(band, SemanticType::BirthDate, "1990-06-15"), "30-39");
        assert_eq!(gen(band, SemanticType::BirthDate, "1985-06-16"), "30-39");
        assert_eq!(gen(band, SemanticType::BirthDate, "1985-06-15"), "40-49");
        assert_eq!(
            gen(band, SemanticType::ResidentId, "11010519491231002X"),
            "70-79"
        );
        assert_eq!(
            gen(band, SemanticType::ResidentId, "110105194912310021"),
            ""
        );
        assert_eq!(gen(band, SemanticType::BirthDate, "2030-01-01"), "");
        let five = Generalization::AgeBand { years: 5 };
        assert_eq!(gen(five, SemanticType::BirthDate, "2000-01-01"), "25-29");
    }

    #[test]
    fn addresses_generalize_to_district() {
        let a = |v| gen(Generalization::AddressToDistrict, SemanticType::Address, v);
        assert_eq!(a("北京市海淀区中关村大街27号"), "北京市海淀区");
        assert_eq!(a("上海市浦东新区世纪大道100号"), "上海市浦东新区");
        assert_eq!(
            a("广西壮族自治区南宁市青秀区民族大道1号"),
            "广西壮族自治区南宁市青秀区"
        );
        assert_eq!(
            a("新疆维吾尔自治区阿克苏地区库车县某路5号"),
            "新疆维吾尔自治区阿克苏地区库车县"
        );
        assert_eq!(a("江苏省昆山市前进中路8号"), "江苏省昆山市");
        assert_eq!(a("中关村大街27号院3号楼"), "");
        assert_eq!(a("27号海淀区"), "");
    }

    #[test]
    fn geo_points_snap_to_grid_cells() {
        let g = |cell_deg, v| {
            gen(
                Generalization::GeoGrid { cell_deg },
                SemanticType::GeoPoint,
                v,
            )
        };
        assert_eq!(g(0.01, "39.98765,116.30512"), "39.98,116.30");
        assert_eq!(g(0.05, "39.98765, 116.30512"), "39.95,116.30");
        assert_eq!(g(0.1, "39.98765 116.30512"), "39.9,116.3");
        assert_eq!(g(0.01, "-0.001,0.0"), "-0.01,0.00");
        assert_eq!(g(0.01, "39.99,116.3"), "39.99,116.30");
        assert_eq!(g(0.01, "95.0,200.0"), "");
        assert_eq!(g(0.01, "here"), "");
    }

    #[test]
    fn addresses_generalize_to_city() {
        let c = |v| gen(Generalization::AddressToCity, SemanticType::Address, v);
        assert_eq!(c("北京市海淀区中关村大街27号"), "北京市");
        assert_eq!(c("河北省石家庄市长安区"), "河北省石家庄市");
        assert_eq!(c("广东省某县某镇"), "广东省");
        assert_eq!(c("海淀区"), "");
        assert_eq!(c("12号楼北京市"), "");
    }

    #[test]
    fn amounts_generalize_to_ranges() {
        let r = |width, v| {
            gen(
                Generalization::AmountRange { width },
                SemanticType::Amount,
                v,
            )
        };
        assert_eq!(r(1000, "1234.56"), "[1000,2000)");
        assert_eq!(r(1000, "¥12,345"), "[12000,13000)");
        assert_eq!(r(10000, "1.5万元"), "[10000,20000)");
        assert_eq!(r(1000, "-0.5"), "[-1000,0)");
        assert_eq!(r(1000, "999"), "[0,1000)");
        assert_eq!(r(1000, "abc"), "");
        assert_eq!(r(1000, "1e9"), "");
    }

    #[test]
    fn identifiers_in_free_text_are_redacted() {
        let s = run(|o| redact_identifiers("张三身份证号11010519491231002X，电话13812345678。", o));
        assert_eq!(s, "张三身份证号[resident_id]，电话[mobile]。");
        assert_eq!(
            run(|o| redact_identifiers("无标识符的文本", o)),
            "无标识符的文本"
        );
    }
}
