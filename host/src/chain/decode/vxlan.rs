//! The far end of a `kind: vxlan` link (`b: { remote: 192.0.2.2, vni: 100 }`)
//! and the check that no two VXLAN links of a chain share a VNI and port
//! (the kernel allows one device per VNI on a UDP port).

use std::collections::HashMap;

use super::super::spec::{LinkKind, LinkSpec, Span, Vxlan};
use super::super::yaml::{Node, NodeValue};
use super::fields::Ctx;
use super::keys;

/// Decodes the `b:` mapping of a VXLAN link.
pub(super) fn remote(cx: &mut Ctx, node: &Node) -> Option<Vxlan> {
    let NodeValue::Map(entries) = &node.value else {
        cx.hint(
            node.span,
            format!(
                "expected the far end of a VXLAN link, found {}",
                node.kind()
            ),
            "write `b: { remote: 192.0.2.2, vni: 100 }`",
        );
        return None;
    };
    let f = cx.fields(
        entries,
        "the far end of a VXLAN link",
        node.span,
        &keys::VXLAN,
    );
    let remote = f
        .get("remote")
        .and_then(|n| cx.ipv4(n, "`remote`"))
        .and_then(|a| unicast(cx, f.get("remote")?.span, a, "`remote`"));
    let vni = f.get("vni").and_then(|n| {
        let v = cx.int(n, "`vni`")?;
        match u32::try_from(v) {
            Ok(v) if (1..=Vxlan::MAX_VNI).contains(&v) => Some(v),
            _ => {
                cx.hint(
                    n.span,
                    format!("`vni` {v} is out of range"),
                    format!("a VXLAN network identifier is 1 to {}", Vxlan::MAX_VNI),
                );
                None
            }
        }
    });
    let port = match f.get("port") {
        None => Some(Vxlan::DEFAULT_PORT),
        Some(n) => cx.int(n, "`port`").and_then(|p| match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                cx.hint(
                    n.span,
                    format!("`port` {p} is out of range"),
                    "a UDP port is 1 to 65535; VXLAN's is 4789",
                );
                None
            }
        }),
    };
    let local = match f.get("local") {
        None => Some(None),
        Some(n) => cx
            .ipv4(n, "`local`")
            .and_then(|a| unicast(cx, n.span, a, "`local`"))
            .map(Some),
    };
    Some(Vxlan {
        remote: remote?,
        vni: vni?,
        port: port?,
        local: local?,
    })
}

/// A unicast address, or an error at `span`: a VXLAN link has one remote
/// machine, not a multicast group.
fn unicast(
    cx: &mut Ctx,
    span: Span,
    a: std::net::Ipv4Addr,
    what: &str,
) -> Option<std::net::Ipv4Addr> {
    if a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback() {
        cx.hint(
            span,
            format!("{what} {a} is not a unicast address of another machine"),
            "give the underlay address of the machine, e.g. 192.0.2.2",
        );
        return None;
    }
    Some(a)
}

/// Reports a VXLAN link that repeats an earlier one's VNI and port.
pub(super) fn check_unique(cx: &mut Ctx, links: &[LinkSpec]) {
    let mut seen: HashMap<(u32, u16), Span> = HashMap::new();
    for l in links {
        let LinkKind::Vxlan(v) = l.kind else { continue };
        if let Some(first) = seen.get(&(v.vni, v.port)) {
            cx.hint(
                l.span,
                format!(
                    "VNI {} on port {} is already used by the link at line {}, column {}",
                    v.vni, v.port, first.line, first.col
                ),
                "give each VXLAN link of a machine its own `vni`",
            );
        } else {
            seen.insert((v.vni, v.port), l.span);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use crate::chain::{parse, ChainError, LinkKind, Vxlan};

    /// A router whose `wan` is a VXLAN link written as `far` (line 6).
    fn chain(far: &str) -> String {
        format!(
            "name: t\nhosts: {{ h1: {{ interfaces: {{ eth0: {{ address: 10.0.1.10/24 }} }} }} }}\n\
             vnfs: {{ r1: {{ module: router, ports: [lan, wan] }} }}\nlinks:\n  - [h1:eth0, r1:lan]\n  - {far}\n"
        )
    }

    fn errors(text: &str) -> Vec<ChainError> {
        parse("t.yaml", text).expect_err("refused").0
    }

    /// Exactly one error, on line 6 at the first `at` in it.
    #[track_caller]
    fn only(text: &str, at: &str, phrase: &str) {
        let line = text.lines().nth(5).unwrap();
        let col = line.find(at).expect("`at` is on line 6") + 1;
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!((e[0].line, e[0].col), (6, col), "{e:#?}");
        let said = format!("{} {}", e[0].message, e[0].hint.clone().unwrap_or_default());
        assert!(said.contains(phrase), "{said}");
    }

    #[test]
    fn a_vxlan_link_decodes_with_defaults() {
        let spec = parse(
            "t.yaml",
            &chain("{ a: r1:wan, b: { remote: 192.0.2.2, vni: 100 }, kind: vxlan }"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let l = &spec.links[1];
        assert_eq!(
            l.kind,
            LinkKind::Vxlan(Vxlan {
                remote: Ipv4Addr::new(192, 0, 2, 2),
                vni: 100,
                port: 4789,
                local: None,
            })
        );
        assert_eq!(
            (l.a.to_string(), l.b.to_string()),
            ("r1:wan".into(), "r1:wan".into())
        );
        let spec = parse(
            "t.yaml",
            &chain("{ a: r1:wan, b: { remote: 192.0.2.2, vni: 16777215, port: 8472, local: 192.0.2.1 }, kind: vxlan, mtu: 1400 }"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let LinkKind::Vxlan(v) = spec.links[1].kind else {
            panic!("not vxlan")
        };
        assert_eq!(
            (v.vni, v.port, v.local),
            (16_777_215, 8472, Some(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(spec.links[1].mtu, Some(1400));
    }

    #[test]
    fn bad_vxlan_values_are_refused_where_they_are() {
        let far = |b: &str| chain(&format!("{{ a: r1:wan, b: {b}, kind: vxlan }}"));
        only(
            &far("{ remote: 192.0.2, vni: 1 }"),
            "192.0.2,",
            "not an IPv4 address",
        );
        only(
            &far("{ remote: 224.0.0.1, vni: 1 }"),
            "224",
            "not a unicast address",
        );
        only(
            &far("{ remote: 192.0.2.2, vni: 0 }"),
            "0 }",
            "1 to 16777215",
        );
        only(
            &far("{ remote: 192.0.2.2, vni: 16777216 }"),
            "16777216",
            "out of range",
        );
        only(
            &far("{ remote: 192.0.2.2, vni: 1, port: 0 }"),
            "0 }",
            "1 to 65535",
        );
        only(
            &far("{ remote: 192.0.2.2, vni: 1, port: 65536 }"),
            "65536",
            "1 to 65535",
        );
        only(&far("{ remote: 192.0.2.2, vni: 1, ttl: 3 }"), "ttl", "ttl");
        only(&far("{ vni: 1 }"), "{ vni", "remote");
    }

    #[test]
    fn the_far_end_and_the_kind_go_together() {
        only(
            &chain("{ a: r1:wan, b: { remote: 192.0.2.2, vni: 1 } }"),
            "{ remote",
            "add `kind: vxlan`",
        );
        only(
            &chain("{ a: r1:wan, b: { remote: 192.0.2.2, vni: 1 }, kind: veth }"),
            "{ remote",
            "only a `kind: vxlan` link",
        );
        let e = errors(&chain("{ a: r1:wan, b: h1:eth0, kind: vxlan }"));
        assert!(
            e.iter()
                .any(|e| e.line == 6 && e.col == 21 && e.message.contains("far end")),
            "{e:#?}"
        );
        let e = errors(&chain("{ a: r1:wan, b: h1:eth0, kind: vxlen }"));
        assert!(
            e.iter().any(|e| e.col == 36
                && e.hint
                    .as_deref()
                    .is_some_and(|h| h.contains("did you mean `vxlan`"))),
            "{e:#?}"
        );
    }

    #[test]
    fn two_links_cannot_share_a_vni_and_port() {
        let text = "name: t\nvnfs: { r1: { module: router, ports: [a, b] } }\nlinks:\n\
                    - { a: r1:a, b: { remote: 192.0.2.2, vni: 7 }, kind: vxlan }\n\
                    - { a: r1:b, b: { remote: 192.0.2.3, vni: 7 }, kind: vxlan }\n";
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!((e[0].line, e[0].col), (5, 3));
        assert!(
            e[0].message.contains("line 4, column 3"),
            "{}",
            e[0].message
        );
        let other_port = text.replacen(
            "vni: 7 }, kind: vxlan }\n- { a: r1:b, b: { remote: 192.0.2.3, vni: 7 }",
            "vni: 7 }, kind: vxlan }\n- { a: r1:b, b: { remote: 192.0.2.3, vni: 7, port: 4790 }",
            1,
        );
        assert!(parse("t.yaml", &other_port).is_ok());
    }
}
