//! A loopback TCP proxy in front of a swtpm that records every byte.
//!
//! Owns a pair of listeners (command port `P`, control port `P + 1`, as the
//! swtpm TCTI expects) and the threads that forward each connection to the
//! real TPM. Everything forwarded in either direction is appended to one
//! capture buffer, so a test can assert that a secret never crossed the
//! TPM interface in clear.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crate::swtpm::{free_port_pair, Swtpm};

/// A recording proxy for one [`Swtpm`]; point the TPM client at [`WireTap::tcti`].
pub struct WireTap {
    port: u16,
    captured: Arc<Mutex<Vec<u8>>>,
    stopping: Arc<AtomicBool>,
}

impl WireTap {
    /// Starts forwarding a fresh loopback port pair to `tpm`'s ports.
    pub fn new(tpm: &Swtpm) -> WireTap {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        loop {
            let port = free_port_pair();
            let Ok(data) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else {
                continue;
            };
            let Ok(ctrl) = TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)) else {
                continue;
            };
            for (listener, upstream) in [(data, tpm.port()), (ctrl, tpm.port() + 1)] {
                let (captured, stopping) = (captured.clone(), stopping.clone());
                thread::spawn(move || accept_loop(listener, upstream, captured, stopping));
            }
            return WireTap {
                port,
                captured,
                stopping,
            };
        }
    }

    /// The TCTI configuration string that talks to the TPM through the tap.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Every byte forwarded so far, both directions, in arrival order.
    pub fn captured(&self) -> Vec<u8> {
        self.captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for WireTap {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake both accept loops so they see the flag and exit.
        for port in [self.port, self.port + 1] {
            let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, port));
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    captured: Arc<Mutex<Vec<u8>>>,
    stopping: Arc<AtomicBool>,
) {
    for client in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)) else {
            continue;
        };
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let up = captured.clone();
        thread::spawn(move || pump(client, server, up));
        let down = captured.clone();
        thread::spawn(move || pump(server2, client2, down));
    }
}

/// Copies `from` to `to`, recording each chunk before forwarding it (so a
/// response is in the capture before the client can see it).
fn pump(mut from: TcpStream, mut to: TcpStream, captured: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
