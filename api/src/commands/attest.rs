//! `zonevault verify quote` (offline, on a saved bundle) and `zonevault
//! attest verify` (online: a fresh random nonce, `GET /v1/attestation`,
//! then the same checks). Both print PASS or FAIL with every reason, and
//! exit non-zero on FAIL. Neither needs a TPM: the checks are
//! [`attest::verify_quote`]. `--ak-pin` takes the pin file that `zonevault
//! attest enroll` ([`enroll`]) writes, or a bare AK public key PEM.

mod enroll;

use std::path::Path;

use anyhow::{bail, Context, Result};
use attest::enrollment::AkPin;
use attest::verify::{Expectations, Rejection};
use attest::{AkPublicKey, Bundle, Nonce, Reference, VerifiedQuote};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::cli::{AttestCommand, AttestVerifyArgs, VerifyCommand, VerifyQuoteArgs};
use crate::client::Client;

/// Runs `zonevault verify ...`.
pub fn run_verify(command: VerifyCommand) -> Result<()> {
    match command {
        VerifyCommand::Quote(args) => verify_offline(&args),
        VerifyCommand::Extract(args) => super::extract::verify(&args),
        VerifyCommand::Certificate(args) => super::destruction::verify(&args),
    }
}

/// Runs `zonevault attest ...`.
pub fn run_attest(command: AttestCommand) -> Result<()> {
    match command {
        AttestCommand::Verify(args) => verify_online(&args),
        AttestCommand::Enroll(args) => enroll::run(&args),
    }
}

/// What both verifications are held to, read from files once.
struct Policy {
    reference: Option<Reference>,
    ak_pin: Option<AkPublicKey>,
}

impl Policy {
    fn read(reference: Option<&Path>, ak_pin: Option<&Path>) -> Result<Policy> {
        let reference = reference
            .map(|path| {
                let text = read_text(path)?;
                Reference::parse(&text).with_context(|| format!("{}", path.display()))
            })
            .transpose()?;
        let ak_pin = ak_pin
            .map(|path| {
                let text = read_text(path)?;
                AkPin::read_key(&text).with_context(|| {
                    format!(
                        "{} is neither an AK pin nor a PEM public key",
                        path.display()
                    )
                })
            })
            .transpose()?;
        Ok(Policy { reference, ak_pin })
    }

    fn check(&self, bundle: &Bundle, nonce: &Nonce) -> Result<()> {
        let expect = Expectations {
            nonce,
            reference: self.reference.as_ref(),
            ak_pin: self.ak_pin.as_ref(),
        };
        match attest::verify_quote(bundle, &expect) {
            Ok(verified) => {
                print_pass(&verified, bundle);
                Ok(())
            }
            Err(rejection) => {
                print_fail(&rejection);
                bail!("the attestation did not verify")
            }
        }
    }
}

fn verify_offline(args: &VerifyQuoteArgs) -> Result<()> {
    let nonce = Nonce::from_hex(&args.nonce).context("--nonce")?;
    let policy = Policy::read(args.reference.as_deref(), args.ak_pin.as_deref())?;
    let text = read_text(&args.bundle)?;
    let bundle: Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an attestation bundle", args.bundle.display()))?;
    policy.check(&bundle, &nonce)
}

fn verify_online(args: &AttestVerifyArgs) -> Result<()> {
    let policy = Policy::read(Some(&args.reference), args.ak_pin.as_deref())?;
    let client = Client::from_args(&args.client)?;
    let nonce = Nonce::random()?;
    let response = client.get(&format!("/v1/attestation?nonce={}", nonce.to_hex()))?;
    if let Some(path) = &args.save_bundle {
        std::fs::write(path, &response.body)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let bundle: Bundle =
        serde_json::from_slice(&response.body).context("the server's attestation bundle")?;
    println!("nonce {}", nonce.to_hex());
    policy.check(&bundle, &nonce)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn print_pass(v: &VerifiedQuote, bundle: &Bundle) {
    let cp = v.checkpoint();
    println!(
        "PASS: the TPM attested ledger {} at size {}",
        cp.origin, cp.size
    );
    println!("  ledger root {}", B64.encode(cp.root));
    if v.ak_pinned() {
        println!("  AK sha256:{} (pinned)", v.ak().fingerprint());
    } else {
        println!(
            "  AK sha256:{} taken from the bundle, NOT pinned: pass --ak-pin to check it is the enrolled AK",
            v.ak().fingerprint()
        );
    }
    for (index, value) in v.pcrs().iter() {
        let judged = if v.unjudged().contains(&index) {
            "unjudged"
        } else {
            "matches the reference"
        };
        println!("  PCR {index:>2} = {} ({judged})", hex::encode(value));
    }
    for pcr in v.replayed() {
        println!("  event log replays to PCR {pcr}");
    }
    let (clock, resets, firmware) = v.clock_info();
    println!("  TPM clock {clock} ms, reset count {resets}, firmware {firmware:#x}");
    match &bundle.ek_certificate_pem {
        Some(_) => println!("  EK certificate present (not checked: enrollment checks it)"),
        None => println!("  no EK certificate"),
    }
}

fn print_fail(rejection: &Rejection) {
    println!("FAIL");
    for failure in &rejection.failures {
        println!("  - {failure}");
    }
}
