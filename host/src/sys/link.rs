//! Links (veth pairs, TAP devices), addresses and routes, inside namespaces.
//!
//! Every operation runs on a thread that has entered the namespace it works
//! on ([`NetNs::run`]), with a current-thread tokio runtime and a fresh
//! rtnetlink connection opened there, so the netlink socket itself belongs
//! to that namespace. Nothing is ever created in the root namespace.
//!
//! Higher layers talk to the [`LinkOps`] trait: [`LinuxLinkOps`] does the
//! work, [`FakeLinkOps`] records the calls so a deploy plan can be unit
//! tested without root. The free functions take an open [`NetNs`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

use super::ethtool::{self, EthtoolError};
use super::ifreq;
use super::netns::{NetNs, NetNsError};

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
    /// Setting IFF_UP failed.
    #[error("couldn't bring {ifname} up in namespace {ns}: {source}")]
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
    /// A failure [`FakeLinkOps::fail_on`] was told to produce.
    #[error("injected failure in {op} (FakeLinkOps)")]
    Injected { op: &'static str },
}

type Result<T, E = LinkError> = std::result::Result<T, E>;

/// The link operations higher layers need, by namespace name, so that they
/// can run against [`FakeLinkOps`] in unit tests.
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
}

/// Creates a veth pair with `name_a` in `ns_a` and `name_b` in `ns_b`, sets
/// the MTU on both ends and brings both up.
///
/// The pair is created from inside `ns_a` with the peer's `IFLA_NET_NS_FD`
/// pointing at `ns_b` (what `ip link add A type veth peer B netns NSB`
/// does), so the peer is born in `ns_b` under its final name: the two names
/// may be equal, nothing appears in the root namespace even for an instant,
/// and there is no half-moved state to clean up if a step fails.
pub fn create_veth(
    ns_a: &NetNs,
    name_a: &str,
    ns_b: &NetNs,
    name_b: &str,
    mtu: Option<u32>,
) -> Result<()> {
    check_ifname(name_a)?;
    check_ifname(name_b)?;
    let fd_b = ns_b.file().as_raw_fd();
    with_netlink(ns_a, |handle| async move {
        // No IFF_UP here: the kernel would try to open the peer before the
        // pair is linked and fail with ENOTCONN (veth_open). Up comes after.
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(name_b.to_owned())
            .setns_by_fd(fd_b);
        let mut main = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name_a.to_owned());
        if let Some(mtu) = mtu {
            peer = peer.mtu(mtu);
            main = main.mtu(mtu);
        }
        let message = main
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|source| match errno_of(&source) {
                Some(libc::EEXIST) => LinkError::AlreadyExists {
                    ns: format!("{} or {}", ns_a.name(), ns_b.name()),
                    ifname: format!("{name_a} or {name_b}"),
                },
                _ => LinkError::CreateVeth {
                    ns_a: ns_a.name().to_owned(),
                    name_a: name_a.to_owned(),
                    ns_b: ns_b.name().to_owned(),
                    name_b: name_b.to_owned(),
                    source: Box::new(source),
                },
            })
    })?;
    // Bring both ends up; undo the pair if that fails.
    let confirm = set_up(ns_a, name_a).and_then(|()| set_up(ns_b, name_b));
    if let Err(err) = confirm {
        let _ = delete_link(ns_a, name_a);
        return Err(err);
    }
    Ok(())
}

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
    let file = ns.run(|| tun_attach(ns, name, vnet_hdr, false))??;
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

/// Deletes `name` in `ns`; for a veth this removes both ends. An interface
/// that is not there is not an error.
pub fn delete_link(ns: &NetNs, name: &str) -> Result<()> {
    check_ifname(name)?;
    with_netlink(ns, |handle| async move {
        let index = match index_of(&handle, ns, name).await {
            Ok(index) => index,
            Err(LinkError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        match handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(()),
            Err(source) => Err(LinkError::Delete {
                ns: ns.name().to_owned(),
                ifname: name.to_owned(),
                source: Box::new(source),
            }),
        }
    })
}

/// Brings `name` up in `ns`.
pub fn set_up(ns: &NetNs, name: &str) -> Result<()> {
    check_ifname(name)?;
    with_netlink(ns, |handle| async move {
        let index = index_of(&handle, ns, name).await?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|source| LinkError::SetUp {
                ns: ns.name().to_owned(),
                ifname: name.to_owned(),
                source: Box::new(source),
            })
    })
}

/// Sets the MTU of `name` in `ns`.
pub fn set_mtu(ns: &NetNs, name: &str, mtu: u32) -> Result<()> {
    check_ifname(name)?;
    with_netlink(ns, |handle| async move {
        let index = index_of(&handle, ns, name).await?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .map_err(|source| LinkError::SetMtu {
                ns: ns.name().to_owned(),
                ifname: name.to_owned(),
                mtu,
                source: Box::new(source),
            })
    })
}

/// Sets the MAC address of `name` in `ns`.
pub fn set_mac(ns: &NetNs, name: &str, mac: [u8; 6]) -> Result<()> {
    check_ifname(name)?;
    with_netlink(ns, |handle| async move {
        let index = index_of(&handle, ns, name).await?;
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(|source| LinkError::SetMac {
                ns: ns.name().to_owned(),
                ifname: name.to_owned(),
                source: Box::new(source),
            })
    })
}

/// Adds `addr/prefix_len` to `ifname` in `ns`.
pub fn add_address(ns: &NetNs, ifname: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
    check_ifname(ifname)?;
    check_prefix(addr, prefix_len)?;
    with_netlink(ns, |handle| async move {
        let index = index_of(&handle, ns, ifname).await?;
        handle
            .address()
            .add(index, IpAddr::V4(addr), prefix_len)
            .execute()
            .await
            .map_err(|source| LinkError::AddAddress {
                ns: ns.name().to_owned(),
                ifname: ifname.to_owned(),
                addr,
                prefix_len,
                source: Box::new(source),
            })
    })
}

/// Adds a route in `ns`'s main table to `dst` (`None`: the default route)
/// via the gateway `via`, which must be reachable on a connected subnet.
pub fn add_route(ns: &NetNs, dst: Option<(Ipv4Addr, u8)>, via: Ipv4Addr) -> Result<()> {
    if let Some((addr, prefix_len)) = dst {
        check_prefix(addr, prefix_len)?;
    }
    with_netlink(ns, |handle| async move {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(via);
        if let Some((addr, prefix_len)) = dst {
            route = route.destination_prefix(addr, prefix_len);
        }
        handle
            .route()
            .add(route.build())
            .execute()
            .await
            .map_err(|source| LinkError::AddRoute {
                ns: ns.name().to_owned(),
                dst: match dst {
                    Some((addr, len)) => format!("{addr}/{len}"),
                    None => "default".to_owned(),
                },
                via,
                source: Box::new(source),
            })
    })
}

/// The index of `name` in `ns`.
pub fn link_index(ns: &NetNs, name: &str) -> Result<u32> {
    check_ifname(name)?;
    with_netlink(
        ns,
        |handle| async move { index_of(&handle, ns, name).await },
    )
}

/// The counters of `name` in `ns`, from `IFLA_STATS64`.
pub fn link_stats(ns: &NetNs, name: &str) -> Result<LinkStats> {
    let message = get_link(ns, name)?;
    message
        .attributes
        .iter()
        .find_map(|attr| match attr {
            LinkAttribute::Stats64(s) => Some(LinkStats {
                rx_packets: s.rx_packets,
                rx_bytes: s.rx_bytes,
                tx_packets: s.tx_packets,
                tx_bytes: s.tx_bytes,
                rx_errors: s.rx_errors,
                tx_errors: s.tx_errors,
                rx_dropped: s.rx_dropped,
                tx_dropped: s.tx_dropped,
            }),
            _ => None,
        })
        .ok_or_else(|| LinkError::NoStats {
            ns: ns.name().to_owned(),
            ifname: name.to_owned(),
        })
}

/// The Ethernet address of `name` in `ns`.
pub fn mac_address(ns: &NetNs, name: &str) -> Result<[u8; 6]> {
    let message = get_link(ns, name)?;
    message
        .attributes
        .iter()
        .find_map(|attr| match attr {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        })
        .ok_or_else(|| LinkError::NoMac {
            ns: ns.name().to_owned(),
            ifname: name.to_owned(),
        })
}

fn get_link(ns: &NetNs, name: &str) -> Result<LinkMessage> {
    check_ifname(name)?;
    with_netlink(
        ns,
        |handle| async move { link_message(&handle, ns, name).await },
    )
}

/// Runs `f` with an rtnetlink handle whose socket lives in `ns`.
fn with_netlink<T, F, Fut>(ns: &NetNs, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    ns.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| LinkError::Runtime {
                ns: ns.name().to_owned(),
                source,
            })?;
        runtime.block_on(async {
            let (connection, handle, _) =
                rtnetlink::new_connection().map_err(|source| LinkError::Connect {
                    ns: ns.name().to_owned(),
                    source,
                })?;
            let connection = tokio::spawn(connection);
            let result = f(handle).await;
            connection.abort();
            result
        })
    })?
}

async fn link_message(handle: &Handle, ns: &NetNs, name: &str) -> Result<LinkMessage> {
    let not_found = || LinkError::NotFound {
        ns: ns.name().to_owned(),
        ifname: name.to_owned(),
    };
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(not_found()),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Err(not_found()),
        Err(source) => Err(LinkError::Lookup {
            ns: ns.name().to_owned(),
            ifname: name.to_owned(),
            source: Box::new(source),
        }),
    }
}

async fn index_of(handle: &Handle, ns: &NetNs, name: &str) -> Result<u32> {
    Ok(link_message(handle, ns, name).await?.header.index)
}

/// The errno of a netlink error reply, as a positive number.
fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}

fn check_ifname(name: &str) -> Result<()> {
    ifreq::check_ifname(name).map_err(|reason| LinkError::InvalidName {
        ifname: name.to_owned(),
        reason,
    })
}

fn check_prefix(addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
    if prefix_len > 32 {
        return Err(LinkError::InvalidPrefix { addr, prefix_len });
    }
    Ok(())
}

/// One call made on a [`FakeLinkOps`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCall {
    CreateVeth {
        ns_a: String,
        name_a: String,
        ns_b: String,
        name_b: String,
        mtu: Option<u32>,
    },
    CreateTap {
        ns: String,
        name: String,
        mtu: Option<u32>,
        vnet_hdr: bool,
    },
    OpenTap {
        ns: String,
        name: String,
        vnet_hdr: bool,
    },
    DeleteLink {
        ns: String,
        name: String,
    },
    SetUp {
        ns: String,
        name: String,
    },
    AddAddress {
        ns: String,
        ifname: String,
        addr: Ipv4Addr,
        prefix_len: u8,
    },
    AddRoute {
        ns: String,
        dst: Option<(Ipv4Addr, u8)>,
        via: Ipv4Addr,
    },
    LinkIndex {
        ns: String,
        name: String,
    },
    LinkStats {
        ns: String,
        name: String,
    },
    MacAddress {
        ns: String,
        name: String,
    },
    DisableOffloads {
        ns: String,
        name: String,
    },
}

impl LinkCall {
    /// The operation's name, as [`FakeLinkOps::fail_on`] takes it.
    pub fn op(&self) -> &'static str {
        match self {
            LinkCall::CreateVeth { .. } => "create_veth",
            LinkCall::CreateTap { .. } => "create_tap",
            LinkCall::OpenTap { .. } => "open_tap",
            LinkCall::DeleteLink { .. } => "delete_link",
            LinkCall::SetUp { .. } => "set_up",
            LinkCall::AddAddress { .. } => "add_address",
            LinkCall::AddRoute { .. } => "add_route",
            LinkCall::LinkIndex { .. } => "link_index",
            LinkCall::LinkStats { .. } => "link_stats",
            LinkCall::MacAddress { .. } => "mac_address",
            LinkCall::DisableOffloads { .. } => "disable_offloads",
        }
    }
}

/// `(namespace, interface)`.
type LinkKey = (String, String);

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<LinkCall>,
    /// (namespace, interface) -> (index, veth peer)
    links: BTreeMap<LinkKey, (u32, Option<LinkKey>)>,
    next_index: u32,
    fail_on: Option<&'static str>,
    stats: BTreeMap<(String, String), LinkStats>,
}

/// A [`LinkOps`] that records every call and keeps a model of which
/// interfaces exist, so that operations on missing interfaces fail with
/// [`LinkError::NotFound`] and duplicates with [`LinkError::AlreadyExists`]
/// as they would on Linux. No root needed.
#[derive(Debug, Default)]
pub struct FakeLinkOps {
    state: Mutex<FakeState>,
}

impl FakeLinkOps {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order (including failed ones).
    pub fn calls(&self) -> Vec<LinkCall> {
        self.lock().calls.clone()
    }

    /// The interfaces that currently exist, as `(namespace, name)`.
    pub fn links(&self) -> Vec<(String, String)> {
        self.lock().links.keys().cloned().collect()
    }

    /// Makes every later call of operation `op` (e.g. `"add_route"`) fail
    /// with [`LinkError::Injected`]; `None` stops that.
    pub fn fail_on(&self, op: Option<&'static str>) {
        self.lock().fail_on = op;
    }

    /// What [`LinkOps::link_stats`] returns for that interface.
    pub fn set_stats(&self, ns: &str, name: &str, stats: LinkStats) {
        self.lock().stats.insert(key(ns, name), stats);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `call` and returns the locked state, or the injected error.
    fn record(&self, call: LinkCall) -> Result<std::sync::MutexGuard<'_, FakeState>> {
        let mut state = self.lock();
        let op = call.op();
        state.calls.push(call);
        if state.fail_on == Some(op) {
            return Err(LinkError::Injected { op });
        }
        Ok(state)
    }
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

impl FakeState {
    fn add(&mut self, ns: &str, name: &str, peer: Option<(String, String)>) -> Result<()> {
        if self.links.contains_key(&key(ns, name)) {
            return Err(LinkError::AlreadyExists {
                ns: ns.to_owned(),
                ifname: name.to_owned(),
            });
        }
        self.next_index += 1;
        self.links.insert(key(ns, name), (self.next_index, peer));
        Ok(())
    }

    fn index(&self, ns: &str, name: &str) -> Result<u32> {
        self.links
            .get(&key(ns, name))
            .map(|(index, _)| *index)
            .ok_or_else(|| LinkError::NotFound {
                ns: ns.to_owned(),
                ifname: name.to_owned(),
            })
    }
}

impl LinkOps for FakeLinkOps {
    fn create_veth(
        &self,
        ns_a: &str,
        name_a: &str,
        ns_b: &str,
        name_b: &str,
        mtu: Option<u32>,
    ) -> Result<()> {
        let mut state = self.record(LinkCall::CreateVeth {
            ns_a: ns_a.into(),
            name_a: name_a.into(),
            ns_b: ns_b.into(),
            name_b: name_b.into(),
            mtu,
        })?;
        check_ifname(name_a)?;
        check_ifname(name_b)?;
        if state.links.contains_key(&key(ns_b, name_b)) {
            return Err(LinkError::AlreadyExists {
                ns: ns_b.into(),
                ifname: name_b.into(),
            });
        }
        state.add(ns_a, name_a, Some(key(ns_b, name_b)))?;
        state.add(ns_b, name_b, Some(key(ns_a, name_a)))
    }

    fn create_tap(&self, ns: &str, name: &str, mtu: Option<u32>, vnet_hdr: bool) -> Result<()> {
        let mut state = self.record(LinkCall::CreateTap {
            ns: ns.into(),
            name: name.into(),
            mtu,
            vnet_hdr,
        })?;
        check_ifname(name)?;
        state.add(ns, name, None)
    }

    fn open_tap(&self, ns: &str, name: &str, vnet_hdr: bool) -> Result<OwnedFd> {
        let state = self.record(LinkCall::OpenTap {
            ns: ns.into(),
            name: name.into(),
            vnet_hdr,
        })?;
        state.index(ns, name)?;
        let null = File::open("/dev/null").map_err(|source| LinkError::OpenTun {
            ns: ns.into(),
            source,
        })?;
        Ok(null.into())
    }

    fn delete_link(&self, ns: &str, name: &str) -> Result<()> {
        let mut state = self.record(LinkCall::DeleteLink {
            ns: ns.into(),
            name: name.into(),
        })?;
        if let Some((_, Some(peer))) = state.links.remove(&key(ns, name)) {
            state.links.remove(&peer);
        }
        Ok(())
    }

    fn set_up(&self, ns: &str, name: &str) -> Result<()> {
        let state = self.record(LinkCall::SetUp {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name).map(drop)
    }

    fn add_address(&self, ns: &str, ifname: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let state = self.record(LinkCall::AddAddress {
            ns: ns.into(),
            ifname: ifname.into(),
            addr,
            prefix_len,
        })?;
        check_prefix(addr, prefix_len)?;
        state.index(ns, ifname).map(drop)
    }

    fn add_route(&self, ns: &str, dst: Option<(Ipv4Addr, u8)>, via: Ipv4Addr) -> Result<()> {
        drop(self.record(LinkCall::AddRoute {
            ns: ns.into(),
            dst,
            via,
        })?);
        match dst {
            Some((addr, prefix_len)) => check_prefix(addr, prefix_len),
            None => Ok(()),
        }
    }

    fn link_index(&self, ns: &str, name: &str) -> Result<u32> {
        let state = self.record(LinkCall::LinkIndex {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name)
    }

    fn link_stats(&self, ns: &str, name: &str) -> Result<LinkStats> {
        let state = self.record(LinkCall::LinkStats {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name)?;
        Ok(state.stats.get(&key(ns, name)).copied().unwrap_or_default())
    }

    fn mac_address(&self, ns: &str, name: &str) -> Result<[u8; 6]> {
        let state = self.record(LinkCall::MacAddress {
            ns: ns.into(),
            name: name.into(),
        })?;
        let index = state.index(ns, name)?.to_be_bytes();
        // Locally administered, unicast, derived from the index.
        Ok([0x02, 0x00, index[0], index[1], index[2], index[3]])
    }

    fn disable_offloads(&self, ns: &str, name: &str) -> Result<()> {
        let state = self.record(LinkCall::DisableOffloads {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy_two_vnfs(ops: &dyn LinkOps) -> Result<()> {
        ops.create_veth("nfvt-a", "eth0", "nfvt-b", "eth0", Some(1500))?;
        ops.disable_offloads("nfvt-a", "eth0")?;
        ops.add_address("nfvt-a", "eth0", Ipv4Addr::new(10, 0, 0, 1), 24)?;
        ops.add_route("nfvt-a", None, Ipv4Addr::new(10, 0, 0, 2))?;
        ops.create_tap("nfvt-b", "tap0", None, true)?;
        Ok(())
    }

    #[test]
    fn fake_records_calls_in_order() {
        let fake = FakeLinkOps::new();
        deploy_two_vnfs(&fake).unwrap();
        let ops: Vec<_> = fake.calls().iter().map(LinkCall::op).collect();
        assert_eq!(
            ops,
            [
                "create_veth",
                "disable_offloads",
                "add_address",
                "add_route",
                "create_tap"
            ]
        );
        assert_eq!(
            fake.calls()[0],
            LinkCall::CreateVeth {
                ns_a: "nfvt-a".into(),
                name_a: "eth0".into(),
                ns_b: "nfvt-b".into(),
                name_b: "eth0".into(),
                mtu: Some(1500),
            }
        );
        assert_eq!(fake.links().len(), 3);
        assert!(fake.open_tap("nfvt-b", "tap0", true).is_ok());
    }

    #[test]
    fn fake_models_existence() {
        let fake = FakeLinkOps::new();
        assert!(matches!(
            fake.set_up("nfvt-a", "eth0"),
            Err(LinkError::NotFound { .. })
        ));
        fake.create_veth("nfvt-a", "x", "nfvt-b", "y", None)
            .unwrap();
        assert!(matches!(
            fake.create_tap("nfvt-b", "y", None, false),
            Err(LinkError::AlreadyExists { .. })
        ));
        assert_ne!(
            fake.link_index("nfvt-a", "x").unwrap(),
            fake.link_index("nfvt-b", "y").unwrap()
        );
        // Deleting one end of a veth removes the pair; deleting again is fine.
        fake.delete_link("nfvt-b", "y").unwrap();
        fake.delete_link("nfvt-b", "y").unwrap();
        assert!(fake.links().is_empty());
        assert!(matches!(
            fake.create_veth("nfvt-a", "waytoolongforanifname", "b", "c", None),
            Err(LinkError::InvalidName { .. })
        ));
    }

    #[test]
    fn fake_injects_failures() {
        let fake = FakeLinkOps::new();
        fake.fail_on(Some("add_route"));
        let err = deploy_two_vnfs(&fake).unwrap_err();
        assert!(
            matches!(err, LinkError::Injected { op: "add_route" }),
            "{err}"
        );
        assert_eq!(fake.calls().last().map(LinkCall::op), Some("add_route"));
        fake.fail_on(None);
        let stats = LinkStats {
            rx_packets: 3,
            ..Default::default()
        };
        fake.set_stats("nfvt-a", "eth0", stats);
        assert_eq!(fake.link_stats("nfvt-a", "eth0").unwrap(), stats);
    }

    #[test]
    fn errors_name_what_and_where() {
        let err = LinkError::NotFound {
            ns: "nfvt-a".into(),
            ifname: "eth9".into(),
        };
        assert_eq!(err.to_string(), "no interface eth9 in namespace nfvt-a");
    }
}
