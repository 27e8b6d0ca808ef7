//! `zonevault-bench`: measures zonevault against its baselines in one run on
//! one machine, and says which targets are met.
//!
//! It starts its own swtpm and a real `zonevault serve` (release binary,
//! real certificates from the e2e harness) on loopback, and a baseline
//! server in a separate process of this binary. Each workload and its
//! baseline run alternately (A B A B …); the table reports the median of
//! each and the median of the per-pair ratios, and the same figures go to
//! `target/bench/results.json`. See `bench/README.md`.
//!
//! It never asserts on time: it prints figures. It only talks to 127.0.0.1.

mod args;
mod baseline;
mod client;
mod destruction;
mod extract;
mod import;
mod report;
mod requests;
mod stats;
mod zonevault;

use anyhow::{Context, Result};
use clap::Parser;

use crate::args::{Cli, Command, Plan};
use crate::report::Report;

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::BaselineServer(args)) = cli.command {
        return baseline::run(args);
    }
    let plan = Plan::from_cli(cli)?;
    point_harness_at_release_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(run(&plan))?;
    report.print();
    report.write_json(&plan.out)?;
    println!("\nresults written to {}", plan.out.display());
    Ok(())
}

/// The e2e harness runs `$ZONEVAULT_BIN`; unless the caller chose one, use
/// the `zonevault` built next to this binary (the release build).
fn point_harness_at_release_binary() -> Result<()> {
    if std::env::var_os("ZONEVAULT_BIN").is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot locate this binary")?;
    let bin = exe.with_file_name("zonevault");
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it first (cargo build --release --workspace --bins)",
        bin.display()
    );
    // Set before any thread exists (the runtime is built afterwards).
    std::env::set_var("ZONEVAULT_BIN", &bin);
    Ok(())
}

async fn run(plan: &Plan) -> Result<Report> {
    let mut report = Report::new(plan);
    eprintln!("starting swtpm, PKI, zonevault (release) and the baseline server…");
    let server = zonevault::Server::start()?;
    report.server_start_ms = Some(server.start_ms);
    report.unseal_ms = server.unseal_ms;
    if plan.workload_a {
        report.requests = Some(requests::run_pairs(plan, &server).await?);
    }
    if plan.workload_b {
        report.import = Some(import::run_pairs(plan, &server).await?);
    }
    if plan.workload_c {
        report.extract = Some(extract::run_pairs(plan, &server).await?);
    }
    if plan.workload_d {
        report.destruction = Some(destruction::run_pairs(plan, &server).await?);
    }
    if plan.memory_10m {
        // A server of its own: the figures are the import's and the
        // extract's, not what the workloads before them left resident
        // (the ledger's in-memory tree of every earlier request, say).
        drop(server);
        let server = zonevault::Server::start()?;
        let memory = import::memory_check(&server).await?;
        if memory.is_ok() {
            let run = extract::once(&server, "bench-10m", args::MEMORY_CHECK_ROWS).await?;
            eprintln!(
                "10M rows: extract {:.0} rows/s, peak RSS {:.0} MiB",
                run.rows_per_s,
                run.peak_rss_kib as f64 / 1024.0
            );
            report.memory_10m_extract = Some(run);
        }
        report.memory_10m = Some(memory);
    }
    Ok(report)
}
