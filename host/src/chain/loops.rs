//! Layer-2 loops: switches (and the transparent bumps between them) joined
//! in a cycle flood broadcasts around it forever, since nfvhost's `switch`
//! has no spanning tree. The chain file refuses such a cycle unless a
//! switch in it says `allow_loops: true` in its config.

use std::collections::HashMap;

use super::spec::{LinkSpec, ModuleRef, Span, VnfSpec};

/// Shipped modules that pass frames on at layer 2 without addressing them.
const LAYER2: &[&str] = &["switch", "firewall", "impair", "faulty"];

/// A loop found: where to point and what to say.
#[derive(Debug, PartialEq, Eq)]
pub struct Loop {
    pub span: Span,
    pub message: String,
    pub hint: String,
}

fn is_layer2(vnf: &VnfSpec) -> bool {
    matches!(&vnf.module, ModuleRef::Builtin(m) if LAYER2.contains(&m.as_str()))
}

fn allows_loops(vnf: &VnfSpec) -> bool {
    matches!(&vnf.module, ModuleRef::Builtin(m) if m == "switch")
        && vnf.config.get("allow_loops") == Some(&serde_json::Value::Bool(true))
}

/// The first link that closes a cycle of layer-2 functions none of whose
/// switches allows loops.
pub fn find(vnfs: &[VnfSpec], links: &[LinkSpec]) -> Option<Loop> {
    let l2: HashMap<&str, &VnfSpec> = vnfs
        .iter()
        .filter(|v| is_layer2(v))
        .map(|v| (v.name.as_str(), v))
        .collect();
    // Union-find over the layer-2 functions; a component remembers whether
    // one of its switches allows loops.
    let mut parent: HashMap<&str, &str> = l2.keys().map(|n| (*n, *n)).collect();
    let mut allowed: HashMap<&str, bool> = l2.iter().map(|(n, v)| (*n, allows_loops(v))).collect();
    fn root<'a>(parent: &HashMap<&'a str, &'a str>, mut n: &'a str) -> &'a str {
        while parent[n] != n {
            n = parent[n];
        }
        n
    }
    for link in links {
        let (a, b) = (link.a.node.as_str(), link.b.node.as_str());
        if !l2.contains_key(a) || !l2.contains_key(b) {
            continue;
        }
        let (ra, rb) = (root(&parent, a), root(&parent, b));
        if ra == rb {
            if allowed[ra] {
                continue;
            }
            return Some(Loop {
                span: link.span,
                message: format!(
                    "the link {}:{} – {}:{} closes a loop of switches; without a spanning tree, broadcasts would circle it forever",
                    link.a.node, link.a.port, link.b.node, link.b.port
                ),
                hint: "remove a link of the loop, or set `allow_loops: true` in the config of a switch in it if the loop is what you want to study".into(),
            });
        }
        let merged = allowed[ra] || allowed[rb];
        parent.insert(ra, rb);
        allowed.insert(rb, merged);
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::chain::parse;

    fn triangle(extra: &str) -> String {
        format!(
            "name: t
hosts:
  h1:
    interfaces:
      eth0: {{ address: 10.0.0.1/24 }}
vnfs:
  s1: {{ module: switch, ports: [a, b, h]{extra} }}
  s2: {{ module: switch, ports: [a, b] }}
  fw: {{ module: firewall, ports: [inside, outside] }}
links:
  - [h1:eth0, s1:h]
  - [s1:a, s2:a]
  - [s2:b, fw:inside]
  - [fw:outside, s1:b]
"
        )
    }

    #[test]
    fn refuses_a_loop_at_the_link_that_closes_it() {
        let errs = parse("t.yaml", &triangle("")).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (14, 5));
        assert!(
            errs[0].message.contains("closes a loop"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn a_switch_may_allow_it_and_a_tree_needs_nothing() {
        let allowed = triangle(", config: { allow_loops: true }");
        assert!(parse("t.yaml", &allowed).is_ok());
        // Without the last link the ports it joined are left unlinked,
        // which is another error, but not a loop.
        let tree = triangle("").replace("  - [fw:outside, s1:b]\n", "");
        if let Err(e) = parse("t.yaml", &tree) {
            assert!(e.0.iter().all(|e| !e.message.contains("loop")), "{e}");
        }
    }
}
