//! `zonevault init`: a new appliance. Validates every argument and reads the
//! custodians' passphrases before it touches the disk; if any later step
//! fails, it removes what it created, so a failed init leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use attest::PcrSelection;
use vault::datadir::DataDir;
use vault::keys::MasterKey;
use vault::recovery::{self, KdfParams, ShareFile};

use crate::cli::InitArgs;
use crate::commands::passphrase::{self, Passphrase};
use crate::commands::unlock;

/// Initializes the appliance described by `args`.
pub fn run(args: InitArgs) -> Result<()> {
    let pcrs: PcrSelection = args
        .pcrs
        .parse()
        .with_context(|| format!("--pcrs {:?}", args.pcrs))?;
    check_shares(args.recovery_shares, args.recovery_threshold)?;
    let passphrases = passphrase::read(
        args.recovery_passphrases.as_deref(),
        usize::from(args.recovery_shares),
        true,
        |i| format!("passphrase of recovery custodian {}", i + 1),
    )?;
    let mut tpm = unlock::tpm(&args.target.tpm)?;
    let master = MasterKey::generate()?;
    let datadir = DataDir::create(&args.target.data_dir)?;
    let mut written = Vec::new();
    let result = create(
        &args,
        &datadir,
        &mut tpm,
        &master,
        &pcrs,
        &passphrases,
        &mut written,
    );
    if result.is_err() {
        undo(&datadir, &written);
    }
    result
}

/// Refuses share counts Shamir's scheme cannot honour, naming the flags.
fn check_shares(n: u8, k: u8) -> Result<()> {
    if n == 0 {
        bail!("--recovery-shares must be at least 1");
    }
    if k > n {
        bail!("--recovery-threshold {k} is larger than --recovery-shares {n}");
    }
    if k < 2 && n > 1 {
        bail!("--recovery-threshold must be at least 2 when there is more than one share");
    }
    Ok(())
}

fn create(
    args: &InitArgs,
    datadir: &DataDir,
    tpm: &mut attest::Tpm,
    master: &MasterKey,
    pcrs: &PcrSelection,
    passphrases: &[Passphrase],
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let sealed = tpm
        .seal(master.secret_bytes(), pcrs)
        .context("cannot seal the master key in the TPM")?;
    sealed
        .write_to(&datadir.sealed_dir())
        .context("cannot write the sealed master key")?;
    let ak = tpm
        .create_ak()
        .context("cannot create the attestation key in the TPM")?;
    ak.write_to(&datadir.sealed_dir())
        .context("cannot write the attestation key")?;
    let catalog = vault::catalog::create_catalog(datadir, &master.catalog_root())
        .context("cannot create the catalog")?;
    let appliance_id = catalog.appliance_id()?;
    let ledger = unlock::open_ledger(datadir, master, &appliance_id)?;
    write_shares(args, master, passphrases, written)?;
    let details = serde_json::json!({
        "pcrs": pcrs.to_string(),
        "recovery_shares": args.recovery_shares,
        "recovery_threshold": args.recovery_threshold,
    });
    unlock::record_event(&ledger, "appliance.init", details)?;
    println!(
        "initialized appliance {appliance_id} in {}",
        datadir.root().display()
    );
    println!("master key sealed to PCR policy sha256:{pcrs}");
    for (index, value) in sealed.expected.iter() {
        println!("  PCR {index:>2} = {}", hex::encode(value));
    }
    println!(
        "attestation key (ECC P-256) sha256:{}",
        ak.key.fingerprint()
    );
    println!(
        "{} recovery shares (any {} recover) written to {}",
        args.recovery_shares,
        args.recovery_threshold,
        args.recovery_out.display()
    );
    Ok(())
}

fn write_shares(
    args: &InitArgs,
    master: &MasterKey,
    passphrases: &[Passphrase],
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    std::fs::create_dir_all(&args.recovery_out)
        .with_context(|| format!("cannot create {}", args.recovery_out.display()))?;
    let shares = recovery::split(master, args.recovery_shares, args.recovery_threshold)?;
    for (share, passphrase) in shares.iter().zip(passphrases) {
        let path = args.recovery_out.join(share_file_name(share.index()));
        let file = ShareFile::seal(share, passphrase.bytes(), KdfParams::RECOMMENDED)?;
        file.write_new(&path)?;
        written.push(path);
    }
    Ok(())
}

/// The file name of custodian `index`'s share.
pub fn share_file_name(index: u8) -> String {
    format!("share-{index}.json")
}

/// Removes what a failed init created: the shares written so far and the
/// data directory's contents (it was empty before init).
fn undo(datadir: &DataDir, written: &[PathBuf]) {
    for path in written {
        let _ = std::fs::remove_file(path);
    }
    remove_contents(datadir.root());
}

fn remove_contents(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
