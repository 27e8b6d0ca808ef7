//! The command line of the `zonevault` binary: argument definitions only.
//!
//! Arguments are parsed here (step one); [`crate::commands`] validates them
//! into typed values and acts (step two).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Initialize a new appliance: seal a fresh master key in the TPM,
    /// create the encrypted catalog and the ledger, write recovery shares.
    Init(InitArgs),
    /// Unseal the master key and serve the mTLS API.
    Serve(ServeArgs),
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
    /// Partner organizations: tier and data access (client, operator).
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Grants: create, list, revoke (client).
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Pull a desensitized extract under a grant into a file, with its
    /// signed manifest beside it (client, analyst).
    Extract(ExtractArgs),
}

/// `zonevault partner ...`.
#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Set an organization's tier (1 most trusted … 3) and data access.
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
        /// Let its analysts receive extracts (without it: no access).
        #[arg(long)]
        data_access: bool,
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
    /// The data-use filing, once filings exist.
    #[arg(long)]
    pub filing: Option<String>,
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
    /// csv or jsonl.
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

/// `zonevault ledger ...`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute the root from every entry, check the checkpoint signature
    /// and consistency with an older checkpoint; names the first bad entry.
    Verify(LedgerVerifyArgs),
    /// Print the latest signed checkpoint.
    Checkpoint(ClientArgs),
    /// Print entries `[start, end)` as JSON lines.
    Entries {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// First entry.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// One past the last entry (default: the current size).
        #[arg(long)]
        end: Option<u64>,
    },
    /// Fetch the inclusion proof of one entry and check it against the
    /// signed checkpoint.
    Proof {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The entry (e.g. a `zonevault-ledger-index` receipt).
        #[arg(long)]
        index: u64,
        /// The checkpoint's verifier key; fetched from the server if absent.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Print the signed-note verifier key of the checkpoints.
    Key(ClientArgs),
}

/// `zonevault ledger verify`: online with the client flags, or offline with
/// `--entries` and `--checkpoint`, or `--data-dir`.
#[derive(Debug, Args)]
pub struct LedgerVerifyArgs {
    /// Server and client certificate (online mode).
    #[command(flatten)]
    pub client: ClientArgs,
    /// The checkpoint verifier key (`<name>+<id>+<base64>`). Required
    /// offline; online it pins the key instead of trusting the server's.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// An older signed checkpoint kept from an earlier run: the ledger must
    /// extend it.
    #[arg(long, value_name = "FILE")]
    pub previous: Option<PathBuf>,
    /// Where to store the verified checkpoint, for `--previous` next time.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Offline: exported entries, JSON lines as `GET /v1/ledger/entries` serves them.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "data_dir",
        requires = "checkpoint"
    )]
    pub entries: Option<PathBuf>,
    /// Offline: the signed checkpoint the entries must reproduce.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Offline: an appliance data directory; reads `ledger/entries.log` and
    /// its stored hashes (so the first altered entry is named) and, unless
    /// `--checkpoint` is given, `ledger/checkpoints`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `zonevault verify ...`.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Check a saved `GET /v1/attestation` bundle against the nonce that
    /// was sent; PASS or FAIL with reasons, and the exit code follows.
    Quote(VerifyQuoteArgs),
    /// Check an extract's signed manifest and that the body is the one it
    /// describes (SHA-256); non-zero exit on any mismatch.
    Extract(VerifyExtractArgs),
    /// Check a destruction certificate's signature, its recorded
    /// verification, and (with its proof file) its ledger inclusion.
    Certificate(VerifyCertificateArgs),
}

/// `zonevault verify certificate`.
#[derive(Debug, Args)]
pub struct VerifyCertificateArgs {
    /// The certificate (signed note, as `destruction certificate` saves it).
    #[arg(long, value_name = "FILE")]
    pub certificate: PathBuf,
    /// The ledger verifier key (`GET /v1/ledger/key`), inline or a file.
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// The inclusion proof bundle (default: `<certificate>.proof.json` if present).
    #[arg(long, value_name = "FILE")]
    pub proof: Option<PathBuf>,
}

/// `zonevault destruction ...`.
#[derive(Debug, Subcommand)]
pub enum DestructionCommand {
    /// Request the destruction of a dataset or a whole zone (operator).
    Request {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The dataset to destroy.
        #[arg(long, conflicts_with = "zone", required_unless_present = "zone")]
        dataset: Option<String>,
        /// The zone to destroy (every dataset and the zone key).
        #[arg(long)]
        zone: Option<String>,
        /// The legal basis.
        #[arg(long)]
        basis: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Approve (and so execute) or reject a destruction (zone regulator).
    Approve {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The destruction id.
        #[arg(long)]
        id: String,
        /// Reject instead of approving.
        #[arg(long)]
        reject: bool,
    },
    /// One destruction and its state.
    Show {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The destruction id.
        #[arg(long)]
        id: String,
    },
    /// Datasets past retention, due for destruction.
    Due {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Save a certificate, and its ledger inclusion proof as `FILE.proof.json`.
    Certificate {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The destruction id.
        #[arg(long)]
        id: String,
        /// Where to write the certificate.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `zonevault verify quote`.
#[derive(Debug, Args)]
pub struct VerifyQuoteArgs {
    /// The bundle (JSON as `GET /v1/attestation` returns it).
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// The nonce sent with the request, hex.
    #[arg(long, value_name = "HEX")]
    pub nonce: String,
    /// Expected PCR values (from `zonevault-launch reference`); without
    /// it the values are printed unjudged.
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// The enrolled AK public key (PEM); without it the bundle's AK is
    /// trusted, and the output says so.
    #[arg(long, value_name = "FILE")]
    pub ak_pin: Option<PathBuf>,
}

/// `zonevault attest ...`.
#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Challenge the appliance with a fresh nonce and verify its quote.
    Verify(AttestVerifyArgs),
}

/// `zonevault attest verify`.
#[derive(Debug, Args)]
pub struct AttestVerifyArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Expected PCR values (from `zonevault-launch reference`).
    #[arg(long, value_name = "FILE")]
    pub reference: PathBuf,
    /// The enrolled AK public key (PEM).
    #[arg(long, value_name = "FILE")]
    pub ak_pin: Option<PathBuf>,
    /// Also save the bundle the server returned.
    #[arg(long, value_name = "FILE")]
    pub save_bundle: Option<PathBuf>,
}
