//! The VNF author's path, as docs/TUTORIAL.md tells it: the tutorial's
//! marked shell blocks are extracted and run as written (`nfvhost new` into
//! a temporary directory, `cargo wasm`, `cargo test`, `nfvhost test`,
//! deploy, ping across, `/metrics`, destroy), so the document cannot rot.

use std::path::Path;
use std::process::Command;

use crate::support::{deploy_lock, have_root, root, vnfs_built, Chain};

/// The marker line before a fenced ```sh block that CI runs.
const MARKER: &str = "<!-- tutorial -->";

/// The shell blocks of `markdown` that follow a [`MARKER`] line, in order.
fn tutorial_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence.trim(),
            "```sh",
            "{MARKER} must be followed by a ```sh block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(block.join("\n"));
    }
    blocks
}

fn tutorial() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("docs/TUTORIAL.md")).unwrap();
    tutorial_blocks(&text)
}

#[test]
fn the_tutorial_marks_every_step() {
    let script = tutorial().join("\n");
    for step in [
        "nfvhost new my-bump",
        "cargo wasm",
        "cargo test",
        "nfvhost test ",
        "nfvhost deploy chain.yaml",
        "ping",
        "curl -s http://127.0.0.1:9465/metrics",
        "nfvhost destroy chain.yaml",
    ] {
        assert!(
            script.contains(step),
            "the tutorial's CI blocks lack `{step}`"
        );
    }
    let md =
        format!("x\n{MARKER}\n```sh\na\nb\n```\n```sh\nnot run\n```\n{MARKER}\n```sh\nc\n```\n");
    assert_eq!(tutorial_blocks(&md), ["a\nb", "c"]);
}

/// The sample value of the first line of `/metrics` text whose name starts
/// with `family`.
/// The value of the first sample whose line starts with `family` and
/// carries every label in `labels` (e.g. `name="frames_passed"`).
fn sample(metrics: &str, family: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(family) && labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn tutorial_runs_as_written() {
    if !have_root("tutorial_runs_as_written") {
        return;
    }
    vnfs_built();
    let dir = tempfile::tempdir().unwrap();
    let script = format!("set -euxo pipefail\n{}\n", tutorial().join("\n"));
    let bin = Path::new(env!("CARGO_BIN_EXE_nfvhost")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let lock = deploy_lock();
    // A leftover from an earlier, killed run must not fail this one; the
    // guard destroys the tutorial's chain even if the script fails halfway.
    let _ = Command::new(env!("CARGO_BIN_EXE_nfvhost"))
        .args(["destroy", "--cleanup", "--chain", "my-bump"])
        .output();
    let _chain = Chain::adopt("my-bump", "127.0.0.1:9465", lock);
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tutorial failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // new wrote the crate where the tutorial said.
    assert!(dir.path().join("my-bump/src/lib.rs").is_file());
    assert!(dir
        .path()
        .join("my-bump/target/wasm32-unknown-unknown/release/my_bump.wasm")
        .is_file());
    // cargo test ran the template's three native tests.
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");
    // nfvhost test: the IPv6 frame blocked, both ports as expected.
    assert!(
        stdout.contains("#2    t=0.010000 in=lan 54 B -> drop reason=policy"),
        "{stdout}"
    );
    assert!(
        stdout.contains("port lan: 1 frames as expected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("port wan: 1 frames as expected"),
        "{stdout}"
    );
    assert!(dir.path().join("my-bump/out/wan.pcap").is_file());
    // Ping across the custom function.
    assert!(
        stdout.contains("3 packets transmitted, 3 received"),
        "{stdout}"
    );
    // Its own counters on /metrics: at least 3 requests and 3 replies (and
    // the ARP exchange) passed.
    let passed = sample(
        &stdout,
        "nfvhost_module_events_total{",
        &[r#"name="frames_passed""#],
    )
    .unwrap_or_else(|| {
        panic!("no frames_passed counter in the tutorial's /metrics output:\n{stdout}")
    });
    assert!(passed >= 6.0, "frames_passed = {passed}");
    assert_eq!(
        sample(&stdout, "nfvhost_vnf_up", &[]),
        Some(1.0),
        "{stdout}"
    );
}

/// `nfvhost new --template router` gives a crate whose native tests pass,
/// that builds with `cargo wasm`, and whose module passes its captures.
/// (No root needed; the tutorial deploys the bump template.)
#[test]
fn router_template_builds_and_passes_its_captures() {
    let dir = tempfile::tempdir().unwrap();
    let nfvhost = env!("CARGO_BIN_EXE_nfvhost");
    let run = |cmd: &mut Command| {
        let out = cmd.current_dir(dir.path()).output().unwrap();
        let text = format!(
            "{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    run(Command::new(nfvhost).args(["new", "my-router", "--template", "router"]));
    // Never overwrites.
    let again = Command::new(nfvhost)
        .args(["new", "my-router", "--template", "router"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    let krate = dir.path().join("my-router");
    let cargo = || {
        let mut c = Command::new(env!("CARGO"));
        c.current_dir(&krate);
        c
    };
    let out = cargo().arg("test").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok. 4 passed"), "{stdout}");
    let out = cargo().arg("wasm").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = run(Command::new(nfvhost)
        .arg("test")
        .arg(krate.join("target/wasm32-unknown-unknown/release/my_router.wasm"))
        .arg("--config")
        .arg(krate.join("chain.yaml"))
        .arg("--in")
        .arg(format!("lan={}", krate.join("pcap/in-lan.pcap").display()))
        .arg("--in")
        .arg(format!("wan={}", krate.join("pcap/in-wan.pcap").display()))
        .arg("--expect")
        .arg(krate.join("pcap/expect")));
    assert!(text.contains("port wan: 2 frames as expected"), "{text}");
}
