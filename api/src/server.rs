//! The mTLS accept loop: TLS handshakes, HTTP/1.1 and h2, graceful shutdown.
//!
//! Each accepted TCP connection is handshaken with the *current*
//! [`TlsReloader`] configuration, so a reloaded CRL applies to every new
//! connection while established ones continue. The peer's end-entity
//! certificate is attached to every request as [`PeerInfo`]; the identity is
//! deliberately not parsed here, so that the middleware that parses it can
//! record failures in the ledger. Refused handshakes never reach the
//! router; they are counted in [`crate::tls::HandshakeStats`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::identity::{Identity, IdentityError};
use crate::tls::TlsReloader;
pub use crate::tls::{HandshakeFailure, HandshakeStats};

/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/1.1 request head must arrive within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, open connections get this long to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the transport knows about the caller; in every request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The client's end-entity certificate (DER), verified by rustls.
    pub cert_der: Arc<Vec<u8>>,
    /// The client's TCP address.
    pub peer_addr: SocketAddr,
    /// `peer_addr` as the ledger records it, formatted once per connection.
    pub peer_text: Arc<str>,
    /// Hex SHA-256 of `cert_der`, computed once per connection.
    pub cert_sha256: Arc<str>,
    /// The identity parsed from `cert_der`, once per connection (the
    /// certificate cannot change on an open connection).
    identity: Arc<OnceLock<Result<Identity, IdentityError>>>,
}

impl PeerInfo {
    /// The peer of one connection.
    pub fn new(cert_der: Arc<Vec<u8>>, peer_addr: SocketAddr) -> PeerInfo {
        let cert_sha256 = hex::encode(Sha256::digest(cert_der.as_slice())).into();
        PeerInfo {
            cert_der,
            peer_addr,
            peer_text: peer_addr.to_string().into(),
            cert_sha256,
            identity: Arc::default(),
        }
    }

    /// The caller's identity in `trust_domain`, parsed on the connection's
    /// first request and reused for the rest.
    pub fn identity(&self, trust_domain: &str) -> Result<Identity, IdentityError> {
        self.identity
            .get_or_init(|| Identity::from_peer_cert(&self.cert_der, trust_domain))
            .clone()
    }
}

/// Serves `app` over mutual TLS on `listener` until `shutdown` completes,
/// then stops accepting, lets open connections finish (up to 30 s) and
/// returns. Accept errors are logged and retried, never fatal.
pub async fn serve(
    listener: TcpListener,
    tls: TlsReloader,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let task = connection(stream, addr, tls.clone(), app.clone(), stop_rx.clone());
                    connections.spawn(task);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drain(connections, stop_tx).await;
    Ok(())
}

/// Tells every connection to finish and waits for them, up to the grace.
async fn drain(mut connections: JoinSet<()>, stop: watch::Sender<()>) {
    tracing::info!(
        open = connections.len(),
        "shutting down: draining connections"
    );
    let _ = stop.send(());
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, all_done)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "grace period over: aborting connections"
        );
        connections.abort_all();
    }
}

/// One connection: handshake, then HTTP until the peer leaves or we stop.
async fn connection(
    stream: TcpStream,
    peer_addr: SocketAddr,
    tls: TlsReloader,
    app: Router,
    mut stop: watch::Receiver<()>,
) {
    let tls_stream = tokio::select! {
        s = handshake(stream, peer_addr, &tls) => match s {
            Some(s) => s,
            None => return,
        },
        _ = stop.changed() => return,
    };
    let Some(cert_der) = end_entity(&tls_stream) else {
        // Unreachable with a mandatory client verifier; refuse regardless.
        tls.handshake_stats()
            .record_from(peer_addr.ip(), HandshakeFailure::NoCert);
        return;
    };
    let peer = PeerInfo::new(cert_der, peer_addr);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        app.clone().oneshot(req)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer_addr, error = %e, "connection ended with an error");
    }
}

/// The TLS handshake, bounded by [`HANDSHAKE_TIMEOUT`]; failures counted.
async fn handshake(
    stream: TcpStream,
    peer_addr: SocketAddr,
    tls: &TlsReloader,
) -> Option<TlsStream<TcpStream>> {
    let acceptor = TlsAcceptor::from(tls.current());
    let reason = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => {
            let reason = HandshakeFailure::from_accept_error(&e);
            tracing::info!(%peer_addr, reason = reason.as_str(), error = %e, "TLS handshake refused");
            reason
        }
        Err(_) => {
            tracing::info!(%peer_addr, "TLS handshake timed out");
            HandshakeFailure::Timeout
        }
    };
    tls.handshake_stats().record_from(peer_addr.ip(), reason);
    None
}

fn end_entity(stream: &TlsStream<TcpStream>) -> Option<Arc<Vec<u8>>> {
    let (_, session) = stream.get_ref();
    let leaf = session.peer_certificates()?.first()?;
    Some(Arc::new(leaf.as_ref().to_vec()))
}
