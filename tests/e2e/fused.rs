//! A fused group contains a broken module like separate workers do: a
//! trap in one member restarts that member only, and the others keep their
//! state (the NAT's bindings, the firewall's connections). Every member
//! keeps what a VNF of its own has: its one-shot timers, `nfvhost link
//! set` and `nfvhost replace` with its state carried.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{have_root, nfvhost, root, run_ok, vnfs_built, wait_for, Chain};

/// `chains/edge-fused.yaml` with a `faulty` wire fused in between the
/// firewall and the router; it traps on UDP port 6666.
fn deploy_with_faulty(dir: &tempfile::TempDir) -> Chain {
    let text = std::fs::read_to_string(root().join("chains/edge-fused.yaml"))
        .unwrap()
        .replace(
            "\n  r1:\n",
            "\n  bad:\n    module: faulty\n    group: edge\n    ports: [a, b]\n    config: { trap_on_udp_port: 6666 }\n\n  r1:\n",
        )
        .replace(
            "chain: [lan, dhcp, fw, r1, nat, wan]",
            "chain: [lan, dhcp, fw, bad, r1, nat, wan]",
        );
    assert!(text.contains("fw, bad, r1"));
    let path: PathBuf = dir.path().join("edgef.yaml");
    std::fs::write(&path, text).unwrap();
    Chain::deploy(path.to_str().unwrap(), "edgef", "127.0.0.1:9464")
}

#[test]
fn a_trap_in_one_fused_module_leaves_the_others_state_intact() {
    if !have_root("a_trap_in_one_fused_module_leaves_the_others_state_intact") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chain = deploy_with_faulty(&dir);
    // An echo server on the WAN host, and one TCP connection from the LAN
    // through the NAT that sends a line before the trap and one after.
    let server = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('203.0.113.10',7100))\ns.listen(1)\ns.settimeout(20)\nc,a=s.accept()\nc.settimeout(20)\nwhile True:\n  d=c.recv(100)\n  if not d: break\n  c.sendall(d)\n";
    let mut server = chain
        .command("wan", &["python3", "-c", server])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        String::from_utf8_lossy(&chain.exec("wan", &["ss", "-ltn"]).stdout).contains(":7100")
    }));
    let client = "import socket,sys\ns=socket.create_connection(('203.0.113.10',7100),5)\ns.settimeout(10)\ns.sendall(b'before')\nprint(s.recv(100).decode(),flush=True)\nsys.stdin.readline()\ns.sendall(b'after')\nprint(s.recv(100).decode(),flush=True)\n";
    let mut client = chain
        .command("lan", &["python3", "-c", client])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "before");
    let nat = [
        ("chain", "edgef"),
        ("vnf", "nat"),
        ("name", "bindings_active"),
    ];
    assert!(wait_for(Duration::from_secs(3), || chain
        .metrics()
        .get("nfvhost_module_value", &nat)
        >= 1.0));

    // The faulty member traps on a datagram it forwards LAN to WAN.
    chain.exec_ok(
        "lan",
        &["bash", "-c", "echo boom > /dev/udp/203.0.113.10/6666"],
    );
    assert!(
        wait_for(Duration::from_secs(5), || chain.metrics().get(
            "nfvhost_vnf_traps_total",
            &[("vnf", "bad"), ("kind", "unreachable")]
        ) >= 1.0),
        "the trap is counted"
    );

    // The connection made before the trap still works: the NAT kept its
    // binding and the firewall its connection.
    use std::io::Write as _;
    writeln!(client.stdin.as_mut().unwrap()).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "after");
    assert!(client.wait().unwrap().success());
    let _ = server.kill();
    let _ = server.wait();

    let m = chain.metrics();
    for vnf in ["dhcp", "fw", "r1", "nat"] {
        let l = [("chain", "edgef"), ("vnf", vnf)];
        assert_eq!(m.sum("nfvhost_vnf_traps_total", &l), 0.0, "{vnf}");
        assert_eq!(m.get("nfvhost_vnf_restarts_total", &l), 0.0, "{vnf}");
        assert_eq!(
            m.get("nfvhost_vnf_received_packets_total", &l),
            m.sum("nfvhost_vnf_packets_total", &l),
            "{vnf} conserves"
        );
    }
    assert!(m.get("nfvhost_module_value", &nat) >= 1.0);
    assert_eq!(
        m.get("nfvhost_vnf_restarts_total", &[("vnf", "bad")]),
        0.0,
        "the worker process never died"
    );
}

/// A wire and an impair function fused into one group: h1 - w - imp - h2,
/// w and imp linked in memory; imp delays h1 → h2 by 10 ms with its
/// one-shot timers.
const TIMED: &str = "\
name: fusedimp
metrics: 127.0.0.1:9488
hosts:
  h1:
    interfaces:
      eth0: { address: 10.0.44.1/24 }
  h2:
    interfaces:
      eth0: { address: 10.0.44.2/24 }
groups:
  g: {}
vnfs:
  w:
    module: faulty
    group: g
    ports: [left, right]
  imp:
    module: impair
    group: g
    ports: [a, b]
    datapath: { offload: false }
    config:
      a_to_b: { delay: 10ms }
chain: [h1, w, imp, h2]
";

/// The average RTT in ms of five pings from h1 to h2.
fn avg_rtt(chain: &Chain) -> f64 {
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.44.2"],
    );
    crate::support::ping_rtt_ms(&out)[1]
}

#[test]
fn a_fused_member_keeps_its_timers_link_set_and_replace() {
    if !have_root("a_fused_member_keeps_its_timers_link_set_and_replace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fusedimp.yaml");
    std::fs::write(&path, TIMED).unwrap();
    let chain = Chain::deploy(path.to_str().unwrap(), "fusedimp", "127.0.0.1:9488");
    let state = nfvhost::deploy::state::ChainState::load("fusedimp")
        .unwrap()
        .unwrap();
    assert!(
        state.vnfs.iter().all(|v| v.group.as_deref() == Some("g")),
        "one worker runs both"
    );

    // imp's timer fires in the group's worker, behind an in-memory link.
    let before = avg_rtt(&chain);
    assert!((10.0..15.0).contains(&before), "{before}");

    // `link set` reaches the member through its own request files.
    run_ok(nfvhost().args(["link", "set", "fusedimp:imp:b", "--delay", "50ms"]));
    let after = avg_rtt(&chain);
    assert!((50.0..55.0).contains(&after), "{after}");
    let bad = nfvhost()
        .args(["link", "set", "fusedimp:imp:b", "--loss", "300%"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("a_to_b.loss"));

    // An in-memory link has no interface to take down.
    let down = nfvhost()
        .args(["link", "down", "fusedimp:w:right"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("linked in memory"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );

    // Replacing w hands it a new module with its state, in the running
    // worker; imp keeps its instance, its queue and its new delay.
    let faulty = vnfs_built().join("vnf_faulty.wasm");
    let out = nfvhost()
        .args([
            "replace",
            "--chain",
            "fusedimp",
            "w",
            faulty.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let narration = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{narration}");
    assert!(narration.contains("bytes of state carried"), "{narration}");
    let replaced = avg_rtt(&chain);
    assert!((50.0..55.0).contains(&replaced), "{replaced}");

    let m = chain.metrics();
    for vnf in ["w", "imp"] {
        let l = [("chain", "fusedimp"), ("vnf", vnf)];
        assert_eq!(m.get("nfvhost_vnf_restarts_total", &l), 0.0, "{vnf}");
        assert_eq!(m.sum("nfvhost_vnf_traps_total", &l), 0.0, "{vnf}");
    }
    let replaces = |vnf| {
        m.get(
            "nfvhost_vnf_replaces_total",
            &[("chain", "fusedimp"), ("vnf", vnf)],
        )
    };
    assert_eq!((replaces("w"), replaces("imp")), (1.0, 0.0));
}
