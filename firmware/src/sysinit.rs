//! The system calls the appliance's init needs that the standard library
//! does not offer: mounting, loading kernel modules, configuring a network
//! interface, raising `RLIMIT_MEMLOCK`, and powering off.
//!
//! Besides [`crate::harden`], this is the only module of the crate that
//! allows `unsafe` code: each block is one libc call with a `// SAFETY:`
//! comment. Only `zonevault-launch` running as PID 1 in the appliance image
//! (its `appliance` module; see `images/README.md`) calls these.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

fn cstring(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
}

fn path_cstring(path: &Path) -> io::Result<CString> {
    let text = path
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 path"))?;
    cstring(text)
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mount(2)`: `source` of type `fstype` on `target` with `flags`.
pub fn mount(source: &str, target: &Path, fstype: &str, flags: libc::c_ulong) -> io::Result<()> {
    let (source, target, fstype) = (cstring(source)?, path_cstring(target)?, cstring(fstype)?);
    // SAFETY: the three strings are valid NUL-terminated C strings that live
    // until the call returns; `data` is null, which mount(2) allows.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    })
}

/// Remounts `target` read-only (keeping `extra` flags).
pub fn remount_read_only(target: &Path, extra: libc::c_ulong) -> io::Result<()> {
    let target = path_cstring(target)?;
    let none = cstring("none")?;
    // SAFETY: as in `mount`; source and fstype are ignored for MS_REMOUNT.
    check(unsafe {
        libc::mount(
            none.as_ptr(),
            target.as_ptr(),
            none.as_ptr(),
            libc::MS_REMOUNT | libc::MS_RDONLY | extra,
            std::ptr::null(),
        )
    })
}

/// Unmounts `target`.
pub fn unmount(target: &Path) -> io::Result<()> {
    let target = path_cstring(target)?;
    // SAFETY: `target` is a valid C string for the duration of the call.
    check(unsafe { libc::umount2(target.as_ptr(), 0) })
}

/// Loads the kernel module in the file `path` (`finit_module(2)`); a
/// module that is already loaded is not an error.
pub fn load_module(path: &Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    let params = cstring("")?;
    // SAFETY: finit_module takes an open file descriptor (kept open by
    // `file` until after the call), a valid C string of parameters, and
    // integer flags.
    let ret =
        unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err);
        }
    }
    Ok(())
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: ifreq is a plain C struct (bytes and a union of plain
    // structs) for which all zeros is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16-byte plain C structs;
    // the kernel reads an AF_INET sockaddr as a sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(
    socket: &std::net::UdpSocket,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
) -> io::Result<()> {
    // SAFETY: `req` is a valid, initialized ifreq that outlives the call;
    // the SIOC[GS]IF* requests used here read and write only within it.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), request, req as *mut libc::ifreq) })
}

/// Gives interface `name` the address `addr/prefix` (if any) and brings it up.
pub fn interface_up(name: &str, addr: Option<(Ipv4Addr, u8)>) -> io::Result<()> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    if let Some((addr, prefix)) = addr {
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_addr = sockaddr(addr);
        ioctl(&socket, libc::SIOCSIFADDR, &mut req)?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
        ioctl(&socket, libc::SIOCSIFNETMASK, &mut req)?;
    }
    let mut req = ifreq(name)?;
    ioctl(&socket, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ioctl(&socket, libc::SIOCSIFFLAGS, &mut req)
}

/// Lets processes lock unlimited memory (`RLIMIT_MEMLOCK` infinity), so an
/// unprivileged server can still `mlockall`.
pub fn unlimited_memory_lock() -> io::Result<()> {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `unlimited` is a valid rlimit that outlives the call.
    check(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) })
}

/// Flushes the file systems and powers the machine off; returns only if
/// the kernel refused.
pub fn power_off() -> io::Error {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    // SAFETY: reboot with RB_POWER_OFF takes no pointers; it returns only
    // on failure.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    io::Error::last_os_error()
}
