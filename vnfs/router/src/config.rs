//! The `config:` section and its validation.

use std::collections::BTreeMap;
use std::format;
use std::net::Ipv4Addr;
use std::string::String;
use std::vec::Vec;

use serde::Deserialize;
use vnf_sdk::wire::EthernetAddress;
use vnf_sdk::{ConfigError, InitContext};

use crate::routes::{NextHop, Prefix, Route, RouteTable};

/// Default ARP cache lifetime in seconds.
pub const DEFAULT_ARP_TIMEOUT_S: u64 = 60;

/// The router's configuration, as written in the chain file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Port name → `address/prefix` of the router on that port.
    pub interfaces: BTreeMap<String, String>,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Port name → MAC address override.
    #[serde(default)]
    pub mac: BTreeMap<String, String>,
    /// Port name → egress MTU.
    #[serde(default)]
    pub mtu: BTreeMap<String, u16>,
    /// ARP cache entry lifetime, seconds.
    #[serde(default = "default_arp_timeout")]
    pub arp_timeout_s: u64,
}

fn default_arp_timeout() -> u64 {
    DEFAULT_ARP_TIMEOUT_S
}

/// One static route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination prefix, `a.b.c.d/len`.
    pub to: String,
    /// Gateway address, inside a connected subnet.
    pub via: String,
}

/// The router's view of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Our address on the port.
    pub addr: Ipv4Addr,
    /// The connected subnet (address as configured, with its length).
    pub subnet: Prefix,
    /// Our MAC on the port.
    pub mac: EthernetAddress,
    /// Egress MTU.
    pub mtu: u16,
}

impl Iface {
    /// The port's address as the neighbour table sees it.
    pub fn link(&self) -> vnf_sdk::neighbor::LinkAddr {
        vnf_sdk::neighbor::LinkAddr {
            mac: self.mac,
            addr: self.addr,
            prefix_len: self.subnet.len,
        }
    }
}

/// A validated configuration.
#[derive(Debug)]
pub struct Settings {
    /// Indexed by port number.
    pub ifaces: Vec<Iface>,
    /// Connected and static routes.
    pub table: RouteTable,
    /// ARP cache lifetime, nanoseconds.
    pub arp_timeout_ns: u64,
}

fn port_list(ctx: &InitContext) -> String {
    ctx.ports().join(", ")
}

fn unknown_port(ctx: &InitContext, section: &str, name: &str) -> ConfigError {
    ConfigError::at(
        format!("{section}.{name}"),
        format!(
            "this VNF has no port named `{name}`; its ports are: {}",
            port_list(ctx)
        ),
    )
}

/// Checks the configuration against the VNF's ports and builds the tables.
pub fn validate(ctx: &InitContext, config: Config) -> Result<Settings, ConfigError> {
    let ports = ctx.ports();
    for name in config
        .interfaces
        .keys()
        .chain(config.mac.keys())
        .chain(config.mtu.keys())
    {
        if ctx.port(name).is_none() {
            let section = if config.interfaces.contains_key(name) {
                "interfaces"
            } else if config.mac.contains_key(name) {
                "mac"
            } else {
                "mtu"
            };
            return Err(unknown_port(ctx, section, name));
        }
    }

    let mut ifaces = Vec::with_capacity(ports.len());
    for (index, name) in ports.iter().enumerate() {
        let index = index as u16;
        let Some(cidr) = config.interfaces.get(name) else {
            return Err(ConfigError::at(
                "interfaces",
                format!("port `{name}` has no address; add `{name}: <address>/<prefix length>`, like `{name}: 10.0.1.1/24`"),
            ));
        };
        let path = format!("interfaces.{name}");
        let subnet = Prefix::parse(cidr).ok_or_else(|| {
            ConfigError::at(
                &path,
                format!("expected an IPv4 address with a prefix length, like 10.0.1.1/24, but got `{cidr}`"),
            )
        })?;
        let addr = subnet.addr;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() || addr.is_loopback()
        {
            return Err(ConfigError::at(
                &path,
                format!("{addr} cannot be a router interface address"),
            ));
        }
        if subnet.len == 0 {
            return Err(ConfigError::at(&path, "prefix length must be 1 to 32"));
        }
        if subnet.len < 31 && (addr == subnet.network() || addr == subnet.broadcast()) {
            return Err(ConfigError::at(
                &path,
                format!(
                    "{addr} is the network or broadcast address of {}/{}; pick a host address",
                    subnet.network(),
                    subnet.len
                ),
            ));
        }
        for (other_index, other) in ifaces.iter().enumerate() {
            let other: &Iface = other;
            if other.subnet.contains(addr) || subnet.contains(other.addr) {
                return Err(ConfigError::at(
                    &path,
                    format!(
                        "{cidr} overlaps the subnet of port `{}` ({}/{})",
                        ports[other_index], other.addr, other.subnet.len
                    ),
                ));
            }
        }
        let mac = match config.mac.get(name) {
            None => EthernetAddress::derived(ctx.vnf_name(), index),
            Some(s) => {
                let mac = EthernetAddress::parse(s).ok_or_else(|| {
                    ConfigError::at(
                        format!("mac.{name}"),
                        format!("expected a MAC address like 02:00:00:00:01:01, but got `{s}`"),
                    )
                })?;
                if !mac.is_unicast() || mac == EthernetAddress([0; 6]) {
                    return Err(ConfigError::at(
                        format!("mac.{name}"),
                        format!("{mac} is not a unicast MAC address"),
                    ));
                }
                mac
            }
        };
        let mtu = ctx.egress_mtu(index, config.mtu.get(name).copied(), &format!("mtu.{name}"))?;
        ifaces.push(Iface {
            addr,
            subnet,
            mac,
            mtu,
        });
    }

    let mut routes: Vec<Route> = ifaces
        .iter()
        .enumerate()
        .map(|(port, i)| Route {
            prefix: Prefix {
                addr: i.subnet.network(),
                len: i.subnet.len,
            },
            port: port as u16,
            next_hop: NextHop::Connected,
        })
        .collect();
    let connected = routes.len();
    for (i, route) in config.routes.iter().enumerate() {
        let prefix = Prefix::parse(&route.to).ok_or_else(|| {
            ConfigError::at(
                format!("routes.{i}.to"),
                format!(
                    "expected a destination prefix like 10.9.0.0/16 or 0.0.0.0/0, but got `{}`",
                    route.to
                ),
            )
        })?;
        if prefix.has_host_bits() {
            return Err(ConfigError::at(
                format!("routes.{i}.to"),
                format!(
                    "{} has bits set past the prefix length; did you mean {}/{}?",
                    route.to,
                    prefix.network(),
                    prefix.len
                ),
            ));
        }
        if routes[connected..].iter().any(|r| r.prefix == prefix) {
            return Err(ConfigError::at(
                format!("routes.{i}.to"),
                format!("a route to {} is already listed", route.to),
            ));
        }
        let via_path = format!("routes.{i}.via");
        let via: Ipv4Addr = route.via.trim().parse().map_err(|_| {
            ConfigError::at(
                &via_path,
                format!(
                    "expected an IPv4 gateway address like 10.0.2.254, but got `{}`",
                    route.via
                ),
            )
        })?;
        // The gateway must be on a connected link: pick the longest connected match.
        let port = ifaces
            .iter()
            .enumerate()
            .filter(|(_, f)| f.subnet.contains(via))
            .max_by_key(|(_, f)| f.subnet.len)
            .map(|(p, _)| p as u16);
        let Some(port) = port else {
            let subnets: Vec<String> = ifaces
                .iter()
                .map(|f| format!("{}/{}", f.subnet.network(), f.subnet.len))
                .collect();
            return Err(ConfigError::at(
                via_path,
                format!(
                    "gateway {via} is not inside any connected subnet ({})",
                    subnets.join(", ")
                ),
            ));
        };
        let f = &ifaces[usize::from(port)];
        if via == f.addr
            || (f.subnet.len < 31 && (via == f.subnet.network() || via == f.subnet.broadcast()))
        {
            return Err(ConfigError::at(via_path, format!("{via} cannot be a gateway (it is this router's own, network or broadcast address)")));
        }
        routes.push(Route {
            prefix,
            port,
            next_hop: NextHop::Via(via),
        });
    }

    if config.arp_timeout_s == 0 || config.arp_timeout_s > 86_400 {
        return Err(ConfigError::at(
            "arp_timeout_s",
            "must be between 1 and 86400 seconds",
        ));
    }

    Ok(Settings {
        ifaces,
        table: RouteTable::new(routes),
        arp_timeout_ns: config.arp_timeout_s * 1_000_000_000,
    })
}
