//! The command line of the `zonevault` binary: argument definitions only.
//!
//! Arguments are parsed here (step one); [`crate::commands`] validates them
//! into typed values and acts (step two).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod access;
mod appliance;
mod audit;
mod data;
mod governance;
mod leaks;
mod lifecycle;
mod sharing;

pub use access::*;
pub use appliance::*;
pub use audit::*;
pub use data::*;
pub use governance::*;
pub use leaks::*;
pub use lifecycle::*;
pub use sharing::*;

/// zonevault: a TPM-sealed data vault appliance for data zones.
#[derive(Debug, Parser)]
#[command(name = "zonevault", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Incident trace: every ledger entry of an identity, dataset or
    /// extract as a timeline, each proved included in a signed checkpoint
    /// (client; regulator, operator).
    TraceIncident(TraceIncidentArgs),
    /// Security-monitoring alerts with their evidence (client; regulator,
    /// operator).
    Alerts(AlertsArgs),
    /// Start a zone's exit procedure (operator of the zone, or its
    /// regulator), or show where it stands (client).
    ZoneExit(ZoneExitArgs),
    /// Initialize a new appliance: seal a fresh master key in the TPM,
    /// create the encrypted catalog and the ledger, write recovery shares.
    Init(InitArgs),
    /// Unseal the master key and serve the mTLS API.
    Serve(ServeArgs),
    /// Internal: read a Parquet file from stdin for the server's leak
    /// tracing, in a process of its own (`app::parquet_reader`).
    #[command(name = "read-parquet-leak", hide = true)]
    ReadParquetLeak,
    /// Show whether the master key is unsealable, the PCR policy and counts.
    Status(TpmArgs),
    /// Reseal the master key from k recovery shares after a platform change.
    Recover(RecoverArgs),
    /// Demo and test PKI: a CA, client and server certificates, a CRL.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Ask the server whether it is up: sealed state, version, ledger size (client).
    Health(ClientArgs),
    /// The audit ledger: verify it online or offline, fetch checkpoints,
    /// entries and proofs (client).
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Data zones: create, list, show, hand supervision over (client).
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Datasets: create, import rows, show, confirm the schema (client).
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Write deterministic synthetic zone data (no server needed).
    Sample(SampleArgs),
    /// Retention and two-person destruction: request, approve, list due
    /// datasets, fetch certificates (client).
    #[command(subcommand)]
    Destruction(DestructionCommand),
    /// Verify artifacts offline (no server, no TPM).
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Remote attestation of the appliance (client).
    #[command(subcommand)]
    Attest(AttestCommand),
    /// Partner organizations: tier and permission flags (client, operator).
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Grants: create, list, revoke (client).
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Pull a desensitized extract under a grant into a file, with its
    /// signed manifest beside it (client, analyst).
    Extract(ExtractArgs),
    /// Government data-sharing applications: file (operator), assess
    /// (regulator), decide (provider), list (client).
    #[command(subcommand)]
    ShareApplication(ShareApplicationCommand),
    /// Data-use filings: create (operator), acknowledge (regulator), list,
    /// usage report (client).
    #[command(subcommand)]
    Filing(FilingCommand),
    /// Data quality tickets: open (any role), respond (provider), resolve
    /// or dispute (opener), list overdue (client).
    #[command(subcommand)]
    QualityTicket(QualityTicketCommand),
    /// Feedback data (反哺): submit (operator), approve (regulator), apply
    /// (provider department), review (regulator and operator) (client).
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// Operator assessments: record (Bureau regulator), list (client).
    #[command(subcommand)]
    Assessment(AssessmentCommand),
    /// Trace a leaked file to the extract and recipient it came from
    /// (client, operator or regulator).
    Trace(TraceArgs),
    /// The desensitization policy: show it, replace it with a TOML file
    /// (client; operator replaces).
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// Where the API is and who is calling, for client commands. Each flag
/// overrides its `ZONEVAULT_*` variable; a missing one is named when needed.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// The server, `https://host:port`.
    #[arg(long, env = "ZONEVAULT_ADDR", value_name = "URL")]
    pub addr: Option<String>,
    /// CA certificate(s) the server's certificate must chain to (PEM).
    #[arg(long, env = "ZONEVAULT_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// The caller's client certificate (PEM).
    #[arg(long, env = "ZONEVAULT_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// The caller's private key (PEM).
    #[arg(long, env = "ZONEVAULT_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
}

/// Where the data directory and the TPM are.
#[derive(Debug, Args)]
pub struct TpmArgs {
    /// The appliance's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// TPM TCTI string: `device:/dev/tpmrm0`, or `swtpm:host=127.0.0.1,port=P`.
    #[arg(long, value_name = "TCTI", env = "ZONEVAULT_TPM")]
    pub tpm: String,
}
