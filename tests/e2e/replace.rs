//! `nfvhost replace` under traffic: the NAT is replaced while a TCP
//! connection is open across it and iperf3 sends UDP at about 10 kpps; no
//! frame is lost, the connection survives and the bindings are kept. A
//! module that refuses the saved state is rolled back and the chain keeps
//! forwarding.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    have_root, nfvhost, quiet_snapshot, root, vnfs_built, wait_for, Chain, Metrics,
};

const METRICS: &str = "127.0.0.1:9497";

/// A TCP echo server in `wan` and a client in `lan` that sends a numbered
/// line every 10 ms for `secs` seconds and checks every echo; the client
/// prints `ok N` or the error it hit.
fn tcp_stream(chain: &Chain, secs: u32) -> (Child, Child) {
    let server = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('203.0.113.10',5002))\ns.listen(1)\ns.settimeout(20)\nc,a=s.accept()\nprint(a[0],flush=True)\nwhile True:\n  d=c.recv(4096)\n  if not d: break\n  c.sendall(d)\n";
    let server = chain
        .command("wan", &["python3", "-c", server])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        String::from_utf8_lossy(&chain.exec("wan", &["ss", "-ltn"]).stdout)
            .contains("203.0.113.10:5002")
    }));
    let client = format!(
        "import socket,time\ns=socket.create_connection(('203.0.113.10',5002),3)\ns.settimeout(2)\nn=0\nend=time.time()+{secs}\nbuf=b''\ntry:\n  while time.time()<end:\n    line=b'%08d\\n'%n\n    s.sendall(line)\n    while b'\\n' not in buf:\n      d=s.recv(4096)\n      if not d: raise Exception('closed')\n      buf+=d\n    got,buf=buf.split(b'\\n',1)\n    assert got==line[:-1],(got,line)\n    n+=1\n    time.sleep(0.01)\n  print('ok',n,flush=True)\nexcept Exception as e:\n  print('failed after',n,repr(e),flush=True)\n"
    );
    let client = chain
        .command("lan", &["python3", "-c", &client])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (server, client)
}

fn nat_wasm() -> String {
    vnfs_built()
        .join("vnf_nat.wasm")
        .to_str()
        .unwrap()
        .to_string()
}

/// The `wan` host's UDP counters: datagrams delivered to sockets, and those
/// its sockets had no room for (the receiver falling behind, not the chain).
fn wan_udp(chain: &Chain) -> (f64, f64) {
    let snmp = chain.exec_ok("wan", &["cat", "/proc/net/snmp"]);
    let mut rows = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (rows.next().unwrap(), rows.next().unwrap());
    let field = |name: &str| {
        let i = names.split_whitespace().position(|n| n == name).unwrap();
        values
            .split_whitespace()
            .nth(i)
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    (field("InDatagrams"), field("RcvbufErrors"))
}

fn vnf_total(m: &Metrics, name: &str, vnf: &str) -> f64 {
    m.sum(name, &[("chain", "repl"), ("vnf", vnf)])
}

#[test]
fn replace_nat_under_traffic_loses_nothing_and_keeps_the_connection() {
    if !have_root("replace_nat_under_traffic_loses_nothing_and_keeps_the_connection") {
        return;
    }
    let chain = Chain::deploy("tests/chains/replace-nat.yaml", "repl", METRICS);
    chain.exec_ok("lan", &["ping", "-c", "1", "-W", "2", "203.0.113.10"]);
    // The counters before any traffic, in a quiet moment.
    let hosts = [("lan", "eth0"), ("wan", "eth0")];
    let (m_before, k_before) = quiet_snapshot(&chain, &hosts);
    let (mut server, client) = tcp_stream(&chain, 8);
    let mut iperf_server = chain
        .command(
            "wan",
            &["iperf3", "-s", "-1", "-B", "203.0.113.10", "-p", "5201"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        String::from_utf8_lossy(&chain.exec("wan", &["ss", "-ltn"]).stdout).contains(":5201")
    }));
    let (delivered_before, overrun_before) = wan_udp(&chain);
    // 64-byte datagrams at 5.12 Mbit/s: 10 000 per second, for 6 s, into
    // a 4 MiB receive buffer (on a loaded machine iperf3's server falls
    // behind the default one).
    let iperf = chain
        .command(
            "lan",
            &[
                "iperf3",
                "-c",
                "203.0.113.10",
                "-p",
                "5201",
                "-u",
                "-b",
                "5.12M",
                "-l",
                "64",
                "-t",
                "6",
                "-J",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let bindings_before = chain.metrics().get(
        "nfvhost_module_value",
        &[
            ("chain", "repl"),
            ("vnf", "nat"),
            ("name", "bindings_active"),
        ],
    );
    let started = Instant::now();
    let replaced = nfvhost()
        .args(["replace", "--chain", "repl", "nat", &nat_wasm()])
        .output()
        .unwrap();
    let took = started.elapsed();
    let narration = String::from_utf8_lossy(&replaced.stderr).into_owned();
    assert!(replaced.status.success(), "replace failed: {narration}");
    eprintln!("replace took {took:?}: {narration}");
    assert!(narration.contains("bytes of state carried"), "{narration}");
    // The bindings are still there, in the new instance's gauge.
    assert!(wait_for(Duration::from_secs(2), || {
        chain.metrics().get(
            "nfvhost_module_value",
            &[
                ("chain", "repl"),
                ("vnf", "nat"),
                ("name", "bindings_active"),
            ],
        ) >= bindings_before
    }));
    assert!(
        bindings_before >= 2.0,
        "TCP, UDP and iperf3's control flow: {bindings_before}"
    );

    let iperf = iperf.wait_with_output().unwrap();
    let client = client.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = iperf_server.kill();
    let _ = iperf_server.wait();
    // The chain's own counters: nothing dropped, no socket overruns, and
    // received = forwarded + consumed + dropped over the replace.
    let m = chain.metrics();
    let drops = vnf_total(&m, "nfvhost_vnf_drops_total", "nat");
    let kernel = vnf_total(&m, "nfvhost_port_rx_dropped_total", "nat");
    let received = vnf_total(&m, "nfvhost_vnf_received_packets_total", "nat");
    let by_verdict = vnf_total(&m, "nfvhost_vnf_packets_total", "nat");
    eprintln!(
        "nat: received {received}, by verdict {by_verdict}, drops {drops}, kernel drops {kernel}"
    );
    let report: serde_json::Value = serde_json::from_slice(&iperf.stdout)
        .unwrap_or_else(|e| panic!("iperf3 -J: {e}: {}", String::from_utf8_lossy(&iperf.stdout)));
    let sum = &report["end"]["sum"];
    let (packets, lost) = (
        sum["packets"].as_f64().unwrap(),
        sum["lost_packets"].as_f64().unwrap(),
    );
    eprintln!(
        "iperf3: {packets} datagrams, {lost} lost, {} % out of order",
        sum["out_of_order"]
    );
    let (delivered, overrun) = wan_udp(&chain);
    let (delivered, overrun) = (delivered - delivered_before, overrun - overrun_before);
    eprintln!(
        "wan host: {delivered} datagrams delivered, {overrun} dropped for want of socket buffer"
    );
    assert!(packets > 30_000.0, "iperf3 sent only {packets} datagrams");
    // Every frame one host sent reached the NAT's socket, and every frame
    // the NAT sent reached the other host: the chain lost none (read in a
    // quiet moment, after the traffic).
    let (m_after, k_after) = quiet_snapshot(&chain, &hosts);
    let port = |m: &Metrics, dir: &str, port: &str| {
        m.get(
            &format!("nfvhost_port_{dir}_packets_total"),
            &[("chain", "repl"), ("vnf", "nat"), ("port", port)],
        )
    };
    let delta = |dir: &str, p: &str| port(&m_after, dir, p) - port(&m_before, dir, p);
    let (lan_rx, lan_tx) = (k_after[0].0 - k_before[0].0, k_after[0].1 - k_before[0].1);
    let (wan_rx, wan_tx) = (k_after[1].0 - k_before[1].0, k_after[1].1 - k_before[1].1);
    eprintln!(
        "lan sent {lan_tx}, nat took {} in; nat sent {} out, wan got {wan_rx}; wan sent {wan_tx}, nat took {}; nat sent {}, lan got {lan_rx}",
        delta("rx", "inside"),
        delta("tx", "outside"),
        delta("rx", "outside"),
        delta("tx", "inside")
    );
    assert_eq!(
        lan_tx,
        delta("rx", "inside"),
        "lost between lan and the NAT"
    );
    assert_eq!(
        delta("tx", "outside"),
        wan_rx,
        "lost between the NAT and wan"
    );
    assert_eq!(
        wan_tx,
        delta("rx", "outside"),
        "lost between wan and the NAT"
    );
    assert_eq!(
        delta("tx", "inside"),
        lan_rx,
        "lost between the NAT and lan"
    );
    // iperf3's own losses are only datagrams the receiving socket had no
    // room for (the receiver falling behind on a loaded machine).
    assert_eq!(
        lost, overrun,
        "iperf3's losses are exactly the receiver's overruns: {sum}"
    );

    let said = String::from_utf8_lossy(&client.stdout).into_owned();
    assert!(said.starts_with("ok "), "the TCP connection broke: {said}");

    // The hosts' own IPv6 chatter (router solicitations, MLD to multicast
    // MACs) is refused as `not_for_us` or `unsupported`; nothing else may
    // be dropped.
    let chatter: f64 = ["not_for_us", "unsupported"]
        .iter()
        .map(|r| {
            m.sum(
                "nfvhost_vnf_drops_total",
                &[("chain", "repl"), ("vnf", "nat"), ("reason", r)],
            )
        })
        .sum();
    assert_eq!(
        drops,
        chatter,
        "the NAT dropped frames: {:?}",
        m.0.iter()
            .filter(|(k, _)| k.starts_with("nfvhost_vnf_drops_total"))
            .collect::<Vec<_>>()
    );
    assert_eq!(kernel, 0.0, "the NAT's sockets overflowed");
    assert_eq!(received, by_verdict, "counters do not conserve");
    assert!(
        received > 60_000.0,
        "both directions and all datagrams: {received}"
    );
    assert_eq!(
        m.get(
            "nfvhost_vnf_restarts_total",
            &[("chain", "repl"), ("vnf", "nat")]
        ),
        0.0,
        "a replace is not a restart"
    );
}

#[test]
fn a_module_that_refuses_the_state_is_rolled_back() {
    if !have_root("a_module_that_refuses_the_state_is_rolled_back") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("tests/chains/faulty.yaml"))
        .unwrap()
        .replace("name: faulty", "name: repl")
        .replace("127.0.0.1:9471", METRICS)
        .replace(
            "recurse_on_udp_port: 6669",
            "recurse_on_udp_port: 6669\n      refuse_state: true",
        );
    assert!(text.contains("refuse_state: true"));
    let path = dir.path().join("refuse.yaml");
    std::fs::write(&path, text).unwrap();
    let chain = Chain::deploy(path.to_str().unwrap(), "repl", METRICS);
    chain.exec_ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.9.2"],
    );
    let faulty = vnfs_built().join("vnf_faulty.wasm");
    let out = nfvhost()
        .args(["replace", "--chain", "repl", "w1", faulty.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("faulty refuses the saved state"),
        "{stderr}"
    );
    assert!(stderr.contains("keeps running"), "{stderr}");
    // The old instance still forwards, with its counters, unrestarted.
    chain.exec_ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.9.2"],
    );
    let m = chain.metrics();
    assert_eq!(
        m.get(
            "nfvhost_vnf_restarts_total",
            &[("chain", "repl"), ("vnf", "w1")]
        ),
        0.0
    );
    assert!(
        m.get(
            "nfvhost_module_events_total",
            &[
                ("chain", "repl"),
                ("vnf", "w1"),
                ("name", "faulty_forwarded")
            ]
        ) >= 12.0
    );
    // The state file names the running module again (a later crash
    // restarts what was running), with the generation the supervisor saw.
    let state = nfvhost::deploy::state::ChainState::load("repl")
        .unwrap()
        .unwrap();
    let w1 = state.vnfs.iter().find(|v| v.name == "w1").unwrap();
    assert_eq!(w1.generation, 1);
    assert_eq!(w1.spec.module, w1.module);
}

/// The handover through the host engine and a compiled module, without
/// root: `faulty` carries its forwarded count.
#[test]
fn state_moves_between_two_instances_of_a_compiled_module() {
    use crate::frames::{engine, instance, run_batch};
    use nfvhost::engine::StateError;
    let engine = engine();
    let ports = ["a", "b"];
    let mut old = instance(&engine, "vnf_faulty.wasm", &ports, serde_json::json!({})).unwrap();
    run_batch(&mut old, &[(0, vec![0u8; 60]), (1, vec![0u8; 60])]).unwrap();
    let (version, blob) = old.save_state().unwrap().expect("faulty saves its count");
    assert_eq!((version, blob.as_slice()), (1, &b"2"[..]));

    let mut new = instance(&engine, "vnf_faulty.wasm", &ports, serde_json::json!({})).unwrap();
    assert!(new.carries_state());
    new.load_state(version, &blob).unwrap();
    let mut values = Vec::new();
    new.metric_values(&mut values);
    assert_eq!(values, [2], "the count came along");
    // The module refuses a format it does not read, with its reason.
    let mut other = instance(&engine, "vnf_faulty.wasm", &ports, serde_json::json!({})).unwrap();
    match other.load_state(9, &blob) {
        Err(StateError::Refused {
            version: 9,
            message,
        }) => {
            assert!(message.contains("format version 9"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let mut refusing = instance(
        &engine,
        "vnf_faulty.wasm",
        &ports,
        serde_json::json!({ "refuse_state": true }),
    )
    .unwrap();
    assert!(matches!(
        refusing.load_state(version, &blob),
        Err(StateError::Refused { .. })
    ));
    // Both still process frames afterwards.
    assert_eq!(
        run_batch(&mut refusing, &[(0, vec![0u8; 60])])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(run_batch(&mut old, &[(0, vec![0u8; 60])]).unwrap().len(), 1);
}
