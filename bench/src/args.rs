//! Command line, in two steps: [`Cli`] is what was typed, [`Plan`] is the
//! validated run that the rest of the program acts on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Rows of the memory check (`--rows-10m-memory`).
pub const MEMORY_CHECK_ROWS: u64 = 10_000_000;
/// Pairs below this are allowed for a quick look but are not a valid run.
pub const MIN_VALID_PAIRS: u32 = 3;

/// zonevault against its baselines, side by side (see bench/README.md).
#[derive(Debug, Parser)]
#[command(name = "zonevault-bench")]
pub struct Cli {
    /// Internal: serve the baseline (used by the benchmark itself).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Rows of generated CSV imported per run of workload B.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Pairs (zonevault run, baseline run) per workload.
    #[arg(long, default_value_t = 3)]
    pub pairs: u32,
    /// Length of each run of workload A, in seconds.
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    /// Concurrent keep-alive clients of workload A.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Run only these workloads, e.g. `--only a,d` (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Only>,
    /// Also import 10,000,000 rows once and report the server's peak RSS.
    #[arg(long)]
    pub rows_10m_memory: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
}

/// `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Audited small GETs against the minimal server.
    A,
    /// CSV import against `sqlite3 .import`.
    B,
    /// Desensitized CSV extract against `sqlite3 -csv SELECT`.
    C,
    /// Destruction of a large dataset against a tenth of its size.
    D,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the baseline: a minimal axum+rustls mTLS server answering
    /// `GET /v1/health` with no authorization and no ledger.
    #[command(hide = true)]
    BaselineServer(BaselineArgs),
}

/// `zonevault-bench baseline-server`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Server certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Server key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// CA that client certificates must chain to (PEM).
    #[arg(long)]
    pub client_ca: PathBuf,
    /// Address to listen on; its port is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

/// A validated benchmark run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Rows per import.
    pub rows: u64,
    /// Pairs per workload.
    pub pairs: u32,
    /// Length of one run of workload A.
    pub duration: Duration,
    /// Concurrent clients of workload A.
    pub clients: usize,
    /// Run workload A.
    pub workload_a: bool,
    /// Run workload B.
    pub workload_b: bool,
    /// Run workload C.
    pub workload_c: bool,
    /// Run workload D.
    pub workload_d: bool,
    /// Run the 10M-row memory check.
    pub memory_10m: bool,
    /// The JSON results file.
    pub out: PathBuf,
}

impl Plan {
    /// Checks the numbers and turns `--only` into what to run.
    pub fn from_cli(cli: Cli) -> Result<Plan> {
        ensure!(cli.rows > 0, "--rows must be at least 1");
        ensure!(cli.pairs > 0, "--pairs must be at least 1");
        ensure!(cli.duration_secs > 0, "--duration-secs must be at least 1");
        ensure!(
            (1..=1024).contains(&cli.clients),
            "--clients must be 1 to 1024"
        );
        if cli.pairs < MIN_VALID_PAIRS {
            eprintln!(
                "note: {} pair(s): fewer than {MIN_VALID_PAIRS}, a quick look, not a valid run",
                cli.pairs
            );
        }
        Ok(Plan {
            rows: cli.rows,
            pairs: cli.pairs,
            duration: Duration::from_secs(cli.duration_secs),
            clients: cli.clients,
            workload_a: selected(&cli.only, Only::A),
            workload_b: selected(&cli.only, Only::B),
            workload_c: selected(&cli.only, Only::C),
            workload_d: selected(&cli.only, Only::D),
            memory_10m: cli.rows_10m_memory,
            out: cli.out,
        })
    }
}

/// Every workload runs unless `--only` names some.
fn selected(only: &[Only], workload: Only) -> bool {
    only.is_empty() || only.contains(&workload)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan> {
        let argv = std::iter::once("zonevault-bench").chain(args.iter().copied());
        Plan::from_cli(Cli::try_parse_from(argv)?)
    }

    #[test]
    fn defaults_run_every_workload_with_three_pairs() {
        let p = plan(&[]).unwrap();
        assert_eq!((p.rows, p.pairs, p.clients), (1_000_000, 3, 64));
        assert!(p.workload_a && p.workload_b && p.workload_c && p.workload_d);
        assert!(!p.memory_10m);
        assert_eq!(p.out, PathBuf::from("target/bench/results.json"));
    }

    #[test]
    fn only_selects_one_workload() {
        let a = plan(&["--only", "a"]).unwrap();
        assert!(a.workload_a && !a.workload_b && !a.workload_c && !a.workload_d);
        let b = plan(&["--only", "b", "--rows", "10"]).unwrap();
        assert!(!b.workload_a && b.workload_b && b.rows == 10);
        let cd = plan(&["--only", "c,d"]).unwrap();
        assert!(!cd.workload_a && !cd.workload_b && cd.workload_c && cd.workload_d);
    }

    #[test]
    fn zero_values_are_refused() {
        for bad in [["--rows", "0"], ["--pairs", "0"], ["--duration-secs", "0"]] {
            assert!(plan(&bad).is_err(), "{bad:?}");
        }
        assert!(plan(&["--only", "e"]).is_err());
    }
}
