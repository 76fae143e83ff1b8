//! Tests of chain-file parsing and validation.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::*;

fn ok(text: &str) -> ChainSpec {
    match parse("t.yaml", text) {
        Ok(s) => s,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errs(text: &str) -> Vec<ChainError> {
    match parse("t.yaml", text) {
        Ok(s) => panic!("expected errors, got {s:#?}"),
        Err(e) => e.0,
    }
}

#[test]
fn basic_yaml_parses() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chains/basic.yaml");
    let spec = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.name, "basic");
    assert_eq!(spec.hosts.len(), 2);
    let r1 = spec.vnf("r1").unwrap();
    assert_eq!(r1.module, ModuleRef::Builtin("router".into()));
    assert_eq!(r1.ports, ["lan", "wan"]);
    assert_eq!(
        r1.config,
        serde_json::json!({"interfaces": {"lan": "10.0.1.1/24", "wan": "10.0.2.1/24"}})
    );
    assert_eq!(
        spec.host("h2").unwrap().gateway,
        Some(Ipv4Addr::new(10, 0, 2, 1))
    );
    assert_eq!(spec.links.len(), 2);
}

/// An error at `line:col` whose message (or hint) contains `phrase`.
#[track_caller]
fn has(errors: &[ChainError], line: usize, col: usize, phrase: &str) {
    let found = errors.iter().any(|e| {
        e.line == line
            && e.col == col
            && (e.message.contains(phrase) || e.hint.as_deref().is_some_and(|h| h.contains(phrase)))
    });
    assert!(
        found,
        "no error at {line}:{col} containing {phrase:?}; got:\n{}",
        ChainErrors(errors.to_vec())
    );
}

/// Exactly one error, at `line:col`, containing `phrase`.
#[track_caller]
fn only(errors: &[ChainError], line: usize, col: usize, phrase: &str) {
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        ChainErrors(errors.to_vec())
    );
    has(errors, line, col, phrase);
}

const BASE: &str = "\
name: t
hosts:
  h1:
    interfaces:
      eth0: { address: 10.0.1.10/24 }
    gateway: 10.0.1.1
  h2:
    interfaces:
      eth0: { address: 10.0.2.10/24 }
    gateway: 10.0.2.1
vnfs:
  r1:
    module: router
    ports: [lan, wan]
links:
  - [h1:eth0, r1:lan]
  - [r1:wan, h2:eth0]
";

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn ep(node: &str, port: &str) -> Endpoint {
    Endpoint {
        node: node.into(),
        port: port.into(),
    }
}

#[test]
fn base_is_valid() {
    let spec = ok(BASE);
    assert_eq!(spec.links.len(), 2);
    assert_eq!(spec.links[0].span, Span::new(16, 5));
}

#[test]
fn valid_file_parses_to_expected_spec() {
    let text = "\
name: edge-1
metrics: 127.0.0.1:9500
hosts:
  lan:
    interfaces:
      eth0: { dhcp: true, mtu: 1400 }
  wan:
    interfaces:
      eth0:
        addresses: [203.0.113.10/24, 203.0.113.11/24]
    gateway: 203.0.113.1
    routes:
      - { to: 10.9.0.0/16, via: 203.0.113.2 }
vnfs:
  fw:
    module: filters/fw.wasm
    ports: [inside, outside]
    resources: { cpu: 2, memory: 1GiB, pids: 16, wasm_memory: 512KiB }
    config:
      allow: [22, 80]
      log: true
      name: \"x\"
      ratio: 0.25
      nothing: ~
links:
  - { a: lan:eth0, b: fw:inside, kind: tap, mtu: 1400 }
  - [fw:outside, wan:eth0]
";
    let spec = match parse("chains/edge.yaml", text) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(spec.name, "edge-1");
    assert_eq!(spec.file, PathBuf::from("chains/edge.yaml"));
    assert_eq!(spec.metrics, Some("127.0.0.1:9500".parse().unwrap()));
    assert_eq!(
        spec.hosts,
        vec![
            HostSpec {
                name: "lan".into(),
                interfaces: vec![HostInterface {
                    name: "eth0".into(),
                    addresses: vec![],
                    dhcp: true,
                    mtu: Some(1400),
                    mac: None,
                    span: Span::new(6, 7),
                }],
                gateway: None,
                routes: vec![],
                span: Span::new(4, 3),
            },
            HostSpec {
                name: "wan".into(),
                interfaces: vec![HostInterface {
                    name: "eth0".into(),
                    addresses: vec![cidr("203.0.113.10/24"), cidr("203.0.113.11/24")],
                    dhcp: false,
                    mtu: None,
                    mac: None,
                    span: Span::new(9, 7),
                }],
                gateway: Some(Ipv4Addr::new(203, 0, 113, 1)),
                routes: vec![RouteSpec {
                    dst: cidr("10.9.0.0/16"),
                    via: Ipv4Addr::new(203, 0, 113, 2)
                }],
                span: Span::new(7, 3),
            },
        ]
    );
    let fw = spec.vnf("fw").unwrap();
    assert_eq!(fw.name, "fw");
    assert_eq!(fw.span, Span::new(15, 3));
    assert_eq!(
        fw.module,
        ModuleRef::Path(PathBuf::from("chains/filters/fw.wasm"))
    );
    assert_eq!(fw.ports, ["inside", "outside"]);
    assert_eq!(
        fw.resources,
        Resources {
            cpu: Some(2.0),
            memory: Some(1 << 30),
            pids: Some(16),
            wasm_memory: Some(512 << 10)
        }
    );
    assert_eq!(
        fw.config,
        serde_json::json!({"allow": [22, 80], "log": true, "name": "x", "ratio": 0.25, "nothing": null})
    );
    assert_eq!(fw.config_tree.span, Span::new(20, 7));
    assert_eq!(
        spec.links,
        vec![
            LinkSpec {
                a: ep("lan", "eth0"),
                b: ep("fw", "inside"),
                kind: LinkKind::Tap,
                mtu: Some(1400),
                span: Span::new(26, 5),
            },
            LinkSpec {
                a: ep("fw", "outside"),
                b: ep("wan", "eth0"),
                kind: LinkKind::Veth,
                mtu: None,
                span: Span::new(27, 5),
            },
        ]
    );
    assert!(spec.host("nope").is_none());
    assert!(spec.vnf("lan").is_none());
}

#[test]
fn absent_config_is_empty_object() {
    let spec = ok(BASE);
    let r1 = spec.vnf("r1").unwrap();
    assert_eq!(r1.config, serde_json::json!({}));
    assert_eq!(r1.config_span("anything"), r1.config_tree.span);
}

#[test]
fn chain_shorthand_expands_like_links() {
    let short = BASE.replace(
        "links:\n  - [h1:eth0, r1:lan]\n  - [r1:wan, h2:eth0]\n",
        "chain: [h1, r1, h2]\n",
    );
    let a = ok(BASE);
    let b = ok(&short);
    let strip = |s: &ChainSpec| -> Vec<_> {
        s.links
            .iter()
            .map(|l| (l.a.clone(), l.b.clone(), l.kind, l.mtu))
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(b.links[0].a, ep("h1", "eth0"));
    assert_eq!(b.links[1].b, ep("h2", "eth0"));
}

#[test]
fn yaml_syntax_error() {
    let e = errs("name: t\nhosts: {h1: [\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.starts_with("YAML syntax error"), "{}", e[0]);
    assert!(e[0].line >= 2, "{}", e[0]);
    let e = errs("name: t\n  bad: indent\n");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].col), (2, 6), "{}", e[0]);
}

#[test]
fn unknown_key_suggests() {
    let e = errs(&BASE.replace("{ address: 10.0.1.10/24 }", "{ adress: 10.0.1.10/24 }"));
    has(
        &e,
        5,
        15,
        "unknown key `adress` in interface `eth0` of host `h1`",
    );
    has(&e, 5, 15, "did you mean `address`?");
    has(
        &e,
        5,
        15,
        "allowed keys: `address`, `addresses`, `dhcp`, `mtu`",
    );
    let e = errs(&BASE.replace("    gateway: 10.0.1.1", "    gatewy: 10.0.1.1"));
    only(&e, 6, 5, "did you mean `gateway`?");
    let e = errs(&format!("{BASE}colour: red\n"));
    only(&e, 18, 1, "unknown key `colour` in the chain file");
}

#[test]
fn wrong_type() {
    let e = errs(&BASE.replace("ports: [lan, wan]", "ports: lan"));
    has(
        &e,
        14,
        12,
        "expected a list for `ports` of VNF `r1`, found a string",
    );
    let e = errs(&BASE.replace(
        "  h2:\n    interfaces:",
        "  h2:\n    interfaces: eth0\n    x:",
    ));
    has(&e, 8, 17, "expected a mapping");
    has(&e, 8, 17, "found a string");
    let e = errs("- a\n- b\n");
    only(
        &e,
        1,
        1,
        "expected a mapping for the chain file, found a list",
    );
}

#[test]
fn missing_required_key() {
    let e = errs(&BASE.replace("    module: router\n", ""));
    only(&e, 12, 3, "VNF `r1` is missing the required key `module`");
    let e = errs(&BASE.replace("name: t\n", ""));
    only(
        &e,
        1,
        1,
        "the chain file is missing the required key `name`",
    );
    let e = errs(&BASE.replace("  - [h1:eth0, r1:lan]", "  - { a: h1:eth0 }"));
    has(&e, 16, 5, "a link is missing the required key `b`");
}

#[test]
fn bad_names() {
    let e = errs(&BASE.replace("name: t", "name: averyverylongname"));
    only(&e, 1, 7, "limit is 12");
    let e = errs(&BASE.replace("h1", "H_1"));
    has(
        &e,
        3,
        3,
        "host name `H_1` contains `H`, which is not allowed",
    );
    let e = errs(&BASE.replace("r1", "router-number-one"));
    has(&e, 12, 3, "is 17 characters long; the limit is 15");
    let e = errs(&BASE.replace("lan", "a-very-long-port-name"));
    has(&e, 14, 13, "is 21 characters long; the limit is 15");
    let e = errs(&BASE.replace("lan", "la/n"));
    has(&e, 14, 13, "port name `la/n` contains `/`");
    let e = errs(&BASE.replace("lan", "'-sf'"));
    has(&e, 14, 13, "port name `-sf` starts with `-`");
    let e = errs(&BASE.replace("lan", "'..'"));
    has(&e, 14, 13, "port name `..` is `.` or `..`");
}

/// The injection: an interface name with shell metacharacters and
/// `dhcp: true` used to pass validation and run a command at deploy.
#[test]
fn shell_metacharacters_in_names_are_refused() {
    let text = BASE
        .replace(
            "      eth0: { address: 10.0.1.10/24 }\n    gateway: 10.0.1.1\n",
            "      'e\";>QQ;\"': { dhcp: true }\n",
        )
        .replace("[h1:eth0, r1:lan]", "{ a: 'h1:e\";>QQ;\"', b: r1:lan }");
    let e = errs(&text);
    has(&e, 5, 7, "interface name `e\\\";>QQ;\\\"` contains `\\\"`");
    for bad in ["e$(id)", "e`id`", "a b", "x;y", "e\\nx"] {
        let e = errs(&BASE.replace("lan", &format!("\"{bad}\"")));
        has(&e, 14, 13, "port name");
    }
}

#[test]
fn more_than_16_ports_is_an_error_not_a_panic() {
    let ports: Vec<String> = (0..17).map(|i| format!("p{i}")).collect();
    let e = errs(&BASE.replace("[lan, wan]", &format!("[lan, wan, {}]", ports.join(", "))));
    has(&e, 14, 12, "has 19 ports; the limit is 16");
}

#[test]
fn billion_laughs_chain_file_is_refused() {
    let mut text = BASE.to_owned();
    text.push_str("x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [{}]\n",
            vec![format!("*a{p}"); 10].join(", ")
        ));
    }
    let e = errs(&text);
    only(&e, 22, 45, "expands to more than 100000 YAML nodes");
}

#[test]
fn duplicate_node_names() {
    let text = BASE.replace("links:", "  h1:\n    module: nat\n    ports: [x]\nlinks:");
    let e = errs(&text);
    only(
        &e,
        15,
        3,
        "VNF name `h1` is already used at line 3, column 3",
    );
}

#[test]
fn duplicate_yaml_keys() {
    let e = errs(&BASE.replace(
        "    gateway: 10.0.1.1\n",
        "    gateway: 10.0.1.1\n    gateway: 10.0.1.2\n",
    ));
    only(
        &e,
        7,
        5,
        "duplicate key `gateway` (first given at line 6, column 5)",
    );
}

#[test]
fn unknown_link_node_and_port() {
    let e = errs(&BASE.replace("[h1:eth0, r1:lan]", "[h1:eth0, r2:lan]"));
    only(&e, 16, 15, "no host or VNF named `r2`");
    has(&e, 16, 15, "did you mean `r1:lan`?");
    let e = errs(&BASE.replace("[h1:eth0, r1:lan]", "[h1:eth0, r1:lna]"));
    only(&e, 16, 15, "VNF `r1` has no port `lna`");
    has(&e, 16, 15, "did you mean `r1:lan`? its ports: lan, wan");
    let e = errs(&BASE.replace("[h1:eth0, r1:lan]", "[h1, r1:lan]"));
    has(&e, 16, 6, "link end `h1` has no port");
}

#[test]
fn port_used_twice() {
    let e = errs(&format!("{BASE}  - [r1:lan, h2:eth0]\n"));
    has(
        &e,
        18,
        6,
        "`r1:lan` is already connected by the link at line 16, column 5",
    );
    has(
        &e,
        18,
        14,
        "`h2:eth0` is already connected by the link at line 17, column 5",
    );
    assert_eq!(e.len(), 2);
}

#[test]
fn unconnected_vnf_port() {
    let e = errs(&BASE.replace("ports: [lan, wan]", "ports: [lan, wan, mgmt]"));
    only(
        &e,
        14,
        23,
        "port `mgmt` of VNF `r1` is not connected to any link",
    );
}

#[test]
fn unconnected_host_interface() {
    let e = errs(&BASE.replace(
        "      eth0: { address: 10.0.1.10/24 }\n",
        "      eth0: { address: 10.0.1.10/24 }\n      eth1: { address: 10.0.3.10/24 }\n",
    ));
    only(
        &e,
        6,
        7,
        "interface `eth1` of host `h1` is not connected to any link",
    );
}

const TWO_HOSTS: &str = "\
name: t
hosts:
  h1:
    interfaces: { eth0: { address: 10.0.1.10/24 } }
  h2:
    interfaces: { eth0: { address: 10.0.1.11/24 } }
links:
  - { a: h1:eth0, b: h2:eth0, kind: tap }
";

#[test]
fn tap_needs_a_vnf_and_a_host() {
    let e = errs(TWO_HOSTS);
    only(&e, 8, 37, "a tap link needs one VNF end and one host end");
    let e = errs(&TWO_HOSTS.replace("kind: tap", "kind: tun"));
    only(&e, 8, 37, "unknown link kind `tun`");
    assert!(ok(&TWO_HOSTS.replace("kind: tap", "kind: veth")).links[0].kind == LinkKind::Veth);
}

#[test]
fn chain_and_links_both() {
    let e = errs(&format!("{BASE}chain: [h1, r1, h2]\n"));
    only(&e, 18, 1, "both `chain:` and `links:` are given");
}

#[test]
fn no_links_at_all() {
    let e = errs(&BASE.replace("links:\n  - [h1:eth0, r1:lan]\n  - [r1:wan, h2:eth0]\n", ""));
    only(&e, 1, 1, "no `links:` (or `chain:`)");
}

#[test]
fn chain_entries_invalid() {
    let base = BASE.replace(
        "links:\n  - [h1:eth0, r1:lan]\n  - [r1:wan, h2:eth0]\n",
        "chain: [h1, r1, h2]\n",
    );
    // A VNF with three ports in the middle.
    let e = errs(&base.replace("ports: [lan, wan]", "ports: [lan, wan, mgmt]"));
    only(
        &e,
        15,
        13,
        "VNF `r1` has 3 ports; in the middle of `chain:` a VNF needs exactly 2",
    );
    // A VNF at the end.
    let e = errs(&base.replace("[h1, r1, h2]", "[h1, h2, r1]"));
    has(
        &e,
        15,
        17,
        "`chain:` must end at a test host; `r1` is a VNF",
    );
    has(&e, 15, 13, "host `h2` is in the middle of `chain:`");
    // A host with two interfaces at an end.
    let e = errs(&base.replace(
        "      eth0: { address: 10.0.1.10/24 }\n",
        "      eth0: { address: 10.0.1.10/24 }\n      eth1: { address: 10.0.3.10/24 }\n",
    ));
    only(
        &e,
        16,
        9,
        "host `h1` has 2 interfaces; at an end of `chain:` a host needs exactly one",
    );
    // Unknown name.
    let e = errs(&base.replace("[h1, r1, h2]", "[h1, r9, h2]"));
    only(&e, 15, 13, "no host or VNF named `r9`");
}

#[test]
fn bad_addresses() {
    let e = errs(&BASE.replace("10.0.1.10/24", "10.0.1.300/24"));
    has(&e, 5, 24, "`10.0.1.300` is not an IPv4 address");
    let e = errs(&BASE.replace("10.0.1.10/24", "10.0.1.10"));
    has(&e, 5, 24, "has no prefix length");
    let e = errs(&BASE.replace("10.0.1.10/24", "10.0.1.10/40"));
    has(&e, 5, 24, "not a prefix length");
    let e = errs(&BASE.replace("10.0.1.10/24", "10.0.1.0/24"));
    has(&e, 5, 24, "is the network address");
    let e = errs(&BASE.replace("gateway: 10.0.1.1", "gateway: 10.0.1.1/24"));
    only(&e, 6, 14, "`10.0.1.1/24` is not an IPv4 address");
    let e = errs(
        &BASE
            .replace("metrics", "x")
            .replace("name: t", "name: t\nmetrics: localhost"),
    );
    only(&e, 2, 10, "`metrics: localhost` is not an address and port");
}

#[test]
fn gateway_outside_subnets() {
    let e = errs(&BASE.replace("gateway: 10.0.1.1", "gateway: 10.0.9.1"));
    only(
        &e,
        6,
        14,
        "gateway 10.0.9.1 is outside every subnet of host `h1` (10.0.1.0/24)",
    );
    let e = errs(&BASE.replace("gateway: 10.0.1.1", "gateway: 10.0.1.10"));
    only(&e, 6, 14, "is an address of host `h1` itself");
    let e = errs(&BASE.replace(
        "    gateway: 10.0.2.1\n",
        "    gateway: 10.0.2.1\n    routes:\n      - { to: 10.9.0.0/16, via: 10.0.5.1 }\n",
    ));
    only(&e, 12, 33, "route via 10.0.5.1 is outside every subnet");
}

#[test]
fn overlapping_subnets() {
    let text = BASE
        .replace(
            "      eth0: { address: 10.0.1.10/24 }\n",
            "      eth0: { address: 10.0.1.10/24 }\n      eth1: { address: 10.0.0.20/16 }\n",
        )
        .replace(
            "  - [h1:eth0, r1:lan]",
            "  - [h1:eth0, r1:lan]\n  - [h1:eth1, r2:a]",
        )
        .replace(
            "links:",
            "  r2:\n    module: router\n    ports: [a]\nlinks:",
        );
    let e = errs(&text);
    only(&e, 6, 24, "10.0.0.20/16 on interface `eth1` overlaps 10.0.1.10/24 on interface `eth0` (line 5, column 24)");
}

#[test]
fn dhcp_with_address() {
    let e = errs(&BASE.replace(
        "{ address: 10.0.1.10/24 }",
        "{ address: 10.0.1.10/24, dhcp: true }",
    ));
    only(&e, 5, 38, "has `dhcp: true` and a static address");
    let e = errs(&BASE.replace(
        "{ address: 10.0.1.10/24 }",
        "{ address: 10.0.1.10/24, addresses: [10.0.1.11/24] }",
    ));
    only(&e, 5, 38, "has both `address` and `addresses`");
    let e = errs(&BASE.replace("{ address: 10.0.1.10/24 }", "{ dhcp: yes }"));
    has(
        &e,
        5,
        21,
        "expected `true` or `false` for `dhcp`, found a string",
    );
}

#[test]
fn resources_ranges() {
    let with = |r: &str| {
        BASE.replace(
            "    ports: [lan, wan]\n",
            &format!("    ports: [lan, wan]\n    resources: {r}\n"),
        )
    };
    let e = errs(&with("{ cpu: 0, memory: 1MiB, pids: 0 }"));
    assert_eq!(e.len(), 3, "{}", ChainErrors(e.clone()));
    has(&e, 15, 23, "cpu 0 is out of range");
    has(&e, 15, 34, "memory 1MiB is below the minimum of 4MiB");
    has(&e, 15, 46, "pids 0 is out of range");
    let e = errs(&with("{ cpu: 2000 }"));
    only(&e, 15, 23, "at most 1024");
    let e = errs(&with("{ memory: 64XB }"));
    only(&e, 15, 26, "unknown unit `XB`");
    let e = errs(&with("{ memory: lots }"));
    only(&e, 15, 26, "does not start with a number");
    let e = errs(&with("{ wasm_memory: 8GiB }"));
    only(&e, 15, 31, "above the maximum of 4GiB");
    let e = errs(&with("{ cpus: 1 }"));
    only(&e, 15, 18, "did you mean `cpu`?");
    let spec = ok(&with("{ cpu: 0.5, memory: 67108864, pids: 32 }"));
    let r = spec.vnf("r1").unwrap().resources;
    assert_eq!(
        r,
        Resources {
            cpu: Some(0.5),
            memory: Some(64 << 20),
            pids: Some(32),
            wasm_memory: None
        }
    );
}

#[test]
fn mtu_range() {
    let e = errs(&BASE.replace(
        "  - [r1:wan, h2:eth0]",
        "  - { a: r1:wan, b: h2:eth0, mtu: 40 }",
    ));
    only(
        &e,
        17,
        35,
        "`mtu` 40 is out of range; an MTU must be between 68 and 65535",
    );
    let e = errs(&BASE.replace(
        "{ address: 10.0.1.10/24 }",
        "{ address: 10.0.1.10/24, mtu: 70000 }",
    ));
    only(&e, 5, 43, "between 68 and 65535");
}

#[test]
fn module_refs() {
    let e = errs(&BASE.replace("module: router", "module: ./router.so"));
    only(&e, 13, 13, "neither a shipped VNF name nor a .wasm file");
    let e = errs(&BASE.replace("module: router", "module: Router"));
    only(&e, 13, 13, "`Router` is not a valid shipped VNF name");
    let spec = ok(&BASE.replace("module: router", "module: /opt/fw.wasm"));
    assert_eq!(
        spec.vnfs[0].module,
        ModuleRef::Path(PathBuf::from("/opt/fw.wasm"))
    );
    let spec = ok(&BASE.replace("module: router", "module: fw.wasm"));
    assert_eq!(
        spec.vnfs[0].module,
        ModuleRef::Path(PathBuf::from("fw.wasm"))
    );
}

#[test]
fn config_must_be_mapping() {
    let e = errs(&BASE.replace(
        "    ports: [lan, wan]\n",
        "    ports: [lan, wan]\n    config: [1, 2]\n",
    ));
    only(
        &e,
        15,
        13,
        "`config` of VNF `r1` must be a mapping, found a list",
    );
    let e = errs(&BASE.replace(
        "    ports: [lan, wan]\n",
        "    ports: [lan, wan]\n    config: { 80: http }\n",
    ));
    only(&e, 15, 15, "config keys must be strings, found an integer");
    has(&e, 15, 15, "quote it: \"80\"");
    let spec = ok(&BASE.replace(
        "    ports: [lan, wan]\n",
        "    ports: [lan, wan]\n    config:\n",
    ));
    assert_eq!(spec.vnfs[0].config, serde_json::json!({}));
}

#[test]
fn config_span_nested() {
    let text = BASE.replace(
        "    ports: [lan, wan]\n",
        "    ports: [lan, wan]\n    config:\n      routes:\n        - { to: 10.9.0.0/16, via: 10.0.2.99 }\n        - to: 10.8.0.0/16\n          via: 10.0.2.98\n",
    );
    let spec = ok(&text);
    let r1 = spec.vnf("r1").unwrap();
    assert_eq!(r1.config_span("routes.0.via"), Span::new(17, 35));
    assert_eq!(r1.config_span("routes[0].via"), Span::new(17, 35));
    assert_eq!(r1.config_span("routes[1].via"), Span::new(19, 16));
    assert_eq!(r1.config_span("routes[1]"), Span::new(18, 11));
    // Deepest existing node.
    assert_eq!(r1.config_span("routes.1.nope"), Span::new(18, 11));
    assert_eq!(r1.config_span("routes.7"), Span::new(17, 9));
    assert_eq!(r1.config_span(""), Span::new(16, 7));
}

#[test]
fn memory_units() {
    assert_eq!(parse_size("67108864"), Ok(64 << 20));
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("64M"), Ok(64 << 20));
    assert_eq!(parse_size("64m"), Ok(64 << 20));
    assert_eq!(parse_size("64Mi"), Ok(64 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
    assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
    assert_eq!(parse_size("100MB"), Ok(100_000_000));
    assert_eq!(parse_size("2kB"), Ok(2000));
    assert_eq!(parse_size("10B"), Ok(10));
    assert!(parse_size("64XB").is_err());
    assert!(parse_size("MiB").is_err());
    assert!(parse_size("1.2.3MiB").is_err());
    assert!(parse_size("99999999999999TiB").is_err());
}

#[test]
fn multiple_errors_all_reported_in_order() {
    let text = BASE
        .replace("name: t", "name: T")
        .replace("{ address: 10.0.1.10/24 }", "{ adress: 10.0.1.10/24 }")
        .replace("gateway: 10.0.2.1", "gateway: 10.0.7.1")
        .replace("module: router", "module: x.so")
        .replace("[r1:wan, h2:eth0]", "[r1:wan, h3:eth0]");
    let e = errs(&text);
    has(&e, 1, 7, "chain name `T`");
    has(&e, 5, 15, "unknown key `adress`");
    has(&e, 10, 14, "outside every subnet of host `h2`");
    has(&e, 13, 13, "neither a shipped VNF name");
    has(&e, 17, 14, "no host or VNF named `h3`");
    assert_eq!(e.len(), 5, "{}", ChainErrors(e.clone()));
    let positions: Vec<_> = e.iter().map(|e| (e.line, e.col)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
    let shown = ChainErrors(e).to_string();
    assert!(shown.starts_with("t.yaml:1:7: chain name `T`"), "{shown}");
    assert!(
        shown.contains("\n  hint: did you mean `address`?"),
        "{shown}"
    );
}

#[test]
fn empty_file_and_unreadable_file() {
    let e = errs("");
    only(&e, 1, 1, "the chain file is empty");
    let e = load(std::path::Path::new("/nonexistent/chain.yaml")).unwrap_err();
    assert_eq!(e.0[0].line, 0);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/chain.yaml: cannot read the chain file"),
        "{e}"
    );
}

#[test]
fn link_shapes() {
    let e = errs(&BASE.replace("  - [r1:wan, h2:eth0]", "  - [r1:wan]"));
    has(&e, 17, 5, "a link has exactly two ends, found 1");
    let e = errs(&BASE.replace("  - [r1:wan, h2:eth0]", "  - r1:wan"));
    has(&e, 17, 5, "expected a link, found a string");
    let e = errs(&BASE.replace(
        "  - [r1:wan, h2:eth0]",
        "  - { a: r1:wan, b: h2:eth0, knd: tap }",
    ));
    only(&e, 17, 30, "did you mean `kind`?");
}

const GROUPED: &str = "\
name: t
hosts:
  h1:
    interfaces:
      eth0: { address: 10.0.1.10/24 }
  h2:
    interfaces:
      eth0: { address: 10.0.2.10/24 }
groups:
  g:
    resources: { cpu: 1 }
    datapath: { busy_poll: true, cpus: [1] }
vnfs:
  a:
    module: router
    ports: [lan, wan]
    group: g
  b:
    module: router
    ports: [lan, wan]
    group: g
  c:
    module: router
    ports: [lan, up]
links:
  - [h1:eth0, a:lan]
  - [a:wan, b:lan]
  - [b:wan, c:lan]
  - [c:up, h2:eth0]
";

#[test]
fn members_of_a_group_are_linked_in_memory_and_share_one_worker() {
    let spec = ok(GROUPED);
    let kinds: Vec<LinkKind> = spec.links.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [
            LinkKind::Veth,
            LinkKind::Memory,
            LinkKind::Veth,
            LinkKind::Veth
        ]
    );
    let g = spec.group("g").unwrap();
    assert_eq!(
        (
            g.resources.cpu,
            g.poll == crate::chain::PollMode::Busy,
            &g.cpus[..]
        ),
        (Some(1.0), true, &[1][..])
    );
    let units: Vec<String> = spec.workers().iter().map(|u| u.name().to_owned()).collect();
    assert_eq!(units, ["g", "c"]);
    assert_eq!(
        spec.members("g")
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    // A group of one is fine: its ports simply all leave it.
    let one = ok(&GROUPED.replace("    group: g\n  b:", "  b:"));
    assert_eq!(one.members("g").count(), 1);
    assert!(one.links.iter().all(|l| l.kind == LinkKind::Veth));
}

#[test]
fn group_mistakes_are_refused_where_they_are() {
    // An unknown group, at the `group:` value.
    only(
        &errs(&GROUPED.replace("    group: g\n  c:", "    group: gg\n  c:")),
        21,
        12,
        "unknown group `gg`",
    );
    // A member's own busy_poll belongs to the group.
    only(
        &errs(&GROUPED.replace(
            "    ports: [lan, wan]\n    group: g\n  c:",
            "    ports: [lan, wan]\n    datapath: { busy_poll: true }\n    group: g\n  c:",
        )),
        21,
        17,
        "groups: g: datapath:",
    );
    // Per-VNF keys are not group keys.
    only(
        &errs(&GROUPED.replace("{ cpu: 1 }", "{ cpu: 1, wasm_memory: 1MiB }")),
        11,
        26,
        "wasm_memory",
    );
    // A group named like a node would share its namespace name.
    has(
        &errs(
            &GROUPED
                .replace("  g:\n", "  c:\n")
                .replace("group: g", "group: c"),
        ),
        10,
        3,
        "already a node's name",
    );
    // Two ports leaving one group share its namespace: distinct names.
    let clash = GROUPED
        .replace(
            "    ports: [lan, wan]\n    group: g\n  c:",
            "    ports: [eth, wan]\n    group: g\n  c:",
        )
        .replace("[b:wan, c:lan]", "[b:eth, c:lan]")
        .replace(
            "ports: [lan, wan]\n    group: g\n  b:",
            "ports: [eth, wan]\n    group: g\n  b:",
        )
        .replace("[h1:eth0, a:lan]", "[h1:eth0, a:eth]")
        .replace("[a:wan, b:lan]", "[a:wan, b:wan]");
    has(&errs(&clash), 28, 5, "already has an interface `eth`");
}

#[test]
fn defaults_apply_to_group_members_and_cannot_name_a_group() {
    let with_defaults = GROUPED.replace(
        "groups:\n",
        "defaults:\n  resources: { memory: 64MiB, wasm_memory: 16MiB }\n  log_level: debug\ngroups:\n",
    );
    let chain = ok(&with_defaults);
    for v in &chain.vnfs {
        assert_eq!(v.resources.memory, Some(64 << 20), "{}", v.name);
        assert_eq!(v.resources.wasm_memory, Some(16 << 20), "{}", v.name);
        assert_eq!(v.log_level, nfvhost_abi::LogLevel::Debug, "{}", v.name);
    }
    assert_eq!(chain.vnf("a").unwrap().group.as_deref(), Some("g"));
    assert_eq!(chain.vnf("c").unwrap().group, None);
    // One group for every VNF is not a default: `group:` is a VNF's own.
    only(
        &errs(&GROUPED.replace("groups:\n", "defaults:\n  group: g\ngroups:\n")),
        10,
        3,
        "group",
    );
}
