//! Interface offloads, through the legacy `SIOCETHTOOL` commands.
//!
//! Why we turn them off: a veth's default TX checksum offload leaves partial
//! checksums in the frames an `AF_PACKET` reader receives, and GSO/GRO hand
//! it super-frames larger than the MTU. nfvhost's userspace forwarder wants
//! plain MTU-sized frames with complete checksums, so every interface a
//! worker reads from, and every test-host interface that sends into a
//! chain, gets [`disable_offloads`].
//!
//! The ioctl works on the interface of that name in the caller's network
//! namespace, so the functions that take a [`NetNs`] open their socket on a
//! thread inside it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::ifreq;
use super::netns::{NetNs, NetNsError};

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_GSG: u32 = 0x18;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_GGSO: u32 = 0x23;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// `struct ethtool_sset_info` with room for one count.
#[repr(C)]
#[derive(Debug, Default)]
struct EthtoolSsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    data: [u32; 1],
}

/// `struct ethtool_value` from `<linux/ethtool.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// One offload that the legacy ethtool interface can switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offload {
    /// TX checksumming (`tx-checksumming` in `ethtool -k`).
    TxChecksum,
    /// Scatter-gather (`scatter-gather`).
    ScatterGather,
    /// TCP segmentation offload (`tcp-segmentation-offload`).
    Tso,
    /// Generic segmentation offload (`generic-segmentation-offload`).
    Gso,
    /// Generic receive offload (`generic-receive-offload`).
    Gro,
}

impl Offload {
    /// Everything [`disable_offloads`] turns off, in the order it does so
    /// (segmentation first, since it depends on checksumming and SG).
    pub const ALL: [Offload; 5] = [
        Offload::Tso,
        Offload::Gso,
        Offload::Gro,
        Offload::TxChecksum,
        Offload::ScatterGather,
    ];

    fn get_cmd(self) -> u32 {
        match self {
            Offload::TxChecksum => ETHTOOL_GTXCSUM,
            Offload::ScatterGather => ETHTOOL_GSG,
            Offload::Tso => ETHTOOL_GTSO,
            Offload::Gso => ETHTOOL_GGSO,
            Offload::Gro => ETHTOOL_GGRO,
        }
    }

    fn set_cmd(self) -> u32 {
        match self {
            Offload::TxChecksum => ETHTOOL_STXCSUM,
            Offload::ScatterGather => ETHTOOL_SSG,
            Offload::Tso => ETHTOOL_STSO,
            Offload::Gso => ETHTOOL_SGSO,
            Offload::Gro => ETHTOOL_SGRO,
        }
    }

    /// The feature's name as `ethtool -k` prints it.
    pub fn ethtool_name(self) -> &'static str {
        match self {
            Offload::TxChecksum => "tx-checksumming",
            Offload::ScatterGather => "scatter-gather",
            Offload::Tso => "tcp-segmentation-offload",
            Offload::Gso => "generic-segmentation-offload",
            Offload::Gro => "generic-receive-offload",
        }
    }
}

/// What went wrong reading or switching an offload.
#[derive(Debug, thiserror::Error)]
pub enum EthtoolError {
    /// The interface name can't be put in an `ifreq`.
    #[error("{ifname:?} is not a valid interface name: {reason}")]
    InvalidName {
        ifname: String,
        reason: &'static str,
    },
    /// Couldn't work inside the namespace.
    #[error(transparent)]
    Namespace(#[from] NetNsError),
    /// Couldn't open the socket the ioctl goes through.
    #[error("couldn't open an ioctl socket in namespace {ns}: {source}")]
    Socket { ns: String, source: io::Error },
    /// Couldn't read an offload's state.
    #[error("couldn't read {} of {ifname} in namespace {ns}: {source}", offload.ethtool_name())]
    Get {
        ns: String,
        ifname: String,
        offload: Offload,
        source: io::Error,
    },
    /// Couldn't switch an offload.
    #[error("couldn't turn {} {} on {ifname} in namespace {ns}: {source}", offload.ethtool_name(), if *on { "on" } else { "off" })]
    Set {
        ns: String,
        ifname: String,
        offload: Offload,
        on: bool,
        source: io::Error,
    },
    /// The generic features interface (GSTRINGS/SFEATURES) failed.
    #[error("couldn't turn segmentation features off on {ifname} in namespace {ns}: {source}")]
    Features {
        ns: String,
        ifname: String,
        source: io::Error,
    },
}

type Result<T, E = EthtoolError> = std::result::Result<T, E>;

/// Turns off TSO, GSO, GRO, TX checksumming and scatter-gather on `ifname`
/// inside `ns`.
pub fn disable_offloads(ns: &NetNs, ifname: &str) -> Result<()> {
    check(ifname)?;
    ns.run(|| {
        let sock = socket(ns)?;
        for offload in Offload::ALL {
            set_raw(sock.as_fd(), ifname, offload, false)
                .map_err(|source| set_error(ns, ifname, offload, false, source))?;
        }
        // The legacy TSO command misses newer segmentation features (6.18's
        // tx-tcp-accecn-segmentation), which keep `ethtool -k` reporting
        // TSO on; clear every one of them by name.
        disable_features_raw(sock.as_fd(), ifname, |name| {
            name.starts_with("tx-") && name.ends_with("segmentation")
        })
        .map_err(|source| EthtoolError::Features {
            ns: ns.name().to_owned(),
            ifname: ifname.to_owned(),
            source,
        })
    })?
}

/// Whether `offload` is on for `ifname` inside `ns`.
pub fn get_offload(ns: &NetNs, ifname: &str, offload: Offload) -> Result<bool> {
    check(ifname)?;
    ns.run(|| {
        let sock = socket(ns)?;
        get_raw(sock.as_fd(), ifname, offload).map_err(|source| EthtoolError::Get {
            ns: ns.name().to_owned(),
            ifname: ifname.to_owned(),
            offload,
            source,
        })
    })?
}

/// Turns `offload` on or off for `ifname` inside `ns`.
pub fn set_offload(ns: &NetNs, ifname: &str, offload: Offload, on: bool) -> Result<()> {
    check(ifname)?;
    ns.run(|| {
        let sock = socket(ns)?;
        set_raw(sock.as_fd(), ifname, offload, on)
            .map_err(|source| set_error(ns, ifname, offload, on, source))
    })?
}

/// Reads `offload` on `ifname` through `sock`, an `AF_INET` socket in the
/// interface's namespace (for a worker already inside it).
pub fn get_raw(sock: BorrowedFd<'_>, ifname: &str, offload: Offload) -> io::Result<bool> {
    let mut value = EthtoolValue {
        cmd: offload.get_cmd(),
        data: 0,
    };
    ethtool_ioctl(sock, ifname, &mut value)?;
    Ok(value.data != 0)
}

/// Switches `offload` on `ifname` through `sock` (see [`get_raw`]).
pub fn set_raw(sock: BorrowedFd<'_>, ifname: &str, offload: Offload, on: bool) -> io::Result<()> {
    let mut value = EthtoolValue {
        cmd: offload.set_cmd(),
        data: u32::from(on),
    };
    ethtool_ioctl(sock, ifname, &mut value)
}

/// Turns off, through `ETHTOOL_SFEATURES`, every feature of `ifname`
/// whose name (as in `ethtool -k`) satisfies `pred`. Features the device
/// cannot change are skipped by the kernel.
pub fn disable_features_raw(
    sock: BorrowedFd<'_>,
    ifname: &str,
    pred: impl Fn(&str) -> bool,
) -> io::Result<()> {
    let names = feature_names(sock, ifname)?;
    let blocks = names.len().div_ceil(32);
    // [cmd, size, then (valid, requested) per block of 32 features]
    let mut buf = vec![0u32; 2 + 2 * blocks];
    buf[0] = ETHTOOL_SFEATURES;
    buf[1] = blocks as u32;
    let mut any = false;
    for (bit, name) in names.iter().enumerate() {
        if pred(name) {
            buf[2 + 2 * (bit / 32)] |= 1 << (bit % 32);
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    ethtool_ioctl_ptr(sock, ifname, buf.as_mut_ptr().cast())
}

/// The names of the feature bits of `ifname`, by bit number.
pub fn feature_names(sock: BorrowedFd<'_>, ifname: &str) -> io::Result<Vec<String>> {
    let mut info = EthtoolSsetInfo {
        cmd: ETHTOOL_GSSET_INFO,
        sset_mask: 1 << ETH_SS_FEATURES,
        ..Default::default()
    };
    ethtool_ioctl_ptr(sock, ifname, (&mut info as *mut EthtoolSsetInfo).cast())?;
    if info.sset_mask & (1 << ETH_SS_FEATURES) == 0 {
        return Ok(Vec::new());
    }
    let count = info.data[0] as usize;
    // [cmd, string_set, len, then count * 32 bytes], as u32s for alignment.
    let mut buf = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    buf[0] = ETHTOOL_GSTRINGS;
    buf[1] = ETH_SS_FEATURES;
    buf[2] = count as u32;
    ethtool_ioctl_ptr(sock, ifname, buf.as_mut_ptr().cast())?;
    let bytes: Vec<u8> = buf[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(bytes
        .chunks(ETH_GSTRING_LEN)
        .take(count)
        .map(|raw| {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        })
        .collect())
}

fn ethtool_ioctl(sock: BorrowedFd<'_>, ifname: &str, value: &mut EthtoolValue) -> io::Result<()> {
    ethtool_ioctl_ptr(sock, ifname, (value as *mut EthtoolValue).cast())
}

/// Issues SIOCETHTOOL for `ifname` with `data` as `ifr_data`. `data` must
/// point to a command structure, valid and large enough for what its `cmd`
/// makes the kernel read and write, for the duration of the call.
fn ethtool_ioctl_ptr(
    sock: BorrowedFd<'_>,
    ifname: &str,
    data: *mut libc::c_char,
) -> io::Result<()> {
    ifreq::check_ifname(ifname)
        .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
    let mut req = ifreq::ifreq_named(ifname);
    req.ifr_ifru.ifru_data = data;
    // SAFETY: SIOCETHTOOL reads `ifr_name` and follows `ifr_data` to the
    // command structure; every caller passes a live, exclusively borrowed
    // buffer sized for its command (a repr(C) struct, or a Vec sized from
    // the counts the kernel reported), which outlives this call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn check(ifname: &str) -> Result<()> {
    ifreq::check_ifname(ifname).map_err(|reason| EthtoolError::InvalidName {
        ifname: ifname.to_owned(),
        reason,
    })
}

fn socket(ns: &NetNs) -> Result<OwnedFd> {
    ifreq::ioctl_socket().map_err(|source| EthtoolError::Socket {
        ns: ns.name().to_owned(),
        source,
    })
}

fn set_error(
    ns: &NetNs,
    ifname: &str,
    offload: Offload,
    on: bool,
    source: io::Error,
) -> EthtoolError {
    EthtoolError::Set {
        ns: ns.name().to_owned(),
        ifname: ifname.to_owned(),
        offload,
        on,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_match_linux_ethtool_h() {
        assert_eq!(Offload::TxChecksum.set_cmd(), 0x17);
        assert_eq!(Offload::Tso.set_cmd(), 0x1f);
        assert_eq!(Offload::Gso.set_cmd(), 0x24);
        assert_eq!(Offload::Gro.set_cmd(), 0x2c);
        assert_eq!(Offload::ScatterGather.set_cmd(), 0x19);
        for o in Offload::ALL {
            assert_eq!(o.get_cmd() + 1, o.set_cmd(), "{o:?}");
        }
        assert_eq!(std::mem::size_of::<EthtoolValue>(), 8);
    }
}
