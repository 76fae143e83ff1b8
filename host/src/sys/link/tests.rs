//! The links part of the recording fake, and error messages.

use std::net::Ipv4Addr;

use super::{LinkError, LinkOps, LinkStats, Result};
use crate::sys::fake::{FakeOs, OsCall};

fn deploy_two_vnfs(ops: &dyn LinkOps) -> Result<()> {
    ops.create_veth("nfvt-a", "eth0", "nfvt-b", "eth0", Some(1500))?;
    ops.disable_offloads("nfvt-a", "eth0")?;
    ops.add_address("nfvt-a", "eth0", Ipv4Addr::new(10, 0, 0, 1), 24)?;
    ops.add_route("nfvt-a", None, Ipv4Addr::new(10, 0, 0, 2))?;
    ops.create_tap("nfvt-b", "tap0", None, true)?;
    Ok(())
}

#[test]
fn fake_records_calls_in_order() {
    let fake = FakeOs::new();
    deploy_two_vnfs(&fake).unwrap();
    let ops: Vec<_> = fake.calls().iter().map(OsCall::op).collect();
    assert_eq!(
        ops,
        [
            "create_veth",
            "disable_offloads",
            "add_address",
            "add_route",
            "create_tap"
        ]
    );
    assert_eq!(
        fake.calls()[0],
        OsCall::CreateVeth {
            ns_a: "nfvt-a".into(),
            name_a: "eth0".into(),
            ns_b: "nfvt-b".into(),
            name_b: "eth0".into(),
            mtu: Some(1500),
        }
    );
    assert_eq!(fake.links().len(), 3);
    assert!(fake.open_tap("nfvt-b", "tap0", true).is_ok());
}

#[test]
fn fake_models_existence() {
    let fake = FakeOs::new();
    assert!(matches!(
        fake.set_up("nfvt-a", "eth0"),
        Err(LinkError::NotFound { .. })
    ));
    fake.create_veth("nfvt-a", "x", "nfvt-b", "y", None)
        .unwrap();
    assert!(matches!(
        fake.create_tap("nfvt-b", "y", None, false),
        Err(LinkError::AlreadyExists { .. })
    ));
    assert_ne!(
        fake.link_index("nfvt-a", "x").unwrap(),
        fake.link_index("nfvt-b", "y").unwrap()
    );
    // Deleting one end of a veth removes the pair; deleting again is fine.
    fake.delete_link("nfvt-b", "y").unwrap();
    fake.delete_link("nfvt-b", "y").unwrap();
    assert!(fake.links().is_empty());
    assert!(matches!(
        fake.create_veth("nfvt-a", "waytoolongforanifname", "b", "c", None),
        Err(LinkError::InvalidName { .. })
    ));
}

#[test]
fn fake_injects_failures() {
    let fake = FakeOs::new();
    fake.fail_on(Some("add_route"));
    let err = deploy_two_vnfs(&fake).unwrap_err();
    assert!(
        matches!(err, LinkError::Injected { op: "add_route" }),
        "{err}"
    );
    assert_eq!(fake.calls().last().map(OsCall::op), Some("add_route"));
    fake.fail_on(None);
    let stats = LinkStats {
        rx_packets: 3,
        ..Default::default()
    };
    fake.set_stats("nfvt-a", "eth0", stats);
    assert_eq!(fake.link_stats("nfvt-a", "eth0").unwrap(), stats);
}

#[test]
fn errors_name_what_and_where() {
    let err = LinkError::NotFound {
        ns: "nfvt-a".into(),
        ifname: "eth9".into(),
    };
    assert_eq!(err.to_string(), "no interface eth9 in namespace nfvt-a");
}
