//! Arguments of the lifecycle and monitoring commands: `zonevault
//! trace-incident`, `zonevault alerts` and `zonevault zone-exit`.

use clap::Args;

use super::ClientArgs;

/// `zonevault trace-incident`: exactly one of `--identity`, `--dataset`,
/// `--extract`.
#[derive(Debug, Args)]
pub struct TraceIncidentArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// An identity URI, `spiffe://<td>/<role>/<org>/<person>`.
    #[arg(long, group = "subject")]
    pub identity: Option<String>,
    /// A dataset id.
    #[arg(long, group = "subject")]
    pub dataset: Option<String>,
    /// An extract id.
    #[arg(long, group = "subject")]
    pub extract: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Only entries at or before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// The pinned ledger verifier key (`zonevault ledger key`); without it
    /// the server's key is trusted, with a warning.
    #[arg(long)]
    pub key: Option<String>,
    /// Print the timeline as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Verify and render a trace saved earlier (the JSON body of
    /// `GET /v1/trace`), offline; needs `--key`.
    #[arg(
        long,
        conflicts_with = "subject",
        requires = "key",
        value_name = "FILE"
    )]
    pub file: Option<std::path::PathBuf>,
    /// Also write the trace as received (JSON) to this file.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    pub save: Option<std::path::PathBuf>,
}

/// `zonevault alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only alerts of this kind (row-volume, off-hours, denied-burst,
    /// many-datasets, near-grant-limit, handshake-failures).
    #[arg(long)]
    pub kind: Option<String>,
}

/// `zonevault zone-exit`: start a zone's exit procedure, or show it.
#[derive(Debug, Args)]
pub struct ZoneExitArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The zone.
    #[arg(long)]
    pub zone: String,
    /// Why (starts the exit; without it, the exit's state is shown).
    #[arg(long)]
    pub reason: Option<String>,
}
