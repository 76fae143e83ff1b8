//! TAP devices: creating a persistent TAP and attaching to one, through
//! the /dev/net/tun ioctls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::netlink::{delete_link, set_mtu, set_up};
use super::{check_ifname, LinkError, Result};
use crate::sys::ifreq;
use crate::sys::netns::NetNs;

/// Creates a persistent TAP device `name` inside `ns` (`IFF_TAP |
/// IFF_NO_PI`, plus `IFF_VNET_HDR` if asked), sets its MTU and brings it up.
/// Fails if an interface by that name exists.
pub fn create_tap(ns: &NetNs, name: &str, mtu: Option<u32>, vnet_hdr: bool) -> Result<()> {
    check_ifname(name)?;
    let tun = ns.run(|| tun_attach(ns, name, vnet_hdr, true))??;
    // SAFETY: TUNSETPERSIST takes its argument by value (an int flag); `tun`
    // is an open /dev/net/tun file attached to our device.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
    if rc < 0 {
        return Err(LinkError::TunSetPersist {
            ns: ns.name().to_owned(),
            ifname: name.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    drop(tun);
    let configured = match mtu {
        Some(mtu) => set_mtu(ns, name, mtu),
        None => Ok(()),
    }
    .and_then(|()| set_up(ns, name));
    if let Err(err) = configured {
        let _ = delete_link(ns, name);
        return Err(err);
    }
    Ok(())
}

/// Attaches to the existing persistent TAP `name` in `ns` and returns the
/// file descriptor to read and write frames on (blocking mode; set
/// `O_NONBLOCK` yourself if you poll). `vnet_hdr` must match how the reader
/// will treat frames: with it, every frame is prefixed by a
/// `virtio_net_hdr`.
pub fn open_tap(ns: &NetNs, name: &str, vnet_hdr: bool) -> Result<OwnedFd> {
    check_ifname(name)?;
    // A descriptor closed a moment ago can still hold the device: a TAP
    // port's io_uring (`datapath::sys::uring`) releases its registered
    // file asynchronously, some tens of milliseconds after the ring is
    // closed or its process exited (a worker restarted at once after a
    // crash). So a busy device is tried again for a while.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let file = loop {
        match ns.run(|| tun_attach(ns, name, vnet_hdr, false))? {
            Err(LinkError::TunSetIff { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < give_up =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => break other?,
        }
    };
    // TUNSETIFF creates a device when there is none by that name. Such a
    // device is not persistent; closing our fd makes it vanish again.
    let mut req = ifreq::ifreq_named(name);
    // SAFETY: TUNGETIFF writes the device's name and flags into `req`, a
    // valid `ifreq` exclusively borrowed for the call; `file` is attached.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNGETIFF, &mut req) };
    if rc < 0 {
        return Err(LinkError::TunSetIff {
            ns: ns.name().to_owned(),
            ifname: name.to_owned(),
            create: false,
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: the kernel just filled the `ifru_flags` member of the union.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    if flags & libc::IFF_PERSIST == 0 {
        return Err(LinkError::NotFound {
            ns: ns.name().to_owned(),
            ifname: name.to_owned(),
        });
    }
    Ok(file.into())
}

/// Opens /dev/net/tun and binds it to TAP `name`. Must run inside the
/// namespace: the device lives in the namespace that opened the file.
fn tun_attach(ns: &NetNs, name: &str, vnet_hdr: bool, create: bool) -> Result<File> {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|source| LinkError::OpenTun {
            ns: ns.name().to_owned(),
            source,
        })?;
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if create {
        flags |= libc::IFF_TUN_EXCL;
    }
    let mut req = ifreq::ifreq_named(name);
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads (and may update the name in) `req`, a valid
    // `ifreq` exclusively borrowed for the call; `tun` is an open fd.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        let source = io::Error::last_os_error();
        return Err(match source.raw_os_error() {
            Some(libc::EBUSY) if create => LinkError::AlreadyExists {
                ns: ns.name().to_owned(),
                ifname: name.to_owned(),
            },
            _ => LinkError::TunSetIff {
                ns: ns.name().to_owned(),
                ifname: name.to_owned(),
                create,
                source,
            },
        });
    }
    Ok(tun)
}
