//! Arguments for the appliance itself: init, serve, status, recover, the demo PKI.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::TpmArgs;

/// `zonevault init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Data directory and TPM.
    #[command(flatten)]
    pub target: TpmArgs,
    /// PCRs (sha256 bank) the master key is sealed to.
    #[arg(long, value_name = "LIST", default_value = "0,2,4,7")]
    pub pcrs: String,
    /// Number of recovery custodians (shares written).
    #[arg(long, value_name = "N")]
    pub recovery_shares: u8,
    /// Number of shares needed to recover.
    #[arg(long, value_name = "K")]
    pub recovery_threshold: u8,
    /// Directory the recovery shares are written to (one file per custodian).
    #[arg(long, value_name = "DIR")]
    pub recovery_out: PathBuf,
    /// File with one custodian passphrase per line (otherwise asked on the terminal).
    #[arg(long, value_name = "FILE")]
    pub recovery_passphrases: Option<PathBuf>,
}

/// `zonevault serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `zonevault recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Data directory and TPM.
    #[command(flatten)]
    pub target: TpmArgs,
    /// A custodian's share file; repeat for each share.
    #[arg(long = "share", value_name = "FILE", required = true)]
    pub shares: Vec<PathBuf>,
    /// File with one passphrase per line, in the order of the `--share` flags.
    #[arg(long, value_name = "FILE")]
    pub recovery_passphrases: Option<PathBuf>,
}

/// `zonevault pki ...`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a demo certificate authority.
    InitCa {
        /// Output directory (cert.pem, key.pem).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// SPIFFE trust domain of the identities this CA issues.
        #[arg(long, value_name = "TD")]
        trust_domain: String,
    },
    /// Issue a client certificate for a role, organization and person.
    Issue {
        /// The CA directory.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// operator, regulator, provider or analyst.
        #[arg(long)]
        role: String,
        /// The organization.
        #[arg(long)]
        org: String,
        /// The person.
        #[arg(long)]
        person: String,
        /// Output directory (cert.pem, key.pem).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Issue a server certificate.
    IssueServer {
        /// The CA directory.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// DNS names (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// IP addresses (repeatable).
        #[arg(long = "ip", value_name = "IP")]
        ip: Vec<IpAddr>,
        /// Output directory (cert.pem, key.pem).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Revoke a certificate and write the CA's current CRL.
    Revoke {
        /// The CA directory.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The certificate to revoke (PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Where to write the CRL (PEM).
        #[arg(long, value_name = "FILE")]
        crl_out: PathBuf,
    },
}
