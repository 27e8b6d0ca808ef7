//! Reading an uploaded Parquet file in a process of its own.
//!
//! The `parquet` crate panics, and can ask for absurd allocations, on
//! malformed input (a mutation fuzz of a valid file finds both within a
//! few hundred tries), and release builds abort on panic: read in the
//! server, one crafted "leaked" file would take the appliance down. So
//! the server writes each held Parquet file to a child, `zonevault
//! read-parquet-leak` (this binary, a hidden subcommand), which reads it
//! with no core dumps, a bounded address space, the first place in line
//! for the OOM killer and a deadline, and
//! prints the [`Leak`] it kept, or why it refused the file, as JSON. A
//! child that dies, overruns or prints anything else is a refusal of the
//! file, never of the server.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vault::trace::{Leak, LeakError, PARQUET_MAX_BYTES};

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "read-parquet-leak";
/// The child's address space: the file, the pages it decodes, the binary.
const ADDRESS_SPACE: u64 = 3 << 30;
/// The child is killed after this long.
const DEADLINE: Duration = Duration::from_secs(120);
/// Largest answer read from the child (a [`Leak`] is bounded far below).
const MAX_ANSWER: u64 = 64 << 20;

/// What the child prints.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// What tracing keeps of the file.
    Leak(Leak),
    /// Why the file was refused (a [`LeakError::Format`] problem).
    Refused(String),
}

fn unreadable(why: impl std::fmt::Display) -> LeakError {
    LeakError::Format(format!("the Parquet file cannot be read: {why}"))
}

/// Reads `file` in a child process (see the module documentation).
pub fn read_isolated(file: Vec<u8>) -> Result<Leak, LeakError> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(SUBCOMMAND)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or_else(|| unreadable("no pipe"))?;
    // A child that dies early closes the pipe; its status says why.
    let feeder = std::thread::spawn(move || drop(stdin.write_all(&file)));
    let mut stdout = child.stdout.take().ok_or_else(|| unreadable("no pipe"))?;
    let reader = std::thread::spawn(move || {
        let mut answer = Vec::new();
        stdout
            .by_ref()
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .map(|_| answer)
    });
    let status = wait_until(&mut child, Instant::now() + DEADLINE)?;
    let _ = feeder.join();
    let answer = reader
        .join()
        .map_err(|_| unreadable("its reader failed"))??;
    let Some(status) = status else {
        return Err(unreadable(format!(
            "reading took over {} s",
            DEADLINE.as_secs()
        )));
    };
    if !status.success() {
        tracing::warn!(%status, "the Parquet reader process failed");
        return Err(unreadable("the file is malformed (its reader stopped)"));
    }
    match serde_json::from_slice(&answer) {
        Ok(Outcome::Leak(leak)) => Ok(leak),
        Ok(Outcome::Refused(problem)) => Err(LeakError::Format(problem)),
        Err(_) => Err(unreadable("its reader's answer is malformed")),
    }
}

/// The child's exit status, or `None` if it was still running at
/// `deadline` (it is killed then).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The child: reads a Parquet file from stdin and prints its [`Outcome`].
pub fn run_child() -> anyhow::Result<()> {
    firmware::harden::no_core_dumps()?;
    firmware::harden::limit_address_space(ADDRESS_SPACE)?;
    // If memory runs out while it reads, the kernel kills this process
    // before the server (best effort: without /proc it reads all the same).
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    let mut file = Vec::new();
    io::stdin()
        .take(PARQUET_MAX_BYTES + 1)
        .read_to_end(&mut file)?;
    let outcome = match Leak::read_parquet(file) {
        Ok(leak) => Outcome::Leak(leak),
        Err(LeakError::Format(problem)) => Outcome::Refused(problem),
        Err(other) => Outcome::Refused(other.to_string()),
    };
    serde_json::to_writer(io::stdout().lock(), &outcome)?;
    Ok(())
}
