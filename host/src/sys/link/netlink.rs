//! The rtnetlink operations: veth pairs, deleting links, up, MTU, MAC,
//! addresses, routes and lookups, each on a netlink socket opened inside
//! the namespace it works on.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{check_ifname, check_prefix, LinkError, LinkStats, Result};
use crate::sys::netns::NetNs;

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
    set_admin_state(ns, name, true)
}

/// Takes `name` down in `ns` (its veth peer loses carrier).
pub fn set_down(ns: &NetNs, name: &str) -> Result<()> {
    set_admin_state(ns, name, false)
}

fn set_admin_state(ns: &NetNs, name: &str, up: bool) -> Result<()> {
    check_ifname(name)?;
    with_netlink(ns, |handle| async move {
        let index = index_of(&handle, ns, name).await?;
        let link = LinkUnspec::new_with_index(index);
        let link = if up { link.up() } else { link.down() };
        handle
            .link()
            .set(link.build())
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
pub(super) fn with_netlink<T, F, Fut>(ns: &NetNs, f: F) -> Result<T>
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

pub(super) async fn link_message(handle: &Handle, ns: &NetNs, name: &str) -> Result<LinkMessage> {
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
pub(super) fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}
