//! The `zonevault` binary: parses the command line and dispatches. Errors
//! print as one line (with their causes) and exit non-zero; no backtraces.

use std::process::ExitCode;

use clap::Parser;

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
