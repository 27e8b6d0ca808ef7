//! `zonevault pki ...`: the demo and test certificate authority.

use anyhow::Result;

use crate::cli::PkiCommand;
use crate::pki::{self, Validity};

/// Runs one `pki` subcommand and prints what it wrote.
pub fn run(cmd: PkiCommand) -> Result<()> {
    match cmd {
        PkiCommand::InitCa { out, trust_domain } => {
            pki::init_ca(&out, &trust_domain)?;
            println!(
                "CA for trust domain {trust_domain} written to {}",
                out.display()
            );
        }
        PkiCommand::Issue {
            ca,
            role,
            org,
            person,
            out,
            days,
        } => {
            let cert = pki::issue_client(
                &ca,
                &role,
                &org,
                &person,
                &out,
                Validity::days_from_now(days),
            )?;
            println!(
                "issued {} (serial {}) to {}",
                cert.subject,
                cert.serial,
                out.display()
            );
        }
        PkiCommand::IssueServer { ca, dns, ip, out } => {
            let cert = pki::issue_server(&ca, &dns, &ip, &out)?;
            println!(
                "issued server certificate for {} to {}",
                cert.subject,
                out.display()
            );
        }
        PkiCommand::Revoke { ca, cert, crl_out } => {
            let revoked = pki::revoke(&ca, &cert)?;
            pki::write_crl(&ca, &crl_out)?;
            println!(
                "revoked serial {}; CRL written to {}",
                revoked.serial,
                crl_out.display()
            );
        }
    }
    Ok(())
}
