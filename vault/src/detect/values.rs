//! Values without a check digit: Chinese personal names, addresses, dates,
//! geographic points, amounts, integers, codes and free text.
//!
//! These are recognized by shape and vocabulary, so they are weaker
//! evidence than the check-digit identifiers in `validators`; the profiler
//! gives identifiers priority when both match.

use std::sync::OnceLock;

use super::normalize;
use super::validators::{digits_value, valid_ymd};

/// Common single-character surnames (百家姓 and the most frequent modern
/// surnames).
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董\
袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷\
侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷\
詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙\
鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗\
瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠\
荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖\
漆巴丰支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那\
宿鲜印逯隆茹诸战慕危玉银亢嵩帖崇竺习居衡步";

/// Common two-character surnames.
const COMPOUND_SURNAMES: [&str; 30] = [
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "百里", "呼延", "钟离", "澹台", "公冶",
    "太史", "申屠", "闻人", "司空", "拓跋", "赫连",
];

/// The address level a keyword character marks, as a bit: province or
/// city (省市州盟), district, county, town or village (区县旗镇乡村),
/// road or street (路街道巷弄胡里园), number or building (号栋幢楼室院层单).
fn address_level(c: char) -> u8 {
    match c {
        '省' | '市' | '州' | '盟' => 1,
        '区' | '县' | '旗' | '镇' | '乡' | '村' => 2,
        '路' | '街' | '道' | '巷' | '弄' | '胡' | '里' | '园' => 4,
        '号' | '栋' | '幢' | '楼' | '室' | '院' | '层' | '单' => 8,
        _ => 0,
    }
}

/// Sentence punctuation: prose has it, addresses and names do not.
fn sentence_punctuation(c: char) -> bool {
    matches!(
        c,
        ',' | ';' | '!' | '?' | '。' | '、' | '，' | '；' | '！' | '？'
    )
}

fn han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

fn surname_set() -> &'static [char] {
    static SET: OnceLock<Vec<char>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut v: Vec<char> = SURNAMES.chars().collect();
        v.sort_unstable();
        v.dedup();
        v
    })
}

/// Chinese personal name: 2 to 4 Han characters opening with a common
/// surname (a two-character surname needs a 3- or 4-character name).
pub(crate) fn person_name(s: &str) -> bool {
    let n = s.chars().count();
    if !(2..=4).contains(&n) || !s.chars().all(han) {
        return false;
    }
    if n >= 3 && COMPOUND_SURNAMES.iter().any(|c| s.starts_with(c)) {
        return true;
    }
    s.chars()
        .next()
        .is_some_and(|c| surname_set().binary_search(&c).is_ok())
}

/// Whether `s` is a Chinese personal name.
pub fn is_person_name(s: &str) -> bool {
    person_name(&normalize(s))
}

/// Postal address: 5 to 80 characters, mostly Han, without sentence
/// punctuation, naming at least two address levels (see
/// `address_level`). One pass over the characters.
pub(crate) fn address(s: &str) -> bool {
    if s.len() < 5 {
        return false;
    }
    let (mut n, mut hans, mut levels) = (0usize, 0usize, 0u8);
    for c in s.chars() {
        if sentence_punctuation(c) {
            return false;
        }
        n += 1;
        hans += usize::from(han(c));
        levels |= address_level(c);
    }
    (5..=80).contains(&n) && levels.count_ones() >= 2 && hans * 2 >= n
}

/// Whether `s` is a postal address.
pub fn is_address(s: &str) -> bool {
    address(&normalize(s))
}

/// Reads 1 to `max` leading digits; returns the value and the rest.
fn leading_number(b: &[u8], max: usize) -> Option<(u32, &[u8])> {
    let n = b
        .iter()
        .take(max)
        .take_while(|c| c.is_ascii_digit())
        .count();
    Some((digits_value(&b[..n]).filter(|_| n > 0)?, &b[n..]))
}

/// Splits `yyyy?m?d` with one separator kind, returning y, m, d and the
/// rest of the input after the day.
fn separated_ymd(b: &[u8]) -> Option<(u32, u32, u32, &[u8])> {
    let (y, rest) = leading_number(b, 4).filter(|(_, r)| b.len() - r.len() == 4)?;
    let (&sep, rest) = rest.split_first()?;
    if !matches!(sep, b'-' | b'/' | b'.') {
        return None;
    }
    let (m, rest) = leading_number(rest, 2)?;
    let rest = rest.strip_prefix(&[sep])?;
    let (d, rest) = leading_number(rest, 2)?;
    Some((y, m, d, rest))
}

/// `yyyy年m月d日`, returning y, m, d and the rest.
fn han_ymd(s: &str) -> Option<(u32, u32, u32, &str)> {
    let (y, rest) = s.split_once('年')?;
    let (m, rest) = rest.split_once('月')?;
    let (d, rest) = rest.split_once('日')?;
    let y = digits_value(y.as_bytes()).filter(|_| y.len() == 4)?;
    let m = digits_value(m.as_bytes()).filter(|_| (1..=2).contains(&m.len()))?;
    let d = digits_value(d.as_bytes()).filter(|_| (1..=2).contains(&d.len()))?;
    Some((y, m, d, rest))
}

/// A time of day after a date: ` HH:MM[:SS[.fff]][zone]` or `T...`.
fn time_suffix(b: &[u8]) -> bool {
    match b.split_first() {
        None => true,
        Some((b' ' | b'T', t)) => {
            t.len() >= 5
                && t[2] == b':'
                && t[..2].iter().chain(&t[3..5]).all(u8::is_ascii_digit)
                && t.iter().all(|c| c.is_ascii_digit() || b":.+-Z".contains(c))
        }
        _ => false,
    }
}

/// Calendar date between 1900 and 2100: `YYYY-MM-DD`, `YYYY/MM/DD`,
/// `YYYY.MM.DD`, `YYYYMMDD` or `YYYY年M月D日`, optionally followed by a
/// time of day.
pub(crate) fn date(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.get(..4).is_some_and(|y| y.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    let parsed = if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
        digits_value(&b[0..4])
            .zip(digits_value(&b[4..6]))
            .zip(digits_value(&b[6..8]))
            .map(|((y, m), d)| (y, m, d, true))
    } else if s.is_ascii() {
        separated_ymd(b).map(|(y, m, d, rest)| (y, m, d, time_suffix(rest)))
    } else {
        han_ymd(s).map(|(y, m, d, rest)| (y, m, d, time_suffix(rest.trim_start().as_bytes())))
    };
    parsed.is_some_and(|(y, m, d, tail_ok)| {
        tail_ok && (1900..=2100).contains(&y) && valid_ymd(y, m, d)
    })
}

/// Whether `s` is a calendar date.
pub fn is_date(s: &str) -> bool {
    date(&normalize(s))
}

/// A decimal coordinate with a fractional part: `-?d+.d+`.
fn coordinate(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.')?;
    let int = int.strip_prefix('-').unwrap_or(int);
    let digits = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit());
    let frac_ok = !frac.is_empty() && frac.len() <= 15 && frac.bytes().all(|c| c.is_ascii_digit());
    (digits(int) && frac_ok).then(|| s.parse().ok()).flatten()
}

/// Geographic point `lat,lon` (or `lon,lat`) of two decimal numbers with
/// fractional parts, separated by a comma (optionally followed by a space)
/// or a space, within the valid latitude/longitude ranges.
pub(crate) fn geo_point(s: &str) -> bool {
    if !s.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return false;
    }
    let Some((a, b)) = s.split_once(',').or_else(|| s.split_once(' ')) else {
        return false;
    };
    let (Some(a), Some(b)) = (coordinate(a), coordinate(b.trim_start())) else {
        return false;
    };
    let lat = |v: f64| (-90.0..=90.0).contains(&v);
    let lon = |v: f64| (-180.0..=180.0).contains(&v);
    (lat(a) && lon(b)) || (lon(a) && lat(b))
}

/// Whether `s` is a geographic point.
pub fn is_geo_point(s: &str) -> bool {
    geo_point(&normalize(s))
}

/// Digits with optional thousands separators (`1,234,567`).
fn grouped_integer(b: &[u8]) -> bool {
    let all_digits = |g: &[u8]| g.iter().all(u8::is_ascii_digit);
    let mut groups = b.split(|&c| c == b',');
    let head_ok = groups.next().is_some_and(|head| {
        let max = if b.contains(&b',') { 3 } else { 19 };
        (1..=max).contains(&head.len()) && all_digits(head)
    });
    head_ok && groups.all(|g| g.len() == 3 && all_digits(g))
}

/// Monetary amount: optional sign, optional `¥`/`￥`, digits (thousands
/// commas allowed), at most 4 decimals, optional `元`/`万元`/`亿元` suffix.
pub(crate) fn amount(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let s = match s.as_bytes().first() {
        Some(b'0'..=b'9') => s,
        _ => match s.strip_prefix(['¥', '￥']) {
            Some(rest) => rest,
            None => return false,
        },
    };
    let s = if s.is_ascii() {
        s
    } else {
        ["万元", "亿元", "元"]
            .iter()
            .find_map(|u| s.strip_suffix(u))
            .unwrap_or(s)
    };
    let b = s.as_bytes();
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(p) => (&b[..p], Some(&b[p + 1..])),
        None => (b, None),
    };
    let frac_ok =
        frac.is_none_or(|f| (1..=4).contains(&f.len()) && f.iter().all(u8::is_ascii_digit));
    frac_ok && grouped_integer(int)
}

/// Whether `s` is a monetary amount.
pub fn is_amount(s: &str) -> bool {
    amount(&normalize(s))
}

/// Integer: optional `-`, 1 to 19 digits, no leading zero (a leading zero
/// makes it a code, such as a postal or account code).
pub(crate) fn integer(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s).as_bytes();
    (1..=19).contains(&d.len())
        && d.iter().all(u8::is_ascii_digit)
        && (d.len() == 1 || d[0] != b'0')
}

/// Whether `s` is an integer.
pub fn is_integer(s: &str) -> bool {
    integer(&normalize(s))
}

/// Code: 1 to 64 ASCII characters from `[A-Za-z0-9_./:#-]` without spaces
/// that are a letter code or a digit string with a leading zero.
pub(crate) fn code(s: &str) -> bool {
    let b = s.as_bytes();
    let charset_ok = (1..=64).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_./:#-".contains(c));
    charset_ok && (b.iter().any(u8::is_ascii_alphabetic) || b[0] == b'0')
}

/// Whether `s` is a code.
pub fn is_code(s: &str) -> bool {
    code(&normalize(s))
}

/// Free text: at least 20 characters, or at least 8 with sentence
/// punctuation; never a bare digit string.
pub(crate) fn free_text(s: &str) -> bool {
    if s.len() < 8 || s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if s.is_ascii() {
        return s.len() >= 20 || s.bytes().any(|b| matches!(b, b',' | b';' | b'!' | b'?'));
    }
    let n = s.chars().take(20).count();
    n >= 20 || (n >= 8 && s.contains(sentence_punctuation))
}

/// Whether `s` is free text.
pub fn is_free_text(s: &str) -> bool {
    free_text(&normalize(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_names() {
        for ok in ["张伟", "王小明", "欧阳娜娜", "诸葛亮", "司马相如"] {
            assert!(is_person_name(ok), "{ok}");
        }
        for bad in ["张", "张伟伟伟伟", "北京", "Zhang Wei", "张3", "高速公路局"] {
            assert!(!is_person_name(bad), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        for ok in [
            "北京市海淀区中关村大街27号",
            "浙江省杭州市西湖区",
            "朝阳区建国路88号院3号楼",
        ] {
            assert!(is_address(ok), "{ok}");
        }
        for bad in [
            "海淀区",
            "北京市",
            "今天去了北京市海淀区，很开心。",
            "Room 3, 88 Jianguo Rd",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }

    #[test]
    fn dates() {
        for ok in [
            "2024-02-29",
            "2023/1/5",
            "20231231",
            "2023年1月5日",
            "2023-01-05 12:30:00",
            "2023-01-05T12:30:00Z",
            "２０２３－０１－０５",
        ] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "20231232",
            "2023-01/05",
            "1899-12-31",
            "2023年2月30日",
            "12345678",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn geo_points() {
        for ok in [
            "39.9042,116.4074",
            "39.9042, 116.4074",
            "116.4074,39.9042",
            "-33.86 151.21",
        ] {
            assert!(is_geo_point(ok), "{ok}");
        }
        for bad in [
            "39,116",
            "95.0,200.0",
            "1,234.56",
            "39.9042;116.4074",
            "abc,def",
        ] {
            assert!(!is_geo_point(bad), "{bad}");
        }
    }

    #[test]
    fn amounts_integers_codes() {
        for ok in [
            "1234.56",
            "¥1,234.50",
            "￥88",
            "-12.5",
            "3.5万元",
            "100元",
            "1,000,000",
        ] {
            assert!(is_amount(ok), "{ok}");
        }
        for bad in ["12.", "1,23", "12.345678", "abc", "¥", "1234,567"] {
            assert!(!is_amount(bad), "{bad}");
        }
        assert!(is_integer("42") && is_integer("-7") && is_integer("0"));
        assert!(!is_integer("007") && !is_integer("1.5") && !is_integer(""));
        assert!(is_code("A001") && is_code("007") && is_code("ZV-2023/01"));
        assert!(!is_code("123") && !is_code("a b") && !is_code("代码"));
    }

    #[test]
    fn free_texts() {
        assert!(is_free_text(
            "客户反映昨天下午在营业厅办理业务时等待时间过长，希望改进。"
        ));
        assert!(is_free_text("Please call me back, thanks"));
        assert!(!is_free_text("北京市海淀区"));
        assert!(!is_free_text("short"));
    }
}
