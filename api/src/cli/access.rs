//! Arguments for partners, grants, extracts and their offline verification.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ClientArgs;

/// `zonevault partner ...`.
#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Set an organization's tier (1 most trusted … 3) and permission flags
    /// (each flag not given is off).
    Set {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The organization.
        #[arg(long)]
        org: String,
        /// 1, 2 or 3.
        #[arg(long)]
        tier: u8,
        /// Data access: grants may name it (without it: no grant).
        #[arg(long)]
        data_access: bool,
        /// Product authorization: it may receive aggregates (derived data
        /// products) and be a recipient of aggregate-method filings.
        #[arg(long)]
        product_authorization: bool,
        /// Scenario authorization: it may be a data-use filing's recipient.
        #[arg(long)]
        scenario_authorization: bool,
        /// Ownership control: it may hold grants to the whole organization
        /// (without it: grants name its analysts one by one).
        #[arg(long)]
        ownership_control: bool,
    },
    /// List partner organizations.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `zonevault grant ...`.
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Grant an analyst (SPIFFE identity) or a partner organization
    /// extracts of some columns of a dataset (operator of its zone).
    Create(GrantCreateArgs),
    /// List the grants the caller may see.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Only grants to this recipient.
        #[arg(long)]
        recipient: Option<String>,
    },
    /// Revoke a grant at once.
    Revoke {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The grant id.
        #[arg(long)]
        id: String,
    },
}

/// `zonevault grant create`.
#[derive(Debug, Args)]
pub struct GrantCreateArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// `spiffe://<td>/analyst/<org>/<person>`, or an organization.
    #[arg(long)]
    pub recipient: String,
    /// The dataset.
    #[arg(long)]
    pub dataset: String,
    /// Allowed columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub columns: Vec<String>,
    /// The declared purpose.
    #[arg(long)]
    pub purpose: String,
    /// The acknowledged data-use filing the grant is made under.
    #[arg(long)]
    pub filing: String,
    /// A row filter the analyst cannot widen.
    #[arg(long)]
    pub filter: Option<String>,
    /// Most rows per extract.
    #[arg(long)]
    pub row_limit: u64,
    /// Most extracts (default: unlimited).
    #[arg(long)]
    pub max_extracts: Option<u64>,
    /// Expiry, RFC 3339 (`2030-12-31T00:00:00Z`).
    #[arg(long)]
    pub expires: String,
}

/// `zonevault extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The grant.
    #[arg(long)]
    pub grant: String,
    /// A subset of the grant's columns, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// A row filter, ANDed with the grant's.
    #[arg(long)]
    pub filter: Option<String>,
    /// csv, jsonl or parquet.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Start a CSV with a UTF-8 byte order mark (for Excel).
    #[arg(long)]
    pub bom: bool,
    /// The file to write; the manifest goes to FILE.manifest.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `zonevault verify extract`.
#[derive(Debug, Args)]
pub struct VerifyExtractArgs {
    /// The manifest (the signed note, or the JSON with a `note`).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The extract body.
    #[arg(long, value_name = "FILE")]
    pub body: PathBuf,
    /// The appliance's verifier key (`zonevault ledger key`).
    #[arg(long, value_name = "KEY")]
    pub key: String,
}
