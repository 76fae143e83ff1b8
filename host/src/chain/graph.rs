//! A chain's topology as a drawing, like containerlab's `graph`: hosts,
//! VNFs, their ports with addresses, and the links with their kind, as
//! Mermaid or Graphviz (dot) text. Made from a validated [`ChainSpec`],
//! so it needs no deploy.
//!
//! Names are checked by the decoder, but interface names may hold quotes
//! and module paths anything: every label is escaped for its format.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::spec::{ChainSpec, Ipv4Cidr, LinkKind, ModuleRef, VnfSpec};

/// One port of a node: its name and what the drawing says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    /// Addresses, `dhcp`, a MAC: what is known of it before deploying.
    pub notes: Vec<String>,
}

/// A host or VNF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    pub name: String,
    /// `host`, or the VNF's module (`router`, `my.wasm`).
    pub kind: String,
    pub is_host: bool,
    pub ports: Vec<Port>,
}

/// A link between two ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphLink {
    pub a: (String, String),
    pub b: (String, String),
    pub kind: LinkKind,
    pub mtu: Option<u32>,
}

/// What is drawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub chain: String,
    pub nodes: Vec<GraphNode>,
    pub links: Vec<GraphLink>,
}

impl Topology {
    pub fn of(spec: &ChainSpec) -> Topology {
        let hosts = spec.hosts.iter().map(|h| GraphNode {
            name: h.name.clone(),
            kind: "host".into(),
            is_host: true,
            ports: h
                .interfaces
                .iter()
                .map(|i| {
                    let mut notes: Vec<String> =
                        i.addresses.iter().map(|a| a.to_string()).collect();
                    if i.dhcp {
                        notes.push("dhcp".into());
                    }
                    Port {
                        name: i.name.clone(),
                        notes,
                    }
                })
                .collect(),
        });
        let vnfs = spec.vnfs.iter().map(|v| GraphNode {
            name: v.name.clone(),
            kind: {
                let module = match &v.module {
                    ModuleRef::Builtin(m) => m.clone(),
                    ModuleRef::Path(p) => p
                        .file_name()
                        .map_or_else(|| p.display().to_string(), |f| f.to_string_lossy().into()),
                };
                // A member of a fused group says whose worker runs it.
                match &v.group {
                    Some(g) => format!("{module}, group {g}"),
                    None => module,
                }
            },
            is_host: false,
            ports: v
                .ports
                .iter()
                .map(|p| Port {
                    name: p.clone(),
                    notes: vnf_port_addresses(v, p)
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                })
                .collect(),
        });
        Topology {
            chain: spec.name.clone(),
            nodes: hosts.chain(vnfs).collect(),
            links: spec
                .links
                .iter()
                .map(|l| GraphLink {
                    a: (l.a.node.clone(), l.a.port.clone()),
                    b: (l.b.node.clone(), l.b.port.clone()),
                    kind: l.kind,
                    mtu: l.mtu,
                })
                .collect(),
        }
    }

    /// Mermaid `graph LR` text (renders in GitHub Markdown and editors).
    pub fn mermaid(&self) -> String {
        let mut out = format!("%% nfvhost chain {}\ngraph LR\n", self.chain);
        for n in &self.nodes {
            let mut label = format!(
                "<b>{}</b><br/>{}",
                mermaid_text(&n.name),
                mermaid_text(&n.kind)
            );
            for p in &n.ports {
                let _ = write!(label, "<br/>{}", mermaid_text(&port_line(p)));
            }
            // Hosts as rectangles, VNFs as hexagons.
            let (open, close) = if n.is_host { ("[", "]") } else { ("{{", "}}") };
            let _ = writeln!(out, "  {}{open}\"{label}\"{close}", mermaid_id(&n.name));
        }
        for l in &self.links {
            let _ = writeln!(
                out,
                "  {} ---|\"{}\"| {}",
                mermaid_id(&l.a.0),
                mermaid_text(&link_label(l)),
                mermaid_id(&l.b.0)
            );
        }
        out
    }

    /// Graphviz text (`dot -Tsvg` draws it).
    pub fn dot(&self) -> String {
        let mut out = format!(
            "graph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
            dot_text(&self.chain)
        );
        for n in &self.nodes {
            let mut label = format!("{}\\n{}", dot_text(&n.name), dot_text(&n.kind));
            for p in &n.ports {
                let _ = write!(label, "\\n{}", dot_text(&port_line(p)));
            }
            let shape = if n.is_host { "box" } else { "hexagon" };
            let _ = writeln!(
                out,
                "  \"{}\" [shape={shape}, label=\"{label}\"];",
                dot_text(&n.name)
            );
        }
        for l in &self.links {
            let mut label = l.kind.to_string();
            if let Some(mtu) = l.mtu {
                let _ = write!(label, " mtu {mtu}");
            }
            let style = match l.kind {
                LinkKind::Veth => "solid",
                LinkKind::Tap => "dashed",
                LinkKind::Vxlan(_) => "dotted",
                // In a fused group's worker: no interface.
                LinkKind::Memory => "bold",
            };
            let _ = writeln!(
                out,
                "  \"{}\" -- \"{}\" [taillabel=\"{}\", headlabel=\"{}\", label=\"{}\", style={style}];",
                dot_text(&l.a.0),
                dot_text(&l.b.0),
                dot_text(&l.a.1),
                dot_text(&l.b.1),
                dot_text(&label)
            );
        }
        out.push_str("}\n");
        out
    }
}

/// `eth0 10.0.1.10/24`, `lan`, `eth0 dhcp`.
fn port_line(p: &Port) -> String {
    if p.notes.is_empty() {
        p.name.clone()
    } else {
        format!("{} {}", p.name, p.notes.join(", "))
    }
}

/// `eth0 – lan (veth, mtu 9000)`.
fn link_label(l: &GraphLink) -> String {
    let mut s = format!("{} – {} ({}", l.a.1, l.b.1, l.kind);
    if let Some(mtu) = l.mtu {
        let _ = write!(s, ", mtu {mtu}");
    }
    s.push(')');
    s
}

/// The addresses a VNF's `config:` gives `port`, in the two shapes the
/// shipped modules use: `<port>: a.b.c.d/n` (the router's `interfaces:`)
/// and `{ port: <port>, address: a.b.c.d/n }` (the NAT's sides, the DHCP
/// server). Modules are free in their config, so this is a best effort:
/// a drawing, not a statement of what the module does.
fn vnf_port_addresses(v: &VnfSpec, port: &str) -> Vec<Ipv4Cidr> {
    let mut found = Vec::new();
    collect_addresses(&v.config, port, &mut found);
    found.dedup();
    found
}

fn collect_addresses(value: &serde_json::Value, port: &str, found: &mut Vec<Ipv4Cidr>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if map.get("port").and_then(Value::as_str) == Some(port) {
                if let Some(c) = map.get("address").and_then(Value::as_str).and_then(cidr) {
                    found.push(c);
                }
            }
            if let Some(c) = map.get(port).and_then(Value::as_str).and_then(cidr) {
                found.push(c);
            }
            for v in map.values() {
                collect_addresses(v, port, found);
            }
        }
        Value::Array(items) => {
            for v in items {
                collect_addresses(v, port, found);
            }
        }
        _ => {}
    }
}

fn cidr(text: &str) -> Option<Ipv4Cidr> {
    text.parse().ok()
}

/// A Mermaid node id: node names are `[a-z0-9-]`, which Mermaid takes,
/// but a leading digit or a keyword (`end`) would not do; prefix them all.
fn mermaid_id(name: &str) -> String {
    format!("n_{}", name.replace('-', "_"))
}

/// Text inside a quoted Mermaid label: quotes and markup as entities.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a quoted dot string.
fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn shipped(file: &str) -> Topology {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        Topology::of(&crate::chain::load(&path).unwrap())
    }

    #[test]
    fn edge_topology_has_every_node_port_address_and_link() {
        let t = shipped("chains/edge.yaml");
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["lan", "wan", "dhcp", "fw", "r1", "nat"]);
        let ports = |n: &str| {
            t.nodes
                .iter()
                .find(|x| x.name == n)
                .unwrap()
                .ports
                .iter()
                .map(port_line)
                .collect::<Vec<_>>()
        };
        assert_eq!(ports("lan"), ["eth0 dhcp"]);
        assert_eq!(ports("wan"), ["eth0 203.0.113.10/24"]);
        assert_eq!(ports("dhcp"), ["lan 192.168.1.2/24", "up"]);
        assert_eq!(ports("fw"), ["inside", "outside"]);
        assert_eq!(ports("r1"), ["lan 192.168.1.1/24", "wan 10.255.0.1/30"]);
        assert_eq!(
            ports("nat"),
            ["inside 10.255.0.2/30", "outside 203.0.113.1/24"]
        );
        assert_eq!(t.links.len(), 5);
    }

    #[test]
    fn edge_mermaid() {
        let m = shipped("chains/edge.yaml").mermaid();
        assert!(m.starts_with("%% nfvhost chain edge\ngraph LR\n"), "{m}");
        assert!(
            m.contains("  n_lan[\"<b>lan</b><br/>host<br/>eth0 dhcp\"]\n"),
            "{m}"
        );
        assert!(
            m.contains(
                "  n_r1{{\"<b>r1</b><br/>router<br/>lan 192.168.1.1/24<br/>wan 10.255.0.1/30\"}}\n"
            ),
            "{m}"
        );
        assert!(
            m.contains("  n_lan ---|\"eth0 – lan (veth)\"| n_dhcp\n"),
            "{m}"
        );
        assert!(
            m.contains("  n_nat ---|\"outside – eth0 (veth)\"| n_wan\n"),
            "{m}"
        );
        assert_eq!(m.matches("---|").count(), 5, "{m}");
    }

    #[test]
    fn edge_dot() {
        let d = shipped("chains/edge.yaml").dot();
        assert!(d.starts_with("graph \"edge\" {\n  rankdir=LR;\n"), "{d}");
        assert!(
            d.contains("  \"wan\" [shape=box, label=\"wan\\nhost\\neth0 203.0.113.10/24\"];\n"),
            "{d}"
        );
        assert!(
            d.contains("  \"nat\" [shape=hexagon, label=\"nat\\nnat\\ninside 10.255.0.2/30\\noutside 203.0.113.1/24\"];\n"),
            "{d}"
        );
        assert!(
            d.contains("  \"fw\" -- \"r1\" [taillabel=\"outside\", headlabel=\"lan\", label=\"veth\", style=solid];\n"),
            "{d}"
        );
        assert!(d.ends_with("}\n"));
        assert_eq!(d.matches(" -- ").count(), 5, "{d}");
    }

    #[test]
    fn tap_links_are_drawn_as_tap() {
        let t = shipped("tests/chains/tap.yaml");
        assert!(t.links.iter().any(|l| l.kind == LinkKind::Tap));
        assert!(t.mermaid().contains("(tap)"));
        assert!(t.dot().contains("label=\"tap\", style=dashed"));
    }

    #[test]
    fn labels_are_escaped() {
        // Names are checked by the decoder; a module file name is not.
        let mut t = shipped("chains/basic.yaml");
        t.nodes[2].kind = "a\"<#>\\\n.wasm".into();
        let m = t.mermaid();
        assert!(m.contains("<br/>a#quot;#lt;#35;#gt;\\ .wasm<br/>"), "{m}");
        let d = t.dot();
        assert!(d.contains("\\na\\\"<#>\\\\ .wasm\\n"), "{d}");
    }
}
