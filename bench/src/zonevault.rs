//! The system under test: an initialized appliance from the e2e harness
//! (its own swtpm, a demo PKI, `zonevault init`) and `zonevault serve`
//! started here, so that its PID is known (for peak RSS) and its log goes
//! to a file instead of a pipe nobody reads.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use e2e::appliance::{free_port, s, zonevault_bin, Appliance};

use crate::client::Endpoint;

/// How long the server may take to unseal, verify its ledger and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `zonevault serve`, stopped (and its swtpm with it) on drop.
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Spawn to accepting connections (unseal on swtpm, ledger check), ms.
    pub start_ms: f64,
    /// The TPM unseal alone, as the server logged it, ms.
    pub unseal_ms: Option<f64>,
    // Dropped after `child` is killed: stops swtpm, removes the directory.
    appliance: Appliance,
}

impl Server {
    /// Sets up and initializes an appliance, then serves it.
    pub fn start() -> Result<Server> {
        let mut appliance = Appliance::new();
        appliance.init("0,7");
        let port = free_port();
        let config = appliance.write_config(port, "");
        let log = File::create(appliance.path("server.log"))?;
        let started = Instant::now();
        let mut child = Command::new(zonevault_bin())
            .args(["serve", "--config", s(&config)])
            .env("TSS2_LOG", "all+none")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn zonevault serve")?;
        wait_listening(&mut child, port, &appliance)?;
        appliance.serving_on(port);
        let start_ms = started.elapsed().as_secs_f64() * 1e3;
        let log = std::fs::read_to_string(appliance.path("server.log")).unwrap_or_default();
        Ok(Server {
            child,
            port,
            start_ms,
            unseal_ms: logged_unseal_ms(&log),
            appliance,
        })
    }

    /// The harness PKI directory (`ca/`, `server/`, one per role).
    pub fn pki(&self) -> PathBuf {
        self.appliance.path("pki")
    }

    /// A scratch directory inside the appliance's temporary directory.
    pub fn scratch(&self) -> Result<PathBuf> {
        let dir = self.appliance.path("bench");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The server reached as `role`.
    pub fn endpoint(&self, role: &str) -> Result<Endpoint> {
        Endpoint::new(self.port, &self.pki(), role)
    }

    /// The appliance being served, for setup through the CLI.
    pub fn appliance(&self) -> &Appliance {
        &self.appliance
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `unseal_ms=…` field of the server's "master key unsealed" line
/// (the log may carry ANSI colour codes).
fn logged_unseal_ms(log: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains("master key unsealed"))?;
    let line = strip_ansi(line);
    let value = line.split("unseal_ms=").nth(1)?.split_whitespace().next()?;
    value.trim_matches('"').parse().ok()
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

fn wait_listening(child: &mut Child, port: u16, appliance: &Appliance) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(appliance.path("server.log")).unwrap_or_default();
            bail!("zonevault serve exited ({status}):\n{log}");
        }
        if e2e::appliance::is_serving(&appliance.path("server.log")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("zonevault serve did not listen on port {port} within {START_TIMEOUT:?}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::logged_unseal_ms;

    #[test]
    fn reads_the_logged_unseal_time() {
        let log = "2026-11-29T09:00:00Z  INFO zonevault: core dumps disabled\n\
                   2026-11-29T09:00:01Z  INFO zonevault::commands::serve: master key unsealed unseal_ms=41.7\n";
        assert_eq!(logged_unseal_ms(log), Some(41.7));
        let coloured = "\u{1b}[32m INFO\u{1b}[0m master key unsealed \u{1b}[3munseal_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m12.5\n";
        assert_eq!(logged_unseal_ms(coloured), Some(12.5));
        assert_eq!(logged_unseal_ms("nothing here\n"), None);
    }
}
