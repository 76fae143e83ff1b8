//! The nodes of a chain: test hosts (with their interfaces and routes) and
//! VNFs (with their module, ports, resources, data path and config).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::super::spec::{HostInterface, HostSpec, Ipv4Cidr, ModuleRef, RouteSpec, Span, VnfSpec};
use super::super::yaml::{Node, NodeValue};
use super::blocks::{self, Defaults, DEFAULT_LOG_LEVEL};
use super::fields::Ctx;
use super::keys;
use super::values::{check_name, parse_mac, to_json};
use crate::chain::names::NameKind;

pub(super) fn host(cx: &mut Ctx, span: Span, name: String, node: &Node) -> HostSpec {
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
    let f = cx.fields(entries, &what, span, &keys::HOST);

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
                check_name(cx, k.span, NameKind::Interface, &iname, "interface name");
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
                let rf = cx.fields(entries, "a route", item.span, &keys::ROUTE);
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

/// An interface and its static addresses with their spans.
pub(super) fn interface(
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
    let f = cx.fields(entries, &what, span, &keys::IFACE);
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

pub(super) fn vnf(
    cx: &mut Ctx,
    base: &Path,
    defaults: &Defaults,
    span: Span,
    name: String,
    node: &Node,
) -> (VnfSpec, Vec<Span>, Option<Span>) {
    let what = format!("VNF `{name}`");
    let mut vnf = VnfSpec {
        name,
        module: ModuleRef::Builtin(String::new()),
        ports: Vec::new(),
        config: serde_json::Value::Object(serde_json::Map::new()),
        config_tree: node.clone(),
        resources: defaults.resources,
        datapath: defaults.datapath.clone(),
        log_level: defaults.log_level.unwrap_or(DEFAULT_LOG_LEVEL),
        group: None,
        span,
    };
    let mut port_spans = Vec::new();
    let mut group_span = None;
    let Some(entries) = cx.map(node, &what, false) else {
        return (vnf, port_spans, group_span);
    };
    let f = cx.fields(entries, &what, span, &keys::VNF);

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
            } else if !crate::chain::names::is_builtin_module(text) {
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
            if items.len() > nfvhost_abi::MAX_PORTS {
                cx.hint(
                    p.span,
                    format!(
                        "{what} has {} ports; the limit is {}",
                        items.len(),
                        nfvhost_abi::MAX_PORTS
                    ),
                    "split the function over several VNFs",
                );
            }
            let mut seen: HashMap<String, Span> = HashMap::new();
            for item in items {
                let Some(port) = cx.name(item, "a port name") else {
                    continue;
                };
                check_name(cx, item.span, NameKind::Interface, &port, "port name");
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
        blocks::resources(cx, r, &format!("`resources` of {what}"), &mut vnf.resources);
    }
    if let Some(d) = f.get("datapath") {
        blocks::datapath(cx, d, &format!("`datapath` of {what}"), &mut vnf.datapath);
    }
    if let Some(n) = f.get("log_level") {
        if let Some(l) = blocks::log_level(cx, n) {
            vnf.log_level = l;
        }
    }
    if let Some(g) = f.get("group") {
        if let Some(group) = cx.name(g, "`group`") {
            check_name(cx, g.span, NameKind::Node, &group, "group name");
            // The worker's own settings belong to the group it shares.
            if let Some(NodeValue::Map(entries)) = f.get("datapath").map(|d| &d.value) {
                for (k, _) in entries {
                    let NodeValue::Str(key) = &k.value else {
                        continue;
                    };
                    if matches!(key.as_str(), "poll" | "busy_poll" | "cpus") {
                        cx.hint(
                            k.span,
                            format!("{what} is in group `{group}`, whose worker it shares"),
                            format!("set `{key}` under `groups: {group}: datapath:` instead"),
                        );
                    }
                }
            }
            vnf.group = Some(group);
            group_span = Some(g.span);
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
    (vnf, port_spans, group_span)
}
