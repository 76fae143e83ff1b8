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
    assert_eq!(spec.host("h2").unwrap().gateway, Some(Ipv4Addr::new(10, 0, 2, 1)));
    assert_eq!(spec.links.len(), 2);
}
