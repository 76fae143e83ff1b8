//! The switch's configuration: per-port VLAN modes, the MAC table's size
//! and aging time, checked against the VNF's ports.

use std::collections::BTreeMap;

use serde::Deserialize;
use vnf_sdk::wire::vlan::{MAX_VID, TPID_8021AD, TPID_8021Q};
use vnf_sdk::ConfigError;

/// Default MAC table size.
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// Largest MAC table allowed.
pub const MAX_TABLE_SIZE: usize = 65_536;
/// Default aging time in seconds (IEEE 802.1D's default).
pub const DEFAULT_AGING_SECS: u64 = 300;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Per port, by name; ports not listed are access ports in VLAN 1.
    #[serde(default)]
    pub ports: BTreeMap<String, PortConfig>,
    #[serde(default)]
    pub mac_table_size: Option<usize>,
    #[serde(default)]
    pub aging_time: Option<u64>,
    /// Read by the chain validator, not by the module: lets this switch be
    /// part of a loop.
    #[serde(default)]
    pub allow_loops: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub mode: String,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub allowed: Option<Vec<VlanItem>>,
    #[serde(default)]
    pub native: Option<u16>,
    #[serde(default)]
    pub tpid: Option<String>,
    #[serde(default)]
    pub svlan: Option<u16>,
}

/// An allowed-list entry: a VLAN ID, or `"lo-hi"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum VlanItem {
    One(u16),
    Range(String),
}

/// A set of VLAN IDs 0..=4095.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VlanSet([u64; 64]);

impl VlanSet {
    pub fn empty() -> Self {
        VlanSet([0; 64])
    }
    pub fn insert(&mut self, vid: u16) {
        self.0[usize::from(vid >> 6)] |= 1 << (vid & 63);
    }
    pub fn contains(&self, vid: u16) -> bool {
        vid <= 4095 && self.0[usize::from(vid >> 6)] & (1 << (vid & 63)) != 0
    }
}

/// What a port does with VLANs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Untagged frames in one VLAN.
    Access { vlan: u16 },
    /// Tagged frames (`tpid`) of the allowed VLANs; untagged ones belong to
    /// the native VLAN, if any.
    Trunk {
        tpid: u16,
        allowed: Box<VlanSet>,
        native: Option<u16>,
    },
    /// A customer port of a provider bridge: every frame, tagged or not,
    /// belongs to S-VLAN `svlan` and crosses unchanged.
    Qinq { svlan: u16 },
}

impl Mode {
    /// Whether the port carries frames of `vlan`.
    pub fn carries(&self, vlan: u16) -> bool {
        match self {
            Mode::Access { vlan: v } | Mode::Qinq { svlan: v } => *v == vlan,
            Mode::Trunk {
                allowed, native, ..
            } => allowed.contains(vlan) || *native == Some(vlan),
        }
    }
}

/// The checked configuration.
pub struct Settings {
    /// One mode per port, in port order.
    pub modes: Vec<Mode>,
    pub table_size: usize,
    pub aging_ns: u64,
    /// VLANs named in the configuration, for per-VLAN counters.
    pub named_vlans: Vec<u16>,
}

fn vid(path: &str, v: u16) -> Result<u16, ConfigError> {
    if (1..=MAX_VID).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::at(
            path,
            format!("VLAN {v} is out of range; use 1 to {MAX_VID}"),
        ))
    }
}

fn range(path: &str, s: &str) -> Result<(u16, u16), ConfigError> {
    let bad = || {
        ConfigError::at(
            path,
            format!("expected a VLAN ID or a range like \"100-199\", but got `{s}`"),
        )
    };
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo = vid(path, lo.trim().parse().map_err(|_| bad())?)?;
    let hi = vid(path, hi.trim().parse().map_err(|_| bad())?)?;
    if lo > hi {
        return Err(ConfigError::at(
            path,
            format!("range {lo}-{hi} is empty; write the lower ID first"),
        ));
    }
    Ok((lo, hi))
}

impl Settings {
    pub fn check(config: Config, ports: &[String]) -> Result<Settings, ConfigError> {
        if !(2..=nfvhost_abi::MAX_PORTS).contains(&ports.len()) {
            return Err(ConfigError::at(
                "",
                format!(
                    "a switch needs 2 to {} ports, but has {}",
                    nfvhost_abi::MAX_PORTS,
                    ports.len()
                ),
            ));
        }
        for name in config.ports.keys() {
            if !ports.contains(name) {
                return Err(ConfigError::at(
                    format!("ports.{name}"),
                    format!(
                        "this VNF has no port named `{name}`; its ports are: {}",
                        ports.join(", ")
                    ),
                ));
            }
        }
        let mut named = Vec::new();
        let mut modes = Vec::with_capacity(ports.len());
        for name in ports {
            let Some(pc) = config.ports.get(name) else {
                modes.push(Mode::Access { vlan: 1 });
                named.push(1);
                continue;
            };
            let path = format!("ports.{name}");
            let only = |allowed: &[&str]| -> Result<(), ConfigError> {
                for (key, set) in [
                    ("vlan", pc.vlan.is_some()),
                    ("allowed", pc.allowed.is_some()),
                    ("native", pc.native.is_some()),
                    ("tpid", pc.tpid.is_some()),
                    ("svlan", pc.svlan.is_some()),
                ] {
                    if set && !allowed.contains(&key) {
                        return Err(ConfigError::at(
                            format!("{path}.{key}"),
                            format!("`{key}` does not apply to mode {}", pc.mode),
                        ));
                    }
                }
                Ok(())
            };
            let mode = match pc.mode.as_str() {
                "access" => {
                    only(&["vlan"])?;
                    let v = vid(&format!("{path}.vlan"), pc.vlan.unwrap_or(1))?;
                    named.push(v);
                    Mode::Access { vlan: v }
                }
                "trunk" => {
                    only(&["allowed", "native", "tpid"])?;
                    let tpid = match pc.tpid.as_deref() {
                        None | Some("802.1q") | Some("0x8100") => TPID_8021Q,
                        Some("802.1ad") | Some("0x88a8") => TPID_8021AD,
                        Some(other) => {
                            return Err(ConfigError::at(
                                format!("{path}.tpid"),
                                format!("expected 802.1q or 802.1ad, but got `{other}`"),
                            ))
                        }
                    };
                    let mut allowed = VlanSet::empty();
                    match &pc.allowed {
                        None => (1..=MAX_VID).for_each(|v| allowed.insert(v)),
                        Some(items) => {
                            for (i, item) in items.iter().enumerate() {
                                let p = format!("{path}.allowed.{i}");
                                match item {
                                    VlanItem::One(v) => {
                                        let v = vid(&p, *v)?;
                                        named.push(v);
                                        allowed.insert(v);
                                    }
                                    VlanItem::Range(s) => {
                                        let (lo, hi) = range(&p, s)?;
                                        (lo..=hi).for_each(|v| allowed.insert(v));
                                    }
                                }
                            }
                        }
                    }
                    let native = match pc.native {
                        Some(v) => {
                            let v = vid(&format!("{path}.native"), v)?;
                            named.push(v);
                            Some(v)
                        }
                        None => None,
                    };
                    Mode::Trunk {
                        tpid,
                        allowed: Box::new(allowed),
                        native,
                    }
                }
                "qinq" => {
                    only(&["svlan"])?;
                    let p = format!("{path}.svlan");
                    let v = vid(
                        &p,
                        pc.svlan
                            .ok_or_else(|| ConfigError::at(&p, "a qinq port needs its S-VLAN"))?,
                    )?;
                    named.push(v);
                    Mode::Qinq { svlan: v }
                }
                other => {
                    return Err(ConfigError::at(
                        format!("{path}.mode"),
                        format!("expected access, trunk or qinq, but got `{other}`"),
                    ))
                }
            };
            modes.push(mode);
        }
        let table_size = config.mac_table_size.unwrap_or(DEFAULT_TABLE_SIZE);
        if !(1..=MAX_TABLE_SIZE).contains(&table_size) {
            return Err(ConfigError::at(
                "mac_table_size",
                format!("{table_size} is out of range; use 1 to {MAX_TABLE_SIZE}"),
            ));
        }
        let aging = config.aging_time.unwrap_or(DEFAULT_AGING_SECS);
        if !(1..=1_000_000).contains(&aging) {
            return Err(ConfigError::at(
                "aging_time",
                format!("{aging} seconds is out of range; use 1 to 1000000"),
            ));
        }
        named.sort_unstable();
        named.dedup();
        Ok(Settings {
            modes,
            table_size,
            aging_ns: aging * 1_000_000_000,
            named_vlans: named,
        })
    }
}
