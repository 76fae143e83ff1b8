//! Decoding the spanned YAML tree into a [`ChainSpec`], collecting every
//! problem on the way.
//!
//! The decoder has four layers, one module each:
//! - [`fields`]: typed access to the tree and the unknown/missing-key check;
//! - [`values`]: parsers for names, sizes, MTUs, addresses, MACs, `config:`;
//! - [`nodes`]: hosts and VNFs;
//! - [`blocks`]: `resources:`, `datapath:` and `log_level:`, which a VNF
//!   and the chain's `defaults:` share;
//! - [`wiring`]: links, the `chain:` shorthand and unconnected ports.
//!
//! [`keys`] is the table of every section's keys that both the decoder and
//! the JSON Schema ([`schema`]) are made from.

mod blocks;
mod fields;
mod groups;
mod keys;
mod nodes;
mod values;
mod vxlan;
mod wiring;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::error::ChainErrors;
use super::names::NameKind;
use super::spec::{ChainSpec, Span};
use super::yaml::{LoadError, Node};
use fields::Ctx;
use nodes::{host, vnf};
use values::check_name;
use wiring::{chain_links, impaired_link, link, NodeInfo, Wiring};

pub use blocks::DEFAULT_LOG_LEVEL;
pub use keys::schema;
pub use values::{
    parse_size, MAX_CHAIN_NAME, MAX_CPU, MAX_IFNAME, MAX_NODE_NAME, MAX_WASM_MEMORY, MIN_MEMORY,
    MIN_WASM_MEMORY,
};

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
    let f = cx.fields(entries, "the chain file", root.span, &keys::TOP);

    let mut name = String::new();
    if let Some(n) = f.get("name") {
        if let Some(s) = cx.name(n, "`name`") {
            check_name(cx, n.span, NameKind::Chain, &s, "chain name");
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
                check_name(cx, k.span, NameKind::Node, &hname, "host name");
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

    let defaults = f
        .get("defaults")
        .map(|n| blocks::defaults(cx, n))
        .unwrap_or_default();
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut vnfs = Vec::new();
    let mut group_spans = HashMap::new();
    if let Some(vnode) = f.get("vnfs") {
        if let Some(entries) = cx.map(vnode, "`vnfs`", true) {
            for (k, v) in entries {
                let Some(vname) = cx.name(k, "a VNF name") else {
                    continue;
                };
                check_name(cx, k.span, NameKind::Node, &vname, "VNF name");
                let fresh = register(cx, &vname, k.span, "VNF");
                let (vnf, port_spans, group_span) = vnf(cx, base, &defaults, k.span, vname, v);
                if let Some(span) = group_span {
                    group_spans.insert(vnf.name.clone(), span);
                }
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
                for (index, entry) in list.iter().enumerate() {
                    if let Some(l) = link(cx, &nodes, &mut wiring, entry) {
                        match super::impair::node(entry) {
                            Some(imp) => {
                                if let Some((vnf, halves)) =
                                    impaired_link(cx, &node_spans, index, l, imp)
                                {
                                    vnfs.push(vnf);
                                    links.extend(halves);
                                }
                            }
                            None => links.push(l),
                        }
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
        wiring::report_unconnected(cx, &nodes, &wiring);
        vxlan::check_unique(cx, &links);
    }

    if let Some(l) = super::loops::find(&vnfs, &links) {
        cx.hint(l.span, l.message, l.hint);
    }

    let groups = f
        .get("groups")
        .map_or_else(Vec::new, |g| groups::groups(cx, g));
    groups::check(cx, &groups, &vnfs, &group_spans, &node_spans, &mut links);
    check_xdp_links(cx, &vnfs, &links);

    Some(ChainSpec {
        name,
        file: PathBuf::from(file),
        metrics,
        hosts,
        vnfs,
        links,
        groups,
    })
}

/// The links of VNFs with `io: xdp` that an AF_XDP port cannot serve: an
/// MTU above what native XDP on a veth takes without multi-buffer (the
/// kernel would refuse to attach the program when the worker starts), and
/// VXLAN links (no native XDP on a vxlan device).
fn check_xdp_links(cx: &mut Ctx, vnfs: &[super::spec::VnfSpec], links: &[super::spec::LinkSpec]) {
    use super::spec::{LinkKind, PortIo};
    use crate::datapath::port::xdp::VETH_XDP_MAX_MTU;
    let xdp = |node: &str| {
        vnfs.iter()
            .any(|v| v.name == node && v.datapath.io == PortIo::Xdp)
    };
    for l in links {
        let Some(vnf) = [&l.a.node, &l.b.node].into_iter().find(|n| xdp(n)) else {
            continue;
        };
        match (&l.kind, l.mtu) {
            (LinkKind::Veth, Some(mtu)) if mtu > VETH_XDP_MAX_MTU => cx.hint(
                l.span,
                format!(
                    "link MTU {mtu} is above {VETH_XDP_MAX_MTU}, the most an `io: xdp` port of \
                     {vnf} takes (native XDP on a veth, one page per frame)"
                ),
                format!(
                    "give the link `mtu: {VETH_XDP_MAX_MTU}` or less, or use `io: mmsg` for {vnf}"
                ),
            ),
            (LinkKind::Vxlan(_), _) => cx.hint(
                l.span,
                format!("{vnf} has `io: xdp` but this link is VXLAN, which has no native XDP"),
                format!("use `io: mmsg` for {vnf}"),
            ),
            _ => {}
        }
    }
}
