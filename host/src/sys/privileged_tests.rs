//! Tests against the real kernel. They need root; as anyone else each one
//! prints a notice and passes without doing anything.
//!
//! Every namespace is named `nfvt-<pid>-<n>` and removed by a guard, every
//! cgroup lives under `nfvt-<pid>-<n>/`, and nothing is created in the root
//! namespace.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::cgroup::{Cgroup, CgroupRoot, CgroupVersion, Limits};
use super::ethtool::{self, Offload};
use super::link::{self, LinkError, LinkOps, LinuxLinkOps};
use super::netns::{self, NetNs, NetNsError};
use super::testing::{have_root, NetNsGuard};

fn run(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("couldn't run {cmd:?}: {e}"))
}

fn stdout_of(cmd: &[&str]) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn guard() -> NetNsGuard {
    NetNsGuard::new("nfvt-").expect("create test namespace")
}

#[test]
fn namespace_lifecycle() {
    if !have_root("namespace_lifecycle") {
        return;
    }
    let name;
    {
        let ns = guard();
        name = ns.name().to_owned();
        assert!(netns::exists(&name));
        assert!(netns::list().contains(&name));
        assert!(
            stdout_of(&["ip", "netns", "list"]).contains(&name),
            "ip netns sees it"
        );
        assert!(matches!(
            NetNs::create(&name),
            Err(NetNsError::AlreadyExists { .. })
        ));

        let outside = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let inside = ns
            .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
            .unwrap();
        assert_ne!(inside, outside);
        let reopened = NetNs::open(&name).unwrap();
        let again = reopened
            .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
            .unwrap();
        assert_eq!(again, inside);
        assert_eq!(
            std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
            outside,
            "the caller's thread never moves"
        );

        // lo is up, so loopback traffic works inside.
        let lo = stdout_of(&["ip", "-n", &name, "link", "show", "lo"]);
        assert!(lo.contains("UP"), "{lo}");
        let ping = run(&[
            "ip",
            "netns",
            "exec",
            &name,
            "ping",
            "-c1",
            "-W1",
            "127.0.0.1",
        ]);
        assert!(ping.status.success(), "loopback ping failed");
    }
    assert!(!netns::exists(&name), "guard deleted it");
    assert!(!Path::new(netns::NETNS_RUN_DIR).join(&name).exists());
    NetNs::delete(&name).expect("deleting twice is fine");
}

#[test]
fn panicking_test_still_deletes_its_namespace() {
    if !have_root("panicking_test_still_deletes_its_namespace") {
        return;
    }
    let name = std::thread::spawn(|| {
        let ns = guard();
        let name = ns.name().to_owned();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ns = ns;
            panic!("boom");
        }));
        assert!(result.is_err());
        name
    })
    .join()
    .unwrap();
    assert!(!netns::exists(&name));
}

#[test]
fn veth_between_namespaces_carries_a_ping() {
    if !have_root("veth_between_namespaces_carries_a_ping") {
        return;
    }
    let a = guard();
    let b = guard();
    // Same name on both ends: the peer is born in b, so no clash.
    link::create_veth(&a, "eth0", &b, "eth0", Some(1400)).unwrap();
    for ns in [&a, &b] {
        let show = stdout_of(&["ip", "-n", ns.name(), "link", "show", "eth0"]);
        assert!(show.contains("mtu 1400"), "{show}");
        assert!(show.contains("state UP"), "{show}");
    }
    link::add_address(&a, "eth0", Ipv4Addr::new(10, 199, 0, 1), 24).unwrap();
    link::add_address(&b, "eth0", Ipv4Addr::new(10, 199, 0, 2), 24).unwrap();
    link::add_route(
        &a,
        Some((Ipv4Addr::new(10, 200, 0, 0), 16)),
        Ipv4Addr::new(10, 199, 0, 2),
    )
    .unwrap();
    link::add_route(&b, None, Ipv4Addr::new(10, 199, 0, 1)).unwrap();
    let routes = stdout_of(&["ip", "-n", a.name(), "route"]);
    assert!(
        routes.contains("10.200.0.0/16 via 10.199.0.2 dev eth0"),
        "{routes}"
    );
    let routes = stdout_of(&["ip", "-n", b.name(), "route"]);
    assert!(
        routes.contains("default via 10.199.0.1 dev eth0"),
        "{routes}"
    );

    for ns in [&a, &b] {
        ethtool::disable_offloads(ns, "eth0").unwrap();
        let k = stdout_of(&["ip", "netns", "exec", ns.name(), "ethtool", "-k", "eth0"]);
        for offload in Offload::ALL {
            let line = format!("{}: off", offload.ethtool_name());
            assert!(k.contains(&line), "{line:?} not in:\n{k}");
            assert!(!ethtool::get_offload(ns, "eth0", offload).unwrap());
        }
    }
    ethtool::set_offload(&a, "eth0", Offload::Gro, true).unwrap();
    assert!(ethtool::get_offload(&a, "eth0", Offload::Gro).unwrap());

    let mac_a = link::mac_address(&a, "eth0").unwrap();
    assert_ne!(mac_a, [0; 6]);
    assert_eq!(
        mac_a[0] & 0x03,
        0x02,
        "veth MACs are random, locally administered unicast"
    );
    assert_ne!(mac_a, link::mac_address(&b, "eth0").unwrap());
    let index = link::link_index(&a, "eth0").unwrap();
    assert!(index > 1, "lo is 1");

    let before_a = link::link_stats(&a, "eth0").unwrap();
    let before_b = link::link_stats(&b, "eth0").unwrap();
    let ping = run(&[
        "ip",
        "netns",
        "exec",
        a.name(),
        "ping",
        "-c1",
        "-W1",
        "10.199.0.2",
    ]);
    assert!(
        ping.status.success(),
        "ping failed: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    let after_a = link::link_stats(&a, "eth0").unwrap();
    let after_b = link::link_stats(&b, "eth0").unwrap();
    // At least the echo request (plus ARP) out of a and into b, and the
    // reply back.
    assert!(
        after_a.tx_packets > before_a.tx_packets,
        "{before_a:?} -> {after_a:?}"
    );
    assert!(
        after_a.rx_packets > before_a.rx_packets,
        "{before_a:?} -> {after_a:?}"
    );
    assert!(after_b.rx_packets > before_b.rx_packets);
    assert!(
        after_b.rx_bytes >= before_b.rx_bytes + 98,
        "one ICMP echo of 98 bytes at least"
    );
    assert_eq!(
        after_a.tx_packets - before_a.tx_packets,
        after_b.rx_packets - before_b.rx_packets
    );

    // Deleting one end removes the pair; deleting again is fine.
    link::delete_link(&a, "eth0").unwrap();
    assert!(matches!(
        link::link_index(&b, "eth0"),
        Err(LinkError::NotFound { .. })
    ));
    link::delete_link(&a, "eth0").unwrap();
}

#[test]
fn link_ops_by_name_and_nothing_in_root() {
    if !have_root("link_ops_by_name_and_nothing_in_root") {
        return;
    }
    let a = guard();
    let b = guard();
    let ops: &dyn LinkOps = &LinuxLinkOps;
    // Unique names, so we can check the root namespace never sees them.
    let name_a = format!("nfvt{}a", std::process::id() % 100_000);
    let name_b = format!("nfvt{}b", std::process::id() % 100_000);
    ops.create_veth(a.name(), &name_a, b.name(), &name_b, None)
        .unwrap();
    assert!(!Path::new("/sys/class/net").join(&name_a).exists());
    assert!(!Path::new("/sys/class/net").join(&name_b).exists());
    assert!(!stdout_of(&["ip", "-o", "link"]).contains("nfvt"));
    ops.disable_offloads(b.name(), &name_b).unwrap();
    assert!(matches!(
        ops.create_veth(a.name(), &name_a, b.name(), "other", None),
        Err(LinkError::AlreadyExists { .. })
    ));
    assert!(matches!(
        ops.set_up(a.name(), "missing0"),
        Err(LinkError::NotFound { ref ifname, .. }) if ifname == "missing0"
    ));
    let err = ops
        .add_address(a.name(), "missing0", Ipv4Addr::new(10, 0, 0, 1), 24)
        .unwrap_err();
    assert!(
        err.to_string().contains("missing0") && err.to_string().contains(a.name()),
        "{err}"
    );
    ops.delete_link(b.name(), &name_b).unwrap();
    assert!(matches!(
        ops.link_index(a.name(), &name_a),
        Err(LinkError::NotFound { .. })
    ));
    assert!(matches!(
        ops.link_index("nfvt-no-such-ns", "eth0"),
        Err(LinkError::Namespace(NetNsError::Open { .. }))
    ));
}

#[test]
fn persistent_tap_can_be_created_and_opened() {
    if !have_root("persistent_tap_can_be_created_and_opened") {
        return;
    }
    let ns = guard();
    link::create_tap(&ns, "tap0", Some(1400), false).unwrap();
    link::create_tap(&ns, "tap1", None, true).unwrap();
    let show = stdout_of(&["ip", "-d", "-n", ns.name(), "link", "show", "tap0"]);
    assert!(
        show.contains("mtu 1400") && show.contains("tun type tap") && show.contains("UP"),
        "{show}"
    );
    assert!(
        !Path::new("/sys/class/net/tap0").exists() || {
            // The root namespace may have its own tap0; make sure it isn't ours.
            std::fs::read_to_string("/sys/class/net/tap0/mtu")
                .map(|m| m.trim() != "1400")
                .unwrap_or(true)
        }
    );
    assert!(matches!(
        link::create_tap(&ns, "tap0", None, false),
        Err(LinkError::AlreadyExists { .. })
    ));

    // The device survived its creator closing the fd; attach and inject a
    // frame, which the kernel counts as received on tap0.
    let fd = link::open_tap(&ns, "tap0", false).unwrap();
    let before = link::link_stats(&ns, "tap0").unwrap();
    let mut frame = [0u8; 60];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    let written = nix::unistd::write(&fd, &frame).unwrap();
    assert_eq!(written, frame.len());
    let after = link::link_stats(&ns, "tap0").unwrap();
    assert_eq!(after.rx_packets, before.rx_packets + 1);
    drop(fd);
    let fd = link::open_tap(&ns, "tap1", true).unwrap();
    drop(fd);
    // A missing TAP is reported, and the transient device TUNSETIFF made
    // in the attempt is gone with the fd.
    assert!(matches!(
        link::open_tap(&ns, "tap9", false),
        Err(LinkError::NotFound { .. })
    ));
    assert!(matches!(
        link::link_index(&ns, "tap9"),
        Err(LinkError::NotFound { .. })
    ));

    link::delete_link(&ns, "tap0").unwrap();
    link::delete_link(&ns, "tap1").unwrap();
    assert!(matches!(
        link::link_index(&ns, "tap0"),
        Err(LinkError::NotFound { .. })
    ));
}

static CG_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Kills the child it started and removes the cgroup, even on panic.
struct CgroupGuard {
    cgroup: Option<Cgroup>,
    child: Option<Child>,
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(cg) = self.cgroup.take() {
            for _ in 0..50 {
                if cg.remove().is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "CgroupGuard: couldn't remove {:?}: {:?}",
                cg.paths(),
                cg.remove()
            );
        }
    }
}

#[test]
fn real_cgroup_limits_procs_and_removal() {
    if !have_root("real_cgroup_limits_procs_and_removal") {
        return;
    }
    let root = CgroupRoot::detect(Path::new("/sys/fs/cgroup")).unwrap();
    let top = format!(
        "nfvt-{}-{}",
        std::process::id(),
        CG_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let rel = format!("{top}/chain/vnf");
    let limits = Limits {
        cpu_cores: Some(0.5),
        memory_bytes: Some(64 << 20),
        default_memory_bytes: None,
        pids: Some(16),
    };
    let mut guard = CgroupGuard {
        cgroup: Some(root.create(&rel, &limits).unwrap()),
        child: None,
    };
    let cg = guard.cgroup.clone().unwrap();
    let paths: Vec<PathBuf> = cg.paths().iter().map(|p| p.to_path_buf()).collect();
    let read = |name: &str| -> String {
        let path = paths
            .iter()
            .map(|p| p.join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no {name} in {paths:?}"));
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    };
    match root.version() {
        CgroupVersion::V1 => {
            assert_eq!(read("cpu.cfs_quota_us"), "50000");
            assert_eq!(read("cpu.cfs_period_us"), "100000");
            assert_eq!(read("memory.limit_in_bytes"), (64u64 << 20).to_string());
        }
        CgroupVersion::V2 => {
            assert_eq!(read("cpu.max"), "50000 100000");
            assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        }
    }
    assert_eq!(read("pids.max"), "16");

    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    guard.child = Some(child);
    cg.add_process(pid).unwrap();
    assert_eq!(cg.procs().unwrap(), vec![pid]);
    for path in &paths {
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), pid.to_string(), "{}", path.display());
    }
    // v1 does not move memory charges with a process, so usage may be 0;
    // reading it must work.
    cg.usage().unwrap();

    // Busy: remove refuses and kills nothing.
    assert!(cg.remove().is_err());
    assert_eq!(cg.procs().unwrap(), vec![pid]);

    // A state file round trip, as destroy would do it.
    let json = serde_json::to_string(&cg).unwrap();
    let restored: Cgroup = serde_json::from_str(&json).unwrap();

    drop(guard);
    for path in &paths {
        assert!(!path.exists(), "{} left behind", path.display());
    }
    for h in root.hierarchies() {
        assert!(
            !h.mount.join(&top).exists(),
            "{} left behind",
            h.mount.join(&top).display()
        );
    }
    restored.remove().expect("removing again is fine");
}

/// A UDP super-frame (3000 bytes of payload in datagrams of 1000, partial
/// checksum) from 10.9.0.2:4000 to 10.9.0.1:5000 behind `dst_mac`, and its
/// virtio-net header.
fn udp_super_frame(dst_mac: [u8; 6]) -> (Vec<u8>, crate::engine::VnetHeader) {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut f = vec![0u8; 42];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&(20u16 + 8 + 3000).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 9, 0, 2]);
    f[30..34].copy_from_slice(&[10, 9, 0, 1]);
    let words = |b: &[u8]| -> u32 {
        b.chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
            .sum()
    };
    let fold = |mut s: u32| {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    };
    let ip_sum = !fold(words(&f[14..34]));
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    f[34..36].copy_from_slice(&4000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5000u16.to_be_bytes());
    f[38..40].copy_from_slice(&(8u16 + 3000).to_be_bytes());
    // Partial: the pseudo-header sum, not complemented.
    let partial = fold(words(&f[26..34]) + 17 + 3008);
    f[40..42].copy_from_slice(&partial.to_be_bytes());
    f.extend_from_slice(&payload);
    let mut h = [0u8; 10];
    h[0] = 1; // NEEDS_CSUM
    h[1] = 5; // UDP_L4
    h[2..4].copy_from_slice(&42u16.to_ne_bytes());
    h[4..6].copy_from_slice(&1000u16.to_ne_bytes());
    h[6..8].copy_from_slice(&34u16.to_ne_bytes());
    h[8..10].copy_from_slice(&6u16.to_ne_bytes());
    (f, crate::engine::VnetHeader(h))
}

/// Both ways a frame with offload state leaves through a TAP port reach a
/// real kernel intact: carried in a virtio-net header (the TAP opened with
/// IFF_VNET_HDR, the kernel segments it), and completed and segmented in
/// software (without). The kernel drops a datagram whose checksum is wrong,
/// so receiving all three datagrams of the software path, byte for byte,
/// proves its checksums.
#[test]
fn tap_ports_deliver_offloaded_udp_super_frames_intact() {
    use crate::datapath::port::tap::{TapIo, TapPort};
    use crate::datapath::port::Port;
    use crate::datapath::stats::PortCounters;
    use crate::datapath::transmit::{self, TxScratch};

    if !have_root("tap_ports_deliver_offloaded_udp_super_frames_intact") {
        return;
    }
    let ns = guard();
    link::create_tap(&ns, "tap0", None, false).unwrap();
    link::add_address(&ns, "tap0", Ipv4Addr::new(10, 9, 0, 1), 24).unwrap();
    let mac = link::mac_address(&ns, "tap0").unwrap();
    let socket = ns
        .run(|| std::net::UdpSocket::bind("10.9.0.1:5000"))
        .unwrap()
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (frame, offload) = udp_super_frame(mac);
    let expected: Vec<u8> = frame[42..].to_vec();

    for (vnet, io) in [true, false]
        .into_iter()
        .flat_map(|v| [(v, TapIo::Uring), (v, TapIo::PerFrame)])
    {
        let fd = link::open_tap(&ns, "tap0", vnet).unwrap();
        let mut port = TapPort::new("t", fd, vnet, io, 64).unwrap();
        assert_eq!(port.io(), io, "{:?}", port.take_fallback());
        assert_eq!(port.carries_offload(), vnet);
        let counters = PortCounters::default();
        let sent = transmit::send(
            &mut port,
            &counters,
            1500,
            &[&frame],
            &[offload],
            &mut TxScratch::default(),
        );
        assert_eq!(sent, 1, "vnet {vnet} {io:?}: the super-frame left whole");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        for i in 0..3 {
            let n = socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("vnet {vnet}: datagram {i} never arrived: {e}"));
            assert_eq!(n, 1000, "vnet {vnet}: one segment per datagram");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, expected, "vnet {vnet}: payload intact, in order");
        drop(port);
    }
}

/// A plain UDP/IPv4 frame from 10.9.0.2:4000 to 10.9.0.1:5000 behind
/// `dst_mac` carrying `payload` (UDP checksum 0: none).
fn plain_udp_frame(dst_mac: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&(28 + payload.len() as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 9, 0, 2]);
    f[30..34].copy_from_slice(&[10, 9, 0, 1]);
    let mut sum: u32 = f[14..34]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&4000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5000u16.to_be_bytes());
    f[38..40].copy_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A TAP port moves real frames both ways in batches, with io_uring (one
/// system call per batch) and with read/write (the fallback), with and
/// without virtio-net headers: a batch of 40 sent in one call reaches a
/// socket in order; 40 datagrams sent by the kernel come back in batches,
/// in order; and with virtio-net headers a UDP GSO send arrives as one
/// super-frame whose header says so (without, as its three datagrams).
#[test]
fn tap_ports_move_batches_both_ways() {
    use crate::datapath::port::tap::{TapIo, TapPort};
    use crate::datapath::port::Port;
    use crate::engine::{GsoType, VnetHeader};
    use nix::sys::socket::{setsockopt, sockopt::UdpGsoSegment};

    if !have_root("tap_ports_move_batches_both_ways") {
        return;
    }
    let ns = guard();
    link::create_tap(&ns, "tap0", None, false).unwrap();
    link::add_address(&ns, "tap0", Ipv4Addr::new(10, 9, 0, 1), 24).unwrap();
    // The far side's address answers no ARP: give it a fixed neighbour.
    stdout_of(&[
        "ip",
        "-n",
        ns.name(),
        "neigh",
        "replace",
        "10.9.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "tap0",
        "nud",
        "permanent",
    ]);
    let mac = link::mac_address(&ns, "tap0").unwrap();
    let socket = ns
        .run(|| std::net::UdpSocket::bind("10.9.0.1:5000"))
        .unwrap()
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    const N: usize = 40;

    for vnet in [true, false] {
        for io in [TapIo::Uring, TapIo::PerFrame] {
            let what = format!("vnet {vnet}, {}", io.label());
            let fd = link::open_tap(&ns, "tap0", vnet).unwrap();
            if !vnet {
                // As deploy leaves a TAP without virtio-net headers: no
                // offloads (the last round's port switched them on).
                use std::os::fd::AsFd;
                crate::datapath::sys::fd::tun_set_offload(fd.as_fd(), 0).unwrap();
            }
            let mut port = TapPort::new("t", fd, vnet, io, 64).unwrap();
            assert_eq!(port.io(), io, "{what}: {:?}", port.take_fallback());

            // Out: one call takes the whole batch, in order.
            let frames: Vec<Vec<u8>> = (0..N)
                .map(|i| plain_udp_frame(mac, format!("out {i} {what}").as_bytes()))
                .collect();
            let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
            let headers = vec![VnetHeader::NONE; N];
            assert_eq!(port.send_batch(&refs, &headers).unwrap(), N, "{what}");
            let mut buf = [0u8; 2048];
            for i in 0..N {
                let n = socket
                    .recv(&mut buf)
                    .unwrap_or_else(|e| panic!("{what}: datagram {i} never arrived: {e}"));
                assert_eq!(&buf[..n], format!("out {i} {what}").as_bytes());
            }

            // In: the kernel's datagrams come back in order.
            for i in 0..N {
                socket
                    .send_to(format!("in {i} {what}").as_bytes(), "10.9.0.2:6000")
                    .unwrap();
            }
            let got = receive_udp(&mut port, N, 6000);
            assert_eq!(got.len(), N, "{what}");
            for (i, (payload, header)) in got.iter().enumerate() {
                assert_eq!(payload, format!("in {i} {what}").as_bytes(), "{what}");
                assert_eq!(header.gso_type(), GsoType::None, "{what}");
            }

            // A GSO send: one super-frame with a header, or its datagrams.
            let gso = ns
                .run(|| std::net::UdpSocket::bind("10.9.0.1:0"))
                .unwrap()
                .unwrap();
            setsockopt(&gso, UdpGsoSegment, &1000).unwrap();
            let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
            gso.send_to(&payload, "10.9.0.2:6000").unwrap();
            let got = receive_udp(&mut port, if vnet { 1 } else { 3 }, 6000);
            if vnet {
                assert_eq!(got.len(), 1, "{what}");
                let (data, header) = &got[0];
                assert_eq!(header.gso_type(), GsoType::UdpL4, "{what}");
                assert_eq!(header.gso_size(), 1000, "{what}");
                assert_eq!(data, &payload, "{what}");
            } else {
                assert_eq!(got.len(), 3, "{what}");
                let joined: Vec<u8> = got.iter().flat_map(|(d, _)| d.clone()).collect();
                assert_eq!(joined, payload, "{what}");
            }
            drop(port);
        }
    }
}

/// Receives from `port` until `want` UDP datagrams to `dst_port` came (or
/// two seconds passed), ignoring other frames (the kernel's IPv6 chatter);
/// returns each one's payload and virtio-net header.
fn receive_udp(
    port: &mut crate::datapath::port::tap::TapPort,
    want: usize,
    dst_port: u16,
) -> Vec<(Vec<u8>, crate::engine::VnetHeader)> {
    use crate::datapath::port::Port;
    use crate::engine::VnetHeader;

    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut storage = vec![vec![0u8; 65536]; 16];
    while got.len() < want && std::time::Instant::now() < deadline {
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
        let mut lens = [0usize; 16];
        let mut vnets = [VnetHeader::NONE; 16];
        let stats = port.recv_batch(&mut bufs, &mut lens, &mut vnets).unwrap();
        if stats.frames == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 0..stats.frames {
            let f = &bufs[i][..lens[i]];
            let udp = f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17;
            if udp && f[36..38] == dst_port.to_be_bytes() {
                got.push((f[42..].to_vec(), vnets[i]));
            }
        }
    }
    got
}

/// A UDP frame from `src` to `dst` (IPv4 and port) between two MACs: with
/// `gso`, a super-frame of datagrams of that size with a partial checksum
/// and its virtio-net header; else a plain frame (IP checksum, no UDP
/// checksum) and no header.
fn udp_frame(
    macs: ([u8; 6], [u8; 6]),
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    payload: &[u8],
    gso: Option<u16>,
) -> (Vec<u8>, crate::engine::VnetHeader) {
    let udp_len = 8 + payload.len();
    let mut f = vec![0u8; 42];
    f[0..6].copy_from_slice(&macs.1);
    f[6..12].copy_from_slice(&macs.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&u16::try_from(20 + udp_len).unwrap().to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src.ip().octets());
    f[30..34].copy_from_slice(&dst.ip().octets());
    let words = |b: &[u8]| -> u32 {
        b.chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
            .sum()
    };
    let fold = |mut s: u32| {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    };
    let ip_sum = !fold(words(&f[14..34]));
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    f[34..36].copy_from_slice(&src.port().to_be_bytes());
    f[36..38].copy_from_slice(&dst.port().to_be_bytes());
    f[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let mut h = [0u8; 10];
    if let Some(size) = gso {
        // Partial: the pseudo-header sum, not complemented (the kernel
        // puts each segment's length in).
        let partial = fold(words(&f[26..34]) + 17);
        f[40..42].copy_from_slice(&partial.to_be_bytes());
        h[0] = 1; // NEEDS_CSUM
        h[1] = 5; // UDP_L4
        h[2..4].copy_from_slice(&42u16.to_ne_bytes());
        h[4..6].copy_from_slice(&size.to_ne_bytes());
        h[6..8].copy_from_slice(&34u16.to_ne_bytes());
        h[8..10].copy_from_slice(&6u16.to_ne_bytes());
    }
    f.extend_from_slice(payload);
    (f, crate::engine::VnetHeader(h))
}

/// Sets `UDP_SEGMENT` on a UDP socket: every send leaves as one GSO
/// super-frame of datagrams of `size` bytes.
fn set_udp_segment(socket: &std::net::UdpSocket, size: libc::c_int) {
    use std::os::fd::AsRawFd;
    const UDP_SEGMENT: libc::c_int = 103;
    // SAFETY: the option value points at a live c_int of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
}

/// A TPACKET port on one end of a veth pair, the kernel on the other:
/// frames go both ways with both receive ring layouts (V3 blocks, V2
/// frames), both send paths (sendmmsg, the transmit ring), and with and
/// without virtio-net headers; with them, a 63000-byte UDP super-frame
/// crosses whole each way (the kernel segments the one we send into 63
/// datagrams that all arrive; the one it sends reaches the ring as one
/// frame with its GSO header).
#[test]
fn tpacket_ports_carry_frames_and_super_frames_over_a_veth() {
    use crate::datapath::port::tpacket::{TpacketOptions, TpacketPort, Version};
    use crate::datapath::port::Port;
    use crate::datapath::spec::SUPER_FRAME_SLOT;
    use crate::engine::VnetHeader;
    use std::net::{SocketAddrV4, UdpSocket};

    if !have_root("tpacket_ports_carry_frames_and_super_frames_over_a_veth") {
        return;
    }
    let a = guard();
    let b = guard();
    link::create_veth(&a, "eth0", &b, "eth0", None).unwrap();
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 9, 1, 1), Ipv4Addr::new(10, 9, 1, 2));
    link::add_address(&a, "eth0", ip_a, 24).unwrap();
    link::add_address(&b, "eth0", ip_b, 24).unwrap();
    let macs = (
        link::mac_address(&a, "eth0").unwrap(),
        link::mac_address(&b, "eth0").unwrap(),
    );
    let sink_addr = SocketAddrV4::new(ip_b, 5000);
    let sink = b.run(|| UdpSocket::bind(sink_addr)).unwrap().unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let plain = b
        .run(|| UdpSocket::bind(SocketAddrV4::new(ip_b, 0)))
        .unwrap()
        .unwrap();
    let gso = b
        .run(|| UdpSocket::bind(SocketAddrV4::new(ip_b, 0)))
        .unwrap()
        .unwrap();
    set_udp_segment(&gso, 1000);
    let big: Vec<u8> = (0..63_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let to_a = SocketAddrV4::new(ip_a, 6000);
    let from_a = SocketAddrV4::new(ip_a, 4000);

    for version in [Version::V3, Version::V2] {
        for vnet in [false, true] {
            for tx_ring in [false, true] {
                let what = format!("{version:?} vnet {vnet} tx ring {tx_ring}");
                let options = TpacketOptions {
                    version,
                    tx_ring,
                    max_frame: if vnet { SUPER_FRAME_SLOT } else { 1518 },
                };
                let mut port = a
                    .run(|| TpacketPort::open("p", "eth0", vnet, options))
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(port.carries_offload(), vnet);

                // Port to kernel: five plain frames in one batch.
                let payloads: Vec<Vec<u8>> =
                    (0..5u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
                let frames: Vec<(Vec<u8>, VnetHeader)> = payloads
                    .iter()
                    .map(|p| udp_frame(macs, from_a, sink_addr, p, None))
                    .collect();
                let refs: Vec<&[u8]> = frames.iter().map(|(f, _)| f.as_slice()).collect();
                let heads: Vec<VnetHeader> = frames.iter().map(|(_, h)| *h).collect();
                assert_eq!(port.send_batch(&refs, &heads).unwrap(), 5, "{what}");
                let mut buf = vec![0u8; 65_536];
                for p in &payloads {
                    let n = sink
                        .recv(&mut buf)
                        .unwrap_or_else(|e| panic!("{what}: a datagram never arrived: {e}"));
                    assert_eq!(&buf[..n], p.as_slice(), "{what}: in order, intact");
                }
                if vnet {
                    let (f, h) = udp_frame(macs, from_a, sink_addr, &big, Some(1000));
                    assert_eq!(port.send_batch(&[&f], &[h]).unwrap(), 1, "{what}");
                    let mut got = Vec::new();
                    for i in 0..63 {
                        let n = sink.recv(&mut buf).unwrap_or_else(|e| {
                            panic!("{what}: segment {i} of the super-frame never arrived: {e}")
                        });
                        assert_eq!(n, 1000, "{what}");
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got == big, "{what}: the super-frame's payload intact");
                }

                // Kernel to port: three datagrams, and with vnet a GSO
                // super-frame.
                for i in 0..3u8 {
                    plain.send_to(&[i + 1; 200], to_a).unwrap();
                }
                if vnet {
                    gso.send_to(&big, to_a).unwrap();
                }
                let slot = if vnet { SUPER_FRAME_SLOT } else { 2048 };
                let mut storage = vec![vec![0u8; slot]; 8];
                let mut plain_seen = Vec::new();
                let mut super_seen = None;
                let deadline = std::time::Instant::now() + Duration::from_secs(3);
                while (plain_seen.len() < 3 || (vnet && super_seen.is_none()))
                    && std::time::Instant::now() < deadline
                {
                    let mut bufs: Vec<&mut [u8]> =
                        storage.iter_mut().map(|b| b.as_mut_slice()).collect();
                    let mut lens = [0usize; 8];
                    let mut heads = [VnetHeader::NONE; 8];
                    let stats = port.recv_batch(&mut bufs, &mut lens, &mut heads).unwrap();
                    assert_eq!(stats.truncated, 0, "{what}");
                    if stats.frames == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    for i in 0..stats.frames {
                        let f = &storage[i][..lens[i]];
                        let udp_to_a = f.len() >= 42
                            && f[12..14] == [0x08, 0x00]
                            && f[23] == 17
                            && f[36..38] == 6000u16.to_be_bytes();
                        if !udp_to_a {
                            continue;
                        }
                        if f.len() == 42 + 200 {
                            plain_seen.push(f[42]);
                        } else {
                            assert_eq!(f.len(), 42 + big.len(), "{what}: one whole frame");
                            assert!(f[42..] == big[..], "{what}: payload intact");
                            assert_eq!(heads[i].0[1], 5, "{what}: UDP_L4 GSO: {:?}", heads[i]);
                            assert_eq!(u16::from_ne_bytes([heads[i].0[4], heads[i].0[5]]), 1000);
                            super_seen = Some(());
                        }
                    }
                }
                assert_eq!(plain_seen, vec![1, 2, 3], "{what}: datagrams in order");
                assert!(!vnet || super_seen.is_some(), "{what}: super-frame arrived");
                assert_eq!(port.take_kernel_drops(), 0, "{what}");
            }
        }
    }
}

/// Not a check but the figures behind the tpacket port's send path: 64 B
/// frames in batches of 64 through `sendmmsg` and through a
/// `PACKET_TX_RING` (one kick per batch), into a veth whose far end drops
/// them (no address there). Run with
/// `cargo test --release -p nfvhost --lib tpacket_tx_ring_against_sendmmsg -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark; prints figures"]
fn tpacket_tx_ring_against_sendmmsg() {
    use crate::datapath::port::tpacket::{TpacketOptions, TpacketPort, Version};
    use crate::datapath::port::Port;
    use crate::datapath::spec::SUPER_FRAME_SLOT;
    use crate::engine::VnetHeader;
    use std::net::SocketAddrV4;

    if !have_root("tpacket_tx_ring_against_sendmmsg") {
        return;
    }
    let a = guard();
    let b = guard();
    link::create_veth(&a, "eth0", &b, "eth0", None).unwrap();
    let macs = (
        link::mac_address(&a, "eth0").unwrap(),
        link::mac_address(&b, "eth0").unwrap(),
    );
    let (f, h) = udp_frame(
        macs,
        SocketAddrV4::new(Ipv4Addr::new(10, 9, 2, 1), 4000),
        SocketAddrV4::new(Ipv4Addr::new(10, 9, 2, 2), 5000),
        &[0u8; 22],
        None,
    );
    let frames = vec![f.as_slice(); 64];
    let heads = vec![h; 64];
    for vnet in [false, true] {
        for tx_ring in [false, true] {
            let options = TpacketOptions {
                version: Version::V3,
                tx_ring,
                max_frame: if vnet { SUPER_FRAME_SLOT } else { 1518 },
            };
            let mut port = a
                .run(|| TpacketPort::open("p", "eth0", vnet, options))
                .unwrap()
                .unwrap();
            let mut best = 0.0f64;
            for _ in 0..3 {
                let start = std::time::Instant::now();
                let mut sent = 0usize;
                while start.elapsed() < Duration::from_millis(700) {
                    sent += port.send_batch(&frames, &heads).unwrap_or(0);
                }
                best = best.max(sent as f64 / start.elapsed().as_secs_f64());
            }
            let _: &[VnetHeader] = &heads;
            eprintln!(
                "64 B frames, batches of 64, vnet {vnet}: {} {:.0} kpps",
                if tx_ring {
                    "PACKET_TX_RING"
                } else {
                    "sendmmsg"
                },
                best / 1e3
            );
        }
    }
}

/// A TPACKET port whose link is deleted is down, and up again (bound to
/// the new index, its ring still mapped) once a link of the same name
/// comes back, and then receives on it: what the worker's
/// `recheck_down_ports` relies on.
#[test]
fn tpacket_port_reattaches_to_a_link_that_comes_back() {
    use crate::datapath::port::tpacket::{TpacketOptions, TpacketPort, Version};
    use crate::datapath::port::Port;
    use crate::engine::VnetHeader;
    use std::net::{SocketAddrV4, UdpSocket};

    if !have_root("tpacket_port_reattaches_to_a_link_that_comes_back") {
        return;
    }
    let a = guard();
    let b = guard();
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 9, 3, 1), Ipv4Addr::new(10, 9, 3, 2));
    let wire = || {
        link::create_veth(&a, "eth0", &b, "eth0", None).unwrap();
        link::add_address(&a, "eth0", ip_a, 24).unwrap();
        link::add_address(&b, "eth0", ip_b, 24).unwrap();
    };
    for version in [Version::V3, Version::V2] {
        wire();
        let options = TpacketOptions {
            version,
            tx_ring: false,
            max_frame: 1518,
        };
        let mut port = a
            .run(|| TpacketPort::open("p", "eth0", false, options))
            .unwrap()
            .unwrap();
        assert!(port.recheck(), "{version:?}: up");
        link::delete_link(&a, "eth0").unwrap();
        assert!(!port.recheck(), "{version:?}: down with its link gone");
        wire();
        assert!(port.recheck(), "{version:?}: up on the new link");

        let sender = b
            .run(|| UdpSocket::bind(SocketAddrV4::new(ip_b, 0)))
            .unwrap()
            .unwrap();
        let mut storage = vec![vec![0u8; 2048]; 8];
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let mut seen = false;
        while !seen && std::time::Instant::now() < deadline {
            sender
                .send_to(b"after", SocketAddrV4::new(ip_a, 7000))
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
            let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| b.as_mut_slice()).collect();
            let mut lens = [0usize; 8];
            let mut heads = [VnetHeader::NONE; 8];
            let got = port.recv_batch(&mut bufs, &mut lens, &mut heads).unwrap();
            seen = (0..got.frames).any(|i| storage[i][..lens[i]].ends_with(b"after"));
        }
        assert!(
            seen,
            "{version:?}: frames arrive on the link that came back"
        );
        drop(port);
        link::delete_link(&a, "eth0").unwrap();
    }
}
