//! Where a bench sends from and to: test hosts of a deployed chain
//! (`HOST[:IFACE]`, checked against the chain's state), their addresses
//! and the next hop's MAC from the sender's neighbour table; and a plain
//! veth pair in two temporary namespaces, to measure the generator alone.

use std::net::Ipv4Addr;
use std::process::Command;
use std::str::FromStr;

use serde_json::Value;

use super::frame::Addresses;
use super::trial::Path;
use super::BenchError;
use crate::chain::names::{self, NameKind};
use crate::chain::ChainSpec;
use crate::deploy::state::ChainState;
use crate::sys::testing::NetNsGuard;
use crate::sys::{LinkOps, LinuxLinkOps, NetNs};

/// `HOST[:IFACE]` from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostArg {
    pub host: String,
    pub iface: Option<String>,
}

impl FromStr for HostArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (host, iface) = match s.split_once(':') {
            Some((h, i)) => (h, Some(i)),
            None => (s, None),
        };
        names::check_arg(NameKind::Node, "host name", host).map_err(|e| e.to_string())?;
        if let Some(i) = iface {
            names::check_arg(NameKind::Interface, "interface name", i)
                .map_err(|e| e.to_string())?;
        }
        Ok(HostArg {
            host: host.to_owned(),
            iface: iface.map(str::to_owned),
        })
    }
}

/// A test host's namespace and interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub netns: String,
    pub iface: String,
}

/// Finds `arg` among the chain's test hosts.
pub fn endpoint(state: &ChainState, arg: &HostArg) -> Result<Endpoint, BenchError> {
    let host = state
        .hosts
        .iter()
        .find(|h| h.name == arg.host)
        .ok_or_else(|| BenchError::NoSuchHost {
            chain: state.chain.clone(),
            host: arg.host.clone(),
            hosts: state.hosts.iter().map(|h| h.name.clone()).collect(),
        })?;
    let iface = match &arg.iface {
        Some(i) if host.interfaces.contains(i) => i.clone(),
        Some(i) => {
            return Err(BenchError::NoSuchInterface {
                host: host.name.clone(),
                iface: i.clone(),
                ifaces: host.interfaces.clone(),
            })
        }
        None => host
            .interfaces
            .first()
            .cloned()
            .ok_or_else(|| BenchError::NoSuchInterface {
                host: host.name.clone(),
                iface: String::new(),
                ifaces: Vec::new(),
            })?,
    };
    Ok(Endpoint {
        host: host.name.clone(),
        netns: host.netns.clone(),
        iface,
    })
}

/// Runs `ip -j -n <netns> <args..>` and parses its JSON.
fn ip_json(netns: &str, args: &[&str]) -> Result<Value, BenchError> {
    let out = Command::new("ip")
        .args(["-j", "-n", netns])
        .args(args)
        .output()
        .map_err(|e| BenchError::Tool {
            what: format!("ip {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    let fail = |detail: String| BenchError::Tool {
        what: format!("ip -n {netns} {}", args.join(" ")),
        detail,
    };
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| fail(e.to_string()))
}

/// The first IPv4 address of `iface` in `netns`.
pub fn ipv4_of(netns: &str, iface: &str) -> Result<Ipv4Addr, BenchError> {
    let v = ip_json(netns, &["-4", "addr", "show", "dev", iface])?;
    v.pointer("/0/addr_info/0/local")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::NoAddress {
            netns: netns.to_owned(),
            iface: iface.to_owned(),
        })
}

/// The MAC of the next hop from `src` towards `dst_ip`: pings once so the
/// neighbour entry exists, asks the routing table which hop it is, and
/// reads its address from the neighbour table.
pub fn next_hop_mac(src: &Endpoint, dst_ip: Ipv4Addr) -> Result<[u8; 6], BenchError> {
    let dst = dst_ip.to_string();
    let ping = Command::new("ip")
        .args(["netns", "exec", &src.netns, "ping", "-n", "-q", "-c", "3"])
        .args(["-i", "0.2", "-W", "1", "-I", &src.iface, &dst])
        .output()
        .map_err(|e| BenchError::Tool {
            what: "ping".into(),
            detail: e.to_string(),
        })?;
    if !ping.status.success() {
        return Err(BenchError::Unreachable {
            from: src.host.clone(),
            to: dst,
        });
    }
    let route = ip_json(&src.netns, &["route", "get", &dst])?;
    let hop = route
        .pointer("/0/gateway")
        .and_then(Value::as_str)
        .unwrap_or(&dst)
        .to_owned();
    let neigh = ip_json(
        &src.netns,
        &["neigh", "show", "to", &hop, "dev", &src.iface],
    )?;
    neigh
        .pointer("/0/lladdr")
        .and_then(Value::as_str)
        .and_then(parse_mac)
        .ok_or_else(|| BenchError::NoNeighbour {
            netns: src.netns.clone(),
            hop,
        })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The trial path from `src` to `dst` in a deployed chain.
pub fn chain_path(src: &Endpoint, dst: &Endpoint) -> Result<Path, BenchError> {
    let src_ip = ipv4_of(&src.netns, &src.iface)?;
    let dst_ip = ipv4_of(&dst.netns, &dst.iface)?;
    let dst_mac = next_hop_mac(src, dst_ip)?;
    let src_mac = LinuxLinkOps.mac_address(&src.netns, &src.iface)?;
    Ok(Path {
        src_netns: src.netns.clone(),
        src_iface: src.iface.clone(),
        dst_netns: dst.netns.clone(),
        dst_iface: dst.iface.clone(),
        addrs: Addresses {
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
        },
    })
}

/// The VNFs on the way from host `from` to host `to` in `spec`, in path
/// order (the shortest path over its links; hosts do not forward).
pub fn vnfs_between(spec: &ChainSpec, from: &str, to: &str) -> Vec<String> {
    use std::collections::{BTreeMap, VecDeque};
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            break;
        }
        if n != from && spec.vnf(n).is_none() {
            continue;
        }
        for l in &spec.links {
            for (a, b) in [(&l.a.node, &l.b.node), (&l.b.node, &l.a.node)] {
                if a == n && b != from && !prev.contains_key(b.as_str()) {
                    prev.insert(b, n);
                    queue.push_back(b);
                }
            }
        }
    }
    let mut path = Vec::new();
    let mut at = to;
    while let Some(&p) = prev.get(at) {
        if p == from {
            path.reverse();
            return path;
        }
        path.push(p.to_owned());
        at = p;
    }
    Vec::new()
}

/// Two temporary namespaces joined by a plain veth pair (`gen0` — `gen1`),
/// removed when dropped: where the generator's own maximum is measured.
pub struct VethPair {
    // Dropped (deleted) after the path users are done; the veth goes with
    // its namespaces.
    a: NetNsGuard,
    b: NetNsGuard,
    pub path: Path,
}

impl VethPair {
    pub fn new() -> Result<VethPair, BenchError> {
        let a = NetNsGuard::new("nfvbench-")?;
        let b = NetNsGuard::new("nfvbench-")?;
        let links = LinuxLinkOps;
        links.create_veth(a.name(), "gen0", b.name(), "gen1", None)?;
        // No addresses: the peer's kernel drops the frames at once (not
        // for it, no forwarding), about what a VNF's port costs, so the
        // figure is the generator's, not the peer's IP stack's.
        let (ip_a, ip_b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let path = Path {
            src_netns: a.name().to_owned(),
            src_iface: "gen0".into(),
            dst_netns: b.name().to_owned(),
            dst_iface: "gen1".into(),
            addrs: Addresses {
                src_mac: links.mac_address(a.name(), "gen0")?,
                dst_mac: links.mac_address(b.name(), "gen1")?,
                src_ip: ip_a,
                dst_ip: ip_b,
            },
        };
        Ok(VethPair { a, b, path })
    }

    /// The namespaces, for their names in the report.
    pub fn namespaces(&self) -> [&NetNs; 2] {
        [&self.a, &self.b]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_args_are_checked() {
        assert_eq!(
            "h1:eth0".parse::<HostArg>(),
            Ok(HostArg {
                host: "h1".into(),
                iface: Some("eth0".into())
            })
        );
        assert_eq!("h1".parse::<HostArg>().unwrap().iface, None);
        for bad in ["", "h1:", "../x", "h 1", "h1:eth0;rm"] {
            assert!(bad.parse::<HostArg>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn vnfs_on_the_path_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../chains");
        let edge = crate::chain::load(&dir.join("edge.yaml")).unwrap();
        assert_eq!(
            vnfs_between(&edge, "lan", "wan"),
            ["dhcp", "fw", "r1", "nat"]
        );
        assert_eq!(
            vnfs_between(&edge, "wan", "lan"),
            ["nat", "r1", "fw", "dhcp"]
        );
        let basic = crate::chain::load(&dir.join("basic.yaml")).unwrap();
        assert_eq!(vnfs_between(&basic, "h1", "h2"), ["r1"]);
        assert!(vnfs_between(&basic, "h1", "nobody").is_empty());
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:00:00:01:50"), Some([2, 0, 0, 0, 1, 0x50]));
        assert_eq!(parse_mac("02:00:00:00:01"), None);
        assert_eq!(parse_mac("02:00:00:00:01:50:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:01:50"), None);
    }
}
