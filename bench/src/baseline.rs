//! The baseline of workload A: a minimal axum+rustls server that answers
//! `GET /v1/health` over the same mutual TLS as zonevault (the same
//! [`api::tls`] policy and [`api::server::serve`] accept loop, the same
//! certificates) but with no identity parsing, no authorization and no
//! ledger. The difference to zonevault is exactly the audit cost.
//!
//! It runs as `zonevault-bench baseline-server` in its own process, so its
//! allocator and runtime are not shared with the load generator.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};
use api::tls::{TlsFiles, TlsReloader};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::args::BaselineArgs;
use crate::client::Endpoint;

/// `zonevault-bench baseline-server`: serves until killed.
pub fn run(args: BaselineArgs) -> Result<()> {
    let tls = TlsReloader::new(TlsFiles {
        cert_chain: args.cert,
        key: args.key,
        client_ca: args.client_ca,
        crl: None,
    })
    .context("cannot load the TLS material")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("{}", listener.local_addr()?.port());
        let app = Router::new().route("/v1/health", get(health));
        api::server::serve(listener, tls, app, std::future::pending()).await?;
        Ok::<(), anyhow::Error>(())
    })
}

/// The same shape of answer as zonevault's health route.
async fn health() -> Json<Value> {
    Json(json!({
        "status": "ok",
        "sealed": false,
        "master_key": "unsealed",
        "version": env!("CARGO_PKG_VERSION"),
        "appliance_id": "baseline",
        "ledger_size": 0,
    }))
}

/// A running baseline server process, killed on drop.
pub struct Process {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    // Kept open so the child never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Process {
    /// Starts the baseline with the server certificate and client CA of
    /// the harness PKI in `pki`.
    pub fn start(pki: &Path) -> Result<Process> {
        let exe = std::env::current_exe().context("cannot locate this binary")?;
        let mut child = Command::new(exe)
            .arg("baseline-server")
            .arg("--cert")
            .arg(pki.join("server/cert.pem"))
            .arg("--key")
            .arg(pki.join("server/key.pem"))
            .arg("--client-ca")
            .arg(pki.join("ca/cert.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawn the baseline server")?;
        let Some(stdout) = child.stdout.take() else {
            bail!("the baseline server has no stdout");
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the baseline server did not start (printed {line:?})");
        };
        Ok(Process {
            child,
            port,
            _stdout: stdout,
        })
    }

    /// The baseline server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The baseline reached with `role`'s certificate from `pki`.
    pub fn endpoint(&self, pki: &Path, role: &str) -> Result<Endpoint> {
        Endpoint::new(self.port, pki, role)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
