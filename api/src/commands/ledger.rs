//! `zonevault ledger ...`: verify the audit ledger, online against a server
//! or offline on exported entries or a data directory, and fetch its
//! checkpoint, entries, proofs and key.
//!
//! Verification recomputes the RFC 6962 root from every entry's bytes,
//! checks the checkpoint's Ed25519 signed-note signature, and, given an
//! older checkpoint, checks that the ledger extends it. On failure it exits
//! non-zero and names the first bad entry: offline from the hashes stored
//! in `entries.log`, online by bisecting with the server's consistency
//! proofs against the signed root. It never needs a TPM.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;
use vault::ledger::checkpoint::{Checkpoint, NoteVerifier};
use vault::ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash, MerkleTree};
use vault::ledger::store::LedgerPaths;
use vault::ledger::verify::{
    parse_entries_log, split_json_lines, verify_checkpoint_consistency, verify_export, Export,
    VerifiedLedger, VerifyError,
};

use crate::cli::{ClientArgs, LedgerCommand, LedgerVerifyArgs};
use crate::client::Client;

/// Entries fetched per request (the server's limit).
const PAGE: u64 = 10_000;

/// Runs one `zonevault ledger` subcommand.
pub fn run(command: LedgerCommand) -> Result<()> {
    match command {
        LedgerCommand::Verify(args) => verify(args),
        LedgerCommand::Checkpoint(args) => {
            print!(
                "{}",
                Client::from_args(&args)?
                    .get("/v1/ledger/checkpoint")?
                    .text()
            );
            Ok(())
        }
        LedgerCommand::Entries { client, start, end } => entries(&client, start, end),
        LedgerCommand::Proof { client, index, key } => proof(&client, index, key),
        LedgerCommand::Key(args) => {
            print!(
                "{}",
                Client::from_args(&args)?.get("/v1/ledger/key")?.text()
            );
            Ok(())
        }
    }
}

/// Where `ledger verify` reads the ledger from.
enum Source {
    Online {
        client: Client,
        pinned: Option<String>,
    },
    Export {
        entries: PathBuf,
        checkpoint: PathBuf,
        key: String,
    },
    DataDir {
        dir: PathBuf,
        checkpoint: Option<PathBuf>,
        key: String,
    },
}

impl Source {
    /// Step one: the arguments become one mode, or an error saying what is missing.
    fn from_args(args: &LedgerVerifyArgs) -> Result<Source> {
        let offline_key = || {
            args.key
                .clone()
                .ok_or_else(|| anyhow!("offline verification needs the verifier key: use --key"))
        };
        if let Some(entries) = &args.entries {
            let checkpoint = args
                .checkpoint
                .clone()
                .ok_or_else(|| anyhow!("--entries needs --checkpoint"))?;
            return Ok(Source::Export {
                entries: entries.clone(),
                checkpoint,
                key: offline_key()?,
            });
        }
        if let Some(dir) = &args.data_dir {
            return Ok(Source::DataDir {
                dir: dir.clone(),
                checkpoint: args.checkpoint.clone(),
                key: offline_key()?,
            });
        }
        ensure!(
            args.checkpoint.is_none(),
            "--checkpoint is for offline verification: add --entries or --data-dir"
        );
        Ok(Source::Online {
            client: Client::from_args(&args.client)?,
            pinned: args.key.clone(),
        })
    }
}

/// What a successful verification shows.
struct Verified {
    proof: VerifiedLedger,
    note: String,
}

fn verify(args: LedgerVerifyArgs) -> Result<()> {
    let source = Source::from_args(&args)?;
    let previous = args.previous.as_deref().map(read_text).transpose()?;
    let verified = match source {
        Source::Online { client, pinned } => online(&client, pinned, previous.as_deref())?,
        Source::Export {
            entries,
            checkpoint,
            key,
        } => {
            let jsonl = std::fs::read(&entries)
                .with_context(|| format!("cannot read {}", entries.display()))?;
            let export = Export {
                entries: split_json_lines(&jsonl),
                stored_hashes: None,
            };
            let note = read_text(&checkpoint)?;
            let proof = verify_export(&export, &note, previous.as_deref(), &key)?;
            Verified { proof, note }
        }
        Source::DataDir {
            dir,
            checkpoint,
            key,
        } => data_dir(&dir, checkpoint.as_deref(), previous.as_deref(), &key)?,
    };
    if let Some(save) = &args.save {
        std::fs::write(save, &verified.note)
            .with_context(|| format!("cannot write {}", save.display()))?;
    }
    report(&verified.proof);
    Ok(())
}

fn report(v: &VerifiedLedger) {
    let cp = v.checkpoint();
    println!("origin: {}", cp.origin);
    println!("size:   {}", cp.size);
    println!("root:   {}", B64.encode(cp.root));
    if let Some(older) = v.older() {
        println!("extends the previous checkpoint of size {}", older.size);
    }
    println!("OK");
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Offline on `<dir>/ledger`: every record's stored hash, then the tree
/// against the latest (or the given) signed checkpoint.
fn data_dir(
    dir: &Path,
    checkpoint: Option<&Path>,
    previous: Option<&str>,
    key: &str,
) -> Result<Verified> {
    let paths = LedgerPaths::new(dir);
    let log = std::fs::read(&paths.entries)
        .with_context(|| format!("cannot read {}", paths.entries.display()))?;
    let records = parse_entries_log(&log)?;
    if let Some(index) = records.iter().position(|(e, h)| leaf_hash(e) != *h) {
        return Err(VerifyError::EntryAltered {
            index: index as u64,
        }
        .into());
    }
    let note = read_text(checkpoint.unwrap_or(&paths.checkpoint))?;
    let export = Export {
        entries: records.iter().map(|(e, _)| *e).collect(),
        stored_hashes: Some(records.iter().map(|(_, h)| *h).collect()),
    };
    let proof = verify_export(&export, &note, previous, key)?;
    let beyond = records.len() as u64 - proof.size();
    if beyond > 0 {
        eprintln!("note: {beyond} newer entries are not yet covered by a signed checkpoint");
    }
    Ok(Verified { proof, note })
}

/// Online: key (pinned or fetched), checkpoint, every entry, and the
/// server's consistency proof from `previous`.
fn online(client: &Client, pinned: Option<String>, previous: Option<&str>) -> Result<Verified> {
    let key = match pinned {
        Some(key) => key,
        None => {
            eprintln!(
                "warning: the verifier key is not pinned; trusting the server's \
                 (pass --key to check against a key you hold)"
            );
            client.get("/v1/ledger/key")?.text().trim().to_owned()
        }
    };
    let verifier = NoteVerifier::parse(&key).context("verifier key")?;
    let note = client.get("/v1/ledger/checkpoint")?.text();
    let signed = verifier
        .verify(&note)
        .context("the server's checkpoint does not verify")?;
    let jsonl = fetch_entries(client, signed.size)?;
    let export = Export {
        entries: split_json_lines(&jsonl),
        stored_hashes: None,
    };
    let proof = match verify_export(&export, &note, previous, &key) {
        Ok(proof) => proof,
        Err(VerifyError::RootMismatch { which: "newer", .. }) => {
            let tree = tree_of(&export.entries);
            let index = first_bad_entry(&tree, &signed, |m| {
                consistency_proof(client, m, signed.size)
            })?;
            bail!(
                "entry {index} does not match the signed checkpoint of size {} \
                 (entries before it do)",
                signed.size
            );
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(older) = previous {
        let first = proof.older().map_or(0, |o| o.size);
        let hashes = consistency_proof(client, first, signed.size)?;
        verify_checkpoint_consistency(&key, older, &note, &hashes)
            .context("the server's consistency proof")?;
    }
    Ok(Verified { proof, note })
}

/// All entries `[0, size)` as served (JSON lines), fetched in pages.
fn fetch_entries(client: &Client, size: u64) -> Result<Vec<u8>> {
    let mut jsonl = Vec::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start + PAGE);
        let page = client
            .get(&format!("/v1/ledger/entries?start={start}&end={end}"))?
            .body;
        let lines = split_json_lines(&page).len() as u64;
        ensure!(
            lines == end - start,
            "asked for entries [{start}, {end}) and got {lines}"
        );
        jsonl.extend_from_slice(&page);
        start = end;
    }
    Ok(jsonl)
}

fn tree_of(entries: &[&[u8]]) -> MerkleTree {
    let mut tree = MerkleTree::new();
    entries.iter().for_each(|e| tree.push(leaf_hash(e)));
    tree
}

/// The first entry at which `tree` departs from the `signed` tree: the
/// largest prefix whose root the server can prove consistent with the
/// signed root is intact; the entry right after it is not. Needs
/// log2(size) proofs; `proof(m)` is the consistency proof from `m` to the
/// signed size.
fn first_bad_entry(
    tree: &MerkleTree,
    signed: &Checkpoint,
    mut proof: impl FnMut(u64) -> Result<Vec<Hash>>,
) -> Result<u64> {
    let (mut good, mut bad) = (0, signed.size);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        let root = tree.root(mid)?;
        if verify_consistency(mid, signed.size, &root, &signed.root, &proof(mid)?) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok(good)
}

fn consistency_proof(client: &Client, first: u64, second: u64) -> Result<Vec<Hash>> {
    let path = format!("/v1/ledger/proof/consistency?first={first}&second={second}");
    hashes(&client.get(&path)?.json()?)
}

/// The `hashes` array of a proof response, decoded.
fn hashes(proof: &Value) -> Result<Vec<Hash>> {
    let list = proof
        .get("hashes")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the proof has no hashes array"))?;
    list.iter().map(hash_of).collect()
}

fn hash_of(value: &Value) -> Result<Hash> {
    let text = value
        .as_str()
        .ok_or_else(|| anyhow!("a proof hash is not a string"))?;
    let bytes = B64.decode(text).context("a proof hash is not base64")?;
    Hash::try_from(bytes.as_slice()).map_err(|_| anyhow!("a proof hash is not 32 bytes"))
}

/// `zonevault ledger entries`: JSON lines to stdout.
fn entries(args: &ClientArgs, start: u64, end: Option<u64>) -> Result<()> {
    let client = Client::from_args(args)?;
    let end = match end {
        Some(end) => end,
        None => client.get("/v1/health")?.json()?["ledger_size"]
            .as_u64()
            .ok_or_else(|| anyhow!("health has no ledger_size"))?,
    };
    let mut out = Vec::new();
    let mut from = start;
    while from < end {
        let to = end.min(from + PAGE);
        out.extend(
            client
                .get(&format!("/v1/ledger/entries?start={from}&end={to}"))?
                .body,
        );
        from = to;
    }
    use std::io::Write as _;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// `zonevault ledger proof`: the entry, its inclusion proof, checked
/// against the signed checkpoint.
fn proof(args: &ClientArgs, index: u64, pinned: Option<String>) -> Result<()> {
    let client = Client::from_args(args)?;
    let key = match pinned {
        Some(key) => key,
        None => {
            eprintln!("warning: the verifier key is not pinned; trusting the server's");
            client.get("/v1/ledger/key")?.text().trim().to_owned()
        }
    };
    let note = client.get("/v1/ledger/checkpoint")?.text();
    let signed = NoteVerifier::parse(&key)?
        .verify(&note)
        .context("the server's checkpoint does not verify")?;
    ensure!(
        index < signed.size,
        "entry {index} is beyond the checkpoint's size {}",
        signed.size
    );
    let entry = client
        .get(&format!(
            "/v1/ledger/entries?start={index}&end={}",
            index + 1
        ))?
        .body;
    let leaf = leaf_hash(entry.strip_suffix(b"\n").unwrap_or(&entry));
    let path = format!(
        "/v1/ledger/proof/inclusion?index={index}&tree_size={}",
        signed.size
    );
    let hashes = hashes(&client.get(&path)?.json()?)?;
    ensure!(
        verify_inclusion(index, signed.size, &leaf, &hashes, &signed.root),
        "entry {index} is not included in the signed checkpoint of size {}",
        signed.size
    );
    print!("{}", String::from_utf8_lossy(&entry));
    println!(
        "entry {index} is included in the signed checkpoint of size {}: OK",
        signed.size
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bisection_names_the_first_altered_entry() {
        let honest: Vec<Vec<u8>> = (0..37)
            .map(|i| format!("{{\"i\":{i}}}").into_bytes())
            .collect();
        let signed_tree = tree_of(&honest.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let signed = Checkpoint {
            origin: "zonevault/t".into(),
            size: 37,
            root: signed_tree.root(37).unwrap(),
        };
        for bad in [0, 1, 16, 17, 36] {
            let mut served = honest.clone();
            served[bad][2] ^= 1;
            let tree = tree_of(&served.iter().map(Vec::as_slice).collect::<Vec<_>>());
            let found = first_bad_entry(&tree, &signed, |m| {
                Ok(signed_tree.consistency_proof(m, 37).unwrap())
            })
            .unwrap();
            assert_eq!(found, bad as u64);
        }
    }

    #[test]
    fn offline_needs_the_key_and_checkpoint_needs_offline() {
        let args = LedgerVerifyArgs {
            client: ClientArgs::default(),
            key: None,
            previous: None,
            save: None,
            entries: None,
            checkpoint: None,
            data_dir: Some("/nonexistent".into()),
        };
        let err = Source::from_args(&args).err().unwrap().to_string();
        assert!(err.contains("--key"), "{err}");
        let args = LedgerVerifyArgs {
            data_dir: None,
            checkpoint: Some("/x".into()),
            ..args
        };
        let err = Source::from_args(&args).err().unwrap().to_string();
        assert!(err.contains("offline"), "{err}");
    }
}
