//! The `config:` section and its validation.

use std::format;
use std::net::Ipv4Addr;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::Deserialize;
use vnf_sdk::prefix::Prefix;
use vnf_sdk::wire::EthernetAddress;
use vnf_sdk::{ConfigError, InitContext};

/// Default lease time in seconds.
pub const DEFAULT_LEASE_TIME: u32 = 3600;
/// Most addresses a pool may hold.
pub const MAX_POOL: u32 = 65_536;
/// Most DNS servers (they must fit one option).
pub const MAX_DNS: usize = 63;

/// The server's configuration, as written in the chain file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The port facing the clients.
    pub port: String,
    /// Server address and prefix length, `a.b.c.d/len`.
    pub address: String,
    /// The dynamic pool, `first-last`.
    pub pool: String,
    /// Default gateway for the clients (option 3).
    #[serde(default)]
    pub router: Option<String>,
    /// DNS servers (option 6).
    #[serde(default)]
    pub dns: Vec<String>,
    /// Domain name (option 15).
    #[serde(default)]
    pub domain: Option<String>,
    /// Lease time in seconds (option 51).
    #[serde(default = "default_lease_time")]
    pub lease_time: u32,
    /// T1 in seconds (option 58); default half the lease.
    #[serde(default)]
    pub renewal_time: Option<u32>,
    /// T2 in seconds (option 59); default 7/8 of the lease.
    #[serde(default)]
    pub rebinding_time: Option<u32>,
    /// Fixed addresses by MAC.
    #[serde(default)]
    pub reservations: Vec<ReservationConfig>,
    /// The server's MAC; derived from the VNF name by default.
    #[serde(default)]
    pub mac: Option<String>,
}

fn default_lease_time() -> u32 {
    DEFAULT_LEASE_TIME
}

/// One reservation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationConfig {
    /// The client's MAC.
    pub mac: String,
    /// The address it always gets.
    pub address: String,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The client-facing port.
    pub lan: u16,
    /// The other port.
    pub uplink: u16,
    /// Server identifier.
    pub addr: Ipv4Addr,
    /// Served subnet.
    pub subnet: Prefix,
    /// The server's MAC.
    pub mac: EthernetAddress,
    /// First and last pool address.
    pub pool: (Ipv4Addr, Ipv4Addr),
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_time: u32,
    pub renewal_time: u32,
    pub rebinding_time: u32,
    /// MAC → address.
    pub reservations: Vec<(EthernetAddress, Ipv4Addr)>,
}

impl Settings {
    /// Whether `a` is in the dynamic pool.
    pub fn in_pool(&self, a: Ipv4Addr) -> bool {
        (self.pool.0..=self.pool.1).contains(&a)
    }
    /// The address reserved for `mac`.
    pub fn reservation_of(&self, mac: EthernetAddress) -> Option<Ipv4Addr> {
        self.reservations
            .iter()
            .find(|(m, _)| *m == mac)
            .map(|(_, a)| *a)
    }
    /// The MAC an address is reserved for.
    pub fn reserved_for(&self, a: Ipv4Addr) -> Option<EthernetAddress> {
        self.reservations
            .iter()
            .find(|(_, r)| *r == a)
            .map(|(m, _)| *m)
    }
}

fn parse_addr(path: &str, s: &str, what: &str) -> Result<Ipv4Addr, ConfigError> {
    s.trim().parse().map_err(|_| {
        ConfigError::at(
            path,
            format!("expected {what} like 192.168.1.1, but got `{s}`"),
        )
    })
}

fn host_in(subnet: Prefix, path: &str, a: Ipv4Addr) -> Result<(), ConfigError> {
    if !subnet.is_host(a) {
        return Err(ConfigError::at(
            path,
            format!(
                "{a} is not a host address of the served subnet {}/{}",
                subnet.addr, subnet.len
            ),
        ));
    }
    Ok(())
}

/// Checks the configuration against the VNF's ports.
pub fn validate(ctx: &InitContext, config: Config) -> Result<Settings, ConfigError> {
    let ports = ctx.ports();
    let lan = ctx.port(&config.port).ok_or_else(|| {
        ConfigError::at(
            "port",
            format!(
                "this VNF has no port named `{}`; its ports are: {}",
                config.port,
                ports.join(", ")
            ),
        )
    })?;
    if ports.len() != 2 {
        return Err(ConfigError::at(
            "port",
            format!(
                "the DHCP server is a bump in the wire and needs exactly two ports (clients and uplink), but has {}",
                ports.len()
            ),
        ));
    }
    let uplink = 1 - lan;

    let configured = Prefix::parse(&config.address).ok_or_else(|| {
        ConfigError::at(
            "address",
            format!(
                "expected an address with a prefix length like 192.168.1.2/24, but got `{}`",
                config.address
            ),
        )
    })?;
    if !(1..=30).contains(&configured.len) {
        return Err(ConfigError::at(
            "address",
            format!("prefix length must be 1 to 30, got `{}`", configured.len),
        ));
    }
    let addr = configured.addr;
    let subnet = Prefix {
        addr: configured.network(),
        len: configured.len,
    };
    if !subnet.is_host(addr) || addr.is_multicast() || addr.is_loopback() {
        return Err(ConfigError::at(
            "address",
            format!("{addr} cannot be the server's address"),
        ));
    }

    let router = match &config.router {
        None => None,
        Some(s) => {
            let r = parse_addr("router", s, "a gateway address")?;
            host_in(subnet, "router", r)?;
            if r == addr {
                return Err(ConfigError::at(
                    "router",
                    format!("{r} is the server's own address"),
                ));
            }
            Some(r)
        }
    };

    let (first, last) = config.pool.split_once('-').ok_or_else(|| {
        ConfigError::at(
            "pool",
            format!(
                "expected a range like 192.168.1.100-192.168.1.199, but got `{}`",
                config.pool
            ),
        )
    })?;
    let first = parse_addr("pool", first, "a range of addresses")?;
    let last = parse_addr("pool", last, "a range of addresses")?;
    host_in(subnet, "pool", first)?;
    host_in(subnet, "pool", last)?;
    if first > last {
        return Err(ConfigError::at(
            "pool",
            format!("the pool starts at {first}, after its end {last}"),
        ));
    }
    if u32::from(last) - u32::from(first) >= MAX_POOL {
        return Err(ConfigError::at(
            "pool",
            format!("the pool may hold at most {MAX_POOL} addresses"),
        ));
    }
    let in_pool = |a: Ipv4Addr| (first..=last).contains(&a);
    if in_pool(addr) {
        return Err(ConfigError::at(
            "pool",
            format!("the pool contains the server's address {addr}"),
        ));
    }
    if let Some(r) = router.filter(|r| in_pool(*r)) {
        return Err(ConfigError::at(
            "pool",
            format!("the pool contains the router's address {r}"),
        ));
    }

    let mut dns = Vec::new();
    if config.dns.len() > MAX_DNS {
        return Err(ConfigError::at(
            "dns",
            format!("at most {MAX_DNS} DNS servers"),
        ));
    }
    for (i, s) in config.dns.iter().enumerate() {
        let d = parse_addr(&format!("dns.{i}"), s, "a DNS server address")?;
        if d.is_unspecified() || d.is_broadcast() || d.is_multicast() {
            return Err(ConfigError::at(
                format!("dns.{i}"),
                format!("{d} cannot be a DNS server"),
            ));
        }
        dns.push(d);
    }

    let domain = match &config.domain {
        None => None,
        Some(d) => {
            let d = d.trim().trim_end_matches('.');
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !ok {
                return Err(ConfigError::at(
                    "domain",
                    format!("`{d}` is not a valid domain name like edge.test"),
                ));
            }
            Some(d.to_string())
        }
    };

    let lease_time = config.lease_time;
    if !(10..u32::MAX).contains(&lease_time) {
        return Err(ConfigError::at(
            "lease_time",
            "must be between 10 and 4294967294 seconds",
        ));
    }
    let renewal_time = config.renewal_time.unwrap_or(lease_time / 2);
    let rebinding_time = config
        .rebinding_time
        .unwrap_or((u64::from(lease_time) * 7 / 8) as u32);
    let t_path = |explicit: bool, key: &'static str| if explicit { key } else { "lease_time" };
    if renewal_time == 0 {
        return Err(ConfigError::at(
            t_path(config.renewal_time.is_some(), "renewal_time"),
            "T1 must be at least 1 second",
        ));
    }
    if renewal_time >= rebinding_time {
        let path = if config.renewal_time.is_some() {
            "renewal_time"
        } else {
            t_path(config.rebinding_time.is_some(), "rebinding_time")
        };
        return Err(ConfigError::at(
            path,
            format!("renewal time (T1, {renewal_time} s) must be less than rebinding time (T2, {rebinding_time} s)"),
        ));
    }
    if rebinding_time >= lease_time {
        return Err(ConfigError::at(
            t_path(config.rebinding_time.is_some(), "rebinding_time"),
            format!("rebinding time (T2, {rebinding_time} s) must be less than the lease time ({lease_time} s)"),
        ));
    }

    let mut reservations: Vec<(EthernetAddress, Ipv4Addr)> = Vec::new();
    for (i, r) in config.reservations.iter().enumerate() {
        let mac_path = format!("reservations.{i}.mac");
        let mac = EthernetAddress::parse(&r.mac).ok_or_else(|| {
            ConfigError::at(
                &mac_path,
                format!(
                    "expected a MAC address like 02:00:00:00:01:50, but got `{}`",
                    r.mac
                ),
            )
        })?;
        if !mac.is_unicast() || mac == EthernetAddress([0; 6]) {
            return Err(ConfigError::at(
                &mac_path,
                format!("{mac} is not a unicast MAC address"),
            ));
        }
        if let Some(j) = reservations.iter().position(|(m, _)| *m == mac) {
            return Err(ConfigError::at(
                &mac_path,
                format!("{mac} is already reserved in reservations.{j}"),
            ));
        }
        let a_path = format!("reservations.{i}.address");
        let a = parse_addr(&a_path, &r.address, "an address")?;
        host_in(subnet, &a_path, a)?;
        if a == addr || Some(a) == router {
            return Err(ConfigError::at(
                &a_path,
                format!("{a} is the server's or the router's address"),
            ));
        }
        if let Some(j) = reservations.iter().position(|(_, x)| *x == a) {
            return Err(ConfigError::at(
                &a_path,
                format!("{a} is already reserved in reservations.{j}"),
            ));
        }
        reservations.push((mac, a));
    }

    let mac = match &config.mac {
        None => EthernetAddress::derived(ctx.vnf_name(), 0xd4c0),
        Some(s) => {
            let m = EthernetAddress::parse(s).ok_or_else(|| {
                ConfigError::at(
                    "mac",
                    format!("expected a MAC address like 02:00:00:00:01:02, but got `{s}`"),
                )
            })?;
            if !m.is_unicast() || m == EthernetAddress([0; 6]) {
                return Err(ConfigError::at(
                    "mac",
                    format!("{m} is not a unicast MAC address"),
                ));
            }
            m
        }
    };

    Ok(Settings {
        lan,
        uplink,
        addr,
        subnet,
        mac,
        pool: (first, last),
        router,
        dns,
        domain,
        lease_time,
        renewal_time,
        rebinding_time,
        reservations,
    })
}
