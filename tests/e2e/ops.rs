//! The operator's commands on a deployed `chains/basic.yaml`: `inspect`
//! with addresses, links and the metrics URL; `graph` of the deployed
//! chain; `stats` into a pipe; `logs -f` across a worker restart; logs
//! kept after `destroy` until `destroy --cleanup`.

use std::io::Read as _;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{have_root, nfvhost, processes_matching, run_ok, wait_for, Chain};

fn stdout_of(args: &[&str]) -> String {
    String::from_utf8_lossy(&run_ok(nfvhost().args(args)).stdout).into_owned()
}

/// A command we spawned whose stdout a thread collects; killed (by its
/// pid) on drop.
struct Collected {
    child: Child,
    text: Arc<Mutex<String>>,
}

impl Collected {
    fn spawn(args: &[&str]) -> Collected {
        let mut child = nfvhost()
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning nfvhost");
        let mut out = child.stdout.take().unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Collected { child, text }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

impl Drop for Collected {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn operator_commands_on_a_deployed_chain() {
    if !have_root("operator_commands_on_a_deployed_chain") {
        return;
    }
    let chain = Chain::deploy("chains/basic.yaml", "basic", "127.0.0.1:9464");

    // inspect: every node's addresses and links, and where the metrics are.
    let table = stdout_of(&["inspect", "--chain", "basic"]);
    for want in [
        "eth0 10.0.1.10/24",
        "eth0 -> r1:lan (veth)",
        "lan 10.0.1.1/24",
        "wan -> h2:eth0 (veth)",
        "chain basic: metrics http://127.0.0.1:9464/metrics",
    ] {
        assert!(table.contains(want), "inspect lacks {want:?}:\n{table}");
    }

    // graph: the deployed chain draws as its file does.
    let deployed = stdout_of(&["graph", "basic", "-o", "dot"]);
    assert_eq!(
        deployed,
        stdout_of(&["graph", "chains/basic.yaml", "-o", "dot"])
    );
    let mermaid = stdout_of(&["graph", "basic"]);
    assert!(
        mermaid
            .contains("n_r1{{\"<b>r1</b><br/>router<br/>lan 10.0.1.1/24<br/>wan 10.0.2.1/24\"}}"),
        "{mermaid}"
    );
    let have_dot = std::process::Command::new("dot")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let svg = nfvhost()
        .args(["graph", "basic", "-o", "svg"])
        .output()
        .unwrap();
    if have_dot {
        assert!(svg.status.success());
        assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
    } else {
        assert_eq!(svg.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&svg.stderr).contains("apt-get install graphviz"));
    }

    // stats into a pipe: one table after the other, no screen clearing.
    let stats = Collected::spawn(&["stats", "--chain", "basic", "--interval", "0.2"]);
    assert!(wait_for(Duration::from_secs(10), || stats
        .text()
        .matches("CHAIN")
        .count()
        >= 3));
    let text = stats.text();
    drop(stats);
    assert!(
        !text.contains('\x1b'),
        "escape sequences into a pipe: {text:?}"
    );

    // logs -f: sees the lines of a restarted worker.
    let follow = Collected::spawn(&["logs", "--chain", "basic", "r1", "--follow"]);
    let started = "starting; module log level info";
    assert!(wait_for(Duration::from_secs(10), || follow
        .text()
        .contains(started)));
    let line = follow
        .text()
        .lines()
        .find(|l| l.contains(started))
        .unwrap()
        .to_owned();
    // RFC 3339 UTC, the level, the target, the message, the VNF.
    let b = line.as_bytes();
    assert!(
        b.len() > 30 && b[4] == b'-' && b[10] == b'T' && line.contains("Z  INFO nfvhost: "),
        "{line}"
    );
    assert!(line.ends_with(" vnf=r1"), "{line}");
    let pids = processes_matching("/run/nfvhost/basic/r1.spec.json");
    assert_eq!(pids.len(), 1, "{pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || follow
            .text()
            .matches(started)
            .count()
            >= 2),
        "the restart's lines were not followed:\n{}",
        follow.text()
    );
    drop(follow);

    // destroy keeps the logs; --cleanup removes them.
    run_ok(nfvhost().args(["destroy", "--chain", "basic"]));
    let kept = stdout_of(&["logs", "--chain", "basic", "r1"]);
    assert!(kept.matches(started).count() >= 2, "{kept}");
    let inspect = nfvhost()
        .args(["inspect", "--chain", "basic"])
        .output()
        .unwrap();
    assert_eq!(
        inspect.status.code(),
        Some(2),
        "a destroyed chain is not deployed"
    );
    run_ok(nfvhost().args(["destroy", "--chain", "basic", "--cleanup"]));
    assert!(!std::path::Path::new("/run/nfvhost/basic").exists());
    let gone = nfvhost()
        .args(["logs", "--chain", "basic", "r1"])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("has no logs kept"));
    drop(chain);
}
