//! Streaming a file to the API over mutual TLS, for `zonevault dataset
//! import`: a blocking HTTP/1.1 `PUT` whose body is read from disk in fixed
//! chunks, so an import never holds the file in memory, whatever its size.
//! [`crate::client::Client`] sends whole bodies only; this is the one
//! request that cannot. One request per connection (`Connection: close`),
//! so the answer is read to the end of the stream. Settings come from the
//! same [`ClientArgs`] (flags or `ZONEVAULT_*` variables).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::Value;

use crate::cli::ClientArgs;

/// Bytes written per chunk of a streamed body.
const CHUNK: usize = 256 * 1024;

/// An API endpoint and the client's TLS identity.
pub struct Uploader {
    host: String,
    port: u16,
    config: Arc<ClientConfig>,
}

/// A response: status and body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body, parsed as JSON (`Null` when empty or not JSON).
    pub json: Value,
}

impl Reply {
    /// The JSON body of a 2xx answer, or an error quoting the server's
    /// code, message and (for bad requests) field and problem.
    pub fn ok(self) -> Result<Value> {
        if (200..300).contains(&self.status) {
            return Ok(self.json);
        }
        let j = &self.json;
        let mut msg = format!("the server answered {}", self.status);
        for key in ["error", "message", "field", "problem"] {
            if let Some(v) = j.get(key).and_then(Value::as_str) {
                msg.push_str(&format!("; {key}: {v}"));
            }
        }
        Err(anyhow!(msg))
    }
}

impl Uploader {
    /// Builds an uploader from the command line (or `ZONEVAULT_*` variables).
    pub fn new(args: &ClientArgs) -> Result<Uploader> {
        let need = |v: Option<&PathBuf>, var: &str, flag: &str| {
            v.cloned()
                .ok_or_else(|| anyhow!("{var} is not set; use {flag}"))
        };
        let addr = args
            .addr
            .as_deref()
            .ok_or_else(|| anyhow!("ZONEVAULT_ADDR is not set; use --addr"))?;
        let (host, port) = split_addr(addr)?;
        let cacert = need(args.cacert.as_ref(), "ZONEVAULT_CACERT", "--cacert")?;
        let cert_path = need(
            args.client_cert.as_ref(),
            "ZONEVAULT_CLIENT_CERT",
            "--client-cert",
        )?;
        let key_path = need(
            args.client_key.as_ref(),
            "ZONEVAULT_CLIENT_KEY",
            "--client-key",
        )?;
        let config = crate::client::tls_config(&cacert, &cert_path, &key_path)?;
        Ok(Uploader { host, port, config })
    }

    /// `PUT path` streaming `file`; `progress` sees each chunk sent.
    pub fn put_file(
        &self,
        path: &str,
        file: &Path,
        progress: &mut dyn FnMut(&[u8]),
    ) -> Result<Reply> {
        self.send_file("PUT", path, file, progress)
    }

    /// `method path` streaming `file`; `progress` sees each chunk sent.
    pub fn send_file(
        &self,
        method: &str,
        path: &str,
        file: &Path,
        progress: &mut dyn FnMut(&[u8]),
    ) -> Result<Reply> {
        let mut source =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = source.metadata()?.len();
        let mut stream = self.connect()?;
        let ctype = Some("application/octet-stream");
        write_head(&mut stream, method, path, &self.host, ctype, len)?;
        let mut buf = vec![0u8; CHUNK];
        let sent = loop {
            let n = source
                .read(&mut buf)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if n == 0 {
                break stream.flush();
            }
            if let Err(e) = stream.write_all(&buf[..n]) {
                break Err(e);
            }
            progress(&buf[..n]);
        };
        // The server may refuse early and stop reading: its answer says why.
        match (read_reply(&mut stream), sent) {
            (Ok(reply), _) => Ok(reply),
            (Err(e), Err(send)) => Err(e.context(format!("sending the file failed: {send}"))),
            (Err(e), Ok(())) => Err(e),
        }
    }

    fn connect(&self) -> Result<StreamOwned<ClientConnection, TcpStream>> {
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| anyhow!("{:?} is not a valid server name", self.host))?;
        let conn = ClientConnection::new(self.config.clone(), name)?;
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .with_context(|| format!("cannot connect to {}:{}", self.host, self.port))?;
        Ok(StreamOwned::new(conn, tcp))
    }
}

fn write_head(
    out: &mut impl Write,
    method: &str,
    path: &str,
    host: &str,
    content_type: Option<&str>,
    len: u64,
) -> io::Result<()> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: zonevault-cli\r\n\
         connection: close\r\naccept: application/json\r\ncontent-length: {len}\r\n"
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("content-type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

fn read_reply(stream: &mut impl Read) -> Result<Reply> {
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers commonly close without close_notify after a full answer.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(anyhow!(e).context("reading the server's answer failed")),
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("the server's answer has no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("the server's answer has no status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Reply { status, json })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked encoding"))?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `https://host:port[/]` or `host:port` into its parts.
fn split_addr(addr: &str) -> Result<(String, u16)> {
    let rest = addr.strip_prefix("https://").unwrap_or(addr);
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("server address {addr:?} has no port"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow!("server address {addr:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split() {
        let ok = |s: &str| split_addr(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok("https://127.0.0.1:8443"), ("127.0.0.1".into(), 8443));
        assert_eq!(ok("localhost:1/"), ("localhost".into(), 1));
        assert!(split_addr("https://nohost").is_err());
    }

    #[test]
    fn replies_parse_plain_and_chunked() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n";
        let r = read_reply(&mut &plain[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.status, r.json["a"].as_i64()), (201, Some(1)));
        let chunked = b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:2}\r\n0\r\n\r\n";
        let r = read_reply(&mut &chunked[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.status, r.json["a"].as_i64()), (400, Some(2)));
        assert!(r.ok().is_err());
    }
}
