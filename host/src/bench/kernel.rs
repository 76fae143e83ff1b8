//! `--compare-kernel`: the deployed chain's topology rebuilt with the kernel
//! doing each VNF's job, in temporary namespaces (`nfvk-`) removed when
//! dropped. Routers become forwarding namespaces with the router's
//! addresses and routes, NATs forwarding plus nftables masquerade and
//! port forwards, firewalls a bridge with nftables bridge rules, DHCP
//! servers a plain bridge (the test hosts get their reserved or first pool
//! address, statically). Any other module has no kernel equivalent.
//!
//! [`plan`] turns a chain into [`Step`]s without touching the system (and
//! checks every value it takes from the chain file); [`KernelChain::build`]
//! carries them out.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::BenchError;
use crate::chain::names::{self, NameKind};
use crate::chain::{ChainSpec, Ipv4Cidr, ModuleRef, VnfSpec};
use crate::sys::testing::NetNsGuard;
use crate::sys::{LinkOps, LinuxLinkOps};

/// Prefix of the kernel topology's namespaces.
pub const NETNS_PREFIX: &str = "nfvk-";

/// One action building the kernel topology; nodes are chain node names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Veth {
        a: (String, String),
        b: (String, String),
    },
    Mac {
        node: String,
        iface: String,
        mac: [u8; 6],
    },
    Addr {
        node: String,
        iface: String,
        cidr: Ipv4Cidr,
    },
    Route {
        node: String,
        dst: Option<Ipv4Cidr>,
        via: Ipv4Addr,
    },
    Forward {
        node: String,
    },
    Bridge {
        node: String,
        ports: Vec<String>,
    },
    /// An nftables ruleset; each of `fallbacks` in turn, with what it gives
    /// up, if the ones before are refused (no bridge
    /// conntrack in this kernel).
    Nft {
        node: String,
        rules: String,
        fallbacks: Vec<(String, &'static str)>,
    },
}

/// Why a chain has no kernel equivalent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no kernel equivalent: {0}")]
pub struct NoKernelEquivalent(pub String);

fn no(msg: impl Into<String>) -> NoKernelEquivalent {
    NoKernelEquivalent(msg.into())
}

fn cidr(vnf: &str, what: &str, v: &Value) -> Result<Ipv4Cidr, NoKernelEquivalent> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| no(format!("{vnf}: {what} is not an a.b.c.d/len address")))
}

fn ipv4(vnf: &str, what: &str, v: &Value) -> Result<Ipv4Addr, NoKernelEquivalent> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| no(format!("{vnf}: {what} is not an IPv4 address")))
}

fn port_of(v: &VnfSpec, p: &Value) -> Result<String, NoKernelEquivalent> {
    match p.as_str() {
        Some(p) if v.ports.iter().any(|q| q == p) => Ok(p.to_owned()),
        _ => Err(no(format!("{}: {p} is not one of its ports", v.name))),
    }
}

fn routes(v: &VnfSpec, out: &mut Vec<Step>) -> Result<(), NoKernelEquivalent> {
    for r in v.config["routes"].as_array().into_iter().flatten() {
        let dst = cidr(&v.name, "a route's `to`", &r["to"])?;
        out.push(Step::Route {
            node: v.name.clone(),
            dst: (dst.prefix_len > 0).then_some(dst),
            via: ipv4(&v.name, "a route's `via`", &r["via"])?,
        });
    }
    Ok(())
}

fn router(v: &VnfSpec, out: &mut Vec<Step>) -> Result<(), NoKernelEquivalent> {
    let ifaces = v.config["interfaces"]
        .as_object()
        .ok_or_else(|| no(format!("{}: no interfaces", v.name)))?;
    for (port, addr) in ifaces {
        out.push(Step::Addr {
            node: v.name.clone(),
            iface: port_of(v, &Value::from(port.as_str()))?,
            cidr: cidr(&v.name, "an interface address", addr)?,
        });
    }
    routes(v, out)?;
    out.push(Step::Forward {
        node: v.name.clone(),
    });
    Ok(())
}

fn nat(v: &VnfSpec, out: &mut Vec<Step>) -> Result<(), NoKernelEquivalent> {
    let mut side = |key: &str| -> Result<String, NoKernelEquivalent> {
        let s = &v.config[key];
        let port = port_of(v, &s["port"])?;
        out.push(Step::Addr {
            node: v.name.clone(),
            iface: port.clone(),
            cidr: cidr(&v.name, &format!("{key}.address"), &s["address"])?,
        });
        Ok(port)
    };
    side("inside")?;
    let outside = side("outside")?;
    routes(v, out)?;
    let mut dnat = String::new();
    for f in v.config["port_forwards"].as_array().into_iter().flatten() {
        let proto = match f["proto"].as_str() {
            Some(p @ ("tcp" | "udp")) => p,
            _ => return Err(no(format!("{}: a port forward's proto", v.name))),
        };
        let port = f["port"]
            .as_u64()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| no(format!("{}: a port forward's port", v.name)))?;
        let to: std::net::SocketAddrV4 = f["to"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| no(format!("{}: a port forward's `to`", v.name)))?;
        dnat += &format!("    iifname \"{outside}\" {proto} dport {port} dnat to {to}\n");
    }
    out.push(Step::Forward {
        node: v.name.clone(),
    });
    out.push(Step::Nft {
        node: v.name.clone(),
        rules: format!(
            "table ip nfvk_nat {{\n  chain post {{\n    type nat hook postrouting priority 100;\n    \
             oifname \"{outside}\" masquerade\n  }}\n  chain pre {{\n    \
             type nat hook prerouting priority -100;\n{dnat}  }}\n}}\n"
        ),
        fallbacks: Vec::new(),
    });
    Ok(())
}

/// `80` or `"1024-65535"` as nftables writes it.
fn ports(vnf: &str, v: &Value) -> Result<String, NoKernelEquivalent> {
    let bad = || no(format!("{vnf}: a rule's port {v}"));
    let one = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .map(|n| n.to_string())
            .ok_or_else(bad),
        Value::String(s) => match s.split_once('-') {
            Some((a, b)) => Ok(format!("{}-{}", one(a)?, one(b)?)),
            None => Ok(one(s)?.to_string()),
        },
        _ => Err(bad()),
    }
}

fn firewall(v: &VnfSpec, out: &mut Vec<Step>) -> Result<(), NoKernelEquivalent> {
    let policy = match v.config["default_policy"].as_str() {
        Some(p @ ("accept" | "drop")) => p,
        None => "drop",
        Some(p) => return Err(no(format!("{}: default_policy {p}", v.name))),
    };
    // (match, action) per rule, rendered once per stand-in below.
    let mut rules: Vec<(String, &str)> = Vec::new();
    for r in v.config["rules"].as_array().into_iter().flatten() {
        let mut m = String::new();
        if !r["in"].is_null() {
            m += &format!("iifname \"{}\" ", port_of(v, &r["in"])?);
        }
        let proto = match r["proto"].as_str() {
            None | Some("any") => None,
            Some(p @ ("tcp" | "udp")) => Some(p),
            Some("icmp") => Some("icmp"),
            Some(p) => return Err(no(format!("{}: a rule's proto {p}", v.name))),
        };
        for (key, dir) in [("src", "saddr"), ("dst", "daddr")] {
            if !r[key].is_null() {
                m += &format!("ip {dir} {} ", cidr(&v.name, key, &r[key])?);
            }
        }
        if let Some(p) = proto {
            m += &format!("meta l4proto {p} ");
        }
        for (key, dir) in [("src_port", "sport"), ("dst_port", "dport")] {
            if !r[key].is_null() {
                if !matches!(proto, Some("tcp" | "udp")) {
                    return Err(no(format!("{}: a port match without tcp or udp", v.name)));
                }
                m += &format!("th {dir} {} ", ports(&v.name, &r[key])?);
            }
        }
        let action = match (r["action"].as_str(), proto) {
            (Some("accept"), _) => "accept",
            (Some("drop"), _) => "drop",
            (Some("reject"), Some("tcp")) => "reject with tcp reset",
            (Some("reject"), _) => "reject",
            (a, _) => return Err(no(format!("{}: a rule's action {a:?}", v.name))),
        };
        rules.push((m, action));
    }
    // Kernels without nft_reject_bridge refuse `reject` in a bridge table:
    // the fallbacks drop instead.
    let render = |reject_as_drop: bool| -> String {
        rules
            .iter()
            .map(|(m, action)| {
                let action = if reject_as_drop && action.starts_with("reject") {
                    "drop"
                } else {
                    action
                };
                format!("    {m}{action}\n")
            })
            .collect()
    };
    // Without conntrack, a default-drop policy would drop every reply;
    // the stateless fallback accepts by default and says so in the report.
    let table = |stateful: bool, reject_as_drop: bool| {
        let rules = render(reject_as_drop);
        let (ct, policy) = if stateful {
            (
                "    ct state established,related accept\n    ct state invalid drop\n",
                policy,
            )
        } else {
            ("", "accept")
        };
        format!(
            "table bridge nfvk_fw {{\n  chain forward {{\n    \
             type filter hook forward priority 0; policy {policy};\n    \
             ether type arp accept\n{ct}{rules}  }}\n}}\n"
        )
    };
    out.push(Step::Bridge {
        node: v.name.clone(),
        ports: v.ports.clone(),
    });
    out.push(Step::Nft {
        node: v.name.clone(),
        rules: table(true, false),
        fallbacks: vec![
            (table(true, true), "reject as drop (no bridge reject)"),
            (
                table(false, true),
                "stateless, default accept, reject as drop: this kernel's bridge family \
                 has no conntrack, so the kernel does less than the firewall",
            ),
        ],
    });
    Ok(())
}

/// The static address and gateway a DHCP client of `mac` would get from
/// the chain's DHCP servers: its reservation, else the pool's first.
fn dhcp_lease(spec: &ChainSpec, mac: Option<[u8; 6]>) -> Option<(Ipv4Cidr, Option<Ipv4Addr>)> {
    let server = spec
        .vnfs
        .iter()
        .find(|v| matches!(&v.module, ModuleRef::Builtin(m) if m == "dhcp"))?;
    let c = &server.config;
    let net: Ipv4Cidr = c["address"].as_str()?.parse().ok()?;
    let mac = mac.map(|m| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    });
    let reserved = c["reservations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["mac"]
                .as_str()
                .is_some_and(|m| Some(m.to_ascii_lowercase()) == mac)
        });
    let addr: Ipv4Addr = match reserved {
        Some(r) => r["address"].as_str()?.parse().ok()?,
        None => c["pool"].as_str()?.split('-').next()?.trim().parse().ok()?,
    };
    let router = c["router"].as_str().and_then(|s| s.parse().ok());
    Some((Ipv4Cidr::new(addr, net.prefix_len), router))
}

/// The steps that build `spec` with the kernel, or why it cannot be.
pub fn plan(spec: &ChainSpec) -> Result<Vec<Step>, NoKernelEquivalent> {
    let mut out = Vec::new();
    for l in &spec.links {
        out.push(Step::Veth {
            a: (l.a.node.clone(), l.a.port.clone()),
            b: (l.b.node.clone(), l.b.port.clone()),
        });
    }
    for h in &spec.hosts {
        let node = || h.name.clone();
        let mut gateway = h.gateway;
        for i in &h.interfaces {
            if let Some(mac) = i.mac {
                out.push(Step::Mac {
                    node: node(),
                    iface: i.name.clone(),
                    mac,
                });
            }
            let mut addrs = i.addresses.clone();
            if i.dhcp {
                let (a, gw) = dhcp_lease(spec, i.mac)
                    .ok_or_else(|| no(format!("{}: a DHCP client with no server", h.name)))?;
                addrs.push(a);
                gateway = gateway.or(gw);
            }
            for cidr in addrs {
                out.push(Step::Addr {
                    node: node(),
                    iface: i.name.clone(),
                    cidr,
                });
            }
        }
        if let Some(via) = gateway {
            out.push(Step::Route {
                node: node(),
                dst: None,
                via,
            });
        }
        for r in &h.routes {
            out.push(Step::Route {
                node: node(),
                dst: Some(r.dst),
                via: r.via,
            });
        }
    }
    let mut skipped = Vec::new();
    for v in &spec.vnfs {
        let done = match &v.module {
            ModuleRef::Builtin(m) if m == "router" => router(v, &mut out),
            ModuleRef::Builtin(m) if m == "nat" => nat(v, &mut out),
            ModuleRef::Builtin(m) if m == "firewall" => firewall(v, &mut out),
            ModuleRef::Builtin(m) if m == "dhcp" => {
                out.push(Step::Bridge {
                    node: v.name.clone(),
                    ports: v.ports.clone(),
                });
                Ok(())
            }
            ModuleRef::Builtin(m) => Err(no(format!("{} runs module {m}", v.name))),
            ModuleRef::Path(p) => Err(no(format!("{} runs {}", v.name, p.display()))),
        };
        if let Err(e) = done {
            skipped.push(e.0);
        }
    }
    if !skipped.is_empty() {
        return Err(no(skipped.join("; ")));
    }
    Ok(out)
}

/// The kernel topology, up; its namespaces go when it is dropped.
pub struct KernelChain {
    // Node name -> its namespace.
    nodes: BTreeMap<String, NetNsGuard>,
    /// What the kernel does for each VNF, for the report.
    pub features: Vec<String>,
}

fn tool(ns: &str, args: &[&str], input: Option<&str>) -> Result<(), BenchError> {
    let what = format!("ip netns exec {ns} {}", args.join(" "));
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BenchError::Tool {
            what: what.clone(),
            detail: e.to_string(),
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| BenchError::Tool {
        what: what.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::Tool {
            what,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

impl KernelChain {
    /// Builds `steps` (from [`plan`]) in fresh namespaces.
    pub fn build(spec: &ChainSpec, steps: &[Step]) -> Result<KernelChain, BenchError> {
        let mut nodes = BTreeMap::new();
        for name in spec
            .hosts
            .iter()
            .map(|h| &h.name)
            .chain(spec.vnfs.iter().map(|v| &v.name))
        {
            // Names come from a decoded chain; checked again, they are
            // used in commands.
            names::check_arg(NameKind::Node, "node name", name).map_err(|e| BenchError::Tool {
                what: "kernel topology".into(),
                detail: e.to_string(),
            })?;
            nodes.insert(name.to_owned(), NetNsGuard::new(NETNS_PREFIX)?);
        }
        let mut k = KernelChain {
            nodes,
            features: Vec::new(),
        };
        for s in steps {
            k.step(s)?;
        }
        Ok(k)
    }

    /// The namespace of chain node `node`.
    pub fn netns(&self, node: &str) -> Option<&str> {
        self.nodes.get(node).map(|g| g.name())
    }

    fn ns(&self, node: &str) -> Result<&str, BenchError> {
        self.netns(node).ok_or_else(|| BenchError::Tool {
            what: "kernel topology".into(),
            detail: format!("no node {node}"),
        })
    }

    fn step(&mut self, s: &Step) -> Result<(), BenchError> {
        let links = LinuxLinkOps;
        match s {
            Step::Veth { a, b } => {
                links.create_veth(self.ns(&a.0)?, &a.1, self.ns(&b.0)?, &b.1, None)?
            }
            Step::Mac { node, iface, mac } => links.set_mac(self.ns(node)?, iface, *mac)?,
            Step::Addr { node, iface, cidr } => {
                links.add_address(self.ns(node)?, iface, cidr.addr, cidr.prefix_len)?
            }
            Step::Route { node, dst, via } => {
                links.add_route(self.ns(node)?, dst.map(|d| (d.addr, d.prefix_len)), *via)?
            }
            Step::Forward { node } => {
                // Inside this namespace only.
                tool(
                    self.ns(node)?,
                    &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                    None,
                )?;
                self.features.push(format!("{node}: kernel forwarding"));
            }
            Step::Bridge { node, ports } => {
                let ns = self.ns(node)?.to_owned();
                tool(&ns, &["ip", "link", "add", "br0", "type", "bridge"], None)?;
                for p in ports {
                    tool(&ns, &["ip", "link", "set", "dev", p, "master", "br0"], None)?;
                }
                tool(&ns, &["ip", "link", "set", "br0", "up"], None)?;
                self.features.push(format!("{node}: bridge"));
            }
            Step::Nft {
                node,
                rules,
                fallbacks,
            } => {
                let ns = self.ns(node)?.to_owned();
                let mut result = tool(&ns, &["nft", "-f", "-"], Some(rules));
                let mut gave_up = None;
                for (rules, what) in fallbacks {
                    if result.is_ok() {
                        break;
                    }
                    result = tool(&ns, &["nft", "-f", "-"], Some(rules));
                    gave_up = Some(what);
                }
                result?;
                self.features.push(match gave_up {
                    None => format!("{node}: nftables"),
                    Some(what) => format!("{node}: nftables, {what}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ChainSpec {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../chains")
            .join(name);
        crate::chain::load(&path).expect("shipped chain decodes")
    }

    #[test]
    fn basic_is_a_forwarding_namespace() {
        let steps = plan(&spec("basic.yaml")).unwrap();
        assert!(steps.contains(&Step::Forward { node: "r1".into() }));
        assert!(steps.contains(&Step::Addr {
            node: "r1".into(),
            iface: "wan".into(),
            cidr: "10.0.2.1/24".parse().unwrap()
        }));
        assert!(steps.contains(&Step::Route {
            node: "h1".into(),
            dst: None,
            via: "10.0.1.1".parse().unwrap()
        }));
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s, Step::Veth { .. }))
                .count(),
            2
        );
    }

    #[test]
    fn edge_maps_firewall_nat_and_dhcp() {
        let steps = plan(&spec("edge.yaml")).unwrap();
        // The DHCP client gets its reservation, and the DHCP router.
        assert!(steps.contains(&Step::Addr {
            node: "lan".into(),
            iface: "eth0".into(),
            cidr: "192.168.1.50/24".parse().unwrap()
        }));
        assert!(steps.contains(&Step::Route {
            node: "lan".into(),
            dst: None,
            via: "192.168.1.1".parse().unwrap()
        }));
        let nft = |node: &str| {
            steps.iter().find_map(|s| match s {
                Step::Nft { node: n, rules, .. } if n == node => Some(rules.clone()),
                _ => None,
            })
        };
        let fw = nft("fw").unwrap();
        assert!(fw.contains("policy drop;"), "{fw}");
        assert!(
            fw.contains(
                "iifname \"outside\" ip daddr 192.168.1.50/32 meta l4proto tcp th dport 80 accept"
            ),
            "{fw}"
        );
        assert!(fw.contains("th dport 25 reject with tcp reset"), "{fw}");
        // The fallbacks for kernels without bridge reject or conntrack:
        // the same rules, rejecting by dropping, then also stateless.
        let fallbacks = steps
            .iter()
            .find_map(|s| match s {
                Step::Nft {
                    node, fallbacks, ..
                } if node == "fw" => Some(fallbacks.clone()),
                _ => None,
            })
            .unwrap();
        let [(dropping, _), (stateless, _)] = &fallbacks[..] else {
            panic!("{fallbacks:?}");
        };
        for table in [dropping, stateless] {
            assert!(table.contains("th dport 25 drop\n"), "{table}");
            assert!(!table.contains("reject"), "{table}");
            assert!(table.contains("th dport 80 accept\n"), "{table}");
        }
        assert!(dropping.contains("policy drop;") && dropping.contains("ct state"));
        assert!(stateless.contains("policy accept;") && !stateless.contains("ct state"));
        let nat = nft("nat").unwrap();
        assert!(nat.contains("oifname \"outside\" masquerade"), "{nat}");
        assert!(
            nat.contains("tcp dport 8080 dnat to 192.168.1.50:80"),
            "{nat}"
        );
        assert!(steps.contains(&Step::Bridge {
            node: "dhcp".into(),
            ports: vec!["lan".into(), "up".into()]
        }));
    }

    #[test]
    fn unknown_modules_and_bad_values_have_no_equivalent() {
        let mut s = spec("basic.yaml");
        s.vnfs[0].module = ModuleRef::Builtin("faulty".into());
        let e = plan(&s).unwrap_err();
        assert!(e.to_string().contains("r1 runs module faulty"), "{e}");

        let mut s = spec("edge.yaml");
        let fw = s.vnfs.iter_mut().find(|v| v.name == "fw").unwrap();
        fw.config["rules"][0]["in"] = Value::from("eth0\"; flush ruleset; \"");
        assert!(plan(&s).is_err());
        let fw = s.vnfs.iter_mut().find(|v| v.name == "fw").unwrap();
        fw.config["rules"][0]["in"] = Value::from("inside");
        fw.config["rules"][0]["dst_port"] = Value::from("25; drop");
        assert!(plan(&s).is_err());
    }
}
