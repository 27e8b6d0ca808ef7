//! `zonevault attest enroll` (regulator): ties the appliance's AK to a TPM
//! a manufacturer certified, then pins it.
//!
//! In order: fetch the EK certificate and the AK
//! (`GET /v1/attestation/enrollment`); validate the EK certificate against
//! the manufacturer CA bundle; check that the AK public area is a
//! restricted signing key fixed to its TPM and compute its name; make a
//! credential for that name to the certified EK with a fresh random secret
//! (pure Rust, no TPM here); have the appliance activate it
//! (`POST /v1/attestation/challenge`) and compare the secret it returns.
//! Only then is the pin written. Any failure prints FAIL with its reason,
//! writes nothing and exits non-zero.

use std::fmt;

use anyhow::{bail, Context, Result};
use attest::credential::{make_credential, CredentialError, CredentialSecret};
use attest::ekcert::{self, EkCertError, TrustedEk};
use attest::enrollment::{check_ak_area, AkAreaError, AkPin, ChallengeResponse, Enrollment};
use attest::AkPublicKey;
use axum::http::Method;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::read_text;
use crate::cli::AttestEnrollArgs;
use crate::client::Client;

/// Why an enrollment failed; each its own reason.
enum Failure {
    NoEkCertificate,
    EkCertificate(EkCertError),
    AkArea(AkAreaError),
    Malformed(&'static str),
    Credential(CredentialError),
    Refused(String),
    WrongSecret,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoEkCertificate => f.write_str(
                "the appliance's TPM has no EK certificate: its AK cannot be tied to a certified TPM",
            ),
            Failure::EkCertificate(e) => write!(f, "EK certificate: {e}"),
            Failure::AkArea(e) => write!(f, "{e}"),
            Failure::Malformed(what) => write!(f, "the appliance sent a malformed {what}"),
            Failure::Credential(e) => write!(f, "cannot make the credential: {e}"),
            Failure::Refused(why) => write!(
                f,
                "credential challenge failed: the AK is not in the TPM of the certified EK \
                 (the appliance answered: {why})"
            ),
            Failure::WrongSecret => f.write_str(
                "credential challenge failed: the appliance returned a different secret",
            ),
        }
    }
}

/// What a successful enrollment learned.
struct Enrolled {
    ek: TrustedEk,
    ak: AkPublicKey,
    ak_name: [u8; 34],
}

/// Runs `zonevault attest enroll`.
pub fn run(args: &AttestEnrollArgs) -> Result<()> {
    let bundle = read_text(&args.ek_ca)?;
    let client = Client::from_args(&args.client)?;
    let response = client.get("/v1/attestation/enrollment")?;
    let served: Enrollment =
        serde_json::from_slice(&response.body).context("the appliance's enrollment answer")?;
    let enrolled = match enroll(&client, &served, &bundle) {
        Ok(enrolled) => enrolled,
        Err(failure) => {
            println!("FAIL");
            println!("  - {failure}");
            bail!("the enrollment failed; nothing was pinned")
        }
    };
    let appliance = args
        .client
        .addr
        .clone()
        .or_else(|| std::env::var("ZONEVAULT_ADDR").ok())
        .unwrap_or_default();
    let pin = AkPin {
        ak_public_pem: enrolled.ak.to_pem(),
        ak_name: hex::encode(enrolled.ak_name),
        ak_fingerprint: enrolled.ak.fingerprint(),
        ek_certificate_sha256: enrolled.ek.fingerprint.clone(),
        ek_chain: enrolled.ek.chain.clone(),
        appliance,
    };
    let text = serde_json::to_string_pretty(&pin)? + "\n";
    std::fs::write(&args.out, text)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    print_pass(&enrolled, &args.out.display().to_string());
    Ok(())
}

/// The checks and the challenge, in order.
fn enroll(client: &Client, served: &Enrollment, bundle: &str) -> Result<Enrolled, Failure> {
    let ek_pem = served
        .ek_certificate_pem
        .as_deref()
        .ok_or(Failure::NoEkCertificate)?;
    let ek = ekcert::validate(ek_pem, bundle).map_err(Failure::EkCertificate)?;
    let ak = AkPublicKey::from_pem(&served.ak_public_pem)
        .map_err(|_| Failure::Malformed("AK public key"))?;
    let area = B64
        .decode(served.ak_public.trim())
        .map_err(|_| Failure::Malformed("AK public area"))?;
    let ak_name = check_ak_area(&area, &ak).map_err(Failure::AkArea)?;
    let secret = CredentialSecret::random().map_err(Failure::Credential)?;
    let credential = make_credential(&ek.public, &ak_name, &secret).map_err(Failure::Credential)?;
    let request = json!({
        "credential_blob": B64.encode(&credential.credential_blob),
        "encrypted_secret": B64.encode(&credential.encrypted_secret),
    });
    let recovered = send_challenge(client, &request)?;
    if !secret.matches(&recovered) {
        return Err(Failure::WrongSecret);
    }
    Ok(Enrolled { ek, ak, ak_name })
}

/// Posts the challenge; the secret the appliance's TPM recovered.
fn send_challenge(client: &Client, request: &Value) -> Result<Vec<u8>, Failure> {
    let body = serde_json::to_vec(request).unwrap_or_default();
    let response = client
        .send(Method::POST, "/v1/attestation/challenge", Some(body))
        .map_err(|e| Failure::Refused(e.to_string()))?;
    if response.status != 200 {
        return Err(Failure::Refused(refusal(&response.body, response.status)));
    }
    let answer: ChallengeResponse = serde_json::from_slice(&response.body)
        .map_err(|_| Failure::Malformed("challenge answer"))?;
    B64.decode(answer.secret.trim())
        .map_err(|_| Failure::Malformed("challenge answer"))
}

/// The server's words for a refused challenge.
fn refusal(body: &[u8], status: u16) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match json.get("problem").and_then(Value::as_str) {
        Some(problem) => format!("{status}: {problem}"),
        None => format!("HTTP {status}"),
    }
}

fn print_pass(enrolled: &Enrolled, out: &str) {
    println!("PASS: the AK lives in a TPM whose EK a trusted manufacturer CA certified");
    println!(
        "  EK certificate sha256:{}, chain {} (EK to root)",
        enrolled.ek.fingerprint,
        enrolled.ek.chain.join(" / ")
    );
    println!(
        "  credential challenge ({}) passed: the TPM returned the secret",
        enrolled.ek.public.algorithm()
    );
    println!(
        "  AK sha256:{} (name {}) pinned in {out}",
        enrolled.ak.fingerprint(),
        hex::encode(enrolled.ak_name)
    );
}
