//! `zonevault destruction ...` (client) and `zonevault verify certificate`
//! (offline): request, approve, list due datasets, fetch a certificate with
//! its ledger inclusion proof, and check both without the appliance.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use axum::http::Method;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use vault::ledger::merkle::{leaf_hash, verify_inclusion, Hash};
use vault::ledger::NoteVerifier;
use vault::lifecycle::{CertificateVerifier, DestructionCertificate};

use super::zone::call;
use crate::cli::{DestructionCommand, VerifyCertificateArgs};
use crate::client::Client;

/// Runs one `zonevault destruction` subcommand.
pub fn run(cmd: DestructionCommand) -> Result<()> {
    match cmd {
        DestructionCommand::Request {
            client,
            dataset,
            zone,
            basis,
            reason,
        } => {
            let body = json!({"dataset": dataset, "zone": zone, "basis": basis, "reason": reason});
            let d = call(&client, Method::POST, "/v1/destructions", Some(&body))?;
            println!("{}", d["id"].as_str().unwrap_or_default());
            eprintln!(
                "requested: {}; awaiting the zone regulator's approval",
                d["object"]
            );
        }
        DestructionCommand::Approve { client, id, reject } => {
            let path = format!("/v1/destructions/{id}/approval");
            let d = call(
                &client,
                Method::POST,
                &path,
                Some(&json!({"approve": !reject})),
            )?;
            print_destruction(&d);
        }
        DestructionCommand::Show { client, id } => {
            let d = call(
                &client,
                Method::GET,
                &format!("/v1/destructions/{id}"),
                None,
            )?;
            print_destruction(&d);
        }
        DestructionCommand::Due { client } => {
            let due = call(&client, Method::GET, "/v1/destructions/due", None)?;
            for d in due["due"].as_array().into_iter().flatten() {
                println!(
                    "{}\tzone {}\texpired {}\t{} rows",
                    d["dataset"].as_str().unwrap_or_default(),
                    d["zone"].as_str().unwrap_or_default(),
                    d["expired_at"].as_str().unwrap_or("?"),
                    d["row_count"],
                );
            }
        }
        DestructionCommand::Certificate { client, id, out } => {
            fetch_certificate(&client, &id, &out)?
        }
    }
    Ok(())
}

fn print_destruction(d: &Value) {
    println!(
        "{}\t{}\t{}:{}\tcertificate {}",
        d["id"].as_str().unwrap_or_default(),
        d["state"].as_str().unwrap_or_default(),
        d["object"]["kind"].as_str().unwrap_or_default(),
        d["object"]["id"].as_str().unwrap_or_default(),
        d["certificate_id"].as_str().unwrap_or("-"),
    );
}

/// The `.proof.json` file written beside a certificate.
fn proof_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".proof.json");
    PathBuf::from(p)
}

/// Writes the certificate note to `out` and, beside it, the ledger entry
/// that published it with its inclusion proof and a signed checkpoint.
fn fetch_certificate(args: &crate::cli::ClientArgs, id: &str, out: &Path) -> Result<()> {
    let client = Client::from_args(args)?;
    let response = client.get(&format!("/v1/destructions/{id}/certificate"))?;
    ensure!(
        response.status == 200,
        "the server answered {} for the certificate",
        response.status
    );
    let note = response.text();
    let show = call(args, Method::GET, &format!("/v1/destructions/{id}"), None)?;
    let index = show["ledger_index"]
        .as_u64()
        .ok_or_else(|| anyhow!("destruction {id} has no certificate ledger index"))?;
    let checkpoint = client.get("/v1/ledger/checkpoint")?.text();
    let size = checkpoint
        .lines()
        .nth(1)
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("the checkpoint has no tree size"))?;
    let entry = client
        .get(&format!(
            "/v1/ledger/entries?start={index}&end={}",
            index + 1
        ))?
        .text();
    let path = format!("/v1/ledger/proof/inclusion?index={index}&tree_size={size}");
    let proof = client.get(&path)?.json()?;
    std::fs::write(out, &note).with_context(|| format!("cannot write {}", out.display()))?;
    let bundle = json!({
        "ledger_index": index,
        "entry": entry.trim_end_matches('\n'),
        "checkpoint": checkpoint,
        "hashes": proof["hashes"],
    });
    let proof_file = proof_path(out);
    std::fs::write(&proof_file, serde_json::to_vec_pretty(&bundle)?)
        .with_context(|| format!("cannot write {}", proof_file.display()))?;
    println!("{}\n{}", out.display(), proof_file.display());
    Ok(())
}

/// `zonevault verify certificate`: the signature, the recorded checks,
/// and (with `--proof`) the certificate's inclusion in a signed checkpoint.
pub fn verify(args: &VerifyCertificateArgs) -> Result<()> {
    let note = read(&args.certificate)?;
    let key = verifier_key(&args.key)?;
    let cert = CertificateVerifier::parse(&key)?
        .verify(&note)
        .context("FAIL: the certificate's signature does not verify")?;
    ensure!(
        cert.verified(),
        "FAIL: the certificate records a failed verification"
    );
    let proof = args.proof.clone().or_else(|| {
        let p = proof_path(&args.certificate);
        p.exists().then_some(p)
    });
    let included = match proof {
        Some(p) => Some(check_inclusion(&p, &key, &note)?),
        None => None,
    };
    report(&cert, included);
    Ok(())
}

/// A verifier key given inline or as a file.
fn verifier_key(arg: &str) -> Result<String> {
    let path = Path::new(arg);
    if !arg.contains('+') && path.exists() {
        return Ok(read(path)?.trim().to_owned());
    }
    Ok(arg.trim().to_owned())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Checks that the proof's entry publishes exactly `note` and is included
/// in its signed checkpoint; the entry's index.
fn check_inclusion(path: &Path, key: &str, note: &str) -> Result<u64> {
    let bundle: Value = serde_json::from_str(&read(path)?).context("the proof is not JSON")?;
    let index = bundle["ledger_index"]
        .as_u64()
        .ok_or_else(|| anyhow!("no ledger_index"))?;
    let entry = bundle["entry"]
        .as_str()
        .ok_or_else(|| anyhow!("no entry"))?;
    let checkpoint = bundle["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("no checkpoint"))?;
    let parsed: Value = serde_json::from_str(entry).context("the entry is not JSON")?;
    ensure!(
        parsed["details"]["certificate"].as_str() == Some(note),
        "FAIL: the ledger entry does not publish this certificate"
    );
    let signed = NoteVerifier::parse(key)?
        .verify(checkpoint)
        .context("FAIL: the checkpoint's signature does not verify")?;
    let hashes = hashes(&bundle["hashes"])?;
    let leaf = leaf_hash(entry.as_bytes());
    ensure!(
        index < signed.size && verify_inclusion(index, signed.size, &leaf, &hashes, &signed.root),
        "FAIL: entry {index} is not included in the signed checkpoint of size {}",
        signed.size
    );
    Ok(index)
}

fn hashes(list: &Value) -> Result<Vec<Hash>> {
    let Some(list) = list.as_array() else {
        bail!("the proof has no hashes array");
    };
    list.iter()
        .map(|h| {
            let bytes = B64
                .decode(h.as_str().unwrap_or_default())
                .context("a proof hash is not base64")?;
            Hash::try_from(bytes.as_slice()).map_err(|_| anyhow!("a proof hash is not 32 bytes"))
        })
        .collect()
}

fn report(cert: &DestructionCertificate, included: Option<u64>) {
    println!(
        "certificate {} for {} ({})",
        cert.certificate_id, cert.object, cert.grade
    );
    println!("  basis      {}", cert.basis);
    println!("  method     {} ({})", cert.method, cert.standard);
    println!(
        "  requested  {} at {}",
        cert.requested_by, cert.requested_at
    );
    println!("  approved   {} at {}", cert.approved_by, cert.approved_at);
    println!("  executed   {}", cert.executed_at);
    for d in &cert.datasets {
        println!(
            "  dataset    {}: {} rows, sha256 {}",
            d.id, d.row_count, d.content_sha256
        );
    }
    let v = &cert.verification;
    println!(
        "  verified   keys absent {}, files absent {}, {} remaining keys tried, {} opened",
        v.wrapped_keys_absent, v.files_absent, v.remaining_keys_tried, v.remaining_keys_opened
    );
    match included {
        Some(i) => println!(
            "PASS: signature valid; published at ledger entry {i}, included in a signed checkpoint"
        ),
        None => println!("PASS: signature valid (no inclusion proof checked)"),
    }
}
