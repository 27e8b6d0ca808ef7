//! Counters of refused TLS handshakes, by reason, for `/metrics`.

use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::CertificateError;

/// Why a handshake failed, as far as the server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The client sent no certificate.
    NoCert,
    /// The client certificate does not chain to the client CA.
    UnknownCa,
    /// The client certificate has expired.
    Expired,
    /// The client certificate is listed in the CRL.
    Revoked,
    /// The handshake did not finish within the timeout.
    Timeout,
    /// Anything else: protocol errors, no common suite, disconnects.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in the order they appear in metrics.
    pub const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::NoCert,
        HandshakeFailure::UnknownCa,
        HandshakeFailure::Expired,
        HandshakeFailure::Revoked,
        HandshakeFailure::Timeout,
        HandshakeFailure::Other,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::NoCert => "no_cert",
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::Expired => "expired",
            HandshakeFailure::Revoked => "revoked",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Other => "other",
        }
    }

    /// Classifies the error `tokio_rustls` returned from `accept`.
    pub fn from_accept_error(err: &io::Error) -> HandshakeFailure {
        let rustls_err = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        match rustls_err {
            Some(rustls::Error::NoCertificatesPresented) => HandshakeFailure::NoCert,
            Some(rustls::Error::InvalidCertificate(cert_err)) => Self::from_cert_error(cert_err),
            _ => HandshakeFailure::Other,
        }
    }

    fn from_cert_error(err: &CertificateError) -> HandshakeFailure {
        match err {
            // A bad signature means a trusted CA's name but not its key: a
            // look-alike CA, so "unknown CA" for the operator's purposes.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                HandshakeFailure::UnknownCa
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                HandshakeFailure::Expired
            }
            CertificateError::Revoked => HandshakeFailure::Revoked,
            _ => HandshakeFailure::Other,
        }
    }
}

/// Most refused handshakes kept, by address, for the security monitor.
const MAX_RECENT: usize = 10_000;

/// Atomic counters of handshake failures; shared by every connection.
/// Failures recorded with their address are also queued (bounded) for the
/// security monitor ([`HandshakeStats::take_recent`]).
#[derive(Debug, Default)]
pub struct HandshakeStats {
    counts: [AtomicU64; 6],
    recent: std::sync::Mutex<std::collections::VecDeque<(std::net::IpAddr, time::OffsetDateTime)>>,
}

impl HandshakeStats {
    /// Counts one failure.
    pub fn record(&self, reason: HandshakeFailure) {
        self.counts[Self::slot(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failure from `ip` and queues it for the monitor.
    pub fn record_from(&self, ip: std::net::IpAddr, reason: HandshakeFailure) {
        self.record(reason);
        if let Ok(mut q) = self.recent.lock() {
            if q.len() == MAX_RECENT {
                q.pop_front();
            }
            q.push_back((ip, time::OffsetDateTime::now_utc()));
        }
    }

    /// The failures queued by [`HandshakeStats::record_from`] since the
    /// last call, oldest first.
    pub fn take_recent(&self) -> Vec<(std::net::IpAddr, time::OffsetDateTime)> {
        self.recent
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// The number of failures for `reason` so far.
    pub fn count(&self, reason: HandshakeFailure) -> u64 {
        self.counts[Self::slot(reason)].load(Ordering::Relaxed)
    }

    /// Appends the counters in Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        let name = "zonevault_tls_handshake_failures_total";
        let _ = writeln!(out, "# HELP {name} TLS handshakes refused, by reason.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for reason in HandshakeFailure::ALL {
            let n = self.count(reason);
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {n}", reason.as_str());
        }
    }

    fn slot(reason: HandshakeFailure) -> usize {
        HandshakeFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(HandshakeFailure::ALL.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_err(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn classifies_rustls_errors() {
        let cases = [
            (
                rustls::Error::NoCertificatesPresented,
                HandshakeFailure::NoCert,
            ),
            (
                CertificateError::UnknownIssuer.into(),
                HandshakeFailure::UnknownCa,
            ),
            (CertificateError::Expired.into(), HandshakeFailure::Expired),
            (CertificateError::Revoked.into(), HandshakeFailure::Revoked),
            (
                CertificateError::BadSignature.into(),
                HandshakeFailure::UnknownCa,
            ),
            (
                CertificateError::NotValidYet.into(),
                HandshakeFailure::Other,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(HandshakeFailure::from_accept_error(&io_err(err)), want);
        }
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(
            HandshakeFailure::from_accept_error(&eof),
            HandshakeFailure::Other
        );
    }

    #[test]
    fn prometheus_text() {
        let stats = HandshakeStats::default();
        stats.record(HandshakeFailure::Revoked);
        stats.record(HandshakeFailure::Revoked);
        let mut out = String::new();
        stats.write_prometheus(&mut out);
        assert!(out.contains("zonevault_tls_handshake_failures_total{reason=\"revoked\"} 2\n"));
        assert!(out.contains("{reason=\"no_cert\"} 0\n"));
    }
}
