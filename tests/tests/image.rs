//! End to end: the appliance image (`images/build.sh`) booted under QEMU
//! with OVMF (UEFI measured boot) and a swtpm as the VM's TPM
//! (`images/run.sh`), used from the host over mTLS through the one
//! forwarded port, then upgraded: a one-byte config change must stop the
//! unseal and fail the old reference until k recovery shares reseal.
//!
//! It reuses the debug `zonevault` and `zonevault-launch` that `make test`
//! builds. Slow: a few minutes under TCG (each boot runs OVMF in software);
//! see images/README.md for timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::appliance::{
    free_port, graded_dataset_steps, s, zonevault_bin, zonevault_ok, PASSPHRASES,
};

/// Boots under software emulation on a loaded CI machine can be slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../images")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `images/build.sh` with the binaries under test; returns the reference.
fn build_image(out: &Path, revision: &str) -> serde_json::Value {
    let bin_dir = zonevault_bin().parent().unwrap().to_owned();
    let result = Command::new(images_dir().join("build.sh"))
        .args([
            "--bin-dir",
            s(&bin_dir),
            "--out",
            s(out),
            "--revision",
            revision,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run images/build.sh");
    assert!(
        result.status.success(),
        "images/build.sh: {}",
        text(&result)
    );
    let reference = std::fs::read_to_string(out.join("reference.json")).unwrap();
    serde_json::from_str(&reference).unwrap()
}

/// One boot of the image: `images/run.sh` in its own process group.
struct Vm {
    child: Option<Child>,
    console: PathBuf,
}

impl Vm {
    fn boot(work: &Path, port: u16, import: Option<&Path>, name: &str) -> Vm {
        let console = work.join(format!("console-{name}.log"));
        let mut command = Command::new("setsid");
        command
            .arg(images_dir().join("run.sh"))
            .args(["--image", s(&work.join("image"))])
            .args(["--data", s(&work.join("data.qcow2"))])
            .args(["--tpm-state", s(&work.join("tpm"))])
            .args(["--port", &port.to_string(), "--console", s(&console)]);
        if let Some(dir) = import {
            command.args(["--import", s(dir)]);
        }
        let log = std::fs::File::create(work.join(format!("run-{name}.log"))).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn images/run.sh");
        Vm {
            child: Some(child),
            console,
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Waits for the appliance to power off by itself.
    fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("the VM did not power off; console:\n{}", self.console());
    }

    /// Powers the VM off hard (SIGTERM to QEMU, swtpm and run.sh).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A host-side client of the appliance with the image's PKI.
struct Host {
    pki: PathBuf,
    addr: String,
    /// The AK pin `attest enroll` writes.
    pin: PathBuf,
}

impl Host {
    fn zonevault(&self, role: &str, args: &[&str]) -> Output {
        let file = |f: &str| self.pki.join(f);
        Command::new(zonevault_bin())
            .args(args)
            .env("ZONEVAULT_ADDR", &self.addr)
            .env("ZONEVAULT_CACERT", file("ca/cert.pem"))
            .env("ZONEVAULT_CLIENT_CERT", file(&format!("{role}/cert.pem")))
            .env("ZONEVAULT_CLIENT_KEY", file(&format!("{role}/key.pem")))
            .stdin(Stdio::null())
            .output()
            .expect("run zonevault")
    }

    fn ok(&self, role: &str, args: &[&str]) -> String {
        let out = self.zonevault(role, args);
        assert!(out.status.success(), "{role} {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `zonevault health` until the appliance answers over mTLS.
    fn wait_serving(&self, vm: &mut Vm) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while Instant::now() < deadline {
            if self.zonevault("operator", &["health"]).status.success() {
                return;
            }
            if let Some(status) = vm.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the VM stopped ({status}); console:\n{}", vm.console());
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        panic!("the appliance did not serve; console:\n{}", vm.console());
    }

    /// `attest verify` online against `reference`: its verdict line
    /// (PASS or FAIL), the whole output, and whether it exited 0.
    fn attest(&self, reference: &Path) -> (String, String, bool) {
        let out = self.attest_output(reference);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let verdict = stdout
            .lines()
            .find(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
            .unwrap_or_else(|| panic!("no verdict in: {}", text(&out)))
            .to_owned();
        (verdict, stdout, out.status.success())
    }

    fn attest_output(&self, reference: &Path) -> Output {
        self.zonevault(
            "regulator",
            &[
                "attest",
                "verify",
                "--reference",
                s(reference),
                "--ak-pin",
                s(&self.pin),
            ],
        )
    }

    /// `attest enroll`: the VM's EK certificate against the swtpm
    /// manufacturer CA that `run.sh` made, and the credential challenge.
    fn enroll(&self, ek_ca: &Path) {
        let out = self.zonevault(
            "regulator",
            &[
                "attest",
                "enroll",
                "--ek-ca",
                s(ek_ca),
                "--out",
                s(&self.pin),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("PASS"),
            "{}",
            text(&out)
        );
        assert!(stdout.contains("credential challenge"), "{stdout}");
    }
}

/// The operator imports a small sample, confirms it and grants carol three
/// columns; returns the grant id.
fn import_and_grant(host: &Host, work: &Path) -> String {
    let sample = work.join("sample.csv");
    zonevault_ok(&[
        "sample",
        "--rows",
        "200",
        "--seed",
        "7",
        "--out",
        s(&sample),
    ]);
    for args in graded_dataset_steps(s(&sample)) {
        host.ok("operator", &args);
    }
    let filing = file_and_acknowledge(host);
    let grant = host.ok(
        "operator",
        &[
            "grant",
            "create",
            "--filing",
            &filing,
            "--recipient",
            "spiffe://appliance.zonevault/analyst/partner-a/carol",
            "--dataset",
            "residents",
            "--columns",
            "id,name,amount",
            "--purpose",
            "credit model",
            "--row-limit",
            "1000",
            "--max-extracts",
            "5",
            "--expires",
            "2030-01-01T00:00:00Z",
        ],
    );
    grant.trim().to_owned()
}

/// The operator files the data use (extracts of three columns of
/// `residents` by partner-a), the regulator acknowledges it; its id.
fn file_and_acknowledge(host: &Host) -> String {
    let filing = host.ok(
        "operator",
        &[
            "filing",
            "create",
            "--scenario",
            "credit risk models",
            "--scope",
            "residents:id,name,amount",
            "--method",
            "both",
            "--recipients",
            "partner-a",
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ],
    );
    let filing = filing.trim().to_owned();
    host.ok(
        "regulator",
        &[
            "filing",
            "acknowledge",
            "--id",
            &filing,
            "--approve",
            "--reason",
            "scope is minimal",
        ],
    );
    filing
}

/// The analyst extracts under `grant`; the body, verified offline.
fn extract(host: &Host, work: &Path, grant: &str, name: &str) -> Vec<u8> {
    let out = work.join(format!("{name}.csv"));
    host.ok("analyst", &["extract", "--grant", grant, "--out", s(&out)]);
    let manifest = format!("{}.manifest", out.display());
    let key = host.ok("regulator", &["ledger", "key"]);
    host.ok(
        "analyst",
        &[
            "verify",
            "extract",
            "--manifest",
            &manifest,
            "--body",
            s(&out),
            "--key",
            key.trim(),
        ],
    );
    std::fs::read(&out).unwrap()
}

/// What the init read from the kernel once the server listened: only the
/// TLS port listens, the server cannot dump core and is not root, and the
/// root file system is read-only.
fn assert_hardened(vm: &Vm) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !vm
        .console()
        .contains("zonevault-appliance: root file system:")
    {
        assert!(Instant::now() < deadline, "no report:\n{}", vm.console());
        std::thread::sleep(Duration::from_millis(200));
    }
    let console = vm.console();
    let line = |prefix: &str| {
        let line = console
            .lines()
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest));
        line.unwrap_or_else(|| panic!("no {prefix} in:\n{console}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        line("zonevault-appliance: listening sockets: "),
        "tcp 0.0.0.0:8443"
    );
    assert_eq!(
        line("zonevault-appliance: server: "),
        "core file size limit 0 0 bytes, uid 990 990 990 990"
    );
    // Memory locked on fault: every resident page lies in a locked mapping,
    // and the locked mappings are counted whole (reserved space included).
    let memory = line("zonevault-appliance: server memory: ");
    let kib = |label: &str| -> u64 {
        let rest = memory.split_once(label).map(|(_, r)| r).unwrap_or_default();
        let value = rest.split_whitespace().next().unwrap_or_default();
        value
            .parse()
            .unwrap_or_else(|_| panic!("no {label} kB in {memory}"))
    };
    let (locked, resident) = (kib("locked "), kib("resident "));
    assert!(resident > 0 && locked >= resident, "{memory}");
    let root = line("zonevault-appliance: root file system: ");
    let options = root.split_whitespace().nth(3).unwrap_or_default();
    assert!(options.split(',').any(|o| o == "ro"), "{root}");
}

fn pcr<'a>(reference: &'a serde_json::Value, index: &str) -> &'a str {
    reference["pcrs"][index].as_str().unwrap()
}

/// Import directory for a recovery with shares 1 and 3.
fn recovery_import(work: &Path) -> PathBuf {
    let export = work.join("export");
    let out = Command::new(images_dir().join("export.sh"))
        .args([s(&work.join("data.qcow2")), s(&export)])
        .output()
        .unwrap();
    assert!(out.status.success(), "export.sh: {}", text(&out));
    let import = work.join("import-recover");
    std::fs::create_dir_all(import.join("recover")).unwrap();
    for share in ["share-1.json", "share-3.json"] {
        std::fs::copy(
            export.join("recovery").join(share),
            import.join("recover").join(share),
        )
        .unwrap();
    }
    let passphrases = format!("{}\n{}\n", PASSPHRASES[0], PASSPHRASES[2]);
    std::fs::write(import.join("recover/passphrases"), passphrases).unwrap();
    import
}

#[test]
fn the_appliance_image_boots_attests_serves_and_recovers_from_an_upgrade() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let image = work.join("image");
    let reference1 = build_image(&image, "1");
    let old_reference = work.join("reference-1.json");
    std::fs::copy(image.join("reference.json"), &old_reference).unwrap();
    let config1 = std::fs::read(image.join("root/etc/zonevault/config.toml")).unwrap();

    // First boot: init (passphrases imported, shares exported), then serve.
    let init = work.join("import-init");
    std::fs::create_dir_all(&init).unwrap();
    std::fs::write(init.join("passphrases"), PASSPHRASES.join("\n") + "\n").unwrap();
    let port = free_port();
    let host = Host {
        pki: image.join("pki"),
        addr: format!("https://127.0.0.1:{port}"),
        pin: work.join("ak-pin.json"),
    };
    let mut vm = Vm::boot(work, port, Some(&init), "first");
    host.wait_serving(&mut vm);
    assert!(vm.console().contains("first boot: initializing the vault"));
    assert_hardened(&vm);

    // The regulator enrolls the AK, then the VM's TPM reports exactly what
    // make image computed.
    host.enroll(&work.join("tpm/ek-ca-bundle.pem"));
    let (verdict, stdout, ok) = host.attest(&old_reference);
    assert!(ok && verdict.starts_with("PASS"), "{stdout}");
    for index in ["0", "2", "4", "7", "9", "11"] {
        let line = format!(
            "PCR {index:>2} = {} (matches the reference)",
            pcr(&reference1, index)
        );
        assert!(stdout.contains(&line), "{line} missing in:\n{stdout}");
    }

    // The operator imports, the analyst extracts.
    let grant = import_and_grant(&host, work);
    let first = extract(&host, work, &grant, "extract-1");
    assert_eq!(first.iter().filter(|b| **b == b'\n').count(), 201);
    vm.stop();

    // A later boot of the same image unseals and serves the same data.
    let mut vm = Vm::boot(work, port, None, "second");
    host.wait_serving(&mut vm);
    assert!(!vm.console().contains("initializing"));
    assert_eq!(extract(&host, work, &grant, "extract-2"), first);
    vm.stop();

    // One byte of configuration changed: PCRs 9 (initramfs) and 11 (launcher).
    let reference2 = build_image(&image, "2");
    let config2 = std::fs::read(image.join("root/etc/zonevault/config.toml")).unwrap();
    assert_eq!(config1.len(), config2.len());
    let differing = config1.iter().zip(&config2).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 1, "the rebuild changes exactly one config byte");
    for index in ["0", "2", "4", "7"] {
        assert_eq!(
            pcr(&reference1, index),
            pcr(&reference2, index),
            "PCR {index}"
        );
    }
    for index in ["9", "11"] {
        assert_ne!(
            pcr(&reference1, index),
            pcr(&reference2, index),
            "PCR {index}"
        );
    }

    // The upgraded image refuses to unseal, says which PCRs, and powers off.
    let mut vm = Vm::boot(work, port, None, "upgraded");
    let status = vm.wait_exit();
    assert!(status.success(), "run.sh: {status}");
    let console = vm.console();
    assert!(
        console.contains("refusing to unseal the master key")
            && console.contains("PCRs 9, 11 changed since the key was sealed"),
        "{console}"
    );
    assert!(
        !console.contains("zonevault serving mutual TLS"),
        "{console}"
    );

    // k = 2 of the 3 shares reseal to the new image; it serves the old data.
    let import = recovery_import(work);
    let mut vm = Vm::boot(work, port, Some(&import), "recovered");
    host.wait_serving(&mut vm);
    assert!(
        vm.console().contains("master key recovered from 2 shares"),
        "{}",
        vm.console()
    );
    assert_eq!(extract(&host, work, &grant, "extract-3"), first);

    // The old reference FAILs naming exactly PCRs 9 and 11; the new one PASSes.
    let (verdict, stdout, ok) = host.attest(&old_reference);
    assert!(!ok && verdict.starts_with("FAIL"), "{stdout}");
    let named: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- PCR "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(named, ["9", "11"], "{stdout}");
    let (verdict, stdout, ok) = host.attest(&image.join("reference.json"));
    assert!(ok && verdict.starts_with("PASS"), "{stdout}");
    vm.stop();
}
