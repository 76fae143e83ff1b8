//! Hostile input (issue 15): names with shell metacharacters, command-line
//! names that would escape the run dir, chains whose namespace names share
//! a prefix, concurrent deploys of one chain, and a module flooding its log.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{have_root, namespaces_with_prefix, nfvhost, vnfs_built, wait_for, Chain};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("nfvhost-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn shell_metacharacters_in_an_interface_name_are_refused_at_validate() {
    let dir = Scratch::new("inject");
    let file = dir.0.join("inject.yaml");
    std::fs::write(
        &file,
        "name: inject\n\
         hosts:\n\
         \x20 h1:\n\
         \x20   interfaces:\n\
         \x20     'e\";>QQ;\"': { dhcp: true }\n\
         \x20 h2:\n\
         \x20   interfaces:\n\
         \x20     eth0: { address: 10.0.1.2/24 }\n\
         vnfs:\n\
         \x20 w1: { module: faulty, ports: [left, right] }\n\
         links:\n\
         \x20 - { a: 'h1:e\";>QQ;\"', b: w1:left }\n\
         \x20 - [w1:right, h2:eth0]\n",
    )
    .unwrap();
    for cmd in ["validate", "deploy"] {
        let out = nfvhost()
            .arg(cmd)
            .arg(&file)
            .current_dir(&dir.0)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains(&format!("{}:5:7: interface name", file.display())),
            "{cmd}: {err}"
        );
        assert!(!dir.0.join("QQ").exists() && !Path::new("QQ").exists());
    }
}

#[test]
fn command_line_names_cannot_reach_outside_the_run_dir() {
    let dir = Scratch::new("escape");
    let victim = dir.0.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("state.json"), "{}").unwrap();
    let victim_s = victim.display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["destroy", "--chain", &victim_s],
        vec!["destroy", "--chain", ".."],
        vec!["destroy", "--chain", "../../tmp"],
        vec!["inspect", "--chain", ".."],
        vec!["stats", "--no-stream", "--chain", "/etc"],
        vec!["logs", "--chain", "..", "w1"],
        vec!["logs", "--chain", "faulty", "../../../etc/shadow"],
        vec!["exec", "--chain", "faulty", "../x", "--", "true"],
        vec!["replace", "--chain", "faulty", "../w1", "router"],
        vec!["replace", "--chain", "a;b", "w1", "router"],
        vec!["replace", "--chain", "faulty", "w1", "../../../tmp/evil"],
        vec!["capture", "..:w1:a", "-w", "x.pcap"],
        vec!["capture", "faulty:../w1:a", "-w", "x.pcap"],
        vec!["capture", "faulty:w1:../../etc", "-w", "x.pcap"],
    ];
    for args in cases {
        let out = nfvhost().args(&args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("name `") || err.contains("neither a shipped VNF name"),
            "{args:?}: {err}"
        );
    }
    assert!(
        victim.join("state.json").exists(),
        "destroy reached outside the run dir"
    );
}

/// Holds `<run dir>/<chain>.lock` the way a deploy in progress does.
fn hold_chain_lock(chain: &str) -> nix::fcntl::Flock<std::fs::File> {
    std::fs::create_dir_all("/run/nfvhost").unwrap();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("/run/nfvhost/{chain}.lock"))
        .unwrap();
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap()
}

#[test]
fn a_second_deploy_of_a_chain_in_progress_fails_fast_and_touches_nothing() {
    if !have_root("a_second_deploy_of_a_chain_in_progress_fails_fast_and_touches_nothing") {
        return;
    }
    vnfs_built();
    let serial = crate::support::deploy_lock();
    let _ = nfvhost()
        .args(["destroy", "--cleanup", "--chain", "pa-b"])
        .output();
    let lock = hold_chain_lock("pa-b");
    let started = Instant::now();
    let out = nfvhost()
        .args(["deploy", "tests/chains/prefix-ab.yaml"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("deploy of pa-b in progress"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not fast: {:?}",
        started.elapsed()
    );
    assert!(namespaces_with_prefix("nfv-pa-b-").is_empty());
    assert!(!Path::new("/run/nfvhost/pa-b").exists());
    // A destroy meanwhile refuses too, rather than pull the chain from
    // under the deploy.
    let out = nfvhost()
        .args(["destroy", "--cleanup", "--chain", "pa-b"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("deploy of pa-b in progress"),
        "{}",
        stderr(&out)
    );
    drop(lock);

    // Two real deploys at once: one wins, the loser leaves the winner intact.
    let spawn = || {
        nfvhost()
            .args(["deploy", "tests/chains/prefix-ab.yaml"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let chain = Chain::adopt("pa-b", "127.0.0.1:9481", serial);
    let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "a: {}\nb: {}", stderr(&a), stderr(&b));
    let loser = if a.status.success() { &b } else { &a };
    let err = stderr(loser);
    assert!(
        err.contains("deploy of pa-b in progress") || err.contains("already deployed"),
        "{err}"
    );
    assert_eq!(namespaces_with_prefix("nfv-pa-b-").len(), 3);
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.31.2"],
    );
    assert!(out.contains("2 received"), "{out}");
}

#[test]
fn destroying_chain_pa_leaves_chain_pa_b_alone() {
    if !have_root("destroying_chain_pa_leaves_chain_pa_b_alone") {
        return;
    }
    let _ = nfvhost()
        .args(["destroy", "--cleanup", "--chain", "pa"])
        .output();
    let chain = Chain::deploy("tests/chains/prefix-ab.yaml", "pa-b", "127.0.0.1:9481");
    let before = namespaces_with_prefix("nfv-pa-b-");
    assert_eq!(before.len(), 3);

    // `pa`'s host `b-h1` would be `pa-b`'s namespace nfv-pa-b-h1: refused
    // at deploy, and the failed deploy's cleanup leaves `pa-b` alone.
    let out = nfvhost()
        .args(["deploy", "tests/chains/prefix-a.yaml"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nfv-pa-b-h1"), "{err}");
    assert_eq!(namespaces_with_prefix("nfv-pa-b-"), before);

    // Destroying `pa` (the old prefix sweep `nfv-pa-` took pa-b's too).
    crate::support::run_ok(nfvhost().args(["destroy", "--cleanup", "--chain", "pa"]));
    assert_eq!(namespaces_with_prefix("nfv-pa-b-"), before);
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.31.2"],
    );
    assert!(out.contains("2 received"), "{out}");
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[test]
fn a_module_flooding_its_log_keeps_the_run_dir_bounded_and_the_chain_forwarding() {
    if !have_root("a_module_flooding_its_log_keeps_the_run_dir_bounded_and_the_chain_forwarding") {
        return;
    }
    let chain = Chain::deploy("tests/chains/logflood.yaml", "logflood", "127.0.0.1:9483");
    let run = Path::new("/run/nfvhost/logflood");
    let before = dir_bytes(run);
    // 1000 echo requests in about 2 s: 2000 frames, each logging 64 KiB
    // (125 MiB unbounded).
    let out = chain.exec_ok(
        "h1",
        &[
            "ping",
            "-q",
            "-c",
            "1000",
            "-i",
            "0.002",
            "-W",
            "1",
            "10.0.33.2",
        ],
    );
    let after = dir_bytes(run);
    eprintln!("run dir: {before} bytes before, {after} after 2000 flooding frames; {out}");
    assert!(after < 3 << 20, "run dir grew to {after} bytes");
    let received: u32 = out
        .split(", ")
        .find_map(|p| p.strip_suffix(" received"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(received >= 950, "{out}");
    // The current log and its rotated predecessor.
    let mut log = std::fs::read("/run/nfvhost/logflood/logs/w1.log.1").unwrap_or_default();
    log.extend(std::fs::read("/run/nfvhost/logflood/logs/w1.log").unwrap());
    let text = String::from_utf8_lossy(&log);
    assert!(!log.contains(&0x1b), "an escape sequence reached the log");
    assert!(
        !text.lines().any(|l| l.starts_with("FORGED")),
        "a forged line"
    );
    assert!(
        text.contains("dropping lines until it slows down"),
        "{}",
        &text[..2000.min(text.len())]
    );
    assert!(text.contains("more bytes cut]"));
    // Still forwarding afterwards.
    assert!(wait_for(Duration::from_secs(5), || chain
        .exec("h1", &["ping", "-c", "1", "-W", "1", "10.0.33.2"])
        .status
        .success()));
}

/// `validate` runs `nfv_init` with the worker's limits: a module whose
/// batch region fits 2 KiB slots but not 64 KiB offload slots in its
/// `wasm_memory` is refused at validate, not at deploy.
#[test]
fn validate_uses_the_workers_batch_and_offload_slot_sizes() {
    vnfs_built();
    let dir = Scratch::new("limits");
    let file = dir.0.join("limits.yaml");
    let text = |offload: bool| {
        format!(
            "name: limits\n\
             hosts:\n\
             \x20 h1: {{ interfaces: {{ eth0: {{ address: 10.0.1.1/24 }} }} }}\n\
             \x20 h2: {{ interfaces: {{ eth0: {{ address: 10.0.1.2/24 }} }} }}\n\
             vnfs:\n\
             \x20 w1:\n\
             \x20   module: faulty\n\
             \x20   ports: [left, right]\n\
             \x20   resources: {{ wasm_memory: 2MiB }}\n\
             \x20   datapath: {{ batch: 64, offload: {offload} }}\n\
             chain: [h1, w1, h2]\n"
        )
    };
    std::fs::write(&file, text(false)).unwrap();
    let out = nfvhost().arg("validate").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&file, text(true)).unwrap();
    let out = nfvhost().arg("validate").arg(&file).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no room for its"), "{err}");
}
