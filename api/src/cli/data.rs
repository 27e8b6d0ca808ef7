//! Arguments for zones, datasets and synthetic sample data.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ClientArgs;

/// `zonevault zone ...`.
#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Create a zone with its own zone key (operator).
    Create {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Zone id, `[a-z0-9][a-z0-9_-]{0,63}`.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// sectoral, regional or foundational.
        #[arg(long)]
        kind: String,
        /// finance, transport, credit, spatial, location, or free text.
        #[arg(long)]
        domain: String,
        /// Supervising regulator organization (default: the bureau).
        #[arg(long)]
        supervisor: Option<String>,
    },
    /// List the zones the caller may see.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one zone.
    Show {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Zone id.
        #[arg(long)]
        id: String,
    },
    /// Hand supervision of a zone to another regulator organization
    /// (the current supervisor only).
    HandOver {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Zone id.
        #[arg(long)]
        id: String,
        /// The new supervising organization.
        #[arg(long)]
        to: String,
    },
}

/// `zonevault dataset ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Create an empty dataset in a zone (operator of the zone).
    Create(DatasetCreateArgs),
    /// Stream a CSV or JSON Lines file into an existing, empty dataset and
    /// print the detected schema.
    Import(DatasetImportArgs),
    /// Show a dataset's metadata and schema.
    Show {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Dataset id.
        #[arg(long)]
        id: String,
    },
    /// List a zone's datasets.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Zone id.
        #[arg(long)]
        zone: String,
    },
    /// Confirm a dataset's schema, overriding columns first.
    Confirm {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Dataset id.
        #[arg(long)]
        id: String,
        /// `name:type:grade[:qi]`; an empty part keeps the detected value
        /// (`phone::general-4`). Repeatable.
        #[arg(long = "column", value_name = "NAME:TYPE:GRADE[:qi]")]
        columns: Vec<String>,
    },
}

/// `zonevault dataset create`.
#[derive(Debug, Args)]
pub struct DatasetCreateArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The zone.
    #[arg(long)]
    pub zone: String,
    /// Dataset id, `[a-z0-9][a-z0-9_-]{0,63}`.
    #[arg(long)]
    pub id: String,
    /// Title.
    #[arg(long)]
    pub title: String,
    /// The providing organization.
    #[arg(long)]
    pub provider: String,
    /// government-share, operator-own or feedback.
    #[arg(long)]
    pub source: String,
    /// Retention: a duration like `365d` or an RFC 3339 date.
    #[arg(long)]
    pub retention: String,
    /// The approved sharing application (required with government-share).
    #[arg(long)]
    pub application: Option<String>,
    /// A quasi-identifier column name. Repeatable.
    #[arg(long = "quasi-identifier", value_name = "COLUMN")]
    pub quasi_identifiers: Vec<String>,
}

/// `zonevault dataset import`.
#[derive(Debug, Args)]
pub struct DatasetImportArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The zone the dataset must belong to.
    #[arg(long)]
    pub zone: String,
    /// Dataset id (create it first with `zonevault dataset create`).
    #[arg(long)]
    pub id: String,
    /// The file to stream.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// csv or jsonl (default: from the file name, else csv).
    #[arg(long)]
    pub format: Option<String>,
    /// utf-8 or gb18030 (CSV only).
    #[arg(long, default_value = "utf-8")]
    pub encoding: String,
}

/// `zonevault sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Number of rows.
    #[arg(long, default_value_t = 1000)]
    pub rows: u64,
    /// Seed: the same seed always writes the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// csv or jsonl.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// utf-8 or gb18030 (CSV only).
    #[arg(long, default_value = "utf-8")]
    pub encoding: String,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}
