//! Arguments of leak tracing (`zonevault trace`) and of the
//! desensitization policy (`zonevault policy`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ClientArgs;

/// `zonevault trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The suspected leaked file (CSV with its header, JSON Lines, or
    /// Parquet), sent as it is.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Only extracts of this dataset are candidates.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Print the server's JSON answer instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// `zonevault policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the current policy TOML and its version (operator, regulator).
    Show(ClientArgs),
    /// Replace the policy with a TOML file; prints the new version (operator).
    Put(PolicyPutArgs),
}

/// `zonevault policy put`.
#[derive(Debug, Args)]
pub struct PolicyPutArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The policy TOML.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}
