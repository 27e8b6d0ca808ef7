//! `zonevault-launch` as PID 1 of the appliance image (`images/`).
//!
//! The boot, in order:
//! 1. mount /proc, /sys, /dev, securityfs and a tmpfs on /run; load the
//!    kernel modules listed in [`MODULE_LIST`] (virtio, ext4);
//! 2. configure the network (loopback and [`NIC`] with QEMU's user-mode
//!    guest address) and mount the data disk (serial [`DATA_SERIAL`],
//!    read-write, at [`DATA`]) and the import disk (serial
//!    [`IMPORT_SERIAL`], read-only, at [`IMPORT`]);
//! 3. copy the firmware's event log to `/data/export/firmware-events.bin`;
//!    a reference boot (`/import/reference-boot`) stops here;
//! 4. remount the root file system read-only and measure the `zonevault`
//!    binary and the configuration into the launcher PCR (once per boot);
//! 5. `zonevault init` on the first boot (shares to `/data/export/recovery`,
//!    passphrases from `/import/passphrases`), or `zonevault recover` when
//!    `/import/recover/` holds shares (imported files are handed to the
//!    service user through the tmpfs, never copied to the data disk);
//! 6. run `zonevault serve` as [`SERVICE_UID`], without core dumps, with
//!    its memory locked; once it listens, report what the kernel says of
//!    the running appliance (listening sockets, the server's core limit and
//!    user, the root mount); when it exits, report the status and power off.
//!
//! Everything the appliance says goes to the console (the serial port).

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use firmware::{harden, sysinit};

/// The server configuration inside the image.
pub const CONFIG: &str = "/etc/zonevault/config.toml";
/// The server binary inside the image.
pub const BINARY: &str = "/usr/bin/zonevault";
/// Kernel modules to load, one path per line, dependencies first.
pub const MODULE_LIST: &str = "/lib/modules/zonevault.load";
/// The server's TLS key: root's in the archive, handed to the service user.
pub const TLS_KEY: &str = "/etc/zonevault/tls/key.pem";
/// Where the data disk is mounted (the vault is `DATA/vault`).
pub const DATA: &str = "/data";
/// Where the import disk is mounted, read-only.
pub const IMPORT: &str = "/import";
/// A tmpfs (memory only) where imported secrets are handed to the service user.
pub const RUN: &str = "/run";
/// The virtio serial of the data disk.
pub const DATA_SERIAL: &str = "zv-data";
/// The virtio serial of the import disk.
pub const IMPORT_SERIAL: &str = "zv-import";
/// The network interface and its address (QEMU user networking).
pub const NIC: (&str, Ipv4Addr, u8) = ("eth0", Ipv4Addr::new(10, 0, 2, 15), 24);
/// The unprivileged user and group the server runs as (std's `uid` drops
/// the supplementary groups when root changes user).
pub const SERVICE_UID: u32 = 990;
/// The TPM device (resource manager) the server uses.
pub const TPM_DEVICE: &str = "/dev/tpmrm0";
/// PCRs the master key is sealed to at first boot: firmware code (0),
/// option ROMs (2), the kernel as OVMF loaded it (4), Secure Boot policy
/// (7), the kernel command line and the initramfs as the kernel's EFI stub
/// measured them (9: this launcher, the libraries, modules, TLS material,
/// and again the binary and config), and the launcher's measurement of the
/// binary and config (11).
pub const SEAL_PCRS: &str = "0,2,4,7,9,11";
/// How long devices may take to appear after their modules load.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(30);

fn say(message: &str) {
    // Not `eprintln!`, which panics when the console cannot be written; a
    // panic here would take down the machine's init.
    let _ = writeln!(std::io::stderr().lock(), "zonevault-appliance: {message}");
}

/// Boots the appliance; never returns (the machine powers off).
pub fn main(measure: fn(&Path, &Path) -> Result<PathBuf>) -> ! {
    match boot(measure) {
        Ok(()) => say("stopped"),
        Err(err) => say(&format!("error: {err:#}")),
    }
    shutdown()
}

fn shutdown() -> ! {
    for target in [IMPORT, DATA] {
        let _ = sysinit::unmount(Path::new(target));
    }
    say("powering off");
    let err = sysinit::power_off();
    say(&format!("power off failed: {err}"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn boot(measure: fn(&Path, &Path) -> Result<PathBuf>) -> Result<()> {
    harden::no_core_dumps().context("cannot disable core dumps")?;
    mount_kernel_filesystems()?;
    load_modules()?;
    network()?;
    mount_disks()?;
    export_firmware_log()?;
    if Path::new(IMPORT).join("reference-boot").exists() {
        say("reference boot: firmware event log exported");
        return Ok(());
    }
    chown(TLS_KEY, Some(SERVICE_UID), Some(SERVICE_UID))
        .with_context(|| format!("cannot chown {TLS_KEY}"))?;
    sysinit::remount_read_only(Path::new("/"), 0).context("cannot remount / read-only")?;
    measure(Path::new(BINARY), Path::new(CONFIG))?;
    prepare_service()?;
    if !vault().join("sealed").exists() {
        initialize()?;
    }
    let recover = Path::new(IMPORT).join("recover");
    if recover.is_dir() {
        recover_with(&recover)?;
    }
    serve()
}

fn mount_kernel_filesystems() -> Result<()> {
    let nodev = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    for (source, target, fstype, flags) in [
        ("proc", "/proc", "proc", nodev),
        ("sysfs", "/sys", "sysfs", nodev),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            libc::MS_NOSUID | libc::MS_NOEXEC,
        ),
        ("securityfs", "/sys/kernel/security", "securityfs", nodev),
        ("tmpfs", RUN, "tmpfs", nodev),
    ] {
        sysinit::mount(source, Path::new(target), fstype, flags)
            .with_context(|| format!("cannot mount {fstype} on {target}"))?;
    }
    Ok(())
}

fn load_modules() -> Result<()> {
    let list = std::fs::read_to_string(MODULE_LIST)
        .with_context(|| format!("cannot read {MODULE_LIST}"))?;
    for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        sysinit::load_module(Path::new(line))
            .with_context(|| format!("cannot load kernel module {line}"))?;
    }
    Ok(())
}

fn wait_for(path: &Path) -> Result<()> {
    let deadline = Instant::now() + DEVICE_TIMEOUT;
    while !path.exists() {
        if Instant::now() > deadline {
            bail!(
                "{} did not appear within {DEVICE_TIMEOUT:?}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn network() -> Result<()> {
    sysinit::interface_up("lo", Some((Ipv4Addr::LOCALHOST, 8))).context("cannot bring up lo")?;
    let (name, addr, prefix) = NIC;
    wait_for(&Path::new("/sys/class/net").join(name))?;
    sysinit::interface_up(name, Some((addr, prefix)))
        .with_context(|| format!("cannot configure {name}"))
}

/// The block device whose virtio serial is `serial`.
fn disk_with_serial(serial: &str) -> Result<PathBuf> {
    let deadline = Instant::now() + DEVICE_TIMEOUT;
    loop {
        for entry in std::fs::read_dir("/sys/block").context("cannot list /sys/block")? {
            let entry = entry.context("cannot list /sys/block")?;
            let found = std::fs::read_to_string(entry.path().join("serial")).unwrap_or_default();
            let dev = Path::new("/dev").join(entry.file_name());
            if found.trim() == serial && dev.exists() {
                return Ok(dev);
            }
        }
        if Instant::now() > deadline {
            bail!("no disk with serial {serial} appeared within {DEVICE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mount_disks() -> Result<()> {
    let data = disk_with_serial(DATA_SERIAL)?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    sysinit::mount(&data.to_string_lossy(), Path::new(DATA), "ext4", flags)
        .with_context(|| format!("cannot mount the data disk {}", data.display()))?;
    let import = disk_with_serial(IMPORT_SERIAL)?;
    sysinit::mount(
        &import.to_string_lossy(),
        Path::new(IMPORT),
        "ext4",
        flags | libc::MS_RDONLY,
    )
    .with_context(|| format!("cannot mount the import disk {}", import.display()))
}

fn export_dir() -> PathBuf {
    Path::new(DATA).join("export")
}

fn vault() -> PathBuf {
    Path::new(DATA).join("vault")
}

fn export_firmware_log() -> Result<()> {
    let log = Path::new("/sys/kernel/security/tpm0/binary_bios_measurements");
    let out = export_dir().join("firmware-events.bin");
    std::fs::create_dir_all(export_dir()).context("cannot create /data/export")?;
    let bytes = std::fs::read(log).with_context(|| format!("cannot read {}", log.display()))?;
    std::fs::write(&out, bytes).with_context(|| format!("cannot write {}", out.display()))
}

/// The vault and the export area belong to the service user, as does the
/// TPM; unlimited memory locking lets it `mlockall` unprivileged.
fn prepare_service() -> Result<()> {
    let own = |path: &Path| {
        chown(path, Some(SERVICE_UID), Some(SERVICE_UID))
            .with_context(|| format!("cannot chown {}", path.display()))
    };
    std::fs::create_dir_all(vault()).context("cannot create the vault directory")?;
    for path in [vault(), export_dir(), PathBuf::from(TPM_DEVICE)] {
        own(&path)?;
    }
    let log = attest::eventlog::path_for(&vault());
    own(&log)?;
    sysinit::unlimited_memory_lock().context("cannot raise RLIMIT_MEMLOCK")
}

fn zonevault(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .env("TSS2_LOG", "all+none")
        .stdin(Stdio::null())
        .uid(SERVICE_UID)
        .gid(SERVICE_UID);
    command
}

fn run_to_end(what: &str, mut command: Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start zonevault {what}"))?;
    if !status.success() {
        bail!("zonevault {what} failed ({status})");
    }
    Ok(())
}

fn tpm_args() -> [String; 4] {
    [
        "--data-dir".into(),
        vault().to_string_lossy().into_owned(),
        "--tpm".into(),
        format!("device:{TPM_DEVICE}"),
    ]
}

/// Copies the regular files of `dir` (on the import disk, owned by whoever
/// made it) into a fresh directory on the tmpfs [`RUN`] that only the
/// service user can read, so secrets never touch the data disk.
fn hand_over(dir: &Path) -> Result<PathBuf> {
    let target = Path::new(RUN).join("handover");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir(&target).context("cannot create the hand-over directory")?;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_file() {
            let copy = target.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &copy)
                .with_context(|| format!("cannot copy {}", path.display()))?;
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o400))?;
            chown(&copy, Some(SERVICE_UID), Some(SERVICE_UID))?;
        }
    }
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o500))?;
    chown(&target, Some(SERVICE_UID), Some(SERVICE_UID))?;
    Ok(target)
}

fn initialize() -> Result<()> {
    let passphrases = hand_over(Path::new(IMPORT))?.join("passphrases");
    let shares = export_dir().join("recovery");
    say("first boot: initializing the vault");
    let mut args: Vec<String> = vec!["init".into()];
    args.extend(tpm_args());
    for flag in [
        ["--pcrs", SEAL_PCRS],
        ["--recovery-shares", "3"],
        ["--recovery-threshold", "2"],
        ["--recovery-out", &shares.to_string_lossy()],
        ["--recovery-passphrases", &passphrases.to_string_lossy()],
    ] {
        args.extend(flag.map(String::from));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = run_to_end("init", zonevault(&args));
    let _ = std::fs::remove_dir_all(Path::new(RUN).join("handover"));
    result
}

fn recover_with(dir: &Path) -> Result<()> {
    say("recovery requested: resealing the master key with the imported shares");
    let dir = &hand_over(dir)?;
    let mut shares: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    shares.sort();
    let mut args: Vec<String> = vec!["recover".into()];
    args.extend(tpm_args());
    for share in &shares {
        args.extend(["--share".into(), share.to_string_lossy().into_owned()]);
    }
    let passphrases = dir.join("passphrases");
    args.extend([
        "--recovery-passphrases".into(),
        passphrases.to_string_lossy().into_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = run_to_end("recover", zonevault(&args));
    let _ = std::fs::remove_dir_all(dir);
    result
}

fn serve() -> Result<()> {
    say("starting zonevault serve");
    let mut command = zonevault(&["serve", "--config", CONFIG]);
    command.env(harden::LOCK_MEMORY_ENV, "1");
    let mut child = command.spawn().context("cannot start zonevault serve")?;
    let pid = child.id();
    std::thread::spawn(move || report_when_listening(pid));
    let status = child.wait().context("cannot wait for zonevault serve")?;
    if !status.success() {
        bail!("zonevault serve failed ({status})");
    }
    Ok(())
}

/// Once the server listens, says what is true of the running appliance,
/// read from the kernel: every listening socket, the server's core-dump
/// limit and user, its locked and resident memory, and whether the root
/// file system is read-only.
fn report_when_listening(pid: u32) {
    let deadline = Instant::now() + DEVICE_TIMEOUT * 4;
    let mut listening = listeners();
    while listening.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        listening = listeners();
    }
    let proc_file =
        |name: &str| std::fs::read_to_string(format!("/proc/{pid}/{name}")).unwrap_or_default();
    let line_of = |text: &str, prefix: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default();
        line[prefix.len().min(line.len())..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    say(&format!("listening sockets: {}", listening.join(", ")));
    say(&format!(
        "server: core file size limit {}, uid {}",
        line_of(&proc_file("limits"), "Max core file size"),
        line_of(&proc_file("status"), "Uid:")
    ));
    say(&format!(
        "server memory: locked {}, resident {}",
        line_of(&proc_file("status"), "VmLck:"),
        line_of(&proc_file("status"), "VmRSS:")
    ));
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"));
    say(&format!(
        "root file system: {}",
        root.unwrap_or("not found")
    ));
}

/// TCP sockets in LISTEN and every bound UDP socket, IPv4 and IPv6, as
/// `proto address:port` (from /proc/net).
fn listeners() -> Vec<String> {
    let mut found = Vec::new();
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/net/{proto}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            if proto.starts_with("tcp") && *state != "0A" {
                continue;
            }
            found.push(format!("{proto} {}", socket_address(local)));
        }
    }
    found
}

/// `0100007F:1F90` (address words in host byte order, port in hex) as
/// `127.0.0.1:8080`; IPv6 as its eight groups.
fn socket_address(hex: &str) -> String {
    let (addr, port) = hex.split_once(':').unwrap_or((hex, "0"));
    let port = u16::from_str_radix(port, 16).unwrap_or(0);
    let bytes: Vec<u8> = (0..addr.len() / 8)
        .filter_map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok())
        .flat_map(u32::to_ne_bytes)
        .collect();
    match bytes.len() {
        4 => format!(
            "{}:{port}",
            Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
        ),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes);
            format!("[{}]:{port}", std::net::Ipv6Addr::from(octets))
        }
        _ => hex.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_are_decoded() {
        if cfg!(target_endian = "little") {
            assert_eq!(socket_address("0100007F:1F90"), "127.0.0.1:8080");
        }
        assert_eq!(socket_address("00000000:20FB"), "0.0.0.0:8443");
        assert_eq!(
            socket_address("00000000000000000000000000000000:0016"),
            "[::]:22"
        );
    }
}
