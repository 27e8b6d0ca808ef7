//! `zonevault recover`: k custodians' shares reseal the master key to the
//! TPM's current PCR values (after a legitimate platform change) or to a new
//! TPM. Everything is checked before anything is written: too few shares, a
//! wrong passphrase or shares of another appliance change nothing.

use anyhow::{bail, Context, Result};
use vault::catalog::CatalogError;
use vault::keys::MasterKey;
use vault::recovery::{self, RecoveryError, Share, ShareFile};

use crate::cli::RecoverArgs;
use crate::commands::{passphrase, unlock};

/// Runs the recovery.
pub fn run(args: RecoverArgs) -> Result<()> {
    let sealed = unlock::open(&args.target.data_dir)?;
    let files = read_share_files(&args)?;
    let passphrases = passphrase::read(
        args.recovery_passphrases.as_deref(),
        files.len(),
        false,
        |i| format!("passphrase of share {}", files[i].index()),
    )?;
    let shares = files
        .iter()
        .zip(&passphrases)
        .map(|(file, pass)| file.open(pass.bytes()))
        .collect::<Result<Vec<Share>, RecoveryError>>()?;
    let master = recovery::combine(&shares, &files[0].key_check())?;
    let appliance_id = check_belongs_here(&sealed, &master)?;
    let ledger = unlock::open_ledger(&sealed.datadir, &master, &appliance_id)?;

    let mut tpm = unlock::tpm(&args.target.tpm)?;
    let resealed = tpm
        .seal(master.secret_bytes(), &sealed.sealed.selection)
        .context("cannot reseal the master key in the TPM")?;
    resealed
        .write_to(&sealed.datadir.sealed_dir())
        .context("cannot write the resealed master key")?;
    let indices: Vec<u8> = files.iter().map(ShareFile::index).collect();
    let details = serde_json::json!({
        "shares": indices,
        "pcrs": resealed.selection.to_string(),
        "expected": resealed.expected.iter().map(|(i, v)| (i.to_string(), hex::encode(v)))
            .collect::<std::collections::BTreeMap<_, _>>(),
    });
    unlock::record_event(&ledger, "appliance.recover", details)?;
    println!(
        "master key recovered from {} shares and resealed to PCR policy sha256:{}",
        shares.len(),
        resealed.selection
    );
    for (index, value) in resealed.expected.iter() {
        println!("  PCR {index:>2} = {}", hex::encode(value));
    }
    Ok(())
}

/// Reads every `--share` file and refuses fewer than the threshold before
/// any passphrase is asked for.
fn read_share_files(args: &RecoverArgs) -> Result<Vec<ShareFile>> {
    let files = args
        .shares
        .iter()
        .map(|path| ShareFile::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    let need = files.iter().map(ShareFile::threshold).max().unwrap_or(0);
    if files.len() < usize::from(need) {
        bail!(
            "{} share(s) given; {need} shares are needed to recover this appliance",
            files.len()
        );
    }
    Ok(files)
}

/// The combined key must open this appliance's catalog; returns the
/// appliance id.
fn check_belongs_here(sealed: &unlock::Sealed, master: &MasterKey) -> Result<String> {
    match vault::catalog::open_catalog(&sealed.datadir, &master.catalog_root()) {
        Ok(catalog) => Ok(catalog.appliance_id()?),
        Err(CatalogError::WrongKey { .. }) => {
            bail!("these recovery shares belong to another appliance: they do not open its catalog")
        }
        Err(err) => Err(err).context("cannot open the catalog to check the recovered key"),
    }
}
