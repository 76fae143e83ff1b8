//! A chain that spans two machines (docs/MULTI-HOST.md): two "machine"
//! namespaces joined by a veth pair as the underlay network, one nfvhost
//! instance in each (its own run directory, namespace prefix, cgroup
//! subtree and metrics port), `chains/site-a.yaml` and `chains/site-b.yaml`
//! deployed from inside their machine's namespace, hosts on either side
//! talking over the routers' VXLAN link.
//!
//! Nothing here touches the root namespace's links or routes: the underlay
//! addresses live only in the machine namespaces, and forwarding is done
//! by the router VNFs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::Duration;

use crate::support::{
    deploy_lock, have_root, namespaces_with_prefix, run_ok, vnfs_built, wait_for,
};

/// A "machine": a namespace with an underlay interface `ul0`. Deleted on
/// drop, pass or fail (after the sites on it, which are dropped first).
struct Machine {
    netns: String,
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .stderr(Stdio::null())
            .status();
    }
}

/// Two machines, `192.0.2.1` and `192.0.2.2` on a veth pair between them
/// (`underlay: false` leaves the addresses off: nothing is routable).
fn machines(underlay: bool) -> (Machine, Machine) {
    let (a, b) = (
        Machine {
            netns: "nfvt-mh-a".into(),
        },
        Machine {
            netns: "nfvt-mh-b".into(),
        },
    );
    for m in [&a, &b] {
        // A leftover of a killed run goes first.
        let _ = Command::new("ip")
            .args(["netns", "del", &m.netns])
            .stderr(Stdio::null())
            .status();
        run_ok(Command::new("ip").args(["netns", "add", &m.netns]));
        run_ok(Command::new("ip").args(["-n", &m.netns, "link", "set", "lo", "up"]));
    }
    run_ok(Command::new("ip").args([
        "-n", &a.netns, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns",
        &b.netns,
    ]));
    for (m, addr) in [(&a, "192.0.2.1/24"), (&b, "192.0.2.2/24")] {
        if underlay {
            run_ok(Command::new("ip").args(["-n", &m.netns, "addr", "add", addr, "dev", "ul0"]));
        }
        run_ok(Command::new("ip").args(["-n", &m.netns, "link", "set", "ul0", "up"]));
    }
    (a, b)
}

/// One site: chain `site-<x>` deployed by instance `site-<x>` from inside
/// its machine's namespace. Destroyed on drop.
struct Site {
    instance: String,
    chain: String,
    netns: String,
}

impl Site {
    fn nfvhost(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns))
            .arg(env!("CARGO_BIN_EXE_nfvhost"))
            .args(["--instance", &self.instance])
            .current_dir(crate::support::root());
        cmd
    }

    fn deploy(machine: &Machine, x: &str, file: &Path) -> Result<Site, Output> {
        let site = Site {
            instance: format!("site-{x}"),
            chain: format!("site-{x}"),
            netns: machine.netns.clone(),
        };
        let _ = site
            .nfvhost()
            .args(["destroy", "--cleanup", "--chain", &site.chain])
            .output();
        let out = site.nfvhost().arg("deploy").arg(file).output().unwrap();
        if out.status.success() {
            Ok(site)
        } else {
            Err(out)
        }
    }

    fn exec(&self, node: &str, args: &[&str]) -> Output {
        self.nfvhost()
            .args(["exec", "--chain", &self.chain, node, "--"])
            .args(args)
            .output()
            .unwrap()
    }

    fn exec_ok(&self, node: &str, args: &[&str]) -> String {
        let out = self.exec(node, args);
        assert!(
            out.status.success(),
            "{node}: {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/nfvhost-{}", self.instance))
    }

    /// Namespaces of this instance.
    fn namespaces(&self) -> Vec<String> {
        namespaces_with_prefix(&format!("nfv-{}.", self.instance))
    }

    /// The instance's cgroup subtree (v2, or any v1 hierarchy).
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let sub = format!("nfvhost-{}", self.instance);
        ["", "cpu", "memory", "pids", "cpu,cpuacct"]
            .iter()
            .map(|h| Path::new("/sys/fs/cgroup").join(h).join(&sub))
            .filter(|p| p.exists())
            .collect()
    }

    /// `/metrics` of the instance, scraped inside its machine (the address
    /// its supervisor bound: a free port, since the chain names none).
    fn scrape(&self) -> String {
        let ready = self.run_dir().join(&self.chain).join("ready");
        let addr = std::fs::read_to_string(&ready).unwrap();
        let out = run_ok(Command::new("nsenter").args([
            &format!("--net=/run/netns/{}", self.netns),
            "curl",
            "-sf",
            "--max-time",
            "10",
            &format!("http://{}/metrics", addr.trim()),
        ]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Destroys the chain and, with `--cleanup`, the logs it kept.
    fn destroy(&self) {
        run_ok(
            self.nfvhost()
                .args(["destroy", "--cleanup", "--chain", &self.chain]),
        );
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self
            .nfvhost()
            .args(["destroy", "--cleanup", "--chain", &self.chain])
            .output();
        // The instance's run directory outlives its chains, as /run/nfvhost
        // does; the test's instances leave no empty one behind (rmdir
        // refuses a directory that is not empty).
        let _ = std::fs::remove_dir(self.run_dir());
    }
}

fn shipped(x: &str) -> PathBuf {
    crate::support::root().join(format!("chains/site-{x}.yaml"))
}

/// Both sites up over the underlay, with the deploy lock held.
fn two_sites(files: [&Path; 2]) -> (MutexGuard<'static, ()>, (Machine, Machine), Site, Site) {
    vnfs_built();
    let lock = deploy_lock();
    let (a, b) = machines(true);
    let deploy = |m: &Machine, x: &str, f: &Path| {
        Site::deploy(m, x, f).unwrap_or_else(|out| {
            panic!(
                "deploying site {x}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let sa = deploy(&a, "a", files[0]);
    let sb = deploy(&b, "b", files[1]);
    (lock, (a, b), sa, sb)
}

/// TCP throughput from `ha` to `hb` over the tunnel, bits per second.
fn iperf3_tcp(sa: &Site, sb: &Site, seconds: &str) -> f64 {
    let mut server = sb
        .nfvhost()
        .args(["exec", "--chain", &sb.chain, "hb", "--"])
        .args(["iperf3", "-s", "-1", "-B", "10.2.0.10", "-p", "5211"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        sb.exec("hb", &["ss", "-ltn", "sport = :5211"])
            .stdout
            .windows(4)
            .any(|w| w == b"5211")
    }));
    let out = sa.exec_ok(
        "ha",
        &[
            "iperf3",
            "-c",
            "10.2.0.10",
            "-p",
            "5211",
            "-t",
            seconds,
            "-J",
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
}

#[test]
fn sites_reach_each_other_over_vxlan_and_tear_down_independently() {
    if !have_root("sites_reach_each_other_over_vxlan_and_tear_down_independently") {
        return;
    }
    let (_lock, machines, sa, sb) = two_sites([&shipped("a"), &shipped("b")]);

    // Each instance has its own prefix, cgroup subtree, run dir, port.
    assert_eq!(
        sa.namespaces(),
        ["nfv-site-a.site-a-ha", "nfv-site-a.site-a-ra"]
    );
    assert_eq!(
        sb.namespaces(),
        ["nfv-site-b.site-b-hb", "nfv-site-b.site-b-rb"]
    );
    assert!(!sa.cgroup_dirs().is_empty() && !sb.cgroup_dirs().is_empty());
    assert!(sa.run_dir().join("site-a").is_dir() && sb.run_dir().join("site-b").is_dir());

    // The VXLAN device: in the router's namespace, its socket in the
    // machine's, learning off, MTU 1500 - 50, and the module was told so.
    let wan = sa.exec_ok("ra", &["ip", "-d", "link", "show", "dev", "wan"]);
    for want in [
        "vxlan id 100",
        "remote 192.0.2.2",
        "dstport 4789",
        "nolearning",
        "mtu 1450",
        "link-netns nfvt-mh-a",
    ] {
        assert!(wan.contains(want), "{want} in {wan}");
    }
    let log = String::from_utf8_lossy(
        &run_ok(sa.nfvhost().args(["logs", "--chain", "site-a", "ra"])).stdout,
    )
    .into_owned();
    assert!(
        log.contains("(wan): 10.99.0.1/30") && log.contains("mtu 1450"),
        "{log}"
    );

    // Ping and tracepath across: ha -> ra -> (tunnel) -> rb -> hb.
    let out = sa.exec_ok(
        "ha",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.2.0.10"],
    );
    assert!(
        out.contains("5 received") && out.contains("ttl=62"),
        "{out}"
    );
    eprintln!("ping ha -> hb over VXLAN:\n{out}");
    let out = sb.exec_ok(
        "hb",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.0.10"],
    );
    assert!(out.contains("3 received"), "{out}");
    let out = sa.exec_ok("ha", &["tracepath", "-n", "-m", "5", "10.2.0.10"]);
    eprintln!("tracepath ha -> hb:\n{out}");
    assert!(
        out.contains("10.1.0.1") && out.contains("10.99.0.2"),
        "{out}"
    );
    assert!(out.contains("reached"), "{out}");

    // Underlay traffic really is VXLAN between the machines.
    let ul = String::from_utf8_lossy(
        &run_ok(Command::new("ip").args(["-n", "nfvt-mh-a", "-s", "-j", "link", "show", "ul0"]))
            .stdout,
    )
    .into_owned();
    let ul: serde_json::Value = serde_json::from_str(&ul).unwrap();
    assert!(
        ul[0]["stats64"]["tx"]["packets"].as_u64().unwrap() >= 8,
        "{ul}"
    );

    // Each instance's /metrics, inside its machine, counts its own router.
    let m = sb.scrape();
    assert!(m.contains("chain=\"site-b\",vnf=\"rb\""), "{m}");
    assert!(!m.contains("site-a"), "{m}");

    // Site A goes; site B keeps running with everything it had.
    let b_ns = sb.namespaces();
    let b_cg = sb.cgroup_dirs();
    sa.destroy();
    assert!(sa.namespaces().is_empty(), "{:?}", sa.namespaces());
    assert!(sa.cgroup_dirs().is_empty(), "{:?}", sa.cgroup_dirs());
    assert!(!sa.run_dir().join("site-a").exists());
    assert_eq!(sb.namespaces(), b_ns);
    assert_eq!(sb.cgroup_dirs(), b_cg);
    let out = sb.exec_ok(
        "hb",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.2.0.1"],
    );
    assert!(out.contains("2 received"), "{out}");
    assert!(sb.scrape().contains("nfvhost_"));
    // ... and its tunnel, whose other end is gone, loses packets quietly.
    let out = sb.exec("hb", &["ping", "-c", "1", "-W", "1", "10.1.0.10"]);
    assert!(!out.status.success());

    sb.destroy();
    assert!(sb.namespaces().is_empty() && sb.cgroup_dirs().is_empty());
    assert!(!sb.run_dir().join("site-b").exists());
    drop((sa, sb));
    drop(machines);
    for i in ["site-a", "site-b"] {
        assert!(!Path::new(&format!("/run/nfvhost-{i}")).exists());
    }
    assert!(namespaces_with_prefix("nfvt-mh-").is_empty());
    // No VXLAN device or socket is left: the machines are gone, and the
    // root namespace never had one.
    let root = String::from_utf8_lossy(
        &run_ok(Command::new("ip").args(["-d", "link", "show", "type", "vxlan"])).stdout,
    )
    .into_owned();
    assert!(!root.contains("vxlan id 100"), "{root}");
}

#[test]
fn tcp_over_the_tunnel_with_and_without_offloads() {
    if !have_root("tcp_over_the_tunnel_with_and_without_offloads") {
        return;
    }
    let on = {
        let (_lock, _machines, sa, sb) = two_sites([&shipped("a"), &shipped("b")]);
        iperf3_tcp(&sa, &sb, "3")
    };
    // The same sites with the routers' offloads off: every frame crosses
    // the worker and the tunnel at 1450 bytes.
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|x| {
            let text = std::fs::read_to_string(shipped(x)).unwrap().replace(
                "    config:\n",
                "    datapath: { offload: false }\n    config:\n",
            );
            let path = dir.path().join(format!("site-{x}.yaml"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let off = {
        let (_lock, _machines, sa, sb) = two_sites([&files[0], &files[1]]);
        let wan = sa.exec_ok("ra", &["ethtool", "-k", "wan"]);
        assert!(wan.contains("tcp-segmentation-offload: off"), "{wan}");
        iperf3_tcp(&sa, &sb, "3")
    };
    eprintln!(
        "iperf3 TCP ha -> hb over VXLAN: offloads on {:.0} Mbit/s, off {:.0} Mbit/s ({:.2}x)",
        on / 1e6,
        off / 1e6,
        on / off
    );
    assert!(on > 1e6 && off > 1e6, "on {on} off {off}");
}

#[test]
fn an_unreachable_remote_fails_the_deploy_and_leaves_nothing() {
    if !have_root("an_unreachable_remote_fails_the_deploy_and_leaves_nothing") {
        return;
    }
    vnfs_built();
    let _lock = deploy_lock();
    // Machines without underlay addresses: no route to 192.0.2.2.
    let (a, _b) = machines(false);
    let out = match Site::deploy(&a, "a", &shipped("a")) {
        Ok(_site) => panic!("deployed without a route to the remote"),
        Err(out) => out,
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("VXLAN remote 192.0.2.2 is not reachable from the underlay"),
        "{err}"
    );
    assert!(namespaces_with_prefix("nfv-site-a.").is_empty());
    assert!(!Path::new("/sys/fs/cgroup/nfvhost-site-a/site-a").exists());
}
