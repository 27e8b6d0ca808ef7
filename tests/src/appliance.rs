//! A whole appliance for end-to-end tests: the real `zonevault` binary, its
//! own swtpm, a demo PKI, a data directory and, on demand, a running mTLS
//! server on a free loopback port. Everything lives in one temporary
//! directory and every process is stopped when the [`Appliance`] drops.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::Swtpm;

/// The trust domain of the test PKI.
pub const TRUST_DOMAIN: &str = "test.zonevault";
/// Passphrases of the three test custodians, one per line.
pub const PASSPHRASES: [&str; 3] = [
    "first-custodian-secret",
    "second-custodian-secret",
    "third-custodian-secret",
];

/// The `zonevault` binary under test: `$ZONEVAULT_BIN`, or the workspace's
/// debug build (run `cargo build` first; `make test` does).
pub fn zonevault_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ZONEVAULT_BIN") {
        return PathBuf::from(bin);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target.join("debug").join("zonevault");
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build --bins)",
        bin.display()
    );
    bin
}

/// The measured launcher, `zonevault-launch`, next to [`zonevault_bin`].
pub fn launcher_bin() -> PathBuf {
    let bin = zonevault_bin().with_file_name("zonevault-launch");
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build --bins)",
        bin.display()
    );
    bin
}

/// Runs `zonevault ARGS` to completion.
pub fn zonevault(args: &[&str]) -> Output {
    Command::new(zonevault_bin())
        .args(args)
        .env("TSS2_LOG", "all+none")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run zonevault: {e}"))
}

/// `zonevault pki issue`: a client certificate for `role`, `org` and
/// `person` from the CA in `ca`, written to `out`.
pub fn issue_client_cert(ca: &Path, role: &str, org: &str, person: &str, out: &Path) {
    zonevault_ok(&[
        "pki",
        "issue",
        "--ca",
        s(ca),
        "--role",
        role,
        "--org",
        org,
        "--person",
        person,
        "--out",
        s(out),
    ]);
}

/// Runs `zonevault ARGS` and panics with its output unless it succeeded.
pub fn zonevault_ok(args: &[&str]) -> String {
    let out = zonevault(args);
    assert!(
        out.status.success(),
        "zonevault {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Every file under `dir` with its bytes, for byte-identical comparisons.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                files.insert(path.strip_prefix(dir).expect("prefix").to_owned(), bytes);
            }
        }
    }
    files
}

/// Does any file under `dir` contain `needle`?
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    snapshot(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(path, _)| path)
        .collect()
}

/// One appliance under test.
pub struct Appliance {
    /// The temporary directory holding everything.
    pub dir: tempfile::TempDir,
    /// Its TPM.
    pub tpm: Swtpm,
    server: Option<Child>,
    port: u16,
}

impl Appliance {
    /// A fresh TPM and a demo PKI with one certificate per role; not initialized.
    pub fn new() -> Appliance {
        Appliance::with_tpm(Swtpm::start)
    }

    /// As [`Appliance::new`], with a TPM manufactured with an EK certificate
    /// by swtpm's local CA ([`Swtpm::start_with_ek_cert`]).
    pub fn with_ek_cert() -> Appliance {
        Appliance::with_tpm(Swtpm::start_with_ek_cert)
    }

    fn with_tpm(start: fn(&Path) -> Swtpm) -> Appliance {
        let dir = tempfile::tempdir().expect("tempdir");
        let tpm = start(&dir.path().join("tpm-state"));
        let app = Appliance {
            dir,
            tpm,
            server: None,
            port: 0,
        };
        app.make_pki();
        std::fs::write(app.passphrase_file(), PASSPHRASES.join("\n") + "\n").expect("write");
        app
    }

    fn make_pki(&self) {
        let ca = self.path("pki/ca");
        zonevault_ok(&[
            "pki",
            "init-ca",
            "--out",
            s(&ca),
            "--trust-domain",
            TRUST_DOMAIN,
        ]);
        let server = self.path("pki/server");
        zonevault_ok(&[
            "pki",
            "issue-server",
            "--ca",
            s(&ca),
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--out",
            s(&server),
        ]);
        for (role, org, person) in [
            ("operator", "zone-op", "alice"),
            ("regulator", "bjeit", "bob"),
            ("provider", "bureau-x", "dave"),
            ("analyst", "partner-a", "carol"),
        ] {
            let out = self.path(&format!("pki/{role}"));
            issue_client_cert(&ca, role, org, person, &out);
        }
    }

    /// A path inside the appliance's temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// The file holding the custodians' passphrases.
    pub fn passphrase_file(&self) -> PathBuf {
        self.path("passphrases.txt")
    }

    /// `zonevault init` with 3 shares, threshold 2, sealed to `pcrs`.
    pub fn init(&self, pcrs: &str) -> String {
        zonevault_ok(
            &self
                .init_args(pcrs)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    }

    /// The arguments of [`Appliance::init`], for tests that vary them.
    pub fn init_args(&self, pcrs: &str) -> Vec<String> {
        [
            "init",
            "--data-dir",
            s(&self.data_dir()),
            "--tpm",
            &self.tpm.tcti(),
            "--pcrs",
            pcrs,
            "--recovery-shares",
            "3",
            "--recovery-threshold",
            "2",
            "--recovery-out",
            s(&self.path("recovery")),
            "--recovery-passphrases",
            s(&self.passphrase_file()),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    }

    /// Writes the server configuration for `port` and returns its path.
    pub fn write_config(&self, port: u16, extra: &str) -> PathBuf {
        self.write_config_tls(port, extra, "")
    }

    /// Like [`Appliance::write_config`], with `tls_extra` lines (each
    /// ending in a newline) at the end of its `[tls]` table, e.g.
    /// `crl = "pki/crl.pem"\n`; with none, the file is the same.
    pub fn write_config_tls(&self, port: u16, extra: &str, tls_extra: &str) -> PathBuf {
        let config = format!(
            "data_dir = \"data\"\ntpm = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\
             trust_domain = \"{TRUST_DOMAIN}\"\n{extra}\n[tls]\ncert = \"pki/server/cert.pem\"\n\
             key = \"pki/server/key.pem\"\nclient_ca = \"pki/ca/cert.pem\"\n{tls_extra}",
            self.tpm.tcti()
        );
        let path = self.path("config.toml");
        std::fs::write(&path, config).expect("write config");
        path
    }

    /// Starts `zonevault serve` and waits until it accepts connections.
    /// Returns its output instead if it exits first.
    pub fn start_server(&mut self) -> Result<u16, Output> {
        self.start_server_with("")
    }

    /// Like [`Appliance::start_server`], with `extra` lines in the
    /// configuration (before its `[tls]` table, e.g. another table).
    pub fn start_server_with(&mut self, extra: &str) -> Result<u16, Output> {
        self.start_server_tls(extra, "")
    }

    /// Like [`Appliance::start_server_with`], with `tls_extra` lines in the
    /// `[tls]` table too (e.g. `crl = "pki/crl.pem"`, relative to the
    /// appliance's directory).
    pub fn start_server_tls(&mut self, extra: &str, tls_extra: &str) -> Result<u16, Output> {
        self.port = free_port();
        let config = self.write_config_tls(self.port, extra, tls_extra);
        let child = serve_command(&config)
            .stderr(self.server_log())
            .spawn()
            .expect("spawn zonevault serve");
        self.server = Some(child);
        self.wait_listening()
    }

    /// Like [`Appliance::start_server`], with the server's stderr a pipe
    /// read here until the server says it serves; the pipe's read end is
    /// returned, so a test can close it and leave the server a log that
    /// cannot be written.
    pub fn start_server_stderr_piped(&mut self) -> BufReader<ChildStderr> {
        self.port = free_port();
        let config = self.write_config(self.port, "");
        let mut child = serve_command(&config)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn zonevault serve");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        self.server = Some(child);
        let mut log = String::new();
        while !log.contains(SERVING_LOG_LINE) {
            let read = stderr
                .read_line(&mut log)
                .expect("read the server's stderr");
            assert!(read > 0, "zonevault serve exited before serving:\n{log}");
        }
        stderr
    }

    /// Starts the server through the measured launcher (`zonevault-launch
    /// run`, next to the `zonevault` binary) with the configuration for
    /// `port` (the configuration is measured: keep the port to keep the
    /// measurement), and waits as [`Appliance::start_server`] does.
    pub fn start_launched(&mut self, port: u16, extra_config: &str) -> Result<u16, Output> {
        self.port = port;
        let config = self.write_config(self.port, extra_config);
        let child = Command::new(launcher_bin())
            .args(["run", "--config", s(&config), "--binary"])
            .arg(zonevault_bin())
            .env("TSS2_LOG", "all+none")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.server_log())
            .spawn()
            .expect("spawn zonevault-launch run");
        self.server = Some(child);
        self.wait_listening()
    }

    /// The server's stderr goes to `server.log` (new at each start), so a
    /// chatty server never blocks on a full pipe.
    fn server_log(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.path("server.log"))
            .map(Stdio::from)
            .expect("open server.log")
    }

    /// Waits for the server's log to say it serves (it logs that once it
    /// listens), rather than probing the port: a probe would be a refused
    /// handshake in its metrics.
    fn wait_listening(&mut self) -> Result<u16, Output> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let child = self.server.as_mut().expect("server started");
            if child.try_wait().expect("try_wait").is_some() {
                let child = self.server.take().expect("server");
                let mut out = child.wait_with_output().expect("output");
                out.stderr = std::fs::read(self.path("server.log")).unwrap_or_default();
                return Err(out);
            }
            if is_serving(&self.path("server.log")) {
                return Ok(self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "zonevault serve did not listen on port {} within 30 s",
            self.port
        );
    }

    /// Stops the server (SIGKILL when `kill9`, else SIGTERM) and waits.
    pub fn stop_server(&mut self, kill9: bool) {
        if let Some(mut child) = self.server.take() {
            let signal = if kill9 { libc::SIGKILL } else { libc::SIGTERM };
            // unsafe code is forbidden in the workspace, so kill(1) sends it.
            send_signal(child.id(), signal);
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the running server.
    pub fn signal_server(&self, signal: i32) {
        let child = self.server.as_ref().expect("server running");
        send_signal(child.id(), signal);
    }

    /// `curl` as `role` (a directory under pki/) to `path`; returns
    /// (HTTP status, body). Status 0 means the connection or handshake failed.
    pub fn curl(&self, role: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let url = format!("https://127.0.0.1:{}{path}", self.port);
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .args(["--cacert", s(&self.path("pki/ca/cert.pem"))]);
        if role != "none" {
            cmd.args(["--cert", s(&self.path(&format!("pki/{role}/cert.pem")))])
                .args(["--key", s(&self.path(&format!("pki/{role}/key.pem")))]);
        }
        if let Some(body) = body {
            cmd.args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                body,
            ]);
        }
        let out = cmd.arg(url).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
}

impl Appliance {
    /// The running server's address, `https://127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Points the client helpers at a server of this appliance that the
    /// caller started itself (the benchmark does, to know its PID).
    pub fn serving_on(&mut self, port: u16) {
        self.port = port;
    }

    /// The `ZONEVAULT_*` client variables for `role` (a directory under pki/).
    pub fn client_env(&self, role: &str) -> Vec<(&'static str, String)> {
        let file = |f: &str| s(&self.path(&format!("pki/{f}"))).to_owned();
        vec![
            ("ZONEVAULT_ADDR", self.addr()),
            ("ZONEVAULT_CACERT", file("ca/cert.pem")),
            ("ZONEVAULT_CLIENT_CERT", file(&format!("{role}/cert.pem"))),
            ("ZONEVAULT_CLIENT_KEY", file(&format!("{role}/key.pem"))),
        ]
    }

    /// Runs the client command `zonevault ARGS` as `role`, configured
    /// through the `ZONEVAULT_*` variables.
    pub fn zonevault_as(&self, role: &str, args: &[&str]) -> Output {
        Command::new(zonevault_bin())
            .args(args)
            .envs(self.client_env(role))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run zonevault: {e}"))
    }

    /// A client command as the operator that must succeed; its stdout.
    pub fn operator_ok(&self, args: &[&str]) -> String {
        let out = self.zonevault_as("operator", args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A serving appliance with dataset `residents` (2000 sample rows,
    /// seed 7, `registered` graded core) in zone `finance`, partner-a in
    /// tier 2 with data access, product and scenario authorization, and an
    /// acknowledged filing of `residents` for it ([`Appliance::filing_id`]);
    /// also the path of the sample file.
    pub fn serving_graded_dataset() -> (Appliance, PathBuf) {
        let mut app = Appliance::new();
        app.init("0,2,4,7");
        app.start_server().expect("server starts");
        let sample = app.path("sample.csv");
        zonevault_ok(&[
            "sample",
            "--rows",
            "2000",
            "--seed",
            "7",
            "--out",
            s(&sample),
        ]);
        for args in graded_dataset_steps(s(&sample)) {
            app.operator_ok(&args);
        }
        app.file_graded_filing();
        (app, sample)
    }

    /// Files and has the regulator acknowledge the data-use filing every
    /// grant on `residents` is made under: all its columns, extracts and
    /// aggregates, recipient partner-a. Its id is kept in `filing.id`
    /// ([`Appliance::filing_id`]).
    fn file_graded_filing(&self) {
        let scope = "residents:id,name,resident_id,mobile,bank_card,address,amount,registered";
        let id = self.acknowledged_filing("credit risk models", scope, "both");
        std::fs::write(self.path("filing.id"), id).expect("write filing.id");
    }

    /// The operator files a data-use filing of `scope` (`dataset:col,col…`)
    /// by `method` (extract, aggregate or both) for partner-a, 2020 to
    /// 2100, and the zone's regulator acknowledges it; its id.
    pub fn acknowledged_filing(&self, scenario: &str, scope: &str, method: &str) -> String {
        let id = self.operator_ok(&[
            "filing",
            "create",
            "--scenario",
            scenario,
            "--scope",
            scope,
            "--method",
            method,
            "--recipients",
            "partner-a",
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ]);
        let id = id.trim().to_owned();
        let out = self.zonevault_as(
            "regulator",
            &[
                "filing",
                "acknowledge",
                "--id",
                &id,
                "--approve",
                "--reason",
                "scope is minimal",
            ],
        );
        assert!(
            out.status.success(),
            "filing acknowledge: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        id
    }

    /// The acknowledged filing of [`Appliance::serving_graded_dataset`],
    /// which a grant on `residents` must name (`"filing"`).
    pub fn filing_id(&self) -> String {
        std::fs::read_to_string(self.path("filing.id")).expect("serving_graded_dataset filed one")
    }

    /// A `curl` caller as `role` bound to the current server; `Send`, so
    /// threads can use it while the test holds the appliance.
    pub fn curl_as(&self, role: &str) -> Curl {
        Curl {
            base: self.addr(),
            cacert: self.path("pki/ca/cert.pem"),
            cert: self.path(&format!("pki/{role}/cert.pem")),
            key: self.path(&format!("pki/{role}/key.pem")),
        }
    }

    /// Every ledger entry, fetched as the regulator (`GET /v1/ledger/entries`).
    pub fn ledger_entries(&self) -> Vec<serde_json::Value> {
        let reply = self.curl_full("regulator", "GET", "/v1/ledger/entries", None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply
            .body
            .lines()
            .map(|l| serde_json::from_str(l).expect("a ledger entry is JSON"))
            .collect()
    }

    /// Like [`Appliance::curl`], with the response headers.
    pub fn curl_full(&self, role: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.curl_as(role).send(method, path, body)
    }
}

/// `curl` with a client certificate against one server.
#[derive(Debug, Clone)]
pub struct Curl {
    base: String,
    cacert: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A response seen by [`Curl`]; status 0 when no HTTP response arrived.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The `zonevault-ledger-index` receipt.
    pub fn ledger_index(&self) -> Option<u64> {
        self.headers.get("zonevault-ledger-index")?.parse().ok()
    }
}

impl Curl {
    /// One request; never panics on a refused or cut connection.
    pub fn send(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-i", "--http1.1", "-X", method])
            .args(["--cacert", s(&self.cacert)])
            .args(["--cert", s(&self.cert), "--key", s(&self.key)]);
        if let Some(body) = body {
            cmd.args(["-H", "content-type: application/json"])
                .args(["--data-binary", body]);
        }
        let out = cmd
            .arg(format!("{}{path}", self.base))
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        parse_reply(&String::from_utf8_lossy(&out.stdout))
    }
}

fn parse_reply(text: &str) -> Reply {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Reply {
            status: 0,
            headers: BTreeMap::new(),
            body: text.to_owned(),
        };
    };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

impl Default for Appliance {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.stop_server(true);
    }
}

fn send_signal(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A path as `&str` (test paths are always UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// What `zonevault serve` logs once it listens (`api/src/commands/serve.rs`).
pub const SERVING_LOG_LINE: &str = "zonevault serving mutual TLS";

/// Whether the server log at `path` says the server listens.
pub fn is_serving(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|log| log.contains(SERVING_LOG_LINE))
}

/// `zonevault serve --config CONFIG`, stdin and stdout closed; the caller
/// chooses where stderr goes.
fn serve_command(config: &Path) -> Command {
    let mut cmd = Command::new(zonevault_bin());
    cmd.args(["serve", "--config", s(config)])
        .env("TSS2_LOG", "all+none")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// The operator's CLI steps that make the graded dataset of
/// [`Appliance::serving_graded_dataset`] from the sample file at `sample`:
/// zone `finance`, dataset `residents` imported and confirmed with
/// `registered` graded core, partner-a in tier 2 with data access, product
/// and scenario authorization.
pub fn graded_dataset_steps(sample: &str) -> [Vec<&str>; 5] {
    [
        vec![
            "zone", "create", "--id", "finance", "--name", "金融", "--kind", "sectoral",
            "--domain", "finance",
        ],
        create_dataset_args("residents").to_vec(),
        vec![
            "dataset",
            "import",
            "--zone",
            "finance",
            "--id",
            "residents",
            "--file",
            sample,
        ],
        vec![
            "dataset",
            "confirm",
            "--id",
            "residents",
            "--column",
            "registered::core",
        ],
        PARTNER_A_TIER_2.to_vec(),
    ]
}

/// The operator's CLI arguments that create the empty dataset `id` in
/// zone `finance` (operator's own data, retained 365 days).
pub fn create_dataset_args(id: &str) -> [&str; 14] {
    [
        "dataset",
        "create",
        "--zone",
        "finance",
        "--id",
        id,
        "--title",
        "t",
        "--provider",
        "p",
        "--source",
        "operator-own",
        "--retention",
        "365d",
    ]
}

/// The operator's CLI arguments that put partner-a in tier 2 with data
/// access, product and scenario authorization.
pub const PARTNER_A_TIER_2: [&str; 9] = [
    "partner",
    "set",
    "--org",
    "partner-a",
    "--tier",
    "2",
    "--data-access",
    "--product-authorization",
    "--scenario-authorization",
];
