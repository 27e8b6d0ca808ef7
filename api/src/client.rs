//! A small mutual-TLS HTTPS client for the client subcommands
//! (`zonevault health`, `zonevault ledger ...`).
//!
//! It speaks HTTP/1.1 over rustls (ring provider, TLS 1.3 or 1.2 with the
//! server's suites), verifies the server against `ZONEVAULT_CACERT` and
//! authenticates with `ZONEVAULT_CLIENT_CERT` / `ZONEVAULT_CLIENT_KEY` at
//! `ZONEVAULT_ADDR` (flags override the variables). One connection per
//! request; the whole body is read. It never trusts a server it cannot
//! verify and has no option to skip verification.

mod settings;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

pub use settings::{tls_config, Endpoint};

use crate::app::audit::LEDGER_INDEX_HEADER;
use crate::cli::ClientArgs;

/// A request (connect, handshake, exchange, body) must finish within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A setting is neither given as a flag nor in the environment.
    #[error("{var} is not set; use {flag}")]
    Missing {
        /// The environment variable.
        var: &'static str,
        /// The flag that overrides it.
        flag: &'static str,
    },
    /// The server address does not parse.
    #[error("server address {addr:?} {problem}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A certificate or key file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A certificate or key file holds nothing usable.
    #[error("{}: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The TLS material could not be loaded.
    #[error("cannot load the TLS material")]
    TlsFiles(#[source] crate::tls::TlsError),
    /// rustls refused the client configuration (e.g. key and certificate differ).
    #[error("TLS client configuration rejected")]
    Tls(#[from] rustls::Error),
    /// The client's async runtime could not start.
    #[error("cannot start the client runtime")]
    Runtime(#[source] io::Error),
    /// TCP connect, TLS handshake or the HTTP exchange failed.
    #[error("{step} with {endpoint} failed: {detail}")]
    Transport {
        /// `connect`, `TLS handshake`, `HTTP exchange` or `request`.
        step: &'static str,
        /// The server.
        endpoint: String,
        /// The cause.
        detail: String,
    },
    /// The server answered with a non-2xx status.
    #[error("{method} {path}: the server answered {status}: {message}")]
    Status {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The server's public error message (and field and problem, if any).
        message: String,
        /// The ledger receipt of the refused request, if one was sent.
        ledger_index: Option<u64>,
    },
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The `zonevault-ledger-index` receipt, if the server sent one.
    pub fn ledger_index(&self) -> Option<u64> {
        self.headers
            .get(LEDGER_INDEX_HEADER)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The server's error message from a JSON error body, or the raw body.
    fn error_message(&self) -> String {
        let Ok(json) = self.json() else {
            return self.text().trim().to_owned();
        };
        let part = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut message = part("message").unwrap_or_else(|| json.to_string());
        if let (Some(field), Some(problem)) = (part("field"), part("problem")) {
            message = format!("{message}: {field}: {problem}");
        }
        message
    }
}

/// An mTLS client bound to one server and one client identity.
pub struct Client {
    endpoint: Endpoint,
    config: Arc<ClientConfig>,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// Resolves `args` (flags, else `ZONEVAULT_*` variables) and reads the PEM files.
    pub fn from_args(args: &ClientArgs) -> Result<Client, ClientError> {
        let addr = required(args.addr.as_deref(), "ZONEVAULT_ADDR", "--addr")?;
        let cacert = required(args.cacert.as_deref(), "ZONEVAULT_CACERT", "--cacert")?;
        let cert = required(
            args.client_cert.as_deref(),
            "ZONEVAULT_CLIENT_CERT",
            "--client-cert",
        )?;
        let key = required(
            args.client_key.as_deref(),
            "ZONEVAULT_CLIENT_KEY",
            "--client-key",
        )?;
        Client::new(Endpoint::parse(addr)?, cacert, cert, key)
    }

    /// A client for `endpoint` with the given CA bundle, certificate and key.
    pub fn new(
        endpoint: Endpoint,
        cacert: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<Client, ClientError> {
        let config = settings::tls_config(cacert, cert, key)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        Ok(Client {
            endpoint,
            config,
            runtime,
        })
    }

    /// `GET path`; a non-2xx answer is a [`ClientError::Status`].
    pub fn get(&self, path: &str) -> Result<Response, ClientError> {
        ok(Method::GET, path, self.send(Method::GET, path, None)?)
    }

    /// `POST path` with a JSON body; a non-2xx answer is a [`ClientError::Status`].
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Response, ClientError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        ok(
            Method::POST,
            path,
            self.send(Method::POST, path, Some(bytes))?,
        )
    }

    /// Any method, an optional JSON body, any status.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let request = self.request(method, path, json_body)?;
        let exchange =
            async { tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await };
        self.runtime
            .block_on(exchange)
            .unwrap_or_else(|_| Err(self.transport("request", "timed out")))
    }

    /// Like [`Client::send`], but a 2xx body is handed to `sink` frame by
    /// frame as it arrives (never held whole) and the returned body is
    /// empty; other answers are read whole. Each frame must arrive within
    /// the request timeout of the previous one.
    pub fn send_streaming(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<Response, ClientError> {
        let request = self.request(method, path, json_body)?;
        self.runtime
            .block_on(self.exchange_streaming(request, sink))
    }

    async fn exchange_streaming(
        &self,
        request: Request<Full<Bytes>>,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<Response, ClientError> {
        let timeout = |step| self.transport(step, "timed out");
        let (mut sender, driver) = tokio::time::timeout(REQUEST_TIMEOUT, self.connect())
            .await
            .map_err(|_| timeout("connect"))??;
        let http = |e: hyper::Error| self.transport("HTTP exchange", e);
        let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| timeout("HTTP exchange"))?
            .map_err(http)?;
        let (parts, mut body) = response.into_parts();
        let status = parts.status.as_u16();
        let mut kept = Vec::new();
        loop {
            let frame = tokio::time::timeout(REQUEST_TIMEOUT, body.frame())
                .await
                .map_err(|_| timeout("body"))?;
            let Some(frame) = frame.transpose().map_err(http)? else {
                break;
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if (200..300).contains(&status) {
                sink(&data).map_err(|e| self.transport("writing the body", e))?;
            } else {
                kept.extend_from_slice(&data);
            }
        }
        drop(sender);
        driver.abort();
        Ok(Response {
            status,
            headers: parts.headers,
            body: kept,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.endpoint.to_string());
        if json_body.is_some() {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        builder
            .body(Full::new(Bytes::from(json_body.unwrap_or_default())))
            .map_err(|e| self.transport("request", e))
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Response, ClientError> {
        let (mut sender, driver) = self.connect().await?;
        let http = |e: hyper::Error| self.transport("HTTP exchange", e);
        let response = sender.send_request(request).await.map_err(http)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(http)?.to_bytes();
        drop(sender);
        driver.abort();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.to_vec(),
        })
    }

    /// A TCP connection, its mutual TLS handshake and an HTTP/1.1
    /// connection over it: the sender, and the task that drives the
    /// connection (abort it when done).
    async fn connect(&self) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), ClientError> {
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|e| self.transport("connect", e))?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(self.endpoint.server_name.clone(), tcp)
            .await
            .map_err(|e| self.transport("TLS handshake", e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.transport("HTTP exchange", e))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, driver))
    }

    fn transport(&self, step: &'static str, detail: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            step,
            endpoint: self.endpoint.to_string(),
            detail: detail.to_string(),
        }
    }
}

fn required<'a, T: ?Sized>(
    value: Option<&'a T>,
    var: &'static str,
    flag: &'static str,
) -> Result<&'a T, ClientError> {
    value.ok_or(ClientError::Missing { var, flag })
}

fn ok(method: Method, path: &str, response: Response) -> Result<Response, ClientError> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    Err(ClientError::Status {
        method,
        path: path.to_owned(),
        status: response.status,
        message: response.error_message(),
        ledger_index: response.ledger_index(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_settings_name_the_variable_and_the_flag() {
        let args = ClientArgs {
            addr: Some("https://127.0.0.1:1".into()),
            cacert: None,
            client_cert: None,
            client_key: None,
        };
        let err = Client::from_args(&args).err().unwrap().to_string();
        assert_eq!(err, "ZONEVAULT_CACERT is not set; use --cacert");
        let none = ClientArgs { addr: None, ..args };
        let err = Client::from_args(&none).err().unwrap().to_string();
        assert_eq!(err, "ZONEVAULT_ADDR is not set; use --addr");
    }

    #[test]
    fn error_bodies_become_the_servers_message() {
        let response = Response {
            status: 400,
            headers: HeaderMap::new(),
            body: br#"{"error":"bad_request","message":"bad request","field":"end","problem":"beyond"}"#
                .to_vec(),
        };
        let err = ok(Method::GET, "/v1/x", response).unwrap_err().to_string();
        assert_eq!(
            err,
            "GET /v1/x: the server answered 400: bad request: end: beyond"
        );
    }
}
