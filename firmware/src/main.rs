//! `zonevault-launch`: the measured launcher of the appliance.
//!
//! `run` measures the `zonevault` binary and its configuration into the
//! launcher PCR, records the events, hardens the process, and execs
//! `zonevault serve --config FILE`. `measure` does the same without the
//! exec (to seal a fresh appliance to the measured state at `init`).
//! `reference` computes the expected PCR values from release artifacts.
//! Started as PID 1 (the appliance image's `/init`), it boots the
//! appliance instead ([`appliance`]).

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use attest::{PcrSelection, PcrValues, Tpm, LAUNCHER_PCR};
use clap::{Args, Parser, Subcommand};
use firmware::harden;
use firmware::measure::{self, LaunchConfig};

mod appliance;

/// zonevault's measured launcher.
#[derive(Debug, Parser)]
#[command(name = "zonevault-launch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Measure, harden, then exec `zonevault serve --config FILE`.
    Run {
        #[command(flatten)]
        launch: LaunchArgs,
        /// Run the server as this user when started as root.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Measure and record the events only (no exec).
    Measure(LaunchArgs),
    /// Print the reference file: the expected launcher PCR from the
    /// artifacts, with the firmware values of `--base-pcrs`.
    Reference {
        /// The release `zonevault` binary.
        #[arg(long, value_name = "PATH")]
        binary: PathBuf,
        /// The configuration file as deployed.
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// Firmware PCR values (`{"0":"<hex>",…}`), e.g. from a known-good machine.
        #[arg(long, value_name = "FILE")]
        base_pcrs: Option<PathBuf>,
        /// The launcher PCR.
        #[arg(long, default_value_t = LAUNCHER_PCR)]
        pcr: u8,
    },
}

#[derive(Debug, Args)]
struct LaunchArgs {
    /// The server's configuration file (measured, and passed to serve).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// TPM TCTI (default: the configuration's `tpm`).
    #[arg(long, value_name = "TCTI")]
    tpm: Option<String>,
    /// The launcher PCR.
    #[arg(long, default_value_t = LAUNCHER_PCR)]
    pcr: u8,
    /// The `zonevault` binary (default: next to this launcher).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
}

fn main() -> ExitCode {
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+none");
    }
    if std::process::id() == 1 {
        appliance::main(measure_appliance);
    }
    let result = match Cli::parse().command {
        Cmd::Run { launch, user } => run(&launch, user.as_deref()),
        Cmd::Measure(launch) => measure_launch(&launch).map(|_| ()),
        Cmd::Reference {
            binary,
            config,
            base_pcrs,
            pcr,
        } => reference(&binary, &config, base_pcrs.as_deref(), pcr),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            say(format_args!("error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

/// One line to stderr. Not `eprintln!`, which panics when stderr cannot be
/// written; the launcher's outcome is its exit status, the line is a courtesy.
fn say(message: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "zonevault-launch: {message}");
}

fn binary(args: &LaunchArgs) -> Result<PathBuf> {
    if let Some(b) = &args.binary {
        return Ok(b.clone());
    }
    let me = std::env::current_exe().context("cannot find this launcher's path")?;
    Ok(me.with_file_name("zonevault"))
}

/// Measures the binary and the configuration into the launcher PCR.
fn measure_launch(args: &LaunchArgs) -> Result<PathBuf> {
    let binary = binary(args)?;
    let config = LaunchConfig::read(&args.config)?;
    let events = measure::launch_events(args.pcr, &binary, &args.config)?;
    let tcti = args.tpm.clone().unwrap_or_else(|| config.tpm.clone());
    let mut tpm = Tpm::open(&tcti).with_context(|| format!("cannot open the TPM at `{tcti}`"))?;
    let sel = PcrSelection::new([args.pcr]).context("--pcr")?;
    let current = tpm.read_pcrs(&sel)?;
    let fresh = current.get(args.pcr) == Some(&[0u8; 32]);
    if !fresh {
        say(format_args!(
            "PCR {} was already extended since boot; appending to the event log",
            args.pcr
        ));
    }
    let log = config.event_log();
    for (i, event) in events.iter().enumerate() {
        measure::record(&log, event, fresh && i == 0)?;
        tpm.extend_pcr(event.pcr, &event.digest)
            .with_context(|| format!("cannot extend PCR {}", event.pcr))?;
        say(format_args!(
            "PCR {} extended with {} ({})",
            event.pcr,
            hex::encode(event.digest),
            event.description
        ));
    }
    Ok(binary)
}

/// The appliance's measured launch: `binary` and `config` into the
/// launcher PCR, the TPM named by the configuration.
fn measure_appliance(binary: &Path, config: &Path) -> Result<PathBuf> {
    measure_launch(&LaunchArgs {
        config: config.to_owned(),
        tpm: None,
        pcr: LAUNCHER_PCR,
        binary: Some(binary.to_owned()),
    })
}

fn run(args: &LaunchArgs, user: Option<&str>) -> Result<()> {
    harden::no_core_dumps().context("cannot disable core dumps")?;
    let binary = measure_launch(args)?;
    let mut command = Command::new(&binary);
    command.arg("serve").arg("--config").arg(&args.config);
    if let Some(name) = user.filter(|_| harden::is_root()) {
        let Some((uid, gid)) = harden::lookup_user(Path::new("/etc/passwd"), name)? else {
            bail!("user {name:?} does not exist");
        };
        command.uid(uid).gid(gid);
    }
    if harden::memory_lock_permitted() {
        command.env(harden::LOCK_MEMORY_ENV, "1");
    }
    let err = command.exec();
    Err(err).with_context(|| format!("cannot exec {}", binary.display()))
}

fn reference(binary: &Path, config: &Path, base: Option<&Path>, pcr: u8) -> Result<()> {
    let events = measure::launch_events(pcr, binary, config)?;
    let base = match base {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<PcrValues>(&text)
                .with_context(|| format!("{}", path.display()))?
        }
        None => PcrValues::new(),
    };
    let Some(reference) = measure::reference(pcr, &events, &base) else {
        bail!("PCR {pcr} is not a PCR index");
    };
    print!("{}", reference.to_json());
    Ok(())
}
