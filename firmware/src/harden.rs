//! Platform hardening: no core dumps, memory locked where permitted, a
//! bounded address space for the server's parser processes, and the
//! unprivileged user the server runs as.
//!
//! This is the one module of the workspace that contains `unsafe` code
//! (`#![allow(unsafe_code)]` here only; the crate denies it elsewhere): the
//! libc calls `setrlimit`, `prctl`, `geteuid`, `getrlimit` and `mlockall`,
//! each block with a `// SAFETY:` comment. Privileges are dropped by
//! `std::os::unix::process::CommandExt::{uid, gid}` at exec, which also
//! clears the supplementary groups; no unsafe code is needed for that.
//!
//! `RLIMIT_CORE` survives `execve`, so the launcher sets it for the server.
//! `PR_SET_DUMPABLE` and memory locks do not (execve resets the one and
//! drops the other), so the server applies [`in_server`] itself at start.
#![allow(unsafe_code)]

use std::io;
use std::path::Path;

/// Set by the launcher for the server it execs: lock memory at start.
pub const LOCK_MEMORY_ENV: &str = "ZONEVAULT_LOCK_MEMORY";

/// At most `bytes` of address space (`RLIMIT_AS`, soft and hard): an
/// allocation beyond fails, and the process aborts instead of exhausting
/// the machine's memory.
pub fn limit_address_space(bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: `limit` is a valid, initialized rlimit that outlives the call;
    // setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// No core dumps: `RLIMIT_CORE` 0 (soft and hard) and `PR_SET_DUMPABLE` 0.
pub fn no_core_dumps() -> io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid, initialized rlimit that outlives the call;
    // setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: PR_SET_DUMPABLE takes one integer argument and no pointers;
    // the unused arguments are passed as zero as prctl(2) asks.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Is `mlockall` of all present and future memory permitted without
/// risking failed allocations: running as root (CAP_IPC_LOCK), or an
/// unlimited `RLIMIT_MEMLOCK`?
pub fn memory_lock_permitted() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit the call writes into; it outlives the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
    ok && limit.rlim_cur == libc::RLIM_INFINITY
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)` if permitted;
/// `Ok(false)` if not.
///
/// `MCL_ONFAULT` locks each page when it is first touched rather than
/// populating every mapping at once: a page that ever holds data is locked
/// all the same, while address space that is only reserved (each thread's
/// stack, an allocator's arenas) costs no memory. Without it the kernel
/// faults in every mapping in full at once (an allocator that reserves its
/// arenas up front, as mimalloc does, then no longer fits the appliance's
/// 512 MiB VM).
pub fn lock_memory() -> io::Result<bool> {
    if !memory_lock_permitted() {
        return Ok(false);
    }
    let flags = libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT;
    // SAFETY: mlockall takes flags only and touches no Rust-visible memory.
    if unsafe { libc::mlockall(flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

/// What the server applies to itself at start: no core dumps always, and
/// locked memory when the launcher asked for it ([`LOCK_MEMORY_ENV`]).
/// Returns whether memory is locked.
pub fn in_server() -> io::Result<bool> {
    no_core_dumps()?;
    if std::env::var_os(LOCK_MEMORY_ENV).is_some() {
        lock_memory()
    } else {
        Ok(false)
    }
}

/// A user's uid and primary gid from a passwd(5) file.
pub fn lookup_user(passwd: &Path, name: &str) -> io::Result<Option<(u32, u32)>> {
    let text = std::fs::read_to_string(passwd)?;
    Ok(text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields[..] {
            [user, _, uid, gid, ..] if user == name => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    }))
}

/// Is this process running as root?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_in_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nzv:x:990:985::/var/lib/zv:/usr/sbin/nologin\n",
        )
        .unwrap();
        assert_eq!(lookup_user(&passwd, "zv").unwrap(), Some((990, 985)));
        assert_eq!(lookup_user(&passwd, "nobody").unwrap(), None);
    }

    #[test]
    fn core_dumps_are_disabled_in_a_child() {
        // In a child process, so the test runner keeps its own limits.
        if std::env::var_os("ZV_HARDEN_CHILD").is_some() {
            no_core_dumps().unwrap();
            let mut limit = libc::rlimit {
                rlim_cur: 1,
                rlim_max: 1,
            };
            // SAFETY: as in `memory_lock_permitted`.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
            assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
            // SAFETY: PR_GET_DUMPABLE takes no pointer arguments.
            assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
            return;
        }
        passes_in_child(
            "harden::tests::core_dumps_are_disabled_in_a_child",
            "ZV_HARDEN_CHILD",
        );
    }

    /// Runs `test` of this test binary again in a child process with `env`
    /// set, and asserts that it passed there.
    fn passes_in_child(test: &str, env: &str) {
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new(exe)
            .args(["--exact", test])
            .env(env, "1")
            .status()
            .unwrap();
        assert!(status.success(), "{test} failed in a child process");
    }

    /// `VmLck` or `VmRSS` of this process from /proc, in KiB.
    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line[field.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn locked_memory_is_resident_only_once_touched() {
        // In a child process: the lock lasts for the rest of the process.
        if std::env::var_os("ZV_HARDEN_LOCK_CHILD").is_some() {
            assert!(lock_memory().unwrap());
            let before = status_kib("VmRSS:");
            let reserved: Vec<u8> = Vec::with_capacity(1 << 30);
            assert!(status_kib("VmLck:") >= 1 << 20, "the reservation is locked");
            let grown = status_kib("VmRSS:") - before;
            assert!(
                grown < 64 << 10,
                "1 GiB reserved, untouched: RSS grew {grown} KiB"
            );
            let mut touched = reserved;
            touched.resize(16 << 20, 0x5a);
            let grown = status_kib("VmRSS:") - before;
            assert!(grown >= 16 << 10, "16 MiB touched: RSS grew {grown} KiB");
            return;
        }
        if !memory_lock_permitted() {
            eprintln!("memory locking not permitted here; skipping");
            return;
        }
        passes_in_child(
            "harden::tests::locked_memory_is_resident_only_once_touched",
            "ZV_HARDEN_LOCK_CHILD",
        );
    }
}
