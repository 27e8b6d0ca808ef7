//! The subcommands of the `zonevault` binary: each validates its arguments
//! into typed values, then acts. The binary's `main` only dispatches here.

pub mod attest;
pub mod dataset;
pub mod destruction;
pub mod extract;
pub mod governance;
pub mod grant;
pub mod health;
pub mod incident;
pub mod init;
pub mod ledger;
pub mod passphrase;
pub mod pki;
pub mod policy;
pub mod recover;
pub mod sample;
pub mod serve;
pub mod sharing;
pub mod status;
pub mod trace;
pub mod unlock;
pub mod wire;
pub mod zone;

use anyhow::Result;

use crate::cli::Command;

/// Runs one parsed command line.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Init(args) => init::run(args),
        Command::TraceIncident(args) => incident::trace(args),
        Command::Alerts(args) => incident::alerts(args),
        Command::ZoneExit(args) => incident::zone_exit(args),
        Command::Serve(args) => serve::run(args),
        Command::ReadParquetLeak => crate::app::parquet_reader::run_child(),
        Command::Status(args) => status::run(args),
        Command::Recover(args) => recover::run(args),
        Command::Pki(cmd) => pki::run(cmd),
        Command::Health(args) => health::run(args),
        Command::Ledger(cmd) => ledger::run(cmd),
        Command::Zone(cmd) => zone::run(cmd),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::Sample(args) => sample::run(args),
        Command::Destruction(cmd) => destruction::run(cmd),
        Command::Verify(cmd) => attest::run_verify(cmd),
        Command::Attest(cmd) => attest::run_attest(cmd),
        Command::Partner(cmd) => grant::run_partner(cmd),
        Command::Grant(cmd) => grant::run(cmd),
        Command::Extract(args) => extract::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Policy(cmd) => policy::run(cmd),
        Command::ShareApplication(cmd) => sharing::run_share(cmd),
        Command::Filing(cmd) => sharing::run_filing(cmd),
        Command::QualityTicket(cmd) => governance::run_quality(cmd),
        Command::Feedback(cmd) => governance::run_feedback(cmd),
        Command::Assessment(cmd) => governance::run_assessment(cmd),
    }
}
