//! Fused groups: the `groups:` section, each VNF's `group:`, and what
//! grouping means for the links (in memory between two members).

use std::collections::HashMap;

use super::super::spec::{
    Datapath, GroupSpec, LinkKind, LinkSpec, PollMode, Resources, Span, VnfSpec,
};
use super::super::yaml::Node;
use super::blocks::{datapath_in, resources_in};
use super::fields::Ctx;
use super::keys;
use super::values::check_name;
use crate::chain::names::NameKind;

/// Decodes `groups:`: each group with its optional resources and data path.
pub(super) fn groups(cx: &mut Ctx, node: &Node) -> Vec<GroupSpec> {
    let mut out: Vec<GroupSpec> = Vec::new();
    let Some(entries) = cx.map(node, "`groups`", true) else {
        return out;
    };
    for (k, v) in entries {
        let Some(name) = cx.name(k, "a group name") else {
            continue;
        };
        check_name(cx, k.span, NameKind::Node, &name, "group name");
        let what = format!("group `{name}`");
        let mut group = GroupSpec {
            name,
            resources: Resources::default(),
            poll: PollMode::default(),
            cpus: Vec::new(),
            span: k.span,
        };
        if let Some(entries) = cx.map(v, &what, true) {
            let f = cx.fields(entries, &what, k.span, &keys::GROUP);
            if let Some(r) = f.get("resources") {
                let what = format!("`resources` of {what}");
                resources_in(cx, r, &what, &keys::GROUP_RESOURCES, &mut group.resources);
            }
            if let Some(d) = f.get("datapath") {
                let mut out = Datapath::default();
                let what = format!("`datapath` of {what}");
                datapath_in(cx, d, &what, &keys::GROUP_DATAPATH, &mut out);
                group.poll = out.poll;
                group.cpus = out.cpus;
            }
        }
        out.push(group);
    }
    out
}

/// Checks every VNF's `group:` against `groups` and the node names (a
/// group's namespace is named like a node's), makes the links between two
/// members of one group in-memory, and checks that the ports leaving a
/// group, which share its namespace, have distinct names. `group_spans`:
/// where each VNF's `group:` value is, by VNF name.
pub(super) fn check(
    cx: &mut Ctx,
    groups: &[GroupSpec],
    vnfs: &[VnfSpec],
    group_spans: &HashMap<String, Span>,
    node_spans: &HashMap<String, Span>,
    links: &mut [LinkSpec],
) {
    for g in groups {
        if let Some(node) = node_spans.get(&g.name) {
            cx.hint(
                g.span,
                format!(
                    "group name `{}` is already a node's name (line {}, column {})",
                    g.name, node.line, node.col
                ),
                "a group's namespace is named like a node's; rename the group",
            );
        }
    }
    for v in vnfs {
        let Some(name) = &v.group else { continue };
        if !groups.iter().any(|g| &g.name == name) {
            let span = group_spans.get(&v.name).copied().unwrap_or(v.span);
            let known: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            let hint = if known.is_empty() {
                format!("declare it: `groups: {{ {name}: {{}} }}`")
            } else {
                format!(
                    "groups are {}; or declare `{name}` under `groups:`",
                    known.join(", ")
                )
            };
            cx.hint(
                span,
                format!("VNF `{}`: unknown group `{name}`", v.name),
                hint,
            );
        }
    }
    let group_of = |node: &str| {
        vnfs.iter()
            .find(|v| v.name == node)
            .and_then(|v| v.group.as_deref())
    };
    // External ports of a group: interface name -> where first seen.
    let mut outside: HashMap<(String, String), Span> = HashMap::new();
    for l in links.iter_mut() {
        let (ga, gb) = (group_of(&l.a.node), group_of(&l.b.node));
        if ga.is_some() && ga == gb {
            // (A tap link needs a host end: never between two VNFs.)
            l.kind = LinkKind::Memory;
            continue;
        }
        for (end, group) in [(&l.a, ga), (&l.b, gb)] {
            let Some(group) = group else { continue };
            let key = (group.to_owned(), end.port.clone());
            if let Some(first) = outside.get(&key) {
                cx.hint(
                    l.span,
                    format!(
                        "port `{}` of {} leaves group `{group}`, which already has an interface `{}` (line {}, column {})",
                        end.port, end.node, end.port, first.line, first.col
                    ),
                    "the ports that leave a group share its namespace; rename one of them",
                );
            } else {
                outside.insert(key, l.span);
            }
        }
    }
}
