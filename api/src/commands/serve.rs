//! `zonevault serve`: unseal the master key, open the catalog and the
//! ledger, and serve the mTLS API until SIGTERM or SIGINT.

use anyhow::{Context, Result};
use vault::catalog::Catalog;

use crate::cli::ServeArgs;
use crate::commands::unlock;
use crate::config::Config;

/// Runs the server.
pub fn run(args: ServeArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let sealed = unlock::open(&config.data_dir)?;
    let mut tpm = unlock::tpm(&config.tpm)?;
    let master = unlock::unseal(&mut tpm, &sealed)?;
    drop(tpm);
    let _catalog = Catalog::open(&sealed.datadir.catalog_path(), &master.catalog_key())
        .context("cannot open the catalog")?;
    anyhow::bail!("the mTLS server is not wired yet")
}
