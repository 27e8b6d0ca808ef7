//! `zonevault status`: whether the master key can be unsealed on this
//! platform, the PCR policy it is sealed to, and what the catalog holds.
//! Reads only; a key that cannot be unsealed is reported and exits non-zero.

use anyhow::{Context, Result};

use crate::cli::TpmArgs;
use crate::commands::unlock;

/// Prints the appliance's state.
pub fn run(args: TpmArgs) -> Result<()> {
    let sealed = unlock::open(&args.data_dir)?;
    println!("data dir:      {}", sealed.datadir.root().display());
    println!(
        "PCR policy:    sha256:{} (PolicyPCR)",
        sealed.sealed.selection
    );
    for (index, value) in sealed.sealed.expected.iter() {
        println!("  PCR {index:>2} sealed to {}", hex::encode(value));
    }
    let mut tpm = unlock::tpm(&args.tpm)?;
    let master = match unlock::unseal(&mut tpm, &sealed) {
        Ok(master) => master,
        Err(err) => {
            println!("master key:    sealed, NOT unsealable on this platform");
            return Err(err);
        }
    };
    println!("master key:    sealed, unsealable");
    let catalog = vault::catalog::open_catalog(&sealed.datadir, &master.catalog_root())
        .context("cannot open the catalog")?;
    println!("appliance id:  {}", catalog.appliance_id()?);
    println!("zones:         {}", catalog.zone_count()?);
    println!("datasets:      {}", catalog.dataset_count()?);
    Ok(())
}
