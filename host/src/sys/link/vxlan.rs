//! VXLAN devices. Each is created from the underlay namespace, where its
//! UDP socket lives (the kernel binds a VXLAN device's socket in the
//! namespace the RTM_NEWLINK came from), straight into the namespace of the
//! port it serves (`IFLA_NET_NS_FD`, as `ip link add ... netns NS` does): it
//! never appears in the underlay, and there is no half-moved state to undo.
//!
//! Before creating it, the route to the remote is looked up in the
//! underlay: an unreachable remote is refused with a clear error instead of
//! a tunnel that silently drops everything, and the device's MTU is the
//! outgoing interface's minus the 50 bytes of encapsulation.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAttribute, RouteType};
use rtnetlink::{Handle, LinkMessageBuilder, LinkVxlan, RouteMessageBuilder};

use super::netlink::{errno_of, with_netlink};
use super::{check_ifname, LinkError, Result};
use crate::sys::netns::NetNs;

/// Bytes VXLAN over IPv4 adds on the underlay: outer Ethernet 14, IPv4 20,
/// UDP 8, VXLAN 8.
pub const VXLAN_OVERHEAD: u32 = 50;

/// What a VXLAN device is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanConfig {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// The other end's underlay address (the all-zeros FDB entry).
    pub remote: Ipv4Addr,
    /// Our underlay source address; the route's by default.
    pub local: Option<Ipv4Addr>,
    /// UDP destination port.
    pub port: u16,
    /// The device's MTU; the underlay interface's minus
    /// [`VXLAN_OVERHEAD`] by default, and never more than that.
    pub mtu: Option<u32>,
}

/// Creates VXLAN device `name` in `ns`, its socket in `underlay`, learning
/// off, down. Returns its MTU.
pub fn create_vxlan(underlay: &NetNs, ns: &NetNs, name: &str, config: &VxlanConfig) -> Result<u32> {
    check_ifname(name)?;
    let fd = ns.file().as_raw_fd();
    with_netlink(underlay, |handle| async move {
        let (oif, underlay_mtu) = route_to(&handle, underlay, config.remote).await?;
        let mtu = vxlan_mtu(name, config.mtu, underlay_mtu)?;
        let mut builder = LinkMessageBuilder::<LinkVxlan>::new(name)
            .id(config.vni)
            .remote(config.remote)
            .port(config.port)
            .learning(false)
            .dev(oif)
            .mtu(mtu)
            .setns_by_fd(fd);
        if let Some(local) = config.local {
            builder = builder.local(local);
        }
        handle
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(|source| match errno_of(&source) {
                Some(libc::EEXIST) => LinkError::AlreadyExists {
                    ns: ns.name().to_owned(),
                    ifname: format!("{name} (or VNI {} on port {})", config.vni, config.port),
                },
                _ => LinkError::CreateVxlan {
                    ns: ns.name().to_owned(),
                    ifname: name.to_owned(),
                    vni: config.vni,
                    source: Box::new(source),
                },
            })?;
        Ok(mtu)
    })
}

/// The MTU of VXLAN device `name` over an underlay interface of
/// `underlay_mtu`: `requested` if it fits, else an error; by default the
/// most that fits.
pub fn vxlan_mtu(name: &str, requested: Option<u32>, underlay_mtu: u32) -> Result<u32> {
    let max = underlay_mtu.saturating_sub(VXLAN_OVERHEAD);
    match requested {
        Some(mtu) if mtu > max => Err(LinkError::VxlanMtu {
            ifname: name.to_owned(),
            mtu,
            max,
            underlay_mtu,
        }),
        Some(mtu) => Ok(mtu),
        None => Ok(max),
    }
}

/// The outgoing interface towards `remote` in the underlay and its MTU
/// (RTM_GETROUTE, as `ip route get` does).
async fn route_to(handle: &Handle, underlay: &NetNs, remote: Ipv4Addr) -> Result<(u32, u32)> {
    let unreachable = |reason: String| LinkError::Unreachable {
        ns: underlay.name().to_owned(),
        remote,
        reason,
    };
    let query = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(remote, 32)
        .build();
    let route = match handle.route().get(query).execute().try_next().await {
        Ok(Some(route)) => route,
        Ok(None) => return Err(unreachable("no route".to_owned())),
        Err(e) => {
            let reason = match errno_of(&e) {
                Some(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
                None => e.to_string(),
            };
            return Err(unreachable(reason));
        }
    };
    if route.header.kind == RouteType::Local {
        return Err(unreachable(
            "it is an address of this machine; give the other machine's".to_owned(),
        ));
    }
    let oif = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        })
        .ok_or_else(|| {
            unreachable(format!(
                "the route ({:?}) has no interface",
                route.header.kind
            ))
        })?;
    let link = handle
        .link()
        .get()
        .match_index(oif)
        .execute()
        .try_next()
        .await
        .ok()
        .flatten()
        .ok_or_else(|| unreachable(format!("its interface (index {oif}) vanished")))?;
    let mtu = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
        .unwrap_or(1500);
    Ok((oif, mtu))
}

/// The MTU of `name` in `ns`.
pub fn link_mtu(ns: &NetNs, name: &str) -> Result<u32> {
    check_ifname(name)?;
    with_netlink(ns, |handle| async move {
        let message = super::netlink::link_message(&handle, ns, name).await?;
        Ok(message
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
            .unwrap_or(1500))
    })
}
