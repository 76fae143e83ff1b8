//! Deploy, rollback and teardown of the shipped chains against the
//! recording [`FakeOs`]: no root needed.

use std::net::Ipv4Addr;
use std::path::Path;

use super::cgroup_path;
use super::execute::{execute, DeployError};
use super::plan::{plan, Step};
use super::state::ChainState;
use super::teardown::{owns_netns, teardown_on, TeardownError};
use crate::chain::{self, ChainSpec};
use crate::sys::cgroup::Limits;
use crate::sys::fake::{FakeOs, OsCall};
use crate::sys::os::{Os, OsError};

const SHIPPED: [&str; 6] = [
    "chains/site-a.yaml",
    "chains/site-b.yaml",
    "chains/basic.yaml",
    "chains/edge.yaml",
    "chains/edge-fused.yaml",
    "tests/chains/tap.yaml",
];

fn load(rel: &str) -> ChainSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    chain::load(&path).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A fresh state for `chain` under a temporary run directory.
fn state_in(run_dir: &Path, chain: &ChainSpec) -> ChainState {
    ChainState {
        chain: chain.name.clone(),
        run_dir: Some(run_dir.to_owned()),
        ..Default::default()
    }
}

/// The OS call a step makes, as the fake records it.
fn call_of(step: &Step) -> OsCall {
    match step.clone() {
        Step::CreateNetns { name } => OsCall::CreateNetns { name },
        Step::DisableIpv6 { ns } => OsCall::DisableIpv6 { ns },
        Step::CreateVeth {
            ns_a,
            name_a,
            ns_b,
            name_b,
            mtu,
        } => OsCall::CreateVeth {
            ns_a,
            name_a,
            ns_b,
            name_b,
            mtu,
        },
        Step::CreateTap { ns, name, mtu } => OsCall::CreateTap {
            ns,
            name,
            mtu,
            vnet_hdr: false,
        },
        Step::CreateVxlan { ns, name, config } => OsCall::CreateVxlan { ns, name, config },
        Step::SetUp { ns, name } => OsCall::SetUp { ns, name },
        Step::DisableOffloads { ns, name } => OsCall::DisableOffloads { ns, name },
        Step::SetMac { ns, name, mac } => OsCall::SetMac { ns, name, mac },
        Step::AddAddress {
            ns,
            name,
            addr,
            prefix_len,
        } => OsCall::AddAddress {
            ns,
            ifname: name,
            addr,
            prefix_len,
        },
        Step::AddRoute { ns, dst, via } => OsCall::AddRoute { ns, dst, via },
        Step::CreateCgroup { rel_path, .. } => OsCall::CreateCgroup { rel_path },
    }
}

/// The call that undoes a step, if it created something.
fn undo_call_of(step: &Step) -> Option<OsCall> {
    match step.clone() {
        Step::CreateNetns { name } => Some(OsCall::DeleteNetns { name }),
        Step::CreateVeth { ns_a, name_a, .. } => Some(OsCall::DeleteLink {
            ns: ns_a,
            name: name_a,
        }),
        Step::CreateTap { ns, name, .. } | Step::CreateVxlan { ns, name, .. } => {
            Some(OsCall::DeleteLink { ns, name })
        }
        Step::CreateCgroup { rel_path, .. } => Some(OsCall::RemoveCgroup { rel_path }),
        _ => None,
    }
}

fn ns_names(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateNetns { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn basic_plan_is_namespaces_links_hosts_cgroups() {
    let steps = plan(&load("chains/basic.yaml"));
    let ns = |n: &str| format!("nfv-basic-{n}");
    let route = |n: &str, via: [u8; 4]| Step::AddRoute {
        ns: ns(n),
        dst: None,
        via: Ipv4Addr::from(via),
    };
    let address = |n: &str, addr: [u8; 4]| Step::AddAddress {
        ns: ns(n),
        name: "eth0".into(),
        addr: Ipv4Addr::from(addr),
        prefix_len: 24,
    };
    let veth = |a: &str, pa: &str, b: &str, pb: &str| Step::CreateVeth {
        ns_a: ns(a),
        name_a: pa.into(),
        ns_b: ns(b),
        name_b: pb.into(),
        mtu: None,
    };
    assert_eq!(
        steps,
        [
            Step::CreateNetns { name: ns("h1") },
            Step::CreateNetns { name: ns("h2") },
            Step::CreateNetns { name: ns("r1") },
            Step::DisableIpv6 { ns: ns("r1") },
            // The router takes offloaded frames: offloads stay on.
            veth("h1", "eth0", "r1", "lan"),
            veth("r1", "wan", "h2", "eth0"),
            address("h1", [10, 0, 1, 10]),
            route("h1", [10, 0, 1, 1]),
            address("h2", [10, 0, 2, 10]),
            route("h2", [10, 0, 2, 1]),
            Step::CreateCgroup {
                rel_path: "nfvhost/basic/r1".into(),
                limits: Limits {
                    cpu_cores: None,
                    memory_bytes: Some(64 << 20),
                    default_memory_bytes: Some(64 << 20),
                    pids: Some(32),
                },
            },
        ]
    );
    assert_eq!(
        steps[4].to_string(),
        "creating veth link nfv-basic-h1:eth0—nfv-basic-r1:lan"
    );
}

#[test]
fn offloads_go_off_on_both_ends_of_a_link_to_a_vnf_without_offload() {
    let mut chain = load("chains/basic.yaml");
    chain.vnfs[0].datapath.offload = false;
    let steps = plan(&chain);
    let off: Vec<String> = steps
        .iter()
        .filter(|s| matches!(s, Step::DisableOffloads { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        off,
        [
            "switching offloads off on nfv-basic-h1:eth0",
            "switching offloads off on nfv-basic-r1:lan",
            "switching offloads off on nfv-basic-r1:wan",
            "switching offloads off on nfv-basic-h2:eth0",
        ]
    );
    // Each right after its link.
    let first = steps
        .iter()
        .position(|s| matches!(s, Step::DisableOffloads { .. }));
    assert!(matches!(steps[first.unwrap() - 1], Step::CreateVeth { .. }));
}

#[test]
fn tap_plan_creates_the_tap_in_the_host_namespace() {
    let mut chain = load("tests/chains/tap.yaml");
    chain.vnfs[0].datapath.offload = false;
    let steps = plan(&chain);
    let at = steps
        .iter()
        .position(|s| matches!(s, Step::CreateTap { .. }))
        .expect("a TAP step");
    let (ns, name) = ("nfv-tap-h2".to_owned(), "tap0".to_owned());
    assert_eq!(
        steps[at..at + 3],
        [
            Step::CreateTap {
                ns: ns.clone(),
                name: name.clone(),
                mtu: None,
            },
            Step::SetUp {
                ns: ns.clone(),
                name: name.clone()
            },
            Step::DisableOffloads {
                ns: ns.clone(),
                name: name.clone()
            },
        ]
    );
    // A worker that carries offloads opens the TAP with vnet headers, so
    // the host keeps its offloads on.
    let steps = plan(&load("tests/chains/tap.yaml"));
    assert!(!steps
        .iter()
        .any(|s| matches!(s, Step::DisableOffloads { ns: n, name: i } if *n == ns && *i == name)));
    // Only one veth: the TAP side has no link in the VNF's namespace.
    let veths = steps
        .iter()
        .filter(|s| matches!(s, Step::CreateVeth { .. }))
        .count();
    assert_eq!(veths, 1);
}

#[test]
fn edge_plan_sets_the_reserved_mac_and_one_cgroup_per_vnf() {
    let steps = plan(&load("chains/edge.yaml"));
    assert!(steps.contains(&Step::SetMac {
        ns: "nfv-edge-lan".into(),
        name: "eth0".into(),
        mac: [0x02, 0, 0, 0, 0x01, 0x50],
    }));
    let cgroups: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateCgroup { rel_path, .. } => Some(rel_path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        cgroups,
        [
            "nfvhost/edge/dhcp",
            "nfvhost/edge/fw",
            "nfvhost/edge/r1",
            "nfvhost/edge/nat"
        ]
    );
    // The DHCP host gets no address and no route from the plan.
    assert!(!steps.iter().any(|s| matches!(
        s,
        Step::AddAddress { ns, .. } | Step::AddRoute { ns, .. } if ns == "nfv-edge-lan"
    )));
}

#[test]
fn a_fused_group_gets_one_namespace_and_one_summed_cgroup_and_no_links_inside() {
    let steps = plan(&load("chains/edge-fused.yaml"));
    assert_eq!(
        ns_names(&steps),
        ["nfv-edgef-lan", "nfv-edgef-wan", "nfv-edgef-edge"]
    );
    // Only the links to the test hosts are veth pairs, in the group's
    // namespace; the three links between members are in memory.
    let veths: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateVeth {
                ns_a,
                name_a,
                ns_b,
                name_b,
                ..
            } => Some((
                ns_a.as_str(),
                name_a.as_str(),
                ns_b.as_str(),
                name_b.as_str(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        veths,
        [
            ("nfv-edgef-lan", "eth0", "nfv-edgef-edge", "lan"),
            ("nfv-edgef-edge", "outside", "nfv-edgef-wan", "eth0")
        ]
    );
    let cgroups: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateCgroup { rel_path, limits } => Some((rel_path.as_str(), *limits)),
            _ => None,
        })
        .collect();
    // Four members of 64 MiB and 32 pids each (from `defaults:`), no CPU
    // quota.
    assert_eq!(
        cgroups,
        [(
            "nfvhost/edgef/edge",
            Limits {
                cpu_cores: None,
                memory_bytes: Some(4 * (64 << 20)),
                default_memory_bytes: cgroups[0].1.default_memory_bytes,
                pids: Some(128),
            }
        )]
    );
}

#[test]
fn plans_touch_only_the_chains_own_namespaces_and_cgroups() {
    for file in SHIPPED {
        let chain = load(file);
        for step in plan(&chain) {
            let ns = match &step {
                Step::CreateNetns { name } => vec![name],
                Step::CreateVeth { ns_a, ns_b, .. } => vec![ns_a, ns_b],
                Step::DisableIpv6 { ns }
                | Step::CreateTap { ns, .. }
                | Step::CreateVxlan { ns, .. }
                | Step::SetUp { ns, .. }
                | Step::DisableOffloads { ns, .. }
                | Step::SetMac { ns, .. }
                | Step::AddAddress { ns, .. }
                | Step::AddRoute { ns, .. } => vec![ns],
                Step::CreateCgroup { rel_path, .. } => {
                    let unit = rel_path.strip_prefix(&format!("nfvhost/{}/", chain.name));
                    assert!(
                        unit.is_some_and(|u| chain.vnf(u).is_some() || chain.group(u).is_some()),
                        "{file}: {step}"
                    );
                    vec![]
                }
            };
            for n in ns {
                assert!(owns_netns(&chain.name, n), "{file}: {step}");
            }
        }
    }
}

#[test]
fn executing_a_plan_makes_one_call_per_step_and_records_the_state() {
    for file in SHIPPED {
        let chain = load(file);
        let steps = plan(&chain);
        let fake = FakeOs::new();
        let run = tempfile::tempdir().unwrap();
        let mut state = state_in(run.path(), &chain);
        let mut phases = Vec::new();
        execute(&fake, &steps, &mut state, &mut |m| {
            phases.push(m.to_owned())
        })
        .unwrap();

        let expected: Vec<OsCall> = steps.iter().map(call_of).collect();
        assert_eq!(fake.calls(), expected, "{file}");
        assert_eq!(
            phases,
            [
                "creating namespaces",
                "creating links",
                "configuring test hosts",
                "creating cgroups"
            ],
            "{file}"
        );
        let mut namespaces = ns_names(&steps);
        assert_eq!(state.namespaces, namespaces, "{file}");
        namespaces.sort();
        assert_eq!(fake.namespaces(), namespaces, "{file}");
        for unit in chain.workers() {
            assert!(fake.cgroup_exists(&cgroup_path(&chain.name, unit.name())));
        }
        assert_eq!(state.cgroups.len(), chain.workers().len());
        // What is on disk is what is in memory.
        let saved: ChainState = serde_json::from_slice(
            &std::fs::read(run.path().join(&chain.name).join("state.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(saved.namespaces, state.namespaces);
        assert_eq!(saved.cgroups, state.cgroups);
    }
}

#[test]
fn a_failure_at_any_step_rolls_back_exactly_the_steps_before_it_in_reverse() {
    for file in SHIPPED {
        let chain = load(file);
        let steps = plan(&chain);
        for n in 0..steps.len() {
            let fake = FakeOs::new();
            fake.fail_at(Some(n));
            let run = tempfile::tempdir().unwrap();
            let mut state = state_in(run.path(), &chain);
            let err = execute(&fake, &steps, &mut state, &mut |_| {}).unwrap_err();
            match &err {
                DeployError::Step { step, source } => {
                    assert_eq!(**step, steps[n], "{file} step {n}");
                    assert!(matches!(
                        source,
                        OsError::Injected { .. }
                            | OsError::Link(crate::sys::LinkError::Injected { .. })
                    ));
                }
                other => panic!("{file} step {n}: {other}"),
            }

            let calls = fake.calls();
            let executed: Vec<OsCall> = steps[..=n].iter().map(call_of).collect();
            assert_eq!(calls[..=n], executed[..], "{file} step {n}");
            let undone: Vec<OsCall> = steps[..n].iter().rev().filter_map(undo_call_of).collect();
            assert_eq!(calls[n + 1..], undone[..], "{file} step {n}");

            assert!(fake.namespaces().is_empty(), "{file} step {n}");
            assert!(fake.links().is_empty(), "{file} step {n}");
            for unit in chain.workers() {
                assert!(!fake.cgroup_exists(&cgroup_path(&chain.name, unit.name())));
            }
            assert!(!fake.cgroup_exists(&format!("nfvhost/{}", chain.name)));
            assert!(state.namespaces.is_empty() && state.cgroups.is_empty());
        }
    }
}

#[test]
fn a_failed_state_save_is_rolled_back_too() {
    let chain = load("chains/basic.yaml");
    let fake = FakeOs::new();
    let run = tempfile::tempdir().unwrap();
    // A file where the run directory should be: no state can be written.
    let blocked = run.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let mut state = state_in(&blocked, &chain);
    let err = execute(&fake, &plan(&chain), &mut state, &mut |_| {}).unwrap_err();
    assert!(matches!(err, DeployError::State(_)), "{err}");
    assert_eq!(
        fake.calls(),
        [
            OsCall::CreateNetns {
                name: "nfv-basic-h1".into()
            },
            OsCall::DeleteNetns {
                name: "nfv-basic-h1".into()
            },
        ]
    );
    assert!(fake.namespaces().is_empty());
}

#[test]
fn teardown_removes_what_execute_created_and_the_state_directory() {
    for file in SHIPPED {
        let chain = load(file);
        let fake = FakeOs::new();
        let run = tempfile::tempdir().unwrap();
        let mut state = state_in(run.path(), &chain);
        execute(&fake, &plan(&chain), &mut state, &mut |_| {}).unwrap();
        // Only the recorded namespaces go: `nfv-<chain>-x` may be node `x`
        // of this chain or node of chain `<chain>-…` (`nfv-a-b-x` is both
        // `b-x` of `a` and `x` of `a-b`), so no sweep by prefix; other
        // chains' and strangers' namespaces stay.
        let other_chain = format!("nfv-{}-b-h1", chain.name);
        fake.add_foreign_netns(&other_chain);
        fake.add_foreign_netns("nfv-other-h1");
        fake.add_foreign_netns("somebody-else");

        let removed = teardown_on(&fake, &state).unwrap();
        assert_eq!(removed.namespaces, state.namespaces.len(), "{file}");
        assert_eq!(removed.cgroups, chain.workers().len(), "{file}");
        let mut left = vec![other_chain, "nfv-other-h1".into(), "somebody-else".into()];
        left.sort();
        assert_eq!(fake.namespaces(), left, "{file}");
        assert!(fake.links().is_empty(), "{file}");
        assert!(!fake.cgroup_exists("nfvhost"), "{file}");
        assert!(!run.path().join(&chain.name).exists(), "{file}");
        // Idempotent.
        let again = teardown_on(&fake, &state).unwrap();
        assert_eq!(again.namespaces, 0);
        assert!(fake.namespaces().len() == 3 && !fake.cgroup_exists("nfvhost"));
    }
}

#[test]
fn teardown_leaves_alone_what_is_not_the_chains() {
    let chain = load("chains/basic.yaml");
    let fake = FakeOs::new();
    let run = tempfile::tempdir().unwrap();
    let mut state = state_in(run.path(), &chain);
    execute(&fake, &plan(&chain), &mut state, &mut |_| {}).unwrap();
    // An edited state file names someone else's namespace and cgroup.
    fake.create_netns("victim").unwrap();
    fake.create_netns("nfv-basically-h1").unwrap();
    let foreign = fake
        .create_cgroup("system.slice/victim", &Limits::default())
        .unwrap();
    let other_chain = fake
        .create_cgroup("nfvhost/other/r1", &Limits::default())
        .unwrap();
    state.namespaces.push("victim".into());
    state.namespaces.push("nfv-basically-h1".into());
    state.cgroups.push(foreign);
    state.cgroups.push(other_chain);
    state.save().unwrap();

    let err = teardown_on(&fake, &state).unwrap_err();
    let TeardownError::LeftBehind { left, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(left.len(), 4, "{err}");
    assert!(
        err.to_string()
            .contains("namespace victim is not nfv-basic-*"),
        "{err}"
    );
    assert!(
        err.to_string().contains("cgroup system.slice/victim"),
        "{err}"
    );
    assert_eq!(fake.namespaces(), ["nfv-basically-h1", "victim"]);
    assert!(fake.cgroup_exists("system.slice/victim"));
    assert!(fake.cgroup_exists("nfvhost/other/r1"));
    // Ours are gone; the state directory stays for another try.
    assert!(!fake.cgroup_exists("nfvhost/basic"));
    assert!(run.path().join("basic/state.json").exists());
}
