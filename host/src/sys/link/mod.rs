//! Links (veth pairs, TAP devices), addresses and routes, inside namespaces.
//!
//! Every operation runs on a thread that has entered the namespace it works
//! on ([`NetNs::run`]), with a current-thread tokio runtime and a fresh
//! rtnetlink connection opened there, so the netlink socket itself belongs
//! to that namespace. Nothing is ever created in the root namespace.
//!
//! - this module: the [`LinkOps`] trait (the links part of [`super::Os`]),
//!   its types and errors, and [`LinuxLinkOps`];
//! - [`netlink`]: the rtnetlink operations (veth, addresses, routes, MTU,
//!   MAC, lookups);
//! - [`tun`]: TAP devices through /dev/net/tun ioctls.
//!
//! The free functions take an open [`NetNs`]; [`LinuxLinkOps`] opens
//! `/run/netns/<ns>` by name for every call. Deploy goes through
//! [`super::Os`], whose test double (`sys::fake::FakeOs`) records the calls.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use super::ethtool::{self, EthtoolError};
use super::ifreq;
use super::netns::{NetNs, NetNsError};

mod netlink;
#[cfg(test)]
mod tests;
mod tun;
mod vxlan;

pub use netlink::{
    add_address, add_route, create_veth, delete_link, link_index, link_stats, mac_address,
    set_down, set_mac, set_mtu, set_up,
};
pub use tun::{create_tap, open_tap};
pub use vxlan::{create_vxlan, link_mtu, vxlan_mtu, VxlanConfig, VXLAN_OVERHEAD};

/// Packet and byte counters of one interface (`IFLA_STATS64`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// What went wrong with a link operation. Each variant names the namespace
/// and interface it was working on.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The interface name is not acceptable to the kernel.
    #[error("{ifname:?} is not a valid interface name: {reason}")]
    InvalidName {
        ifname: String,
        reason: &'static str,
    },
    /// An IPv4 prefix length over 32.
    #[error("prefix length /{prefix_len} for {addr} is over 32")]
    InvalidPrefix { addr: Ipv4Addr, prefix_len: u8 },
    /// Couldn't open or enter a namespace.
    #[error(transparent)]
    Namespace(#[from] NetNsError),
    /// Couldn't build the tokio runtime for the netlink connection.
    #[error("couldn't start a netlink runtime in namespace {ns}: {source}")]
    Runtime { ns: String, source: io::Error },
    /// Couldn't open the rtnetlink socket.
    #[error("couldn't open a netlink socket in namespace {ns}: {source}")]
    Connect { ns: String, source: io::Error },
    /// The interface isn't there.
    #[error("no interface {ifname} in namespace {ns}")]
    NotFound { ns: String, ifname: String },
    /// The interface is already there.
    #[error("interface {ifname} already exists in namespace {ns}")]
    AlreadyExists { ns: String, ifname: String },
    /// RTM_GETLINK failed.
    #[error("couldn't look up {ifname} in namespace {ns}: {source}")]
    Lookup {
        ns: String,
        ifname: String,
        source: Box<rtnetlink::Error>,
    },
    /// RTM_NEWLINK for the veth pair failed.
    #[error("couldn't create veth pair {ns_a}/{name_a} <-> {ns_b}/{name_b}: {source}")]
    CreateVeth {
        ns_a: String,
        name_a: String,
        ns_b: String,
        name_b: String,
        source: Box<rtnetlink::Error>,
    },
    /// Setting or clearing IFF_UP failed.
    #[error("couldn't change the state (up/down) of {ifname} in namespace {ns}: {source}")]
    SetUp {
        ns: String,
        ifname: String,
        source: Box<rtnetlink::Error>,
    },
    /// Setting the MTU failed.
    #[error("couldn't set MTU {mtu} on {ifname} in namespace {ns}: {source}")]
    SetMtu {
        ns: String,
        ifname: String,
        mtu: u32,
        source: Box<rtnetlink::Error>,
    },
    /// Setting the MAC address failed.
    #[error("couldn't set MAC address of {ifname} in namespace {ns}: {source}")]
    SetMac {
        ns: String,
        ifname: String,
        source: Box<rtnetlink::Error>,
    },
    /// RTM_DELLINK failed.
    #[error("couldn't delete {ifname} in namespace {ns}: {source}")]
    Delete {
        ns: String,
        ifname: String,
        source: Box<rtnetlink::Error>,
    },
    /// RTM_NEWADDR failed.
    #[error("couldn't add address {addr}/{prefix_len} to {ifname} in namespace {ns}: {source}")]
    AddAddress {
        ns: String,
        ifname: String,
        addr: Ipv4Addr,
        prefix_len: u8,
        source: Box<rtnetlink::Error>,
    },
    /// RTM_NEWROUTE failed.
    #[error("couldn't add route to {dst} via {via} in namespace {ns}: {source}")]
    AddRoute {
        ns: String,
        dst: String,
        via: Ipv4Addr,
        source: Box<rtnetlink::Error>,
    },
    /// The route lookup towards a VXLAN remote failed in the underlay.
    #[error("VXLAN remote {remote} is not reachable from the underlay namespace {ns}: {reason}; give the underlay an address and a route towards it (or fix `remote:`)")]
    Unreachable {
        ns: String,
        remote: Ipv4Addr,
        reason: String,
    },
    /// The link's MTU does not fit the underlay with the encapsulation.
    #[error("MTU {mtu} of VXLAN link {ifname} is over {max}: the underlay interface's MTU {underlay_mtu} minus 50 bytes of encapsulation")]
    VxlanMtu {
        ifname: String,
        mtu: u32,
        max: u32,
        underlay_mtu: u32,
    },
    /// RTM_NEWLINK for a VXLAN device failed.
    #[error("couldn't create VXLAN {ifname} (VNI {vni}) in namespace {ns}: {source}")]
    CreateVxlan {
        ns: String,
        ifname: String,
        vni: u32,
        source: Box<rtnetlink::Error>,
    },
    /// Couldn't open /dev/net/tun.
    #[error("couldn't open /dev/net/tun in namespace {ns}: {source}")]
    OpenTun { ns: String, source: io::Error },
    /// TUNSETIFF failed (creating, or attaching to, the TAP).
    #[error("couldn't {} TAP {ifname} in namespace {ns}: {source}", if *create { "create" } else { "attach to" })]
    TunSetIff {
        ns: String,
        ifname: String,
        create: bool,
        source: io::Error,
    },
    /// TUNSETPERSIST failed.
    #[error("couldn't make TAP {ifname} in namespace {ns} persistent: {source}")]
    TunSetPersist {
        ns: String,
        ifname: String,
        source: io::Error,
    },
    /// The link message had no IFLA_STATS64.
    #[error("{ifname} in namespace {ns} reported no 64-bit statistics")]
    NoStats { ns: String, ifname: String },
    /// The link message had no 6-byte IFLA_ADDRESS.
    #[error("{ifname} in namespace {ns} has no Ethernet address")]
    NoMac { ns: String, ifname: String },
    /// Switching offloads failed.
    #[error(transparent)]
    Offloads(#[from] EthtoolError),
    /// A failure the test double (`sys::fake::FakeOs`) was told to produce.
    #[error("injected failure in {op} (FakeOs)")]
    Injected { op: &'static str },
}

pub(crate) type Result<T, E = LinkError> = std::result::Result<T, E>;

/// The link operations higher layers need, by namespace name: the links
/// part of [`super::Os`], so that deploy runs against a recording fake in
/// unit tests.
pub trait LinkOps: Send + Sync {
    /// A veth pair: `name_a` in `ns_a`, `name_b` in `ns_b`, both up.
    fn create_veth(
        &self,
        ns_a: &str,
        name_a: &str,
        ns_b: &str,
        name_b: &str,
        mtu: Option<u32>,
    ) -> Result<()>;
    /// A persistent TAP `name` in `ns`, up, with nobody attached.
    fn create_tap(&self, ns: &str, name: &str, mtu: Option<u32>, vnet_hdr: bool) -> Result<()>;
    /// A file descriptor attached to the persistent TAP `name` in `ns`.
    fn open_tap(&self, ns: &str, name: &str, vnet_hdr: bool) -> Result<OwnedFd>;
    /// Deletes `name` in `ns` (for a veth, both ends). Absent is not an error.
    fn delete_link(&self, ns: &str, name: &str) -> Result<()>;
    /// Sets `name` up.
    fn set_up(&self, ns: &str, name: &str) -> Result<()>;
    /// Sets the Ethernet address of `name`.
    fn set_mac(&self, ns: &str, name: &str, mac: [u8; 6]) -> Result<()>;
    /// Adds `addr/prefix_len` to `ifname`.
    fn add_address(&self, ns: &str, ifname: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()>;
    /// Adds a route to `dst` (`None`: the default route) via `via`.
    fn add_route(&self, ns: &str, dst: Option<(Ipv4Addr, u8)>, via: Ipv4Addr) -> Result<()>;
    /// The interface's index.
    fn link_index(&self, ns: &str, name: &str) -> Result<u32>;
    /// The interface's counters.
    fn link_stats(&self, ns: &str, name: &str) -> Result<LinkStats>;
    /// The interface's Ethernet address.
    fn mac_address(&self, ns: &str, name: &str) -> Result<[u8; 6]>;
    /// Turns checksum and segmentation offloads off (see [`ethtool`]).
    fn disable_offloads(&self, ns: &str, name: &str) -> Result<()>;
    /// A VXLAN device `name` in `ns` (down, learning off) whose socket
    /// lives in the namespace this process runs in (the underlay), after
    /// checking the remote is routable there. Returns its MTU.
    fn create_vxlan(&self, ns: &str, name: &str, config: &VxlanConfig) -> Result<u32>;
    /// The interface's MTU.
    fn link_mtu(&self, ns: &str, name: &str) -> Result<u32>;
}

/// [`LinkOps`] on the real kernel: opens /run/netns/<ns> for every call.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxLinkOps;

impl LinkOps for LinuxLinkOps {
    fn create_veth(
        &self,
        ns_a: &str,
        name_a: &str,
        ns_b: &str,
        name_b: &str,
        mtu: Option<u32>,
    ) -> Result<()> {
        create_veth(
            &NetNs::open(ns_a)?,
            name_a,
            &NetNs::open(ns_b)?,
            name_b,
            mtu,
        )
    }
    fn create_tap(&self, ns: &str, name: &str, mtu: Option<u32>, vnet_hdr: bool) -> Result<()> {
        create_tap(&NetNs::open(ns)?, name, mtu, vnet_hdr)
    }
    fn open_tap(&self, ns: &str, name: &str, vnet_hdr: bool) -> Result<OwnedFd> {
        open_tap(&NetNs::open(ns)?, name, vnet_hdr)
    }
    fn delete_link(&self, ns: &str, name: &str) -> Result<()> {
        delete_link(&NetNs::open(ns)?, name)
    }
    fn set_up(&self, ns: &str, name: &str) -> Result<()> {
        set_up(&NetNs::open(ns)?, name)
    }
    fn set_mac(&self, ns: &str, name: &str, mac: [u8; 6]) -> Result<()> {
        set_mac(&NetNs::open(ns)?, name, mac)
    }
    fn add_address(&self, ns: &str, ifname: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        add_address(&NetNs::open(ns)?, ifname, addr, prefix_len)
    }
    fn add_route(&self, ns: &str, dst: Option<(Ipv4Addr, u8)>, via: Ipv4Addr) -> Result<()> {
        add_route(&NetNs::open(ns)?, dst, via)
    }
    fn link_index(&self, ns: &str, name: &str) -> Result<u32> {
        link_index(&NetNs::open(ns)?, name)
    }
    fn link_stats(&self, ns: &str, name: &str) -> Result<LinkStats> {
        link_stats(&NetNs::open(ns)?, name)
    }
    fn mac_address(&self, ns: &str, name: &str) -> Result<[u8; 6]> {
        mac_address(&NetNs::open(ns)?, name)
    }
    fn disable_offloads(&self, ns: &str, name: &str) -> Result<()> {
        Ok(ethtool::disable_offloads(&NetNs::open(ns)?, name)?)
    }
    fn create_vxlan(&self, ns: &str, name: &str, config: &VxlanConfig) -> Result<u32> {
        create_vxlan(&NetNs::own()?, &NetNs::open(ns)?, name, config)
    }
    fn link_mtu(&self, ns: &str, name: &str) -> Result<u32> {
        link_mtu(&NetNs::open(ns)?, name)
    }
}

pub(crate) fn check_ifname(name: &str) -> Result<()> {
    ifreq::check_ifname(name).map_err(|reason| LinkError::InvalidName {
        ifname: name.to_owned(),
        reason,
    })
}

pub(crate) fn check_prefix(addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
    if prefix_len > 32 {
        return Err(LinkError::InvalidPrefix { addr, prefix_len });
    }
    Ok(())
}
