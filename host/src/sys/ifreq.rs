//! `struct ifreq` helpers shared by the ioctl-based modules.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// Longest interface name the kernel accepts (IFNAMSIZ minus the NUL).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Why an interface name was refused.
pub fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err("it is longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("it is . or ..");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return Err("it contains '/', ':', NUL or whitespace");
    }
    Ok(())
}

/// A zeroed `ifreq` whose `ifr_name` is `name`.
///
/// The caller must have validated `name` with [`check_ifname`]; longer names
/// are truncated, never overflow.
pub fn ifreq_named(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is a plain C struct (a name array and a union of
    // integers and pointers); all-zero bytes are a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(MAX_IFNAME_LEN))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// An `AF_INET` datagram socket in the calling thread's network namespace,
/// used only as a handle for interface ioctls.
pub fn ioctl_socket() -> io::Result<OwnedFd> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// Sets `IFF_UP` on `name` in the calling thread's network namespace.
pub fn set_up_by_ioctl(name: &str) -> io::Result<()> {
    let sock = ioctl_socket()?;
    let mut req = ifreq_named(name);
    // SAFETY: SIOCGIFFLAGS reads `ifr_name` and writes `ifr_flags` inside
    // `req`, which is a valid, exclusively borrowed `ifreq` for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS only reads `req`, a valid `ifreq`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert!(check_ifname("abcdefghijklmnop").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
        assert!(check_ifname("..").is_err());
    }

    #[test]
    fn ifreq_name_is_nul_terminated() {
        let req = ifreq_named("veth0");
        let bytes: Vec<u8> = req.ifr_name.iter().map(|&c| c as u8).collect();
        assert_eq!(&bytes[..6], b"veth0\0");
    }
}
