//! `zonevault dataset ...`: client commands for datasets, over mutual TLS.
//!
//! `import` expects the dataset to exist (`zonevault dataset create`) and
//! to belong to `--zone`; it checks both before sending a byte, streams the
//! file, and prints the detected schema. On a terminal it draws a progress
//! bar (rows, MB/s, ETA); otherwise it prints a plain progress line every
//! few seconds. The row count shown while sending counts lines sent, so it
//! is approximate for CSV fields with embedded newlines; the final count is
//! the server's.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use axum::http::Method;

use super::wire::Uploader;
use super::zone::{call, print_table, text};
use crate::cli::{DatasetCommand, DatasetCreateArgs, DatasetImportArgs};

/// Runs one `zonevault dataset` subcommand.
pub fn run(cmd: DatasetCommand) -> Result<()> {
    match cmd {
        DatasetCommand::Create(args) => create(args),
        DatasetCommand::Import(args) => import(args),
        DatasetCommand::Show { client, id } => {
            let d = call(&client, Method::GET, &format!("/v1/datasets/{id}"), None)?;
            print_dataset(&d);
            Ok(())
        }
        DatasetCommand::List { client, zone } => {
            let path = format!("/v1/zones/{zone}/datasets");
            let list = call(&client, Method::GET, &path, None)?;
            let rows: Vec<Vec<String>> = list["datasets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|d| {
                    ["id", "state", "row_count", "grade", "source", "title"]
                        .iter()
                        .map(|k| text(&d[*k]))
                        .collect()
                })
                .collect();
            print_table(&["ID", "STATE", "ROWS", "GRADE", "SOURCE", "TITLE"], &rows);
            Ok(())
        }
        DatasetCommand::Confirm {
            client,
            id,
            columns,
        } => {
            let overrides = columns
                .iter()
                .map(|c| parse_column(c))
                .collect::<Result<Vec<_>>>()?;
            let body = json!({ "columns": overrides, "confirm": true });
            let path = format!("/v1/datasets/{id}/schema");
            let d = call(&client, Method::PATCH, &path, Some(&body))?;
            print_dataset(&d);
            Ok(())
        }
    }
}

fn create(args: DatasetCreateArgs) -> Result<()> {
    let body = json!({
        "id": args.id, "title": args.title, "provider": args.provider,
        "source": args.source, "application": args.application,
        "retention": args.retention, "quasi_identifiers": args.quasi_identifiers,
    });
    let path = format!("/v1/zones/{}/datasets", args.zone);
    let d = call(&args.client, Method::POST, &path, Some(&body))?;
    println!(
        "dataset {} created in zone {} ({})",
        text(&d["id"]),
        text(&d["zone"]),
        text(&d["state"])
    );
    Ok(())
}

/// `name:type:grade[:qi]` into an override; empty parts are left out.
fn parse_column(spec: &str) -> Result<Value> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, rest) = match parts.split_first() {
        Some((name, rest)) if !name.is_empty() && rest.len() <= 3 => (*name, rest),
        _ => bail!("--column {spec:?}: expected NAME:TYPE:GRADE[:qi]"),
    };
    let mut o = json!({ "name": name });
    if let Some(t) = rest.first().filter(|t| !t.is_empty()) {
        o["type"] = json!(t);
    }
    if let Some(g) = rest.get(1).filter(|g| !g.is_empty()) {
        o["grade"] = json!(g);
    }
    match rest.get(2).copied() {
        None | Some("") => {}
        Some("qi") | Some("true") => o["quasi_identifier"] = json!(true),
        Some("no-qi") | Some("false") => o["quasi_identifier"] = json!(false),
        Some(other) => bail!("--column {spec:?}: {other:?} is not qi or no-qi"),
    }
    Ok(o)
}

fn import(args: DatasetImportArgs) -> Result<()> {
    let dataset = call(
        &args.client,
        Method::GET,
        &format!("/v1/datasets/{}", args.id),
        None,
    )?;
    if dataset["zone"].as_str() != Some(args.zone.as_str()) {
        bail!(
            "dataset {} belongs to zone {}, not {}",
            args.id,
            text(&dataset["zone"]),
            args.zone
        );
    }
    let format = match args.format.as_deref() {
        Some(f) => f.to_owned(),
        None if is_jsonl(&args.file) => "jsonl".to_owned(),
        None => "csv".to_owned(),
    };
    let path = format!(
        "/v1/datasets/{}/rows?format={format}&encoding={}",
        args.id, args.encoding
    );
    let total = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let mut progress = Progress::new(total, format == "csv");
    let reply = Uploader::new(&args.client)?
        .put_file(&path, &args.file, &mut |chunk| progress.sent(chunk))?;
    progress.finish();
    if reply.status >= 400 {
        print_row_errors(&reply.json);
    }
    let report = reply.ok()?;
    println!(
        "imported {} rows ({:.1} MB) into dataset {}",
        text(&report["rows"]),
        report["bytes"].as_f64().unwrap_or(0.0) / 1e6,
        args.id
    );
    print_dataset(&report["dataset"]);
    Ok(())
}

fn is_jsonl(file: &Path) -> bool {
    matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson")
    )
}

fn print_row_errors(body: &Value) {
    let Some(errors) = body["errors"].as_array().filter(|e| !e.is_empty()) else {
        return;
    };
    eprintln!(
        "{} rows are invalid; the first {}:",
        text(&body["total"]),
        errors.len()
    );
    for e in errors {
        eprintln!(
            "  line {}, column {}: {}",
            text(&e["line"]),
            text(&e["column"]),
            text(&e["problem"])
        );
    }
}

fn print_dataset(d: &Value) {
    println!(
        "dataset {}  zone {}  state {}  rows {}  grade {}",
        text(&d["id"]),
        text(&d["zone"]),
        text(&d["state"]),
        text(&d["row_count"]),
        text(&d["grade"])
    );
    let rows: Vec<Vec<String>> = d["columns"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let confidence = c["confidence"]
                .as_f64()
                .map_or("-".to_owned(), |v| format!("{v:.2}"));
            let qi = if c["quasi_identifier"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            };
            vec![
                text(&c["name"]),
                text(&c["type"]),
                confidence,
                text(&c["grade"]),
                qi.to_owned(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print_table(
            &["COLUMN", "TYPE", "CONFIDENCE", "GRADE", "QUASI-ID"],
            &rows,
        );
    }
}

/// Upload progress: a redrawn bar on a terminal, plain lines otherwise.
struct Progress {
    total: u64,
    sent: u64,
    lines: u64,
    header_line: bool,
    started: Instant,
    last: Instant,
    terminal: bool,
}

impl Progress {
    fn new(total: u64, header_line: bool) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            sent: 0,
            lines: 0,
            header_line,
            started: now,
            last: now,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn sent(&mut self, chunk: &[u8]) {
        self.sent += chunk.len() as u64;
        self.lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.draw();
        }
    }

    fn draw(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.sent as f64 / secs;
        let rows = self.lines.saturating_sub(u64::from(self.header_line));
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(self.sent)) as f64 / rate
        } else {
            0.0
        };
        let fraction = if self.total == 0 {
            1.0
        } else {
            self.sent as f64 / self.total as f64
        };
        let stats = format!(
            "{:>5.1}%  ~{rows} rows  {:.1}/{:.1} MB  {:.1} MB/s  ETA {eta:.0}s",
            fraction * 100.0,
            self.sent as f64 / 1e6,
            self.total as f64 / 1e6,
            rate / 1e6
        );
        if self.terminal {
            let filled = (fraction * 30.0).round() as usize;
            let bar = format!("{}{}", "#".repeat(filled), " ".repeat(30 - filled.min(30)));
            eprint!("\r[{bar}] {stats}   ");
        } else {
            eprintln!("import: {stats}");
        }
    }

    fn finish(&self) {
        self.draw();
        if self.terminal {
            eprintln!();
        }
        eprintln!(
            "sent {:.1} MB in {:.1}s; waiting for the server to commit",
            self.sent as f64 / 1e6,
            self.started.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_specs_parse() {
        let ok = |s: &str| parse_column(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok("phone:mobile:general-4:qi"),
            json!({"name": "phone", "type": "mobile", "grade": "general-4", "quasi_identifier": true})
        );
        assert_eq!(
            ok("addr::general-2"),
            json!({"name": "addr", "grade": "general-2"})
        );
        assert_eq!(ok("x"), json!({"name": "x"}));
        assert!(parse_column(":mobile").is_err());
        assert!(parse_column("a:b:c:maybe").is_err());
        assert!(parse_column("a:b:c:qi:extra").is_err());
    }
}
