//! Arguments for the ledger, offline verification, destruction and attestation.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{ClientArgs, VerifyExtractArgs};

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
    /// The enrolled AK: the pin file `attest enroll` wrote (or an AK
    /// public key, PEM); without it the bundle's AK is trusted, and the
    /// output says so.
    #[arg(long, value_name = "FILE")]
    pub ak_pin: Option<PathBuf>,
}

/// `zonevault attest ...`.
#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Challenge the appliance with a fresh nonce and verify its quote.
    Verify(AttestVerifyArgs),
    /// Enroll the appliance's AK (regulator): validate the EK certificate
    /// against the manufacturer CAs, prove with a credential challenge that
    /// the AK lives in that TPM, and pin the AK in a trust file.
    Enroll(AttestEnrollArgs),
}

/// `zonevault attest enroll`.
#[derive(Debug, Args)]
pub struct AttestEnrollArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The TPM manufacturers' CA certificates (roots and intermediates), PEM.
    #[arg(long, value_name = "BUNDLE.pem")]
    pub ek_ca: PathBuf,
    /// Where to write the AK pin (JSON), for `--ak-pin` later.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
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
    /// The enrolled AK: the pin file `attest enroll` wrote (or an AK
    /// public key, PEM).
    #[arg(long, value_name = "FILE")]
    pub ak_pin: Option<PathBuf>,
    /// Also save the bundle the server returned.
    #[arg(long, value_name = "FILE")]
    pub save_bundle: Option<PathBuf>,
}
