//! `impair:` on a link: the link is cut in two and an `impair` VNF put in
//! the middle, transparently. It is an ordinary VNF from then on (named
//! `impair-N` for the N-th link, ports `a` and `b` towards the link's `a`
//! and `b` ends), so it shows in `inspect`, `stats` and the metrics, and its
//! settings are checked by the module like any VNF's `config:`, with errors
//! pointing into the link's `impair:` block.

use super::spec::{Datapath, Endpoint, LinkKind, LinkSpec, ModuleRef, Resources, VnfSpec};
use super::yaml::{Node, NodeValue};

/// The link entry's `impair:` value, if it has one.
pub fn node(entry: &Node) -> Option<&Node> {
    let NodeValue::Map(entries) = &entry.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(&k.value, NodeValue::Str(s) if s == "impair"))
        .map(|(_, v)| v)
}

/// The name of the VNF put on the `index`-th link (0-based).
pub fn vnf_name(index: usize) -> String {
    format!("impair-{}", index + 1)
}

/// Splits `link` around an impair VNF named `name` configured by `config`
/// (the JSON of `tree`, the `impair:` node).
pub fn expand(
    link: LinkSpec,
    name: String,
    config: serde_json::Value,
    tree: &Node,
) -> (VnfSpec, [LinkSpec; 2]) {
    let end = |port: &str| Endpoint {
        node: name.clone(),
        port: port.into(),
    };
    let vnf = VnfSpec {
        name: name.clone(),
        module: ModuleRef::Builtin("impair".into()),
        ports: vec!["a".into(), "b".into()],
        config,
        config_tree: tree.clone(),
        resources: Resources::default(),
        // Held frames leave without offload state: keep super-frames off
        // the impaired link.
        datapath: Datapath {
            offload: false,
            ..Datapath::default()
        },
        log_level: super::decode::DEFAULT_LOG_LEVEL,
        // A worker of its own, even on a link between two members of a
        // group: the link then leaves the group twice (two veth pairs).
        group: None,
        span: tree.span,
    };
    let half = |a: Endpoint, b: Endpoint| LinkSpec {
        a,
        b,
        kind: LinkKind::Veth,
        mtu: link.mtu,
        span: link.span,
    };
    let links = [
        half(link.a.clone(), end("a")),
        half(end("b"), link.b.clone()),
    ];
    (vnf, links)
}

#[cfg(test)]
mod tests {
    use crate::chain::parse;
    use crate::chain::ModuleRef;

    const FILE: &str = "name: t
hosts:
  h1:
    interfaces:
      eth0: { address: 10.0.0.1/24 }
  h2:
    interfaces:
      eth0: { address: 10.0.0.2/24 }
links:
  - a: h1:eth0
    b: h2:eth0
    impair: { delay: 20ms, jitter: 5ms, loss: 1%, rate: 50mbit, b_to_a: { delay: 5ms } }
";

    #[test]
    fn an_impaired_link_becomes_two_links_around_an_impair_vnf() {
        let spec = parse("t.yaml", FILE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.vnfs.len(), 1);
        let v = &spec.vnfs[0];
        assert_eq!(v.name, "impair-1");
        assert_eq!(v.module, ModuleRef::Builtin("impair".into()));
        assert_eq!(v.ports, ["a", "b"]);
        assert!(!v.datapath.offload);
        assert_eq!(v.config["delay"], "20ms");
        assert_eq!(v.config["b_to_a"]["delay"], "5ms");
        assert_eq!(
            v.config_span("b_to_a.delay"),
            crate::chain::Span::new(12, 82)
        );
        let ends: Vec<(String, String)> = spec
            .links
            .iter()
            .map(|l| {
                (
                    format!("{}:{}", l.a.node, l.a.port),
                    format!("{}:{}", l.b.node, l.b.port),
                )
            })
            .collect();
        assert_eq!(
            ends,
            [
                ("h1:eth0".into(), "impair-1:a".into()),
                ("impair-1:b".into(), "h2:eth0".into())
            ]
        );
    }

    #[test]
    fn impair_must_be_a_mapping_and_not_on_a_tap_link() {
        let errs = parse("t.yaml", &FILE.replace("impair: { delay: 20ms, jitter: 5ms, loss: 1%, rate: 50mbit, b_to_a: { delay: 5ms } }", "impair: 20ms"))
            .unwrap_err()
            .0;
        assert!(errs[0].message.contains("`impair`"), "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (12, 13));
    }
}
