//! The `zonevault` binary: parses the command line and dispatches. Errors
//! print as one line (with their causes) and exit non-zero; no backtraces.

use std::process::ExitCode;

use clap::Parser;

// mimalloc rather than glibc's malloc: per-thread heaps without arena
// locks and cheap frees of blocks another thread allocated, which the
// audited request path does dozens of times per request across the runtime
// threads and the ledger writer. Server CPU per audited request fell by
// about a tenth with it (bench/README.md, session 5); the 10M-row import
// and extract stay well under their memory bound.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread starts: ESYS prints every TPM error to stderr, the
    // expected ones (a PCR mismatch) included.
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+none");
    }
    let cli = api::cli::Cli::parse();
    match api::commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zonevault: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
