//! Plan-level tests of VXLAN links on the recording [`FakeOs`]: the device
//! is created in the VNF's namespace with the underlay's MTU less the
//! encapsulation, rolled back with the rest, and an unreachable remote
//! fails the deploy with a clear error and leaves nothing behind.

use std::net::Ipv4Addr;
use std::path::Path;

use super::execute::execute;
use super::modules::{init_document, link_mtu};
use super::plan::{plan, Step};
use super::state::ChainState;
use crate::chain::{self, ChainSpec};
use crate::sys::fake::{FakeOs, OsCall};
use crate::sys::link::{LinkOps, VxlanConfig};
use crate::sys::os::Os;

fn site(s: &str) -> ChainSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../chains")
        .join(format!("site-{s}.yaml"));
    chain::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn deploy(fake: &FakeOs, chain: &ChainSpec) -> (Result<(), String>, tempfile::TempDir) {
    let run = tempfile::tempdir().unwrap();
    let mut state = ChainState {
        chain: chain.name.clone(),
        run_dir: Some(run.path().to_owned()),
        ..Default::default()
    };
    let result = execute(fake, &plan(chain), &mut state, &mut |_| {}).map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text += &format!(": {s}");
            source = s.source();
        }
        text
    });
    (result, run)
}

#[test]
fn a_site_plans_its_vxlan_device_in_the_routers_namespace() {
    let steps = plan(&site("a"));
    let at = steps
        .iter()
        .position(|s| matches!(s, Step::CreateVxlan { .. }))
        .expect("a VXLAN step");
    assert_eq!(
        steps[at],
        Step::CreateVxlan {
            ns: "nfv-site-a-ra".into(),
            name: "wan".into(),
            config: VxlanConfig {
                vni: 100,
                remote: Ipv4Addr::new(192, 0, 2, 2),
                local: None,
                port: 4789,
                mtu: None,
            },
        }
    );
    assert_eq!(
        steps[at + 1],
        Step::SetUp {
            ns: "nfv-site-a-ra".into(),
            name: "wan".into()
        }
    );
    // The router carries offloads: the kernel's VXLAN segments for it.
    assert!(!steps
        .iter()
        .any(|s| matches!(s, Step::DisableOffloads { name, .. } if name == "wan")));
    // Created after the router's namespace, before any cgroup.
    let ns_at = steps
        .iter()
        .position(|s| matches!(s, Step::CreateNetns { name } if name == "nfv-site-a-ra"))
        .unwrap();
    assert!(ns_at < at);
    assert_eq!(
        steps[at].to_string(),
        "creating VXLAN link nfv-site-a-ra:wan (VNI 100 to 192.0.2.2:4789)"
    );
}

#[test]
fn the_device_takes_the_underlay_mtu_less_50_and_reaches_the_module() {
    let chain = site("b");
    let fake = FakeOs::new();
    fake.set_underlay_mtu(Some(9000));
    let (result, _run) = deploy(&fake, &chain);
    result.unwrap();
    assert!(fake
        .links()
        .contains(&("nfv-site-b-rb".into(), "wan".into())));
    assert_eq!(fake.links().len(), 3, "{:?}", fake.links());
    assert_eq!(fake.link_mtu("nfv-site-b-rb", "wan").unwrap(), 8950);
    // Before deploy (validation), the module is told 1500 - 50.
    let rb = chain.vnf("rb").unwrap();
    let wan = chain.links.iter().find(|l| l.a.port == "wan").unwrap();
    assert_eq!(link_mtu(Some(wan)), 1450);
    let doc: serde_json::Value =
        serde_json::from_str(&init_document(&chain, rb, &[], &[None, Some(8950)])).unwrap();
    assert_eq!(doc["ports"][0]["mtu"], 1500);
    assert_eq!(doc["ports"][1]["mtu"], 8950);
}

#[test]
fn an_unreachable_remote_fails_the_deploy_and_leaves_nothing() {
    let chain = site("a");
    let fake = FakeOs::new();
    fake.set_underlay_mtu(None);
    let (result, _run) = deploy(&fake, &chain);
    let err = result.unwrap_err();
    assert!(
        err.contains("VXLAN remote 192.0.2.2 is not reachable from the underlay"),
        "{err}"
    );
    assert!(
        err.contains("creating VXLAN link nfv-site-a-ra:wan"),
        "{err}"
    );
    assert!(fake.namespaces().is_empty(), "{:?}", fake.namespaces());
    assert!(fake.links().is_empty(), "{:?}", fake.links());
}

#[test]
fn a_link_mtu_over_the_underlay_is_refused() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../chains/site-a.yaml"),
    )
    .unwrap()
    .replace("kind: vxlan }", "kind: vxlan, mtu: 1480 }");
    let chain = chain::parse("site-a.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeOs::new();
    let (result, _run) = deploy(&fake, &chain);
    let err = result.unwrap_err();
    assert!(
        err.contains("MTU 1480 of VXLAN link wan is over 1450"),
        "{err}"
    );
    assert!(fake.namespaces().is_empty());
}

#[test]
fn a_later_failure_rolls_the_vxlan_device_back() {
    let chain = site("a");
    let fake = FakeOs::new();
    fake.fail_on(Some("create_cgroup"));
    let (result, _run) = deploy(&fake, &chain);
    assert!(result.is_err());
    let calls = fake.calls();
    let created = calls
        .iter()
        .position(|c| matches!(c, OsCall::CreateVxlan { .. }))
        .unwrap();
    let deleted = calls
        .iter()
        .position(|c| {
            *c == OsCall::DeleteLink {
                ns: "nfv-site-a-ra".into(),
                name: "wan".into(),
            }
        })
        .expect("the VXLAN device is deleted on rollback");
    assert!(created < deleted);
    assert!(fake.links().is_empty() && fake.namespaces().is_empty());
    assert!(!fake.netns_exists("nfv-site-a-ra"));
}
