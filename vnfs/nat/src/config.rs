//! The `config:` section and its validation.

use std::format;
use std::net::Ipv4Addr;
use std::string::String;
use std::vec::Vec;

use serde::Deserialize;
use vnf_sdk::neighbor::LinkAddr;
use vnf_sdk::wire::EthernetAddress;
use vnf_sdk::{ConfigError, InitContext};

use crate::bindings::Proto;

/// The NAT's configuration, as written in the chain file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The LAN side.
    pub inside: SideConfig,
    /// The WAN side; its address is the one the LAN hides behind.
    pub outside: SideConfig,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Destination NAT from the outside address.
    #[serde(default)]
    pub port_forwards: Vec<ForwardConfig>,
    /// `lo-hi`: source ports and ICMP identifiers for masquerade.
    #[serde(default = "default_port_range")]
    pub port_range: String,
    /// Binding lifetimes, seconds.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Bindings kept at most.
    #[serde(default = "default_max_bindings")]
    pub max_bindings: u32,
    /// ARP cache entry lifetime, seconds.
    #[serde(default = "default_arp_timeout")]
    pub arp_timeout_s: u64,
}

fn default_port_range() -> String {
    "20000-59999".into()
}
fn default_max_bindings() -> u32 {
    4096
}
fn default_arp_timeout() -> u64 {
    60
}

/// One side of the NAT.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideConfig {
    /// Port name.
    pub port: String,
    /// `a.b.c.d/len`.
    pub address: String,
    /// MAC override.
    #[serde(default)]
    pub mac: Option<String>,
    /// Egress MTU; at most the link's (its default).
    #[serde(default)]
    pub mtu: Option<u16>,
}

/// One static route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination prefix.
    pub to: String,
    /// Gateway on a connected subnet.
    pub via: String,
}

/// One port forward.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// `tcp` or `udp`.
    pub proto: String,
    /// Port on the outside address.
    pub port: u16,
    /// `a.b.c.d:port` on the LAN.
    pub to: String,
}

/// Binding lifetimes in seconds.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP, open.
    pub tcp: u64,
    /// TCP after FIN both ways or RST.
    pub tcp_closing: u64,
    /// UDP.
    pub udp: u64,
    /// ICMP echo.
    pub icmp: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 7200,
            tcp_closing: 60,
            udp: 60,
            icmp: 30,
        }
    }
}

pub use vnf_sdk::prefix::Prefix;

/// A route: prefix → (port, next hop or connected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub prefix: Prefix,
    /// Egress port.
    pub port: u16,
    /// Gateway, or `None` for a connected subnet.
    pub via: Option<Ipv4Addr>,
}

/// A port forward, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Protocol.
    pub proto: Proto,
    /// Port on the outside address.
    pub port: u16,
    /// LAN target.
    pub to: (Ipv4Addr, u16),
}

/// One side, validated.
#[derive(Clone, Copy, Debug)]
pub struct Side {
    /// Port number.
    pub port: u16,
    /// Our address on it.
    pub link: LinkAddr,
    /// Egress MTU (IP total length).
    pub mtu: u16,
}

/// A validated configuration.
#[derive(Debug)]
pub struct Settings {
    /// LAN side.
    pub inside: Side,
    /// WAN side.
    pub outside: Side,
    /// Routes, longest prefix first (connected first among equals).
    pub routes: Vec<Route>,
    /// Port forwards.
    pub forwards: Vec<Forward>,
    /// Masquerade range.
    pub port_range: (u16, u16),
    /// Lifetimes, seconds.
    pub timeouts: Timeouts,
    /// Table bound.
    pub max_bindings: usize,
    /// ARP lifetime, ns.
    pub arp_timeout_ns: u64,
}

fn side(ctx: &InitContext, name: &str, c: &SideConfig) -> Result<Side, ConfigError> {
    let port = ctx.port(&c.port).ok_or_else(|| {
        ConfigError::at(
            format!("{name}.port"),
            format!(
                "this VNF has no port named `{}`; its ports are: {}",
                c.port,
                ctx.ports().join(", ")
            ),
        )
    })?;
    let path = format!("{name}.address");
    let p = Prefix::parse(&c.address).ok_or_else(|| {
        ConfigError::at(
            &path,
            format!(
                "expected an IPv4 address with a prefix length, like 203.0.113.1/24, but got `{}`",
                c.address
            ),
        )
    })?;
    let a = p.addr;
    if a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback() || p.len == 0 {
        return Err(ConfigError::at(
            &path,
            format!("{} cannot be an interface address", c.address),
        ));
    }
    let mac = match &c.mac {
        None => EthernetAddress::derived(ctx.vnf_name(), port),
        Some(s) => match EthernetAddress::parse(s) {
            Some(m) if m.is_unicast() && m != EthernetAddress([0; 6]) => m,
            _ => {
                return Err(ConfigError::at(
                    format!("{name}.mac"),
                    format!("expected a unicast MAC address like 02:00:00:00:01:01, but got `{s}`"),
                ))
            }
        },
    };
    let link = LinkAddr {
        mac,
        addr: a,
        prefix_len: p.len,
    };
    if p.len < 31 && (a == link.network() || a == link.broadcast()) {
        return Err(ConfigError::at(
            &path,
            format!("{a} is the network or broadcast address of its subnet; pick a host address"),
        ));
    }
    let mtu = ctx.egress_mtu(port, c.mtu, &format!("{name}.mtu"))?;
    Ok(Side { port, link, mtu })
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = s.trim().split_once('-')?;
    let lo: u16 = lo.trim().parse().ok()?;
    let hi: u16 = hi.trim().parse().ok()?;
    (lo >= 1 && lo <= hi).then_some((lo, hi))
}

/// Checks the configuration against the VNF's ports.
pub fn validate(ctx: &InitContext, c: Config) -> Result<Settings, ConfigError> {
    let inside = side(ctx, "inside", &c.inside)?;
    let outside = side(ctx, "outside", &c.outside)?;
    if inside.port == outside.port {
        return Err(ConfigError::at(
            "outside.port",
            "inside and outside must be different ports",
        ));
    }
    if inside.link.on_link(outside.link.addr) || outside.link.on_link(inside.link.addr) {
        return Err(ConfigError::at(
            "outside.address",
            "the inside and outside subnets overlap",
        ));
    }
    let sides = [inside, outside];
    let mut routes: Vec<Route> = sides
        .iter()
        .map(|s| Route {
            prefix: Prefix {
                addr: s.link.network(),
                len: s.link.prefix_len,
            },
            port: s.port,
            via: None,
        })
        .collect();
    for (i, r) in c.routes.iter().enumerate() {
        let to_path = format!("routes.{i}.to");
        let prefix = Prefix::parse(&r.to).ok_or_else(|| {
            ConfigError::at(
                &to_path,
                format!(
                    "expected a destination prefix like 192.168.1.0/24 or 0.0.0.0/0, but got `{}`",
                    r.to
                ),
            )
        })?;
        if u32::from(prefix.addr) & !prefix.mask() != 0 {
            return Err(ConfigError::at(
                &to_path,
                format!(
                    "{} has bits set past the prefix length; did you mean {}/{}?",
                    r.to,
                    Ipv4Addr::from(u32::from(prefix.addr) & prefix.mask()),
                    prefix.len
                ),
            ));
        }
        if routes[2..].iter().any(|x| x.prefix == prefix) {
            return Err(ConfigError::at(
                &to_path,
                format!("a route to {} is already listed", r.to),
            ));
        }
        let via_path = format!("routes.{i}.via");
        let via: Ipv4Addr = r.via.trim().parse().map_err(|_| {
            ConfigError::at(
                &via_path,
                format!(
                    "expected an IPv4 gateway address like 10.255.0.1, but got `{}`",
                    r.via
                ),
            )
        })?;
        let Some(s) = sides.iter().find(|s| s.link.on_link(via)) else {
            return Err(ConfigError::at(
                &via_path,
                format!(
                    "gateway {via} is not inside the inside ({}/{}) or outside ({}/{}) subnet",
                    inside.link.network(),
                    inside.link.prefix_len,
                    outside.link.network(),
                    outside.link.prefix_len
                ),
            ));
        };
        if !s
            .link
            .plausible_neighbor(via, EthernetAddress([2, 0, 0, 0, 0, 1]))
        {
            return Err(ConfigError::at(
                &via_path,
                format!("{via} cannot be a gateway (it is our own, network or broadcast address)"),
            ));
        }
        routes.push(Route {
            prefix,
            port: s.port,
            via: Some(via),
        });
    }
    routes.sort_by_key(|r| core::cmp::Reverse(r.prefix.len));

    let port_range = parse_range(&c.port_range).ok_or_else(|| {
        ConfigError::at(
            "port_range",
            format!(
                "expected `low-high` with 1 <= low <= high <= 65535, like 20000-59999, but got `{}`",
                c.port_range
            ),
        )
    })?;

    let mut forwards: Vec<Forward> = Vec::new();
    for (i, f) in c.port_forwards.iter().enumerate() {
        let proto = match f.proto.as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => {
                return Err(ConfigError::at(
                    format!("port_forwards.{i}.proto"),
                    format!("expected `tcp` or `udp`, but got `{other}`"),
                ))
            }
        };
        if f.port == 0 {
            return Err(ConfigError::at(
                format!("port_forwards.{i}.port"),
                "port must be 1 to 65535",
            ));
        }
        if (port_range.0..=port_range.1).contains(&f.port) {
            return Err(ConfigError::at(
                format!("port_forwards.{i}.port"),
                format!(
                    "port {} is inside port_range {}; forwarded ports must lie outside it",
                    f.port, c.port_range
                ),
            ));
        }
        if forwards
            .iter()
            .any(|x| x.proto == proto && x.port == f.port)
        {
            return Err(ConfigError::at(
                format!("port_forwards.{i}.port"),
                format!("{} port {} is already forwarded", f.proto, f.port),
            ));
        }
        let to_path = format!("port_forwards.{i}.to");
        let to =
            f.to.trim()
                .parse::<std::net::SocketAddrV4>()
                .ok()
                .filter(|a| a.port() != 0)
                .ok_or_else(|| {
                    ConfigError::at(
                        &to_path,
                        format!(
                            "expected a LAN address and port like 192.168.1.50:80, but got `{}`",
                            f.to
                        ),
                    )
                })?;
        let lan = routes
            .iter()
            .find(|r| r.prefix.contains(*to.ip()))
            .map(|r| r.port);
        if lan != Some(inside.port) || *to.ip() == inside.link.addr {
            return Err(ConfigError::at(
                &to_path,
                format!(
                    "{} is not routed to the inside; add a route for it via the inside",
                    to.ip()
                ),
            ));
        }
        forwards.push(Forward {
            proto,
            port: f.port,
            to: (*to.ip(), to.port()),
        });
    }

    let t = c.timeouts;
    for (key, v) in [
        ("tcp", t.tcp),
        ("tcp_closing", t.tcp_closing),
        ("udp", t.udp),
        ("icmp", t.icmp),
    ] {
        if v == 0 || v > 86_400 * 7 {
            return Err(ConfigError::at(
                format!("timeouts.{key}"),
                "must be between 1 and 604800 seconds",
            ));
        }
    }
    if c.max_bindings == 0 || c.max_bindings > 1 << 20 {
        return Err(ConfigError::at(
            "max_bindings",
            "must be between 1 and 1048576",
        ));
    }
    if c.arp_timeout_s == 0 || c.arp_timeout_s > 86_400 {
        return Err(ConfigError::at(
            "arp_timeout_s",
            "must be between 1 and 86400 seconds",
        ));
    }
    Ok(Settings {
        inside,
        outside,
        routes,
        forwards,
        port_range,
        timeouts: t,
        max_bindings: c.max_bindings as usize,
        arp_timeout_ns: c.arp_timeout_s * 1_000_000_000,
    })
}
