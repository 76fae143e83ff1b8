//! The `config:` section and its validation.

use std::fmt;
use std::format;
use std::string::String;
use std::vec::Vec;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use vnf_sdk::{ConfigError, InitContext};

use vnf_sdk::prefix::Prefix;

use crate::rules::{Action, PortRange, Proto, Rule};

/// Default size of the connection table.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 65_536;
/// Largest connection table allowed (the table is allocated up front).
pub const MAX_MAX_CONNECTIONS: u64 = 262_144;
/// Longest timeout allowed, seconds (7 days).
pub const MAX_TIMEOUT_S: u64 = 604_800;

/// The firewall's configuration, as written in the chain file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `accept`, `drop` or `reject`, for new connections no rule matches.
    #[serde(default = "default_policy")]
    pub default_policy: String,
    /// Ordered rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Connection timeouts in seconds.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Size of the connection table.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// Whether non-IPv4 frames (ARP, IPv6, ...) pass.
    #[serde(default = "default_true")]
    pub pass_non_ip: bool,
}

fn default_policy() -> String {
    "drop".into()
}

fn default_max_connections() -> u64 {
    DEFAULT_MAX_CONNECTIONS
}

fn default_true() -> bool {
    true
}

/// One rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Free text, shown in the hit counter's help.
    #[serde(default)]
    pub name: Option<String>,
    /// Port name the packet comes in on.
    #[serde(default, rename = "in")]
    pub in_port: Option<String>,
    /// Source prefix.
    #[serde(default)]
    pub src: Option<String>,
    /// Destination prefix.
    #[serde(default)]
    pub dst: Option<String>,
    /// `tcp`, `udp`, `icmp` or `any`.
    #[serde(default)]
    pub proto: Option<String>,
    /// Source port or range.
    #[serde(default)]
    pub src_port: Option<PortValue>,
    /// Destination port or range.
    #[serde(default)]
    pub dst_port: Option<PortValue>,
    /// `accept`, `drop` or `reject`.
    pub action: String,
}

/// Timeouts in seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Established TCP connections.
    #[serde(default = "t_established")]
    pub tcp_established: u64,
    /// TCP connections being opened or closed.
    #[serde(default = "t_transitory")]
    pub tcp_transitory: u64,
    /// UDP (and other protocols).
    #[serde(default = "t_udp")]
    pub udp: u64,
    /// ICMP echo.
    #[serde(default = "t_icmp")]
    pub icmp: u64,
}

fn t_established() -> u64 {
    7200
}
fn t_transitory() -> u64 {
    120
}
fn t_udp() -> u64 {
    60
}
fn t_icmp() -> u64 {
    30
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            tcp_established: t_established(),
            tcp_transitory: t_transitory(),
            udp: t_udp(),
            icmp: t_icmp(),
        }
    }
}

/// A port as written: a number or a `"lo-hi"` string; checked later so that
/// the error carries a dotted key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortValue {
    /// A number (out-of-range values are refused in validation).
    Number(u64),
    /// A string: `"80"` or `"1024-65535"`.
    Text(String),
}

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a range like \"1024-65535\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortValue, E> {
                Ok(PortValue::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortValue, E> {
                Ok(PortValue::Number(u64::try_from(v).unwrap_or(u64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortValue, E> {
                Ok(PortValue::Text(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Timeouts in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp_established: u64,
    /// TCP opening or closing.
    pub tcp_transitory: u64,
    /// UDP and other protocols.
    pub udp: u64,
    /// ICMP echo.
    pub icmp: u64,
}

/// A validated configuration.
#[derive(Debug)]
pub struct Settings {
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// Rule names (for counter help), same order.
    pub names: Vec<Option<String>>,
    /// For new connections no rule matches.
    pub default_policy: Action,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Connection table size.
    pub max_connections: usize,
    /// Whether non-IPv4 frames pass.
    pub pass_non_ip: bool,
}

fn parse_port(v: &PortValue, path: &str) -> Result<PortRange, ConfigError> {
    let bad = || {
        ConfigError::at(
            path,
            format!(
                "expected a port 0-65535 or a range like \"1024-65535\", but got {}",
                match v {
                    PortValue::Number(n) => format!("{n}"),
                    PortValue::Text(s) => format!("`{s}`"),
                }
            ),
        )
    };
    let num = |s: &str| -> Option<u16> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match v {
        PortValue::Number(n) => {
            let p = u16::try_from(*n).map_err(|_| bad())?;
            Ok(PortRange { lo: p, hi: p })
        }
        PortValue::Text(s) => {
            let (lo, hi) = match s.split_once('-') {
                Some((lo, hi)) => (num(lo).ok_or_else(bad)?, num(hi).ok_or_else(bad)?),
                None => {
                    let p = num(s).ok_or_else(bad)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(ConfigError::at(
                    path,
                    format!("range `{s}` is backwards; write it as \"{hi}-{lo}\""),
                ));
            }
            Ok(PortRange { lo, hi })
        }
    }
}

fn parse_prefix(s: &str, path: &str) -> Result<Prefix, ConfigError> {
    let prefix = Prefix::parse_or_host(s).ok_or_else(|| {
        ConfigError::at(
            path,
            format!("expected an IPv4 prefix like 192.168.1.0/24 or an address like 192.168.1.50, but got `{s}`"),
        )
    })?;
    if prefix.has_host_bits() {
        return Err(ConfigError::at(
            path,
            format!(
                "{s} has bits set past the prefix length; did you mean {}/{}?",
                prefix.network(),
                prefix.len
            ),
        ));
    }
    Ok(prefix)
}

fn parse_action(s: &str, path: &str) -> Result<Action, ConfigError> {
    Action::parse(s).ok_or_else(|| {
        ConfigError::at(
            path,
            format!("expected accept, drop or reject, but got `{s}`"),
        )
    })
}

fn timeout(value: u64, key: &str) -> Result<u64, ConfigError> {
    if value == 0 || value > MAX_TIMEOUT_S {
        return Err(ConfigError::at(
            format!("timeouts.{key}"),
            format!("must be between 1 and {MAX_TIMEOUT_S} seconds, got {value}"),
        ));
    }
    Ok(value * 1_000_000_000)
}

/// Checks the configuration against the VNF's ports.
pub fn validate(ctx: &InitContext, config: Config) -> Result<Settings, ConfigError> {
    if ctx.ports().len() != 2 {
        return Err(ConfigError::at(
            "",
            format!(
                "the firewall is a bump in the wire and needs exactly 2 ports, but has {} ({})",
                ctx.ports().len(),
                ctx.ports().join(", ")
            ),
        ));
    }
    let default_policy = parse_action(&config.default_policy, "default_policy")?;
    let mut rules = Vec::with_capacity(config.rules.len());
    let mut names = Vec::with_capacity(config.rules.len());
    for (i, r) in config.rules.iter().enumerate() {
        let at = |key: &str| format!("rules.{i}.{key}");
        if let Some(name) = &r.name {
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(ConfigError::at(
                    at("name"),
                    "a rule name must be 1 to 64 printable characters",
                ));
            }
        }
        let in_port = match &r.in_port {
            None => None,
            Some(name) => Some(ctx.port(name).ok_or_else(|| {
                ConfigError::at(
                    at("in"),
                    format!(
                        "this VNF has no port named `{name}`; its ports are: {}",
                        ctx.ports().join(", ")
                    ),
                )
            })?),
        };
        let src = r
            .src
            .as_deref()
            .map(|s| parse_prefix(s, &at("src")))
            .transpose()?;
        let dst = r
            .dst
            .as_deref()
            .map(|s| parse_prefix(s, &at("dst")))
            .transpose()?;
        let proto = match &r.proto {
            None => Proto::Any,
            Some(p) => Proto::parse(p).ok_or_else(|| {
                ConfigError::at(
                    at("proto"),
                    format!("expected tcp, udp, icmp or any, but got `{p}`"),
                )
            })?,
        };
        let port = |v: &Option<PortValue>, key: &str| -> Result<Option<PortRange>, ConfigError> {
            let Some(v) = v else { return Ok(None) };
            if !matches!(proto, Proto::Tcp | Proto::Udp) {
                return Err(ConfigError::at(
                    at(key),
                    "ports can only be matched with `proto: tcp` or `proto: udp`",
                ));
            }
            parse_port(v, &at(key)).map(Some)
        };
        let src_port = port(&r.src_port, "src_port")?;
        let dst_port = port(&r.dst_port, "dst_port")?;
        let action = parse_action(&r.action, &at("action"))?;
        rules.push(Rule {
            in_port,
            src,
            dst,
            proto,
            src_port,
            dst_port,
            action,
        });
        names.push(r.name.clone());
    }
    let t = &config.timeouts;
    let timeouts = Timeouts {
        tcp_established: timeout(t.tcp_established, "tcp_established")?,
        tcp_transitory: timeout(t.tcp_transitory, "tcp_transitory")?,
        udp: timeout(t.udp, "udp")?,
        icmp: timeout(t.icmp, "icmp")?,
    };
    if config.max_connections == 0 || config.max_connections > MAX_MAX_CONNECTIONS {
        return Err(ConfigError::at(
            "max_connections",
            format!(
                "must be between 1 and {MAX_MAX_CONNECTIONS}, got {}",
                config.max_connections
            ),
        ));
    }
    Ok(Settings {
        rules,
        names,
        default_policy,
        timeouts,
        max_connections: config.max_connections as usize,
        pass_non_ip: config.pass_non_ip,
    })
}
