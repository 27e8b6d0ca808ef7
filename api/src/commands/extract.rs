//! `zonevault extract` and `zonevault verify extract`.
//!
//! `extract` streams the body straight to `FILE.partial` (never holding it
//! in memory), shows progress on a terminal, renames the file once the
//! server has ended the body cleanly, then fetches the signed manifest and
//! saves it as `FILE.manifest`. `verify extract` needs no server: it checks
//! the manifest's Ed25519 signature against the appliance's verifier key
//! and the body's SHA-256 against the manifest.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use axum::http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vault::desensitize::ManifestVerifier;

use super::zone::{call, text};
use crate::app::extracts::EXTRACT_ID_HEADER;
use crate::cli::{ExtractArgs, VerifyExtractArgs};
use crate::client::Client;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs `zonevault extract`.
pub fn run(args: ExtractArgs) -> Result<()> {
    let body = json!({
        "grant": args.grant,
        "columns": (!args.columns.is_empty()).then_some(&args.columns),
        "filter": args.filter,
        "format": args.format,
        "bom": args.bom,
    });
    let partial = with_suffix(&args.out, "partial");
    let (id, lines) = download(&args, &body, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, &args.out).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            args.out.display()
        )
    })?;
    let manifest = call(
        &args.client,
        Method::GET,
        &format!("/v1/extracts/{id}/manifest"),
        None,
    )?;
    let note = manifest["note"]
        .as_str()
        .ok_or_else(|| anyhow!("the server sent no manifest note"))?;
    let manifest_path = with_suffix(&args.out, "manifest");
    std::fs::write(&manifest_path, note)
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    let m = &manifest["manifest"];
    eprintln!(
        "extract {id}: {} rows ({} suppressed for k-anonymity, {lines} lines) to {}; manifest {}",
        text(&m["row_count"]),
        text(&m["rows_suppressed"]),
        args.out.display(),
        manifest_path.display()
    );
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".");
    p.push(suffix);
    PathBuf::from(p)
}

/// Streams the extract into `path`; returns its id and line count.
fn download(args: &ExtractArgs, body: &Value, path: &Path) -> Result<(String, u64)> {
    let client = Client::from_args(&args.client)?;
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut progress = Progress::new();
    let request = serde_json::to_vec(body)?;
    let response =
        client.send_streaming(Method::POST, "/v1/extracts", Some(request), &mut |chunk| {
            out.write_all(chunk)?;
            progress.add(chunk);
            Ok(())
        })?;
    progress.done();
    if !(200..300).contains(&response.status) {
        bail!(
            "POST /v1/extracts: the server answered {}: {}",
            response.status,
            message(&response.body)
        );
    }
    out.flush().context("cannot write the extract")?;
    let id = response
        .headers
        .get(EXTRACT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the server sent no {EXTRACT_ID_HEADER} header"))?;
    Ok((id.to_owned(), progress.lines))
}

/// The server's error message, field and problem.
fn message(body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let parts: Vec<String> = ["message", "field", "problem"]
        .iter()
        .filter_map(|k| {
            json.get(*k)
                .and_then(Value::as_str)
                .map(|v| format!("{k}: {v}"))
        })
        .collect();
    if parts.is_empty() {
        String::from_utf8_lossy(body).trim().to_owned()
    } else {
        parts.join("; ")
    }
}

/// Lines and bytes received, redrawn on a terminal.
struct Progress {
    lines: u64,
    bytes: u64,
    started: Instant,
    drawn: Instant,
    terminal: bool,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            lines: 0,
            bytes: 0,
            started: now,
            drawn: now,
            terminal: io::stderr().is_terminal(),
        }
    }

    fn add(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        if self.terminal && self.drawn.elapsed() >= PROGRESS_EVERY {
            self.draw();
            self.drawn = Instant::now();
        }
    }

    fn draw(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r{} lines, {:.1} MB, {:.1} MB/s   ",
            self.lines,
            self.bytes as f64 / 1e6,
            self.bytes as f64 / 1e6 / secs
        );
    }

    fn done(&self) {
        if self.terminal {
            self.draw();
            eprintln!();
        }
    }
}

/// Runs `zonevault verify extract`: exit 0 only when the signature and the
/// body digest both check.
pub fn verify(args: &VerifyExtractArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read {}", args.manifest.display()))?;
    let note = note_of(&text)?;
    let verifier = ManifestVerifier::parse(args.key.trim()).context("bad verifier key")?;
    let manifest = verifier
        .verify(&note)
        .map_err(|e| anyhow!("FAIL: the manifest does not verify: {e}"))?;
    let digest = sha256_file(&args.body)?;
    // Both digests are public (the file and the manifest are in the
    // verifier's hands), so a plain comparison leaks nothing.
    if digest != manifest.body_sha256 {
        bail!(
            "FAIL: {} does not match the manifest (SHA-256 {digest}, manifest says {})",
            args.body.display(),
            manifest.body_sha256
        );
    }
    println!(
        "OK: extract {} of dataset {} for {} under grant {}: {} rows, policy {}, ledger entry {}, SHA-256 {}",
        manifest.extract_id,
        manifest.dataset,
        manifest.recipient,
        manifest.grant,
        manifest.row_count,
        manifest.policy_version,
        manifest.ledger_index,
        manifest.body_sha256
    );
    Ok(())
}

/// The signed note: the file itself, or the `note` of a JSON answer.
fn note_of(text: &str) -> Result<String> {
    if !text.trim_start().starts_with('{') {
        return Ok(text.to_owned());
    }
    let json: Value = serde_json::from_str(text).context("the manifest file is not valid JSON")?;
    json["note"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the manifest JSON has no \"note\""))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}
