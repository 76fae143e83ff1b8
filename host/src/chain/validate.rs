//! Decoding the spanned YAML tree into a [`ChainSpec`], collecting every
//! problem on the way.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::error::{suggest, ChainError, ChainErrors};
use super::spec::{
    ChainSpec, Datapath, Endpoint, HostInterface, HostSpec, Ipv4Cidr, LinkKind, LinkSpec,
    ModuleRef, Resources, RouteSpec, Span, VnfSpec,
};
use super::yaml::{LoadError, Node, NodeValue};

/// Longest chain name (it prefixes namespace names).
pub const MAX_CHAIN_NAME: usize = 12;
/// Longest host or VNF name.
pub const MAX_NODE_NAME: usize = 15;
/// Longest interface / port name (Linux IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;
/// Smallest `memory:` limit.
pub const MIN_MEMORY: u64 = 4 << 20;
/// Smallest `wasm_memory:` (one wasm page).
pub const MIN_WASM_MEMORY: u64 = 64 << 10;
/// Largest `wasm_memory:` (the wasm32 address space).
pub const MAX_WASM_MEMORY: u64 = 4 << 30;
/// Largest `cpu:`.
pub const MAX_CPU: f64 = 1024.0;

const TOP_KEYS: &[&str] = &["name", "metrics", "hosts", "vnfs", "links", "chain"];
const HOST_KEYS: &[&str] = &["interfaces", "gateway", "routes"];
const IFACE_KEYS: &[&str] = &["address", "addresses", "dhcp", "mtu", "mac"];
const ROUTE_KEYS: &[&str] = &["to", "via"];
const VNF_KEYS: &[&str] = &["module", "ports", "resources", "datapath", "config"];
const DATAPATH_KEYS: &[&str] = &["batch", "busy_poll", "offload", "cpus"];
const RESOURCE_KEYS: &[&str] = &["cpu", "memory", "pids", "wasm_memory"];
const LINK_KEYS: &[&str] = &["a", "b", "kind", "mtu"];

/// Collects errors for one file.
struct Ctx<'f> {
    file: &'f str,
    errors: Vec<ChainError>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Span, message: impl Into<String>) {
        self.push(span, message.into(), None);
    }

    fn hint(&mut self, span: Span, message: impl Into<String>, hint: impl Into<String>) {
        self.push(span, message.into(), Some(hint.into()));
    }

    fn push(&mut self, span: Span, message: String, hint: Option<String>) {
        self.errors.push(ChainError {
            file: self.file.to_owned(),
            line: span.line,
            col: span.col,
            message,
            hint,
        });
    }

    fn type_err(&mut self, node: &Node, expected: &str, what: &str) {
        self.err(
            node.span,
            format!("expected {expected} for {what}, found {}", node.kind()),
        );
    }

    /// `node` as a mapping (null counts as empty when `null_ok`).
    fn map<'a>(&mut self, node: &'a Node, what: &str, null_ok: bool) -> Option<&'a [(Node, Node)]> {
        match &node.value {
            NodeValue::Map(m) => Some(m),
            NodeValue::Null if null_ok => Some(&[]),
            _ => {
                self.type_err(node, "a mapping", what);
                None
            }
        }
    }

    fn seq<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a [Node]> {
        match &node.value {
            NodeValue::Seq(s) => Some(s),
            _ => {
                self.type_err(node, "a list", what);
                None
            }
        }
    }

    fn str<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a str> {
        match &node.value {
            NodeValue::Str(s) => Some(s),
            _ => {
                self.type_err(node, "a string", what);
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Bool(b) => Some(*b),
            _ => {
                self.type_err(node, "`true` or `false`", what);
                None
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str) -> Option<i64> {
        match &node.value {
            NodeValue::Int(i) => Some(*i),
            _ => {
                self.type_err(node, "an integer", what);
                None
            }
        }
    }

    /// A name written as a scalar (strings and numbers alike).
    fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.scalar_text() {
            Some(s) if !matches!(node.value, NodeValue::Bool(_)) => Some(s),
            _ => {
                self.type_err(node, "a name", what);
                None
            }
        }
    }

    /// The entries of a mapping, checking for unknown and missing keys.
    /// Missing keys are reported at `owner` (the parent's key for this
    /// mapping, or the mapping itself).
    fn fields<'a>(
        &mut self,
        entries: &'a [(Node, Node)],
        what: &str,
        owner: Span,
        allowed: &[&str],
        required: &[&str],
    ) -> Fields<'a> {
        let mut fields = Fields::default();
        for (k, v) in entries {
            let Some(key) = k.scalar_text() else {
                self.type_err(k, "a key name", what);
                continue;
            };
            if allowed.contains(&key.as_str()) {
                fields.entries.push((key, k, v));
            } else {
                let list = allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let hint = match suggest(&key, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? allowed keys: {list}"),
                    None => format!("allowed keys: {list}"),
                };
                self.hint(k.span, format!("unknown key `{key}` in {what}"), hint);
            }
        }
        for r in required {
            if fields.get(r).is_none() {
                self.err(owner, format!("{what} is missing the required key `{r}`"));
            }
        }
        fields
    }

    fn mtu(&mut self, node: &Node, what: &str) -> Option<u32> {
        let v = self.int(node, what)?;
        if !(68..=65535).contains(&v) {
            self.err(
                node.span,
                format!("{what} {v} is out of range; an MTU must be between 68 and 65535"),
            );
            return None;
        }
        u32::try_from(v).ok()
    }

    fn cidr(&mut self, node: &Node, what: &str) -> Option<Ipv4Cidr> {
        let text = self.str(node, what)?;
        match text.parse::<Ipv4Cidr>() {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(node.span, format!("bad {what}: {e}"));
                None
            }
        }
    }

    fn ipv4(&mut self, node: &Node, what: &str) -> Option<Ipv4Addr> {
        let text = self.str(node, what)?;
        match text.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let hint = if text.contains('/') {
                    "write a plain address without a prefix length, e.g. 10.0.1.1"
                } else {
                    "write an IPv4 address, e.g. 10.0.1.1"
                };
                self.hint(
                    node.span,
                    format!("bad {what}: `{text}` is not an IPv4 address"),
                    hint,
                );
                None
            }
        }
    }
}

#[derive(Default)]
struct Fields<'a> {
    entries: Vec<(String, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| *v)
    }

    fn key(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, k, _)| *k)
    }
}

fn is_node_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IFNAME
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn check_node_name(cx: &mut Ctx, span: Span, name: &str, what: &str, max: usize) {
    if !is_node_name(name, max) {
        let why = if name.len() > max {
            format!("is {} characters long; the limit is {max}", name.len())
        } else {
            "has characters that are not allowed".to_owned()
        };
        cx.hint(
            span,
            format!("{what} `{name}` {why}"),
            format!(
                "use lowercase letters, digits and `-`, starting with a letter or digit, \
                 at most {max} characters"
            ),
        );
    }
}

fn check_ifname(cx: &mut Ctx, span: Span, name: &str, what: &str) {
    if !is_ifname(name) {
        let why = if name.len() > MAX_IFNAME {
            format!(
                "is {} characters long; Linux allows at most {MAX_IFNAME}",
                name.len()
            )
        } else {
            "is not a valid Linux interface name".to_owned()
        };
        cx.hint(
            span,
            format!("{what} `{name}` {why}"),
            "use 1 to 15 characters without `/`, `:` or whitespace, e.g. `eth0` or `lan`",
        );
    }
}

/// Parses a size: a plain number of bytes or a number with a unit.
/// `K`, `Ki`, `KiB` (and `M`/`G`/`T` likewise) are powers of 1024;
/// `kB`, `MB`, `GB`, `TB` are powers of 1000; `B` or no unit is bytes.
/// Units are case-insensitive, a space before the unit is allowed, and the
/// number may have a fraction (`1.5GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start();
    if num.is_empty() {
        return Err(format!("`{text}` does not start with a number"));
    }
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use B, KiB, MiB, GiB or TiB (or K, M, G, T)"
            ))
        }
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("`{text}` is too large"));
    }
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() => {
            let v = f * mult as f64;
            if v >= u64::MAX as f64 {
                Err(format!("`{text}` is too large"))
            } else {
                Ok(v as u64)
            }
        }
        _ => Err(format!("`{num}` in `{text}` is not a number")),
    }
}

fn human_size(bytes: u64) -> String {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    format!("{bytes} bytes")
}

fn size(cx: &mut Ctx, node: &Node, what: &str, min: u64, max: Option<u64>) -> Option<u64> {
    let bytes = match &node.value {
        NodeValue::Int(i) => match u64::try_from(*i) {
            Ok(b) => b,
            Err(_) => {
                cx.err(node.span, format!("{what} must not be negative"));
                return None;
            }
        },
        NodeValue::Str(s) => match parse_size(s) {
            Ok(b) => b,
            Err(e) => {
                cx.hint(
                    node.span,
                    format!("bad {what}: {e}"),
                    "write bytes or a size with a unit, e.g. 64MiB, 512KiB or 1GiB",
                );
                return None;
            }
        },
        _ => {
            cx.type_err(node, "a size like 64MiB", what);
            return None;
        }
    };
    if bytes < min {
        cx.hint(
            node.span,
            format!(
                "{what} {} is below the minimum of {}",
                human_size(bytes),
                human_size(min)
            ),
            format!("give at least {}", human_size(min)),
        );
        return None;
    }
    if let Some(max) = max {
        if bytes > max {
            cx.err(
                node.span,
                format!(
                    "{what} {} is above the maximum of {}",
                    human_size(bytes),
                    human_size(max)
                ),
            );
            return None;
        }
    }
    Some(bytes)
}

/// The YAML of `config:` as JSON.
fn to_json(cx: &mut Ctx, node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        NodeValue::Null => J::Null,
        NodeValue::Bool(b) => J::Bool(*b),
        NodeValue::Int(i) => J::from(*i),
        NodeValue::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => J::Number(n),
            None => {
                cx.hint(
                    node.span,
                    "`.inf` and `.nan` cannot be passed in config",
                    "quote it to pass a string",
                );
                J::Null
            }
        },
        NodeValue::Str(s) => J::String(s.clone()),
        NodeValue::Seq(items) => J::Array(items.iter().map(|n| to_json(cx, n)).collect()),
        NodeValue::Map(entries) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in entries {
                match &k.value {
                    NodeValue::Str(s) => {
                        let v = to_json(cx, v);
                        obj.insert(s.clone(), v);
                    }
                    _ => {
                        let hint = match k.scalar_text() {
                            Some(t) => format!("quote it: \"{t}\""),
                            None => "use a string key".to_owned(),
                        };
                        cx.hint(
                            k.span,
                            format!("config keys must be strings, found {}", k.kind()),
                            hint,
                        );
                    }
                }
            }
            J::Object(obj)
        }
    }
}

/// What a link endpoint can name.
struct NodeInfo {
    is_host: bool,
    /// Port / interface names with their spans.
    ports: Vec<(String, Span)>,
}

/// Validates a loaded tree. `load_errors` (duplicate keys) are merged in.
pub fn validate(
    file: &str,
    root: Option<&Node>,
    load_errors: Vec<LoadError>,
) -> Result<ChainSpec, ChainErrors> {
    let mut cx = Ctx {
        file,
        errors: Vec::new(),
    };
    for e in load_errors {
        cx.push(e.span, e.message, e.hint);
    }
    let spec = root.and_then(|r| chain(&mut cx, file, r));
    if root.is_none() && cx.errors.is_empty() {
        cx.hint(
            Span::new(1, 1),
            "the chain file is empty",
            "start with `name:`, then `hosts:`, `vnfs:` and `links:` (or `chain:`)",
        );
    }
    cx.errors.sort_by_key(|e| (e.line, e.col));
    match spec {
        Some(spec) if cx.errors.is_empty() => Ok(spec),
        _ => Err(ChainErrors(cx.errors)),
    }
}

fn chain(cx: &mut Ctx, file: &str, root: &Node) -> Option<ChainSpec> {
    let entries = cx.map(root, "the chain file", false)?;
    let f = cx.fields(entries, "the chain file", root.span, TOP_KEYS, &["name"]);

    let mut name = String::new();
    if let Some(n) = f.get("name") {
        if let Some(s) = cx.name(n, "`name`") {
            check_node_name(cx, n.span, &s, "chain name", MAX_CHAIN_NAME);
            name = s;
        }
    }

    let metrics = f.get("metrics").and_then(|n| {
        let text = cx.name(n, "`metrics`")?;
        match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                cx.hint(
                    n.span,
                    format!("`metrics: {text}` is not an address and port"),
                    "write address:port, e.g. 127.0.0.1:9464",
                );
                None
            }
        }
    });

    let mut nodes: HashMap<String, NodeInfo> = HashMap::new();
    let mut node_spans: HashMap<String, Span> = HashMap::new();
    let mut register = |cx: &mut Ctx, name: &str, span: Span, what: &str| {
        if let Some(first) = node_spans.get(name) {
            cx.hint(
                span,
                format!(
                    "{what} name `{name}` is already used at line {}, column {}",
                    first.line, first.col
                ),
                "host and VNF names must be unique across `hosts:` and `vnfs:`; rename one",
            );
            false
        } else {
            node_spans.insert(name.to_owned(), span);
            true
        }
    };

    let mut hosts = Vec::new();
    if let Some(hnode) = f.get("hosts") {
        if let Some(entries) = cx.map(hnode, "`hosts`", true) {
            for (k, v) in entries {
                let Some(hname) = cx.name(k, "a host name") else {
                    continue;
                };
                check_node_name(cx, k.span, &hname, "host name", MAX_NODE_NAME);
                let fresh = register(cx, &hname, k.span, "host");
                let host = host(cx, k.span, hname, v);
                if fresh {
                    nodes.insert(
                        host.name.clone(),
                        NodeInfo {
                            is_host: true,
                            ports: host
                                .interfaces
                                .iter()
                                .map(|i| (i.name.clone(), i.span))
                                .collect(),
                        },
                    );
                }
                hosts.push(host);
            }
        }
    }

    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut vnfs = Vec::new();
    if let Some(vnode) = f.get("vnfs") {
        if let Some(entries) = cx.map(vnode, "`vnfs`", true) {
            for (k, v) in entries {
                let Some(vname) = cx.name(k, "a VNF name") else {
                    continue;
                };
                check_node_name(cx, k.span, &vname, "VNF name", MAX_NODE_NAME);
                let fresh = register(cx, &vname, k.span, "VNF");
                let (vnf, port_spans) = vnf(cx, base, k.span, vname, v);
                if fresh {
                    nodes.insert(
                        vnf.name.clone(),
                        NodeInfo {
                            is_host: false,
                            ports: vnf.ports.iter().cloned().zip(port_spans).collect(),
                        },
                    );
                }
                vnfs.push(vnf);
            }
        }
    }

    let mut links = Vec::new();
    let mut wiring = Wiring::default();
    let mut wired = false;
    match (f.key("links"), f.key("chain")) {
        (Some(_), Some(ck)) => {
            cx.hint(
                ck.span,
                "both `chain:` and `links:` are given",
                "use `chain:` for a straight line or `links:` for anything else, not both",
            );
        }
        (None, None) => {
            cx.hint(
                root.span,
                "the chain file has no `links:` (or `chain:`)",
                "add `links:` with entries like `[h1:eth0, r1:lan]`, or `chain: [h1, r1, h2]`",
            );
        }
        (Some(_), None) => {
            if let Some(list) = cx.seq(f.get("links").unwrap_or(root), "`links`") {
                wired = true;
                for entry in list {
                    if let Some(l) = link(cx, &nodes, &mut wiring, entry) {
                        links.push(l);
                    }
                }
            }
        }
        (None, Some(_)) => {
            if let Some(list) = cx.seq(f.get("chain").unwrap_or(root), "`chain`") {
                wired = true;
                links = chain_links(cx, &nodes, &mut wiring, list);
            }
        }
    }

    if wired {
        let mut names: Vec<&String> = nodes.keys().collect();
        names.sort();
        for name in names {
            if wiring.suppressed.contains(name) {
                continue;
            }
            let info = &nodes[name];
            for (port, span) in &info.ports {
                let key = (name.clone(), port.clone());
                if wiring.used.contains_key(&key) || wiring.suppressed_ports.contains(&key) {
                    continue;
                }
                if info.is_host {
                    cx.hint(
                        *span,
                        format!("interface `{port}` of host `{name}` is not connected to any link"),
                        format!("add a link like `[{name}:{port}, <vnf>:<port>]` or remove the interface"),
                    );
                } else {
                    cx.hint(
                        *span,
                        format!("port `{port}` of VNF `{name}` is not connected to any link"),
                        format!(
                            "add a link like `[{name}:{port}, <node>:<port>]` or remove the port"
                        ),
                    );
                }
            }
        }
    }

    Some(ChainSpec {
        name,
        file: PathBuf::from(file),
        metrics,
        hosts,
        vnfs,
        links,
    })
}

fn host(cx: &mut Ctx, span: Span, name: String, node: &Node) -> HostSpec {
    let what = format!("host `{name}`");
    let mut host = HostSpec {
        name,
        interfaces: Vec::new(),
        gateway: None,
        routes: Vec::new(),
        span,
    };
    let Some(entries) = cx.map(node, &what, false) else {
        return host;
    };
    let f = cx.fields(entries, &what, span, HOST_KEYS, &["interfaces"]);

    // Static addresses with their spans, for the subnet checks.
    let mut subnets: Vec<(Ipv4Cidr, Span, usize)> = Vec::new();
    let errors_before = cx.errors.len();
    if let Some(inode) = f.get("interfaces") {
        if let Some(ifs) = cx.map(inode, &format!("`interfaces` of {what}"), true) {
            if ifs.is_empty() {
                cx.hint(
                    inode.span,
                    format!("{what} has no interfaces"),
                    "give at least one, e.g. `eth0: { address: 10.0.1.10/24 }`",
                );
            }
            for (k, v) in ifs {
                let Some(iname) = cx.name(k, "an interface name") else {
                    continue;
                };
                check_ifname(cx, k.span, &iname, "interface name");
                let iface = interface(cx, &what, k.span, iname, v);
                for (c, s) in iface.1 {
                    subnets.push((c, s, host.interfaces.len()));
                }
                host.interfaces.push(iface.0);
            }
        }
    }

    // Two interfaces in overlapping subnets.
    for (i, (c, s, idx)) in subnets.iter().enumerate() {
        if let Some((o, os, oidx)) = subnets[..i]
            .iter()
            .find(|(o, _, oidx)| oidx != idx && o.overlaps(c))
        {
            cx.hint(
                *s,
                format!(
                    "{c} on interface `{}` overlaps {o} on interface `{}` (line {}, column {})",
                    host.interfaces[*idx].name, host.interfaces[*oidx].name, os.line, os.col
                ),
                "give each interface of a host its own subnet",
            );
        }
    }

    // With a broken interface the subnets are incomplete: checking the
    // gateway against them would only repeat that error.
    let interfaces_ok = cx.errors.len() == errors_before;
    let on_link = |cx: &mut Ctx, ip: Ipv4Addr, node: &Node, what_ip: &str| {
        if !interfaces_ok {
            return;
        }
        if subnets.iter().any(|(c, _, _)| c.addr == ip) {
            cx.err(
                node.span,
                format!("{what_ip} {ip} is an address of {what} itself"),
            );
            return;
        }
        if subnets.iter().any(|(c, _, _)| c.contains(ip)) {
            return;
        }
        if subnets.is_empty() {
            cx.hint(
                node.span,
                format!("{what_ip} {ip} is not reachable: {what} has no static address"),
                "with `dhcp: true` the gateway comes from the DHCP server; remove it here, \
                 or give the interface a static address",
            );
        } else {
            let list = subnets
                .iter()
                .map(|(c, _, _)| format!("{}/{}", c.network(), c.prefix_len))
                .collect::<Vec<_>>()
                .join(", ");
            cx.hint(
                node.span,
                format!("{what_ip} {ip} is outside every subnet of {what} ({list})"),
                "use an address inside one of the interface subnets",
            );
        }
    };

    if let Some(g) = f.get("gateway") {
        if let Some(ip) = cx.ipv4(g, "`gateway`") {
            on_link(cx, ip, g, "gateway");
            host.gateway = Some(ip);
        }
    }

    if let Some(r) = f.get("routes") {
        if let Some(list) = cx.seq(r, &format!("`routes` of {what}")) {
            for item in list {
                let Some(entries) = cx.map(item, "a route", false) else {
                    continue;
                };
                let rf = cx.fields(entries, "a route", item.span, ROUTE_KEYS, ROUTE_KEYS);
                let dst = rf.get("to").and_then(|n| {
                    let c = cx.cidr(n, "route destination")?;
                    if c.network() != c.addr {
                        cx.hint(
                            n.span,
                            format!("route destination {c} has host bits set"),
                            format!("did you mean {}/{}?", c.network(), c.prefix_len),
                        );
                        return None;
                    }
                    Some(c)
                });
                let via = rf.get("via").and_then(|n| {
                    let ip = cx.ipv4(n, "route `via`")?;
                    on_link(cx, ip, n, "route via");
                    Some(ip)
                });
                if let (Some(dst), Some(via)) = (dst, via) {
                    host.routes.push(RouteSpec { dst, via });
                }
            }
        }
    }
    host
}

/// Parses `aa:bb:cc:dd:ee:ff`, refusing multicast and all-zero addresses.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!(
            "`{text}` is not a MAC address (six hex bytes separated by `:`)"
        ));
    }
    for (byte, part) in mac.iter_mut().zip(&parts) {
        *byte = u8::from_str_radix(part, 16)
            .ok()
            .filter(|_| part.len() == 2)
            .ok_or_else(|| {
                format!("`{text}` is not a MAC address (six hex bytes separated by `:`)")
            })?;
    }
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(format!("`{text}` is a multicast or zero address"));
    }
    Ok(mac)
}

/// An interface and its static addresses with their spans.
fn interface(
    cx: &mut Ctx,
    host: &str,
    span: Span,
    name: String,
    node: &Node,
) -> (HostInterface, Vec<(Ipv4Cidr, Span)>) {
    let what = format!("interface `{name}` of {host}");
    let mut iface = HostInterface {
        name,
        addresses: Vec::new(),
        dhcp: false,
        mtu: None,
        mac: None,
        span,
    };
    let mut spans = Vec::new();
    let Some(entries) = cx.map(node, &what, true) else {
        return (iface, spans);
    };
    let f = cx.fields(entries, &what, span, IFACE_KEYS, &[]);
    let mut check_addr = |cx: &mut Ctx, n: &Node| {
        let c = cx.cidr(n, "address")?;
        if c.prefix_len <= 30 && (c.addr == c.network() || c.addr == c.broadcast()) {
            let which = if c.addr == c.network() {
                "network"
            } else {
                "broadcast"
            };
            cx.hint(
                n.span,
                format!("{c} is the {which} address of its subnet"),
                "give the interface a host address, e.g. 10.0.1.10/24",
            );
            return None;
        }
        spans.push((c, n.span));
        Some(c)
    };
    if let Some(a) = f.get("address") {
        if let Some(c) = check_addr(cx, a) {
            iface.addresses.push(c);
        }
    }
    if let Some(list) = f.get("addresses") {
        if let Some(k) = f.key("address") {
            cx.hint(
                f.key("addresses").map_or(k.span, |n| n.span),
                format!("{what} has both `address` and `addresses`"),
                "use `address` for one address or `addresses` for a list, not both",
            );
        }
        if let Some(items) = cx.seq(list, "`addresses`") {
            for n in items {
                if let Some(c) = check_addr(cx, n) {
                    iface.addresses.push(c);
                }
            }
        }
    }
    if let Some(d) = f.get("dhcp") {
        if let Some(b) = cx.bool(d, "`dhcp`") {
            iface.dhcp = b;
            if b && (f.get("address").is_some() || f.get("addresses").is_some()) {
                cx.hint(
                    f.key("dhcp").map_or(d.span, |n| n.span),
                    format!("{what} has `dhcp: true` and a static address"),
                    "remove `dhcp: true` or remove the address",
                );
            }
        }
    }
    if let Some(m) = f.get("mtu") {
        iface.mtu = cx.mtu(m, "`mtu`");
    }
    if let Some(m) = f.get("mac") {
        match m.as_str().map(parse_mac) {
            Some(Ok(mac)) => iface.mac = Some(mac),
            Some(Err(msg)) => cx.hint(
                m.span,
                format!("`mac` of {what}: {msg}"),
                "write a unicast MAC such as 02:00:00:00:01:50",
            ),
            None => cx.hint(
                m.span,
                format!("`mac` of {what} must be a string"),
                "write a unicast MAC such as 02:00:00:00:01:50",
            ),
        }
    }
    (iface, spans)
}

fn vnf(cx: &mut Ctx, base: &Path, span: Span, name: String, node: &Node) -> (VnfSpec, Vec<Span>) {
    let what = format!("VNF `{name}`");
    let mut vnf = VnfSpec {
        name,
        module: ModuleRef::Builtin(String::new()),
        ports: Vec::new(),
        config: serde_json::Value::Object(serde_json::Map::new()),
        config_tree: node.clone(),
        resources: Resources::default(),
        datapath: Datapath::default(),
        span,
    };
    let mut port_spans = Vec::new();
    let Some(entries) = cx.map(node, &what, false) else {
        return (vnf, port_spans);
    };
    let f = cx.fields(entries, &what, span, VNF_KEYS, &["module", "ports"]);

    if let Some(m) = f.get("module") {
        if let Some(text) = cx.str(m, "`module`") {
            if text.ends_with(".wasm") {
                vnf.module = ModuleRef::Path(base.join(text));
            } else if text.contains('/') || text.contains('.') {
                cx.hint(
                    m.span,
                    format!("module `{text}` is neither a shipped VNF name nor a .wasm file"),
                    "a module path must end in `.wasm` (relative to the chain file's directory)",
                );
            } else if text.is_empty()
                || !text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                cx.hint(
                    m.span,
                    format!("`{text}` is not a valid shipped VNF name"),
                    "shipped VNF names use lowercase letters, digits, `_` and `-` (e.g. `router`); \
                     for your own module give a path ending in `.wasm`",
                );
            } else {
                vnf.module = ModuleRef::Builtin(text.to_owned());
            }
        }
    }

    if let Some(p) = f.get("ports") {
        if let Some(items) = cx.seq(p, &format!("`ports` of {what}")) {
            if items.is_empty() {
                cx.err(p.span, format!("{what} has no ports; give at least one"));
            }
            let mut seen: HashMap<String, Span> = HashMap::new();
            for item in items {
                let Some(port) = cx.name(item, "a port name") else {
                    continue;
                };
                check_ifname(cx, item.span, &port, "port name");
                if let Some(first) = seen.get(&port) {
                    cx.err(
                        item.span,
                        format!(
                            "port `{port}` is listed twice (first at line {}, column {})",
                            first.line, first.col
                        ),
                    );
                    continue;
                }
                seen.insert(port.clone(), item.span);
                vnf.ports.push(port);
                port_spans.push(item.span);
            }
        }
    }

    if let Some(r) = f.get("resources") {
        if let Some(entries) = cx.map(r, &format!("`resources` of {what}"), true) {
            let rf = cx.fields(entries, "`resources`", r.span, RESOURCE_KEYS, &[]);
            if let Some(n) = rf.get("cpu") {
                let v = match n.value {
                    NodeValue::Int(i) => Some(i as f64),
                    NodeValue::Float(x) => Some(x),
                    _ => {
                        cx.type_err(n, "a number of cores", "`cpu`");
                        None
                    }
                };
                if let Some(v) = v {
                    if v > 0.0 && v <= MAX_CPU {
                        vnf.resources.cpu = Some(v);
                    } else {
                        cx.hint(
                            n.span,
                            format!("cpu {v} is out of range"),
                            "give a number of cores above 0 and at most 1024, e.g. 0.5",
                        );
                    }
                }
            }
            if let Some(n) = rf.get("memory") {
                vnf.resources.memory = size(cx, n, "memory", MIN_MEMORY, None);
            }
            if let Some(n) = rf.get("wasm_memory") {
                vnf.resources.wasm_memory =
                    size(cx, n, "wasm_memory", MIN_WASM_MEMORY, Some(MAX_WASM_MEMORY));
            }
            if let Some(n) = rf.get("pids") {
                if let Some(v) = cx.int(n, "`pids`") {
                    if v >= 1 {
                        vnf.resources.pids = Some(v as u64);
                    } else {
                        cx.hint(
                            n.span,
                            format!("pids {v} is out of range"),
                            "give at least 1",
                        );
                    }
                }
            }
        }
    }

    if let Some(d) = f.get("datapath") {
        if let Some(entries) = cx.map(d, &format!("`datapath` of {what}"), true) {
            let df = cx.fields(entries, "`datapath`", d.span, DATAPATH_KEYS, &[]);
            if let Some(n) = df.get("batch") {
                if let Some(v) = cx.int(n, "`batch`") {
                    if (1..=256).contains(&v) {
                        vnf.datapath.batch = Some(v as usize);
                    } else {
                        cx.hint(
                            n.span,
                            format!("batch {v} is out of range"),
                            "give 1 to 256 frames per call",
                        );
                    }
                }
            }
            if let Some(n) = df.get("busy_poll") {
                vnf.datapath.busy_poll = cx.bool(n, "`busy_poll`").unwrap_or(false);
            }
            if let Some(n) = df.get("offload") {
                if let Some(b) = cx.bool(n, "`offload`") {
                    vnf.datapath.offload = b;
                }
            }
            if let Some(n) = df.get("cpus") {
                if let Some(items) = cx.seq(n, "`cpus`") {
                    let mut cpus = Vec::new();
                    for item in items {
                        match cx.int(item, "a CPU number") {
                            Some(c) if (0..1024).contains(&c) => cpus.push(c as usize),
                            Some(c) => cx.hint(
                                item.span,
                                format!("CPU {c} is out of range"),
                                "CPUs are numbered from 0",
                            ),
                            None => {}
                        }
                    }
                    vnf.datapath.cpus = cpus;
                }
            }
        }
    }

    if let Some(c) = f.get("config") {
        vnf.config_tree = c.clone();
        match c.value {
            NodeValue::Map(_) => vnf.config = to_json(cx, c),
            NodeValue::Null => {}
            _ => {
                cx.hint(
                    c.span,
                    format!("`config` of {what} must be a mapping, found {}", c.kind()),
                    "write it as `key: value` lines under `config:`",
                );
            }
        }
    }
    (vnf, port_spans)
}

/// Which ports links use so far.
#[derive(Default)]
struct Wiring {
    /// (node, port) -> span of the link using it.
    used: HashMap<(String, String), Span>,
    /// Nodes whose "not connected" errors would only repeat another error.
    suppressed: HashSet<String>,
    /// Ports likewise (a mistyped link end probably meant them).
    suppressed_ports: HashSet<(String, String)>,
}

fn endpoint(
    cx: &mut Ctx,
    nodes: &HashMap<String, NodeInfo>,
    wiring: &mut Wiring,
    node: &Node,
    link_span: Span,
) -> Option<(Endpoint, bool)> {
    let text = cx.name(node, "a link end")?;
    let Some((n, p)) = text.split_once(':') else {
        cx.hint(
            node.span,
            format!("link end `{text}` has no port"),
            "write `node:port`, e.g. `h1:eth0` or `r1:lan`",
        );
        return None;
    };
    let Some(info) = nodes.get(n) else {
        let mut names: Vec<&str> = nodes.keys().map(String::as_str).collect();
        names.sort();
        // Prefer a node that has this port free.
        let free = names.iter().copied().filter(|c| {
            nodes[*c].ports.iter().any(|(q, _)| q == p)
                && !wiring.used.contains_key(&((*c).to_owned(), p.to_owned()))
        });
        let hint = match suggest(n, free).or_else(|| suggest(n, names.iter().copied())) {
            Some(s) => {
                wiring.suppressed_ports.insert((s.clone(), p.to_owned()));
                format!("did you mean `{s}:{p}`?")
            }
            None => format!("hosts and VNFs: {}", names.join(", ")),
        };
        cx.hint(node.span, format!("no host or VNF named `{n}`"), hint);
        return None;
    };
    if !info.ports.iter().any(|(name, _)| name == p) {
        let list = info
            .ports
            .iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>();
        let (kind, kinds) = if info.is_host {
            ("host", "interfaces")
        } else {
            ("VNF", "ports")
        };
        let hint = match suggest(p, list.iter().copied()) {
            Some(s) => {
                wiring.suppressed_ports.insert((n.to_owned(), s.clone()));
                format!("did you mean `{n}:{s}`? its {kinds}: {}", list.join(", "))
            }
            None => {
                wiring.suppressed.insert(n.to_owned());
                format!("its {kinds}: {}", list.join(", "))
            }
        };
        cx.hint(node.span, format!("{kind} `{n}` has no port `{p}`"), hint);
        return None;
    }
    let key = (n.to_owned(), p.to_owned());
    if let Some(first) = wiring.used.get(&key) {
        cx.hint(
            node.span,
            format!(
                "`{n}:{p}` is already connected by the link at line {}, column {}",
                first.line, first.col
            ),
            "a port or interface can be on only one link",
        );
        return None;
    }
    wiring.used.insert(key, link_span);
    Some((
        Endpoint {
            node: n.to_owned(),
            port: p.to_owned(),
        },
        info.is_host,
    ))
}

fn link(
    cx: &mut Ctx,
    nodes: &HashMap<String, NodeInfo>,
    wiring: &mut Wiring,
    entry: &Node,
) -> Option<LinkSpec> {
    let span = entry.span;
    match &entry.value {
        NodeValue::Seq(ends) => {
            if ends.len() != 2 {
                cx.hint(
                    span,
                    format!("a link has exactly two ends, found {}", ends.len()),
                    "write `[node:port, node:port]`",
                );
                return None;
            }
            let a = endpoint(cx, nodes, wiring, &ends[0], span);
            let b = endpoint(cx, nodes, wiring, &ends[1], span);
            Some(LinkSpec {
                a: a?.0,
                b: b?.0,
                kind: LinkKind::Veth,
                mtu: None,
                span,
            })
        }
        NodeValue::Map(entries) => {
            let f = cx.fields(entries, "a link", span, LINK_KEYS, &["a", "b"]);
            let a = f
                .get("a")
                .and_then(|n| endpoint(cx, nodes, wiring, n, span));
            let b = f
                .get("b")
                .and_then(|n| endpoint(cx, nodes, wiring, n, span));
            let mut kind = LinkKind::Veth;
            let mut ok = true;
            if let Some(k) = f.get("kind") {
                match cx.str(k, "`kind`") {
                    Some("veth") => {}
                    Some("tap") => {
                        kind = LinkKind::Tap;
                        if let (Some((_, ah)), Some((_, bh))) = (&a, &b) {
                            if ah == bh {
                                cx.hint(
                                    k.span,
                                    "a tap link needs one VNF end and one host end",
                                    "connect a VNF port to a host interface, or use `kind: veth`",
                                );
                                ok = false;
                            }
                        }
                    }
                    Some(other) => {
                        let hint = match suggest(other, ["veth", "tap"]) {
                            Some(s) => format!("did you mean `{s}`? use `veth` or `tap`"),
                            None => "use `veth` or `tap`".to_owned(),
                        };
                        cx.hint(k.span, format!("unknown link kind `{other}`"), hint);
                        ok = false;
                    }
                    None => ok = false,
                }
            }
            let mtu = f.get("mtu").and_then(|m| cx.mtu(m, "`mtu`"));
            if !ok {
                return None;
            }
            Some(LinkSpec {
                a: a?.0,
                b: b?.0,
                kind,
                mtu,
                span,
            })
        }
        _ => {
            cx.hint(
                span,
                format!("expected a link, found {}", entry.kind()),
                "write `[node:port, node:port]` or `{ a: node:port, b: node:port }`",
            );
            None
        }
    }
}

/// Expands `chain: [h1, r1, ..., h2]` into links.
fn chain_links(
    cx: &mut Ctx,
    nodes: &HashMap<String, NodeInfo>,
    wiring: &mut Wiring,
    list: &[Node],
) -> Vec<LinkSpec> {
    if list.len() < 2 {
        if let Some(first) = list.first() {
            cx.hint(
                first.span,
                "`chain:` needs at least two entries",
                "list the nodes from one test host to the other, e.g. `[h1, r1, h2]`",
            );
        }
    }
    let last = list.len().saturating_sub(1);
    let mut seen: HashMap<String, Span> = HashMap::new();
    // For each entry: (name, left port, right port) when valid.
    let mut resolved: Vec<Option<(String, String, String)>> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Some(name) = cx.name(item, "a `chain` entry") else {
            resolved.push(None);
            continue;
        };
        if let Some(first) = seen.get(&name) {
            cx.err(
                item.span,
                format!(
                    "`{name}` appears twice in `chain:` (first at line {}, column {})",
                    first.line, first.col
                ),
            );
            resolved.push(None);
            continue;
        }
        seen.insert(name.clone(), item.span);
        let Some(info) = nodes.get(&name) else {
            let mut names: Vec<&str> = nodes.keys().map(String::as_str).collect();
            names.sort();
            let hint = match suggest(&name, names.iter().copied()) {
                Some(s) => {
                    wiring.suppressed.insert(s.clone());
                    format!("did you mean `{s}`?")
                }
                None => format!("hosts and VNFs: {}", names.join(", ")),
            };
            cx.hint(item.span, format!("no host or VNF named `{name}`"), hint);
            resolved.push(None);
            continue;
        };
        let end = i == 0 || i == last;
        let ok = if end {
            if !info.is_host {
                cx.hint(
                    item.span,
                    format!(
                        "`chain:` must {} at a test host; `{name}` is a VNF",
                        if i == 0 { "start" } else { "end" }
                    ),
                    "put a host from `hosts:` at each end, or use `links:`",
                );
                false
            } else if info.ports.len() != 1 {
                cx.hint(
                    item.span,
                    format!(
                        "host `{name}` has {} interfaces; at an end of `chain:` a host needs exactly one",
                        info.ports.len()
                    ),
                    "use `links:` to wire a host with several interfaces",
                );
                false
            } else {
                true
            }
        } else if info.is_host {
            cx.hint(
                item.span,
                format!("host `{name}` is in the middle of `chain:`; test hosts can only be at the ends"),
                "use `links:` for other shapes",
            );
            false
        } else if info.ports.len() != 2 {
            cx.hint(
                item.span,
                format!(
                    "VNF `{name}` has {} ports; in the middle of `chain:` a VNF needs exactly 2",
                    info.ports.len()
                ),
                "the first port faces left and the second right; use `links:` for other shapes",
            );
            false
        } else {
            true
        };
        if !ok {
            wiring.suppressed.insert(name.clone());
            resolved.push(None);
            continue;
        }
        let left = info.ports[0].0.clone();
        let right = info.ports.last().map(|p| p.0.clone()).unwrap_or_default();
        resolved.push(Some((name, left, right)));
    }
    let mut links = Vec::new();
    for i in 0..resolved.len().saturating_sub(1) {
        if let (Some((ln, _, lp)), Some((rn, rp, _))) = (&resolved[i], &resolved[i + 1]) {
            let span = list[i].span;
            wiring.used.insert((ln.clone(), lp.clone()), span);
            wiring.used.insert((rn.clone(), rp.clone()), span);
            links.push(LinkSpec {
                a: Endpoint {
                    node: ln.clone(),
                    port: lp.clone(),
                },
                b: Endpoint {
                    node: rn.clone(),
                    port: rp.clone(),
                },
                kind: LinkKind::Veth,
                mtu: None,
                span,
            });
        } else {
            // Leave the neighbours' ports alone: their errors are reported.
            for r in [&resolved[i], &resolved[i + 1]].into_iter().flatten() {
                wiring.suppressed.insert(r.0.clone());
            }
        }
    }
    links
}
