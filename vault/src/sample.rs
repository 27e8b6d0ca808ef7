//! A deterministic generator of synthetic zone data for tests, the demo
//! and the benchmarks: the same seed always gives the same bytes.
//!
//! Every row is made up: names from common surnames and given-name
//! characters, resident IDs with real region prefixes, plausible birth
//! dates and correct check characters, mobiles with real carrier prefixes,
//! Luhn-valid UnionPay card numbers, Beijing street addresses. No real
//! personal data is used or produced (a generated value may coincide with
//! a real one only by chance).
//!
//! The PRNG is SplitMix64, written out here so the output can never change
//! under a dependency upgrade.

use std::io::{self, Write};

use crate::detect::{luhn_check_digit, resident_id_check_char};
use crate::schema::{ColumnSchema, SemanticType};

/// The generated columns and the type detection should find for each.
pub const COLUMNS: [(&str, SemanticType); 8] = [
    ("id", SemanticType::Integer),
    ("name", SemanticType::PersonName),
    ("resident_id", SemanticType::ResidentId),
    ("mobile", SemanticType::Mobile),
    ("bank_card", SemanticType::BankCard),
    ("address", SemanticType::Address),
    ("amount", SemanticType::Amount),
    ("registered", SemanticType::Date),
];

const SURNAMES: [&str; 40] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡",
];
const COMPOUND_SURNAMES: [&str; 4] = ["欧阳", "司马", "诸葛", "上官"];
const GIVEN: [&str; 48] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "玉", "萍", "红", "建", "文", "辉", "鹏", "飞",
    "婷", "雪", "琳", "晨", "宇", "浩", "然", "欣", "怡", "佳", "子", "涵", "博", "睿", "思", "雨",
];
/// Real county-level division codes (GB/T 2260): Beijing's districts and a
/// few other cities'.
const REGIONS: [&[u8; 6]; 20] = [
    b"110101", b"110102", b"110105", b"110106", b"110107", b"110108", b"110109", b"110111",
    b"110112", b"110113", b"110114", b"110115", b"110116", b"110117", b"120101", b"310101",
    b"320102", b"330106", b"440106", b"510107",
];
const MOBILE_PREFIXES: [&[u8; 3]; 16] = [
    b"130", b"131", b"132", b"133", b"135", b"136", b"137", b"138", b"139", b"150", b"158", b"166",
    b"177", b"186", b"189", b"199",
];
const DISTRICTS: [&str; 12] = [
    "东城区",
    "西城区",
    "朝阳区",
    "海淀区",
    "丰台区",
    "石景山区",
    "通州区",
    "顺义区",
    "昌平区",
    "大兴区",
    "房山区",
    "门头沟区",
];
const ROADS: [&str; 12] = [
    "中关村大街",
    "学院路",
    "建国路",
    "长安街",
    "西直门外大街",
    "知春路",
    "望京街",
    "丽泽路",
    "安立路",
    "科创十三街",
    "阜成路",
    "南礼士路",
];

/// SplitMix64 (Steele, Lea, Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (multiply-shift; `n` is small here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }
}

/// One generated row: its fields' bytes, one after another, with their
/// end offsets. Reused from row to row.
struct Row {
    id: u64,
    bytes: Vec<u8>,
    ends: [usize; 8],
}

impl Row {
    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

fn push_uint(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width.max(1) {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits[i..]);
}

fn push_random_digits(buf: &mut Vec<u8>, rng: &mut SplitMix64, count: usize) {
    for _ in 0..count {
        buf.push(b'0' + rng.below(10) as u8);
    }
}

/// `yyyy-mm-dd` (with `sep`) or `yyyymmdd` (without) of a random valid day.
fn push_date(buf: &mut Vec<u8>, rng: &mut SplitMix64, years: (u64, u64), sep: Option<u8>) {
    let year = rng.range(years.0, years.1);
    let month = rng.range(1, 12);
    let days = crate::detect::days_in_month(year as u32, month as u32);
    let day = rng.range(1, u64::from(days));
    push_uint(buf, year, 4);
    buf.extend(sep);
    push_uint(buf, month, 2);
    buf.extend(sep);
    push_uint(buf, day, 2);
}

fn push_name(buf: &mut Vec<u8>, rng: &mut SplitMix64) {
    let surname = if rng.below(50) == 0 {
        rng.pick(&COMPOUND_SURNAMES)
    } else {
        rng.pick(&SURNAMES)
    };
    buf.extend_from_slice(surname.as_bytes());
    for _ in 0..rng.range(1, 2) {
        buf.extend_from_slice(rng.pick(&GIVEN).as_bytes());
    }
}

fn push_resident_id(buf: &mut Vec<u8>, rng: &mut SplitMix64) {
    let start = buf.len();
    let region = rng.pick(&REGIONS);
    buf.extend_from_slice(region);
    push_date(buf, rng, (1950, 2005), None);
    push_random_digits(buf, rng, 3);
    // The 17 bytes just written are all ASCII digits, so there is a check
    // character; '0' is never reached.
    let check = resident_id_check_char(&buf[start..]).unwrap_or(b'0');
    buf.push(check);
}

fn push_mobile(buf: &mut Vec<u8>, rng: &mut SplitMix64) {
    let prefix = rng.pick(&MOBILE_PREFIXES);
    buf.extend_from_slice(prefix);
    push_random_digits(buf, rng, 8);
}

fn push_bank_card(buf: &mut Vec<u8>, rng: &mut SplitMix64) {
    let start = buf.len();
    let len = if rng.below(3) == 0 { 16 } else { 19 };
    buf.extend_from_slice(b"62");
    push_random_digits(buf, rng, len - 3);
    // All digits, as above.
    let check = luhn_check_digit(&buf[start..]).unwrap_or(b'0');
    buf.push(check);
}

fn push_address(buf: &mut Vec<u8>, rng: &mut SplitMix64) {
    buf.extend_from_slice("北京市".as_bytes());
    buf.extend_from_slice(rng.pick(&DISTRICTS).as_bytes());
    buf.extend_from_slice(rng.pick(&ROADS).as_bytes());
    push_uint(buf, rng.range(1, 300), 1);
    buf.extend_from_slice("号".as_bytes());
    if rng.below(3) == 0 {
        push_uint(buf, rng.range(1, 20), 1);
        buf.extend_from_slice("号楼".as_bytes());
    }
}

fn push_amount(buf: &mut Vec<u8>, rng: &mut SplitMix64) {
    push_uint(buf, rng.below(100_000), 1);
    buf.push(b'.');
    push_uint(buf, rng.below(100), 2);
}

impl Row {
    fn generate(&mut self, id: u64, rng: &mut SplitMix64) {
        self.id = id;
        self.bytes.clear();
        push_uint(&mut self.bytes, id, 1);
        self.ends[0] = self.bytes.len();
        let fields: [fn(&mut Vec<u8>, &mut SplitMix64); 7] = [
            push_name,
            push_resident_id,
            push_mobile,
            push_bank_card,
            push_address,
            push_amount,
            |b, r| push_date(b, r, (2010, 2025), Some(b'-')),
        ];
        for (i, push) in fields.iter().enumerate() {
            push(&mut self.bytes, rng);
            self.ends[i + 1] = self.bytes.len();
        }
    }

    fn write_csv(&self, out: &mut Vec<u8>) {
        for i in 0..COLUMNS.len() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.field(i));
        }
        out.push(b'\n');
    }

    /// One JSON object; `id` is a number, the rest are strings (no field
    /// needs escaping: the generator never emits quotes, backslashes or
    /// control characters).
    fn write_jsonl(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        push_uint(out, self.id, 1);
        for (i, (name, _)) in COLUMNS.iter().enumerate().skip(1) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(self.field(i));
            out.push(b'"');
        }
        out.extend_from_slice(b"}\n");
    }
}

/// Flushes the staging buffer to `out` once it holds this much.
const FLUSH_AT: usize = 64 * 1024;

fn write_rows(
    rows: u64,
    seed: u64,
    mut out: impl Write,
    header: &[u8],
    emit: fn(&Row, &mut Vec<u8>),
) -> io::Result<()> {
    let mut rng = SplitMix64(seed);
    let mut row = Row {
        id: 0,
        bytes: Vec::with_capacity(256),
        ends: [0; 8],
    };
    let mut staged = Vec::with_capacity(FLUSH_AT + 1024);
    staged.extend_from_slice(header);
    for id in 1..=rows {
        row.generate(id, &mut rng);
        emit(&row, &mut staged);
        if staged.len() >= FLUSH_AT {
            out.write_all(&staged)?;
            staged.clear();
        }
    }
    out.write_all(&staged)?;
    out.flush()
}

/// Writes a header and `rows` rows of CSV (UTF-8, `\n` line ends; no field
/// needs quoting) generated from `seed`.
pub fn write_csv(rows: u64, seed: u64, out: impl Write) -> io::Result<()> {
    let header: Vec<u8> = COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes();
    let header = [header.as_slice(), b"\n"].concat();
    write_rows(rows, seed, out, &header, Row::write_csv)
}

/// The schema of [`COLUMNS`] as a confirmed import would hold it: each
/// type's default grade and quasi-identifier flag, confidence 1.
pub fn column_schemas() -> Vec<ColumnSchema> {
    COLUMNS
        .iter()
        .map(|&(name, ty)| ColumnSchema {
            name: name.into(),
            semantic_type: ty,
            confidence: 1.0,
            grade: ty.default_grade(),
            quasi_identifier: ty.default_quasi_identifier(),
        })
        .collect()
}

/// A new dataset file at `path` holding `rows` sample rows (`seed`) in a
/// `rows` table of TEXT columns, as the importer lays them out; for tests.
#[cfg(test)]
pub(crate) fn dataset_file(
    path: &std::path::Path,
    key: &crate::keys::DatasetKey,
    rows: u64,
    seed: u64,
) -> crate::dataset_file::DatasetFile {
    let mut file = crate::dataset_file::DatasetFile::create(path, key).unwrap();
    let mut csv = Vec::new();
    write_csv(rows, seed, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let defs: Vec<String> = COLUMNS
        .iter()
        .map(|(n, _)| format!("\"{n}\" TEXT"))
        .collect();
    let tx = file.connection_mut().transaction().unwrap();
    tx.execute_batch(&format!("CREATE TABLE rows ({})", defs.join(", ")))
        .unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .unwrap();
        for line in text.lines().skip(1) {
            let cells: Vec<&str> = line.split(',').collect();
            stmt.execute(rusqlite::params_from_iter(cells)).unwrap();
        }
    }
    tx.commit().unwrap();
    file
}

/// Writes the same rows as [`write_csv`] as JSON Lines: one object per row
/// with the column names as keys, `id` a number and the rest strings.
pub fn write_jsonl(rows: u64, seed: u64, out: impl Write) -> io::Result<()> {
    write_rows(rows, seed, out, b"", Row::write_jsonl)
}

/// `text` encoded in GB18030, as Chinese government exports often are.
pub fn to_gb18030(text: &str) -> Vec<u8> {
    encoding_rs::GB18030.encode(text).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{is_bank_card, is_resident_id, is_unionpay, ColumnProfiler};
    use crate::schema::Grade;

    fn csv(rows: u64, seed: u64) -> String {
        let mut out = Vec::new();
        write_csv(rows, seed, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(csv(500, 7), csv(500, 7));
        assert_ne!(csv(500, 7), csv(500, 8));
        let jsonl = |seed| {
            let mut out = Vec::new();
            write_jsonl(200, seed, &mut out).unwrap();
            out
        };
        assert_eq!(jsonl(3), jsonl(3));
    }

    #[test]
    fn csv_shape_and_check_digits() {
        let text = csv(2_000, 1);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("id,name,resident_id,mobile,bank_card,address,amount,registered")
        );
        let mut n = 0;
        for (i, line) in lines.enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 8, "{line}");
            assert_eq!(f[0], (i + 1).to_string());
            assert!(is_resident_id(f[2]), "{}", f[2]);
            assert!(is_bank_card(f[4]) && is_unionpay(f[4]), "{}", f[4]);
            n += 1;
        }
        assert_eq!(n, 2_000);
    }

    #[test]
    fn jsonl_carries_the_same_rows() {
        let mut out = Vec::new();
        write_jsonl(50, 9, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let csv_text = csv(50, 9);
        for (json, line) in text.lines().zip(csv_text.lines().skip(1)) {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(v["id"].as_u64().unwrap().to_string(), f[0]);
            for (i, (name, _)) in COLUMNS.iter().enumerate().skip(1) {
                assert_eq!(v[name].as_str().unwrap(), f[i]);
            }
        }
    }

    #[test]
    fn profiler_classifies_every_generated_column() {
        let text = csv(5_000, 42);
        let mut profilers: Vec<ColumnProfiler> = (0..8).map(|_| ColumnProfiler::new()).collect();
        for line in text.lines().skip(1) {
            for (p, v) in profilers.iter_mut().zip(line.split(',')) {
                p.observe(v);
            }
        }
        let expected_grades = [
            Grade::General2,
            Grade::General3,
            Grade::General4,
            Grade::General3,
            Grade::General4,
            Grade::General3,
            Grade::General2,
            Grade::General2,
        ];
        for ((p, (name, t)), grade) in profilers.into_iter().zip(COLUMNS).zip(expected_grades) {
            let c = p.finish(name);
            assert_eq!((c.semantic_type, c.grade), (t, grade), "{name}: {c:?}");
            assert!(c.confidence >= 0.99, "{name}: {c:?}");
        }
    }

    #[test]
    fn gb18030_round_trips() {
        let text = csv(20, 5);
        let bytes = to_gb18030(&text);
        assert_ne!(bytes, text.as_bytes());
        let (decoded, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(&bytes);
        assert!(!had_errors);
        assert_eq!(decoded, text);
    }
}
