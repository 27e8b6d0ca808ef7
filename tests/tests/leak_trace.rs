//! End to end: leak tracing against the real binary, a real swtpm and real
//! TLS. Twenty analysts each pull an extract of the same dataset under
//! their own grant; a 20% subset of one, shuffled, with a column dropped,
//! is traced to its recipient by `zonevault trace`, while files no one was
//! issued (the dataset desensitized under a stranger's key, random tokens)
//! name no one. The same holds for Parquet: a 20% subset of an extract
//! pulled as Parquet, shuffled, a column dropped, re-written as a Parquet
//! file (Snappy, two row groups, as pandas would) names its recipient; a
//! Parquet file never issued names no one; a truncated one is a 400.
//! Bad uploads are 400s naming the field; every trace is a ledger entry;
//! analysts may not trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::appliance::{issue_client_cert, s, Appliance, Reply, TRUST_DOMAIN};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::parser::parse_message_type;
use serde_json::{json, Value};
use vault::desensitize::{grant_key, Desensitizer, FingerprintKey, Policy, Tier};
use vault::keys::MasterKey;
use vault::schema::ColumnSchema;

const ANALYSTS: usize = 20;
const LEAKER: usize = 7;
const COLUMNS: [&str; 4] = ["name", "resident_id", "address", "amount"];

fn role(i: usize) -> String {
    format!("p{i:02}")
}

fn recipient(i: usize) -> String {
    format!("spiffe://{TRUST_DOMAIN}/analyst/partner-a/{}", role(i))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn issue_analyst(app: &Appliance, i: usize) {
    let (ca, out) = (app.path("pki/ca"), app.path(&format!("pki/{}", role(i))));
    issue_client_cert(&ca, "analyst", "partner-a", &role(i), &out);
}

/// A grant of [`COLUMNS`] to analyst `i`; its id.
fn grant(app: &Appliance, i: usize) -> String {
    let grant = app.curl_full(
        "operator",
        "POST",
        "/v1/grants",
        Some(
            &json!({"recipient": recipient(i), "dataset": "residents", "columns": COLUMNS,
                    "purpose": "credit risk model", "row_limit": 5000, "max_extracts": 2,
                    "expires": "2099-01-01T00:00:00Z", "filing": app.filing_id()})
            .to_string(),
        ),
    );
    assert_eq!(grant.status, 201, "{}", grant.body);
    json_of(&grant.body)["id"].as_str().unwrap().to_owned()
}

/// The JSON Lines extract of grant `id` by analyst `i`: (extract id, rows).
fn extract_of(app: &Appliance, i: usize, id: &str) -> (String, Vec<Value>) {
    let body = json!({"grant": id, "format": "jsonl"}).to_string();
    let x = app.curl_full(&role(i), "POST", "/v1/extracts", Some(&body));
    assert_eq!(x.status, 200, "{}", x.body);
    let rows: Vec<Value> = x.body.lines().map(json_of).collect();
    assert!(rows.len() > 1000, "{}", rows.len());
    (x.headers["zonevault-extract-id"].clone(), rows)
}

/// RFC 4180 CSV of `rows`, every cell quoted.
fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let mut out = header
        .iter()
        .map(|h| quote(h))
        .collect::<Vec<_>>()
        .join(",")
        + "\r\n";
    for row in rows {
        out.push_str(&(row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",") + "\r\n"));
    }
    out
}

/// Every fifth row, shuffled, without `resident_id`.
fn leaked_subset(rows: &[Value]) -> String {
    leaked_columns(rows, &["address", "amount", "name"])
}

/// Every fifth row, shuffled, only the columns `keep`.
fn leaked_columns(rows: &[Value], keep: &[&str]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            keep.iter()
                .map(|k| r[k].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .collect();
    csv(keep, &every_fifth_shuffled(&rows))
}

/// Every fifth of `rows`, shuffled.
fn every_fifth_shuffled(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut subset: Vec<Vec<String>> = rows.iter().step_by(5).cloned().collect();
    let n = subset.len();
    for i in 0..n {
        subset.swap(i, (i * 7919 + 11) % n);
    }
    subset
}

/// The sample dataset desensitized at tier 2 under a key no grant has.
fn never_issued(sample: &Path) -> String {
    csv(&COLUMNS, &never_issued_rows(sample))
}

/// Every fifth row of the sample, desensitized under a stranger's key.
fn never_issued_rows(sample: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(sample).unwrap();
    let mut lines = text.lines();
    let names: Vec<&str> = lines.next().unwrap().split(',').collect();
    let columns: Vec<ColumnSchema> = vault::sample::column_schemas()
        .into_iter()
        .filter(|c| COLUMNS.contains(&c.name.as_str()))
        .collect();
    let root = MasterKey::from_bytes(&[0x5a; 32]).unwrap().pseudonym_root();
    let key = grant_key(&root, "g-stranger");
    let d = Desensitizer::new(&columns, Tier::Two, &Policy::default_v1(), &key)
        .unwrap()
        .with_fingerprint(FingerprintKey::new(&key, &recipient(LEAKER)));
    let index: Vec<usize> = COLUMNS
        .iter()
        .map(|c| names.iter().position(|n| n == c).unwrap())
        .collect();
    lines
        .step_by(5)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let picked: Vec<&str> = index.iter().map(|&i| cells[i]).collect();
            let mut out = Vec::new();
            d.apply_row(&picked, &mut out);
            out
        })
        .collect()
}

/// A Parquet file's column names and rows (a null as an empty cell).
fn read_parquet(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let names = schema
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(_, field)| match field {
                    Field::Str(s) => s.clone(),
                    Field::Null => String::new(),
                    other => panic!("not a string: {other}"),
                })
                .collect()
        })
        .collect();
    (names, rows)
}

/// Writes `rows` as pandas would: optional UTF-8 strings, Snappy, here in
/// two row groups.
fn write_parquet(path: &Path, names: &[&str], rows: &[Vec<String>]) {
    let fields: String = names
        .iter()
        .map(|n| format!("optional binary {n} (STRING); "))
        .collect();
    let schema = Arc::new(parse_message_type(&format!("message leak {{ {fields}}}")).unwrap());
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(props)).unwrap();
    for part in rows.chunks(rows.len().div_ceil(2)) {
        let mut group = writer.next_row_group().unwrap();
        for c in 0..names.len() {
            let cells = part.iter().map(|r| r[c].as_str());
            let levels: Vec<i16> = cells.clone().map(|v| i16::from(!v.is_empty())).collect();
            let values: Vec<ByteArray> = cells
                .filter(|v| !v.is_empty())
                .map(ByteArray::from)
                .collect();
            let mut column = group.next_column().unwrap().unwrap();
            column
                .typed::<ByteArrayType>()
                .write_batch(&values, Some(&levels), None)
                .unwrap();
            column.close().unwrap();
        }
        group.close().unwrap();
    }
    writer.close().unwrap();
}

/// Random pseudonym-shaped tokens and plain ranges.
fn random_tokens() -> String {
    let rows: Vec<Vec<String>> = (0..400u64)
        .map(|i| {
            let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xA5A5;
            let token: String = (0..16)
                .map(|k| char::from(b'a' + ((x >> (60 - 4 * k)) & 15) as u8))
                .collect();
            let lo = i % 100 * 1000;
            vec![format!("NAME-{token}"), format!("[{lo},{})", lo + 1000)]
        })
        .collect();
    csv(&["name", "amount"], &rows)
}

fn trace_cli(app: &Appliance, role: &str, file: &Path) -> String {
    let out = app.zonevault_as(role, &["trace", "--file", s(file)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `zonevault trace --json --file FILE` as `role`: the verdict.
fn trace_json(app: &Appliance, role: &str, file: &Path) -> Value {
    let out = app.zonevault_as(role, &["trace", "--json", "--file", s(file)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn trace_api(app: &Appliance, role: &str, body: &str) -> Reply {
    app.curl_full(role, "POST", "/v1/leak-trace", Some(body))
}

fn ledger_entry(app: &Appliance, reply: &Reply) -> Value {
    let index = reply.ledger_index().expect("a ledger receipt") as usize;
    let r = app.curl_full("regulator", "GET", "/v1/ledger/entries", None);
    assert_eq!(r.status, 200, "{}", r.body);
    json_of(r.body.lines().nth(index).unwrap())
}

#[test]
fn trace_names_the_leaker_and_no_one_for_files_never_issued() {
    let (mut app, sample) = Appliance::serving_graded_dataset();
    let (mut grants, mut extracts) = (Vec::new(), Vec::new());
    for i in 0..ANALYSTS {
        issue_analyst(&app, i);
        grants.push(grant(&app, i));
        extracts.push(extract_of(&app, i, &grants[i]));
    }
    let (leaked_id, leaked_rows) = &extracts[LEAKER];

    // The leak: 20% of one extract, shuffled, resident_id dropped.
    let leak = leaked_subset(leaked_rows);
    let file = app.path("leaked.csv");
    std::fs::write(&file, &leak).unwrap();
    let out = trace_cli(&app, "regulator", &file);
    let named = format!(
        "MATCH: recipient {} (extract {leaked_id})",
        recipient(LEAKER)
    );
    assert!(out.contains(&named), "{out}");

    let reply = trace_api(&app, "operator", &leak);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = json_of(&reply.body);
    assert_eq!(v["matched"], true, "{v}");
    assert_eq!(v["recipient"], recipient(LEAKER));
    assert_eq!(v["candidates"], ANALYSTS);
    assert_eq!(v["leaked_rows"], leaked_rows.len().div_ceil(5));
    let best = &v["ranked"][0];
    assert_eq!(best["extract"], leaked_id.as_str());
    assert_eq!(best["tokens"]["hits"], best["tokens"]["checks"], "{best}");
    assert!(best["log10_p"].as_f64().unwrap() < -100.0, "{best}");
    // No other candidate comes near being named (under the null, this
    // fails with probability below 2e-5: the keys are fresh each run).
    assert!(v["ranked"][1]["log10_p"].as_f64().unwrap() > -6.0, "{v}");
    let entry = ledger_entry(&app, &reply);
    assert_eq!(entry["details"]["event"], "leak_trace", "{entry}");
    assert_eq!(entry["details"]["recipient"], recipient(LEAKER), "{entry}");
    assert_eq!(entry["resources"][0], format!("extract:{leaked_id}"));

    // Only the generalized amounts left: the keyed cell choices suffice.
    let amounts = trace_api(&app, "regulator", &leaked_columns(leaked_rows, &["amount"]));
    let v = json_of(&amounts.body);
    assert_eq!(
        (v["matched"].clone(), v["extract"].clone()),
        (json!(true), json!(leaked_id)),
        "{v}"
    );
    assert_eq!(
        v["ranked"][0]["cells"]["evidence"]["hits"],
        v["ranked"][0]["cells"]["evidence"]["checks"]
    );

    // The same dataset under a key no grant has, and random tokens.
    for (name, body) in [
        ("stranger.csv", never_issued(&sample)),
        ("random.csv", random_tokens()),
    ] {
        let file = app.path(name);
        std::fs::write(&file, &body).unwrap();
        let out = trace_cli(&app, "regulator", &file);
        assert!(out.contains("no match"), "{name}: {out}");
        assert!(!out.contains("MATCH"), "{name}: {out}");
        let v = json_of(&trace_api(&app, "regulator", &body).body);
        assert_eq!(
            (v["matched"].clone(), v["recipient"].clone()),
            (json!(false), Value::Null)
        );
        assert!(
            v["best_log10_p_adjusted"].as_f64().unwrap() > -6.0,
            "{name}: {v}"
        );
    }
    refusals(&app);
    parquet_leak(&app, &grants[LEAKER], leaked_id, &sample);
    parquet_extract(&app);
    parquet_too_large(&mut app);
}

/// A Parquet file one byte over `max_import_bytes` is a 413 like any
/// other upload, recorded in the ledger.
fn parquet_too_large(app: &mut Appliance) {
    let leaked = app.path("leaked.parquet");
    let size = std::fs::metadata(&leaked).unwrap().len();
    app.stop_server(false);
    app.start_server_with(&format!("max_import_bytes = {}", size - 1))
        .expect("server restarts");
    let out = app.zonevault_as("regulator", &["trace", "--file", s(&leaked)]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(stderr.contains("the server answered 413"), "{stderr}");
    assert_eq!(last_trace_entry(app)["status"], 413);
}

/// The leaker's second extract, pulled as Parquet; a 20% subset of it,
/// shuffled, `resident_id` dropped, re-written as Parquet, names the
/// leaker; the dataset under a stranger's key, as Parquet, names no one;
/// a truncated or corrupt Parquet file is a 400 naming `file`.
fn parquet_leak(app: &Appliance, grant: &str, jsonl_id: &str, sample: &Path) {
    let pulled = app.path("leaker.parquet");
    let args = [
        "extract",
        "--grant",
        grant,
        "--format",
        "parquet",
        "--out",
        s(&pulled),
    ];
    let run = app.zonevault_as(&role(LEAKER), &args);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    let pulled_id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("extract ")?.split(':').next())
        .unwrap()
        .to_owned();
    let (names, rows) = read_parquet(&pulled);
    assert_eq!(names, COLUMNS);
    let keep = ["address", "amount", "name"];
    let at: Vec<usize> = keep
        .iter()
        .map(|k| names.iter().position(|n| n == k).unwrap())
        .collect();
    let projected: Vec<Vec<String>> = rows
        .iter()
        .map(|r| at.iter().map(|&i| r[i].clone()).collect())
        .collect();
    let subset = every_fifth_shuffled(&projected);
    let leaked = app.path("leaked.parquet");
    write_parquet(&leaked, &keep, &subset);

    let out = trace_cli(app, "regulator", &leaked);
    assert!(
        out.contains(&format!("MATCH: recipient {}", recipient(LEAKER))),
        "{out}"
    );
    let v = trace_json(app, "operator", &leaked);
    assert_eq!(
        (v["matched"].clone(), v["recipient"].clone()),
        (json!(true), json!(recipient(LEAKER))),
        "{v}"
    );
    // Both extracts of the leaker's grant carry its fingerprint; the
    // twenty others (and the Parquet one) are the candidates.
    assert_eq!(v["candidates"], ANALYSTS + 1, "{v}");
    assert_eq!(v["leaked_rows"], rows.len().div_ceil(5));
    let named = v["extract"].as_str().unwrap();
    assert!(named == pulled_id || named == jsonl_id, "{named}: {v}");
    let ranked = v["ranked"].as_array().unwrap();
    for best in &ranked[..2] {
        assert_eq!(best["recipient"], recipient(LEAKER), "{v}");
        assert_eq!(best["tokens"]["hits"], best["tokens"]["checks"], "{best}");
        assert!(best["log10_p"].as_f64().unwrap() < -100.0, "{best}");
    }
    assert!(ranked[2]["log10_p"].as_f64().unwrap() > -6.0, "{v}");

    let stranger = app.path("stranger.parquet");
    write_parquet(&stranger, &COLUMNS, &never_issued_rows(sample));
    let out = trace_cli(app, "regulator", &stranger);
    assert!(out.contains("no match") && !out.contains("MATCH"), "{out}");
    let v = trace_json(app, "regulator", &stranger);
    assert_eq!(
        (v["matched"].clone(), v["recipient"].clone()),
        (json!(false), Value::Null),
        "{v}"
    );
    assert!(v["best_log10_p_adjusted"].as_f64().unwrap() > -6.0, "{v}");

    bad_parquet(app, &leaked);
}

/// A zstd Parquet file (two rows of a column `amount`, as pyarrow writes
/// it) with two bytes changed: the `parquet` crate panics reading it
/// (found by mutating the valid file).
const CRAFTED_PARQUET: &str =
    "UEFSMRUEFTYVSEwVBBUAEgAAKLUv/SAb2QAACAAAAFswLDEwMDApCwAAAFsxMDAwLDIwMDApFQAV\
    EhUkLBU3FRAVBhUGHAAAACi1L/0gCUkAAAIAAIAEAQEDAhUEGSw1ABgGc2NoZW1hFQIAFQwlAhgG\
    YW1vdW50JQBMHAAAABYEGRwZHCYAHBUMGTUABhAZGAZhbW91bnQVDBYEFooBFq4BJmwmCCksFQQV\
    ABUCABUAFRAVAgA8FiYZBhkmAAQAAAAWigEWBCYIFq4BACggcGFycXVldC1jcHAtYXJyb3cgdmVy\
    c2lvbiAyNi4wLjEZHBwAAACaAAAAUEFSMQ==";

/// Half a Parquet file, one whose footer length points before its start,
/// and one crafted to crash the `parquet` crate: 400s naming `file` and
/// the problem, recorded in the ledger by a server that is still up.
fn bad_parquet(app: &Appliance, whole: &Path) {
    let body = std::fs::read(whole).unwrap();
    let mut footer = body.clone();
    let at = footer.len() - 8;
    footer[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let crafted = B64
        .decode(CRAFTED_PARQUET.replace(char::is_whitespace, ""))
        .unwrap();
    for (name, bytes, problem) in [
        (
            "cut.parquet",
            &body[..body.len() / 2],
            "does not end with PAR1",
        ),
        (
            "footer.parquet",
            &footer[..],
            "the Parquet file cannot be read",
        ),
        (
            "crafted.parquet",
            &crafted[..],
            "the Parquet file cannot be read: the file is malformed (its reader stopped)",
        ),
    ] {
        let file = app.path(name);
        std::fs::write(&file, bytes).unwrap();
        let out = app.zonevault_as("regulator", &["trace", "--file", s(&file)]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success());
        assert!(stderr.contains("the server answered 400"), "{stderr}");
        assert!(stderr.contains("field: file"), "{stderr}");
        assert!(stderr.contains(problem), "{stderr}");
        let entry = last_trace_entry(app);
        assert_eq!(entry["status"], 400, "{entry}");
        let reason = entry["reason"].as_str().unwrap();
        assert!(reason.contains(problem), "{entry}");
    }
}

/// A Parquet extract through the CLI verifies offline; one flipped byte
/// does not.
fn parquet_extract(app: &Appliance) {
    let id = grant(app, 0);
    let out = app.path("x.parquet");
    let args = [
        "extract",
        "--grant",
        &id,
        "--format",
        "parquet",
        "--out",
        s(&out),
    ];
    let run = app.zonevault_as(&role(0), &args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let body = std::fs::read(&out).unwrap();
    assert!(
        body.starts_with(b"PAR1") && body.ends_with(b"PAR1"),
        "{}",
        body.len()
    );
    let key = app.operator_ok(&["ledger", "key"]).trim().to_owned();
    let manifest = app.path("x.parquet.manifest");
    let verify = |body: &Path| {
        let args = [
            "verify",
            "extract",
            "--manifest",
            s(&manifest),
            "--body",
            s(body),
            "--key",
            &key,
        ];
        app.zonevault_as(&role(0), &args).status.success()
    };
    assert!(verify(&out));
    let mut tampered = body.clone();
    tampered[body.len() / 2] ^= 1;
    let bad = app.path("tampered.parquet");
    std::fs::write(&bad, tampered).unwrap();
    assert!(!verify(&bad));
}

fn refusals(app: &Appliance) {
    // Not a file of rows: 400 naming the field, recorded.
    for bad in ["", "name,amount\r\n", "{\"a\": \"x\"}\nnot json\n"] {
        let reply = trace_api(app, "regulator", bad);
        assert_eq!(reply.status, 400, "{bad:?}: {}", reply.body);
        assert_eq!(json_of(&reply.body)["field"], "file", "{}", reply.body);
        let entry = ledger_entry(app, &reply);
        assert_eq!(
            (entry["route"].clone(), entry["status"].clone()),
            (json!("/v1/leak-trace"), json!(400))
        );
    }
    let empty = app.path("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let out = app.zonevault_as("regulator", &["trace", "--file", s(&empty)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("field: file"));
    // Analysts do not trace.
    let reply = trace_api(app, "analyst", "name\r\nNAME-aaaaaaaaaaaaaaaa\r\n");
    assert_eq!(reply.status, 403, "{}", reply.body);
    let entry = ledger_entry(app, &reply);
    assert_eq!(entry["decision"], "deny", "{entry}");
}

/// The ledger's latest `POST /v1/leak-trace` entry.
fn last_trace_entry(app: &Appliance) -> Value {
    let r = app.curl_full("regulator", "GET", "/v1/ledger/entries", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .rev()
        .map(json_of)
        .find(|e| e["route"] == "/v1/leak-trace")
        .unwrap()
}
