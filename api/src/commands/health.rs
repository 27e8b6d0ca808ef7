//! `zonevault health`: asks the server whether it is up and prints its
//! health JSON (sealed state, version, ledger size) with the ledger receipt.

use anyhow::Result;

use crate::cli::ClientArgs;
use crate::client::Client;

/// Prints the server's health.
pub fn run(args: ClientArgs) -> Result<()> {
    let client = Client::from_args(&args)?;
    let response = client.get("/v1/health")?;
    let health = response.json()?;
    println!("{}", serde_json::to_string_pretty(&health)?);
    if let Some(index) = response.ledger_index() {
        eprintln!("ledger receipt: entry {index}");
    }
    Ok(())
}
