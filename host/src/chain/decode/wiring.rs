//! Wiring: link ends, links in both forms, the `chain:` shorthand, and the
//! check that every port is on exactly one link.

use std::collections::{HashMap, HashSet};

use super::super::error::suggest;
use super::super::impair;
use super::super::spec::{Endpoint, LinkKind, LinkSpec, Span, VnfSpec};
use super::super::yaml::{Node, NodeValue};
use super::fields::Ctx;
use super::values::to_json;
use super::{keys, vxlan};

/// What a link endpoint can name.
pub(super) struct NodeInfo {
    pub(super) is_host: bool,
    /// Port / interface names with their spans.
    pub(super) ports: Vec<(String, Span)>,
}

/// Which ports links use so far.
#[derive(Default)]
pub(super) struct Wiring {
    /// (node, port) -> span of the link using it.
    used: HashMap<(String, String), Span>,
    /// Nodes whose "not connected" errors would only repeat another error.
    suppressed: HashSet<String>,
    /// Ports likewise (a mistyped link end probably meant them).
    suppressed_ports: HashSet<(String, String)>,
}

pub(super) fn endpoint(
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

pub(super) fn link(
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
            let f = cx.fields(entries, "a link", span, &keys::LINK);
            let a = f
                .get("a")
                .and_then(|n| endpoint(cx, nodes, wiring, n, span));
            // A mapping as `b` is the far end of a VXLAN link.
            let far = f.get("b").filter(|n| matches!(n.value, NodeValue::Map(_)));
            let b = f
                .get("b")
                .filter(|_| far.is_none())
                .and_then(|n| endpoint(cx, nodes, wiring, n, span));
            let mut kind = LinkKind::Veth;
            let mut ok = true;
            if let Some(k) = f.get("kind") {
                match cx.str(k, "`kind`") {
                    Some("veth") => {}
                    Some("vxlan") => match (far, f.get("b")) {
                        (Some(far), _) => match vxlan::remote(cx, far) {
                            Some(v) => kind = LinkKind::Vxlan(v),
                            None => ok = false,
                        },
                        (None, Some(b)) => {
                            cx.hint(
                                b.span,
                                "the `b` of a VXLAN link is its far end on another machine",
                                "write `b: { remote: 192.0.2.2, vni: 100 }`",
                            );
                            ok = false;
                        }
                        (None, None) => ok = false,
                    },
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
                        let hint = match suggest(other, ["veth", "tap", "vxlan"]) {
                            Some(s) => format!("did you mean `{s}`? use `veth`, `tap` or `vxlan`"),
                            None => "use `veth`, `tap` or `vxlan`".to_owned(),
                        };
                        cx.hint(k.span, format!("unknown link kind `{other}`"), hint);
                        ok = false;
                    }
                    None => ok = false,
                }
            }
            if let (Some(far), false) = (far, matches!(kind, LinkKind::Vxlan(_))) {
                if ok {
                    cx.hint(
                        far.span,
                        "`b` is a mapping, which only a `kind: vxlan` link takes",
                        "add `kind: vxlan` for a link to another machine, or write `b: node:port`",
                    );
                }
                ok = false;
            }
            let mtu = f.get("mtu").and_then(|m| cx.mtu(m, "`mtu`"));
            if !ok {
                return None;
            }
            if let LinkKind::Vxlan(_) = kind {
                let a = a?.0;
                return Some(LinkSpec {
                    b: a.clone(),
                    a,
                    kind,
                    mtu,
                    span,
                });
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

/// Puts an impair VNF on a link with `impair:` (see `chain::impair`).
pub(super) fn impaired_link(
    cx: &mut Ctx,
    node_spans: &HashMap<String, Span>,
    index: usize,
    link: LinkSpec,
    imp: &Node,
) -> Option<(VnfSpec, [LinkSpec; 2])> {
    cx.map(imp, "`impair`", false)?;
    if link.kind == LinkKind::Tap {
        cx.hint(
            imp.span,
            "`impair` cannot sit on a tap link",
            "use a veth link (drop `kind: tap`) to impair it",
        );
        return None;
    }
    let name = impair::vnf_name(index);
    if let Some(taken) = node_spans.get(&name) {
        cx.hint(
            imp.span,
            format!(
                "this link's impair function would be named `{name}`, which line {}, column {} already uses",
                taken.line, taken.col
            ),
            "rename that node",
        );
        return None;
    }
    let config = to_json(cx, imp);
    Some(impair::expand(link, name, config, imp))
}

/// Expands `chain: [h1, r1, ..., h2]` into links.
pub(super) fn chain_links(
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

/// Reports every host interface and VNF port that no link uses, except
/// those whose error would only repeat another one.
pub(super) fn report_unconnected(cx: &mut Ctx, nodes: &HashMap<String, NodeInfo>, wiring: &Wiring) {
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
                    format!(
                        "add a link like `[{name}:{port}, <vnf>:<port>]` or remove the interface"
                    ),
                );
            } else {
                cx.hint(
                    *span,
                    format!("port `{port}` of VNF `{name}` is not connected to any link"),
                    format!("add a link like `[{name}:{port}, <node>:<port>]` or remove the port"),
                );
            }
        }
    }
}
