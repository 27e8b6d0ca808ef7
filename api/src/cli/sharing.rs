//! Arguments for government data-sharing applications and data-use filings.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ClientArgs;

/// `zonevault share-application ...`.
#[derive(Debug, Subcommand)]
pub enum ShareApplicationCommand {
    /// File an application for government data (operator of the zone).
    File(ShareFileArgs),
    /// Assess an application: approve or reject (the zone's regulator).
    Assess(ReviewArgs),
    /// Decide on an assessed application: approve or decline (the provider).
    Decide(ReviewArgs),
    /// List the applications the caller may see, or show one.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Show only this application, in full (JSON).
        #[arg(long)]
        id: Option<String>,
    },
}

/// `zonevault share-application file`.
#[derive(Debug, Args)]
pub struct ShareFileArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The zone the data is for.
    #[arg(long)]
    pub zone: String,
    /// The concrete scenario.
    #[arg(long)]
    pub scenario: String,
    /// The providing department (organization).
    #[arg(long)]
    pub provider: String,
    /// An item and its fields, `NAME:FIELD,FIELD,...`; repeat per item.
    #[arg(long = "item", value_name = "NAME:FIELDS", required = true)]
    pub items: Vec<String>,
    /// The purpose.
    #[arg(long)]
    pub purpose: String,
    /// Start of the sharing period, RFC 3339.
    #[arg(long)]
    pub from: String,
    /// End of the sharing period, RFC 3339.
    #[arg(long)]
    pub to: String,
}

/// An approve-or-refuse step with its reason.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The application or filing id.
    #[arg(long)]
    pub id: String,
    /// Approve (or acknowledge).
    #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
    pub approve: bool,
    /// Refuse (reject or decline).
    #[arg(long)]
    pub reject: bool,
    /// Why.
    #[arg(long)]
    pub reason: String,
}

/// `zonevault filing ...`.
#[derive(Debug, Subcommand)]
pub enum FilingCommand {
    /// File a data-use filing (operator of the datasets' zone).
    Create(FilingCreateArgs),
    /// Acknowledge (`--approve`) or reject a filing (the zone's regulator).
    Acknowledge(ReviewArgs),
    /// List the filings the caller may see, or show one.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Show only this filing, in full (JSON), with its grants.
        #[arg(long)]
        id: Option<String>,
    },
    /// The usage report of a filing, computed from the ledger.
    UsageReport {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The filing.
        #[arg(long)]
        id: String,
        /// Start, RFC 3339 (default: the filing's start).
        #[arg(long)]
        from: Option<String>,
        /// End, RFC 3339 (default: the filing's end).
        #[arg(long)]
        to: Option<String>,
        /// json, csv or markdown.
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `zonevault filing create`.
#[derive(Debug, Args)]
pub struct FilingCreateArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The scenario the data serves.
    #[arg(long)]
    pub scenario: String,
    /// A dataset and its columns in scope, `DATASET:COL,COL,...`; repeat.
    #[arg(long = "scope", value_name = "DATASET:COLUMNS", required = true)]
    pub scope: Vec<String>,
    /// extract, aggregate or both.
    #[arg(long)]
    pub method: String,
    /// Recipient partner organizations, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub recipients: Vec<String>,
    /// Start of the period, RFC 3339.
    #[arg(long)]
    pub from: String,
    /// End of the period, RFC 3339.
    #[arg(long)]
    pub to: String,
}
