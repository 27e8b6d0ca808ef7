//! `zonevault trace-incident`, `zonevault alerts` and `zonevault
//! zone-exit` (clients). `trace-incident` verifies the signed checkpoint
//! the server returns with the pinned key, then every entry's inclusion
//! proof against it, and prints the entries as a timeline; any failure is
//! a non-zero exit naming the entry.

use anyhow::{anyhow, bail, ensure, Context, Result};
use axum::http::Method;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use vault::ledger::merkle::{leaf_hash, verify_inclusion, Hash};
use vault::ledger::NoteVerifier;

use super::zone::call;
use crate::cli::{AlertsArgs, TraceIncidentArgs, ZoneExitArgs};

/// `zonevault trace-incident`.
pub fn trace(args: TraceIncidentArgs) -> Result<()> {
    let body = match &args.file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a saved trace", file.display()))?
        }
        None => {
            ensure!(
                args.identity.is_some() || args.dataset.is_some() || args.extract.is_some(),
                "give one of --identity, --dataset, --extract (or --file)"
            );
            call(&args.client, Method::GET, &trace_path(&args), None)?
        }
    };
    if let Some(out) = &args.save {
        std::fs::write(out, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    let key = match &args.key {
        Some(k) => k.trim().to_owned(),
        None => {
            eprintln!("warning: the verifier key is not pinned; trusting the server's");
            let client = crate::client::Client::from_args(&args.client)?;
            client.get("/v1/ledger/key")?.text().trim().to_owned()
        }
    };
    let entries = verify_trace(&body, &key)?;
    for (index, entry) in &entries {
        if args.json {
            println!("{}", json!({"index": index, "entry": entry}));
        } else {
            println!("{}", timeline_line(*index, entry));
        }
    }
    let size = body["tree_size"].as_u64().unwrap_or_default();
    eprintln!(
        "{} entries, each included in the signed checkpoint of size {size}: OK{}",
        entries.len(),
        if body["truncated"] == true {
            " (truncated: narrow --from/--to)"
        } else {
            ""
        }
    );
    Ok(())
}

fn trace_path(args: &TraceIncidentArgs) -> String {
    let mut query = Vec::new();
    for (name, value) in [
        ("identity", &args.identity),
        ("dataset", &args.dataset),
        ("extract", &args.extract),
        ("from", &args.from),
        ("to", &args.to),
    ] {
        if let Some(v) = value {
            query.push(format!("{name}={}", encode(v)));
        }
    }
    format!("/v1/trace?{}", query.join("&"))
}

/// Percent-encodes everything but unreserved characters.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Checks the checkpoint's signature and each entry's inclusion proof;
/// the entries, parsed, with their indexes.
pub fn verify_trace(body: &Value, key: &str) -> Result<Vec<(u64, Value)>> {
    let note = body["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the trace has no checkpoint"))?;
    let signed = NoteVerifier::parse(key)?
        .verify(note)
        .context("the trace's checkpoint does not verify with the key")?;
    let mut out = Vec::new();
    for item in body["entries"].as_array().into_iter().flatten() {
        let index = item["index"]
            .as_u64()
            .ok_or_else(|| anyhow!("an entry without an index"))?;
        let leaf = item["leaf"]
            .as_str()
            .ok_or_else(|| anyhow!("entry {index} without its leaf"))?;
        let hashes = hashes(&item["hashes"]).with_context(|| format!("entry {index}"))?;
        ensure!(
            index < signed.size
                && verify_inclusion(
                    index,
                    signed.size,
                    &leaf_hash(leaf.as_bytes()),
                    &hashes,
                    &signed.root
                ),
            "entry {index} is not included in the signed checkpoint of size {}",
            signed.size
        );
        out.push((index, serde_json::from_str(leaf)?));
    }
    Ok(out)
}

fn hashes(v: &Value) -> Result<Vec<Hash>> {
    let mut out = Vec::new();
    for h in v.as_array().into_iter().flatten() {
        let bytes = B64.decode(h.as_str().unwrap_or_default())?;
        let hash: Hash = bytes
            .try_into()
            .map_err(|_| anyhow!("a proof hash is not 32 bytes"))?;
        out.push(hash);
    }
    Ok(out)
}

/// `time  #index  identity  method route  decision status  rows  resources  reason`.
fn timeline_line(index: u64, e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
    let opt = |k: &str| e.get(k).filter(|v| !v.is_null()).map(Value::to_string);
    let resources: Vec<&str> = e["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "{}  #{index}  {}  {} {}  {} {}  rows={}  [{}]  {}",
        s("time"),
        s("identity"),
        s("method"),
        s("route"),
        s("decision"),
        opt("status").unwrap_or_else(|| "-".into()),
        opt("rows").unwrap_or_else(|| "-".into()),
        resources.join(" "),
        s("reason"),
    )
}

/// `zonevault alerts`.
pub fn alerts(args: AlertsArgs) -> Result<()> {
    let path = match &args.kind {
        Some(k) => format!("/v1/alerts?kind={}", encode(k)),
        None => "/v1/alerts".to_owned(),
    };
    let body = call(&args.client, Method::GET, &path, None)?;
    for a in body["alerts"].as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}  {}  evidence={}  (ledger #{})",
            a["raised_at"].as_str().unwrap_or(""),
            a["kind"].as_str().unwrap_or(""),
            a["subject"].as_str().unwrap_or(""),
            a["summary"].as_str().unwrap_or(""),
            a["evidence"],
            a["ledger_index"]
        );
    }
    Ok(())
}

/// `zonevault zone-exit`: starts the exit with `--reason`, else shows it.
pub fn zone_exit(args: ZoneExitArgs) -> Result<()> {
    let path = format!("/v1/zones/{}/exit", args.zone);
    let Some(reason) = &args.reason else {
        let exit = call(&args.client, Method::GET, &path, None)?;
        println!("{}", serde_json::to_string_pretty(&exit)?);
        return Ok(());
    };
    let exit = call(
        &args.client,
        Method::POST,
        &path,
        Some(&json!({ "reason": reason })),
    )?;
    let Some(dx) = exit["destruction_id"].as_str() else {
        bail!("the server answered without a destruction id");
    };
    println!("{dx}");
    eprintln!(
        "zone {} is exiting: {} grant(s) revoked; zone-wide destruction {dx} awaits the \
         regulator's approval (zonevault destruction approve --id {dx})",
        args.zone,
        exit["revoked_grants"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}
