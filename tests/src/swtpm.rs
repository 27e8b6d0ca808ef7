//! A software TPM (`swtpm`) per test, on a free loopback port pair.
//!
//! Owns the swtpm process: picks ports, starts it under `setsid` so its PID is
//! its own process group, waits until it listens on both ports, and kills that
//! group on [`Swtpm::stop`] or drop. The state directory belongs to the
//! caller, so a TPM can be stopped and started again with the same seeds.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::wiretap::WireTap;

/// How many port pairs [`Swtpm::start`] tries before giving up.
const START_ATTEMPTS: usize = 20;
/// How long one start waits for swtpm to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Swtpm::stop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Is the `swtpm` binary on `PATH`? Tests that need a TPM skip without it.
pub fn tpm_available() -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join("swtpm").is_file()))
        .unwrap_or(false)
}

/// A running swtpm listening on `127.0.0.1:port` (commands) and
/// `127.0.0.1:port+1` (control).
pub struct Swtpm {
    child: Option<Child>,
    port: u16,
    state_dir: PathBuf,
}

impl Swtpm {
    /// Starts swtpm with its state in `state_dir` (created if missing).
    ///
    /// Panics if swtpm cannot be started: this is test harness code, and a
    /// test without its TPM has nothing better to do.
    pub fn start(state_dir: &Path) -> Swtpm {
        std::fs::create_dir_all(state_dir)
            .unwrap_or_else(|e| panic!("create swtpm state dir {}: {e}", state_dir.display()));
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair();
            let mut child = spawn(state_dir, port);
            if wait_ready(&mut child, port) {
                return Swtpm {
                    child: Some(child),
                    port,
                    state_dir: state_dir.to_path_buf(),
                };
            }
            terminate(&mut child);
        }
        panic!("swtpm did not start after {START_ATTEMPTS} attempts");
    }

    /// Manufactures a TPM in `state_dir` with an EK certificate and a
    /// platform certificate issued by swtpm's local CA (`swtpm_setup
    /// --create-ek-cert --create-platform-cert`), then starts it. The CA
    /// lives in `state_dir/localca`; [`Swtpm::local_ca_cert`] is its
    /// certificate.
    pub fn start_with_ek_cert(state_dir: &Path) -> Swtpm {
        let setup = state_dir.join("localca");
        std::fs::create_dir_all(&setup)
            .unwrap_or_else(|e| panic!("create {}: {e}", setup.display()));
        let file = |name: &str, text: String| {
            let path = setup.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        let ca = setup.join("ca");
        let localca = file(
            "swtpm-localca.conf",
            format!(
                "statedir = {d}\nsigningkey = {d}/signkey.pem\nissuercert = {d}/issuercert.pem\n\
                 certserial = {d}/certserial\n",
                d = ca.display()
            ),
        );
        let options = file(
            "swtpm-localca.options",
            "--platform-manufacturer zonevault-test\n--platform-version 1\n--platform-model swtpm\n"
                .to_owned(),
        );
        let config = file(
            "swtpm_setup.conf",
            format!(
                "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = {}\n\
                 create_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
                localca.display(),
                options.display()
            ),
        );
        let out = Command::new("swtpm_setup")
            .args([
                "--tpm2",
                "--create-ek-cert",
                "--create-platform-cert",
                "--overwrite",
            ])
            .arg("--tpmstate")
            .arg(state_dir)
            .arg("--config")
            .arg(&config)
            .env("XDG_CONFIG_HOME", &setup)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run swtpm_setup: {e}"));
        assert!(
            out.status.success(),
            "swtpm_setup failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Swtpm::start(state_dir)
    }

    /// The local CA certificate that issued the EK certificate of a TPM
    /// made by [`Swtpm::start_with_ek_cert`] (PEM).
    pub fn local_ca_cert(&self) -> PathBuf {
        self.state_dir.join("localca/ca/issuercert.pem")
    }

    /// The local CA's certificates, intermediate then root (PEM): the
    /// manufacturer CA bundle a regulator validates the EK certificate with.
    pub fn local_ca_bundle(&self) -> String {
        let dir = self.state_dir.join("localca/ca");
        ["issuercert.pem", "swtpm-localca-rootca-cert.pem"]
            .iter()
            .map(|name| {
                let path = dir.join(name);
                std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            })
            .collect()
    }

    /// The TCTI configuration string for this TPM.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The command port (the control port is `port() + 1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state directory this TPM was started with.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Stops the TPM (idempotent). Its state stays in the state directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port `P` such that `P` and `P + 1` were both free on 127.0.0.1.
pub(crate) fn free_port_pair() -> u16 {
    loop {
        let Ok(first) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let Ok(addr) = first.local_addr() else {
            continue;
        };
        let port = addr.port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return port;
        }
    }
}

fn spawn(state_dir: &Path, port: u16) -> Child {
    // `setsid` execs swtpm directly (our child is not a group leader), so the
    // child's PID is swtpm's PID and its own process group.
    Command::new("setsid")
        .arg("swtpm")
        .args(["socket", "--tpm2"])
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--tpmstate")
        .arg(format!("dir={}", state_dir.display()))
        .args(["--flags", "not-need-init,startup-clear"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn setsid swtpm: {e}"))
}

/// Waits until the child itself listens on both ports; false if it exited
/// first (typically a port taken in the meantime) or the timeout passed.
///
/// Ownership is read from `/proc` rather than probed by connecting: a port
/// picked by [`free_port_pair`] can be taken by another test's listener
/// before swtpm binds it, and a probe would then take that listener for
/// this TPM.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        let sockets = socket_inodes(child.id());
        let owns = |port| listener_inode(port).is_some_and(|inode| sockets.contains(&inode));
        if owns(port) && owns(port + 1) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The inode of the socket listening on `127.0.0.1:port`, from `/proc/net/tcp`.
fn listener_inode(port: u16) -> Option<u64> {
    const LISTEN: &str = "0A";
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&LISTEN))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// The inodes of the sockets process `pid` holds open, from `/proc/PID/fd`.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// SIGTERM to the child's process group, then SIGKILL if it lingers; reaps it.
fn terminate(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-s", "TERM", "--", &group])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, TcpStream};

    fn accepts(port: u16) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    }

    /// Another listener on the chosen ports is not taken for the TPM: the
    /// swtpm that cannot bind them is reported as not ready.
    #[test]
    fn a_port_pair_held_by_another_listener_is_not_taken_for_the_tpm() {
        if !tpm_available() {
            eprintln!("swtpm not installed; skipping");
            return;
        }
        let (data, ctrl, port) = loop {
            let port = free_port_pair();
            let data = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
            let ctrl = TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1));
            if let (Ok(data), Ok(ctrl)) = (data, ctrl) {
                break (data, ctrl, port);
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn(dir.path(), port);
        assert!(!wait_ready(&mut child, port));
        terminate(&mut child);
        assert!(accepts(port), "the other listener still holds the port");
        drop((data, ctrl));
    }

    #[test]
    fn starts_restarts_and_stops() {
        if !tpm_available() {
            eprintln!("swtpm not installed; skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut tpm = Swtpm::start(dir.path());
        let port = tpm.port();
        assert!(accepts(port));
        assert_eq!(tpm.tcti(), format!("swtpm:host=127.0.0.1,port={port}"));
        tpm.stop();
        tpm.stop();
        let again = Swtpm::start(dir.path());
        assert!(accepts(again.port()));
    }
}
