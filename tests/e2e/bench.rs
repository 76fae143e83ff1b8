//! The data-path benchmark's short mode (issue 5): proves that
//! `benches/datapath.py` still builds both chains, drives traffic and writes
//! its results. It never looks at a figure; only a broken run fails.

use std::process::Command;

use crate::support::{deploy_lock, have_root, namespaces_with_prefix, root, vnfs_built};

#[test]
fn datapath_benchmark_short_mode_runs() {
    if !have_root("datapath_benchmark_short_mode_runs") {
        return;
    }
    vnfs_built();
    // Holds the deploy lock so no other chain shares the CPUs meanwhile.
    let _lock = deploy_lock();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(root().join("benches/datapath.py"))
        .args(["--short", "--runs", "1", "--out"])
        .arg(out.path())
        .env("NFVHOST", env!("CARGO_BIN_EXE_nfvhost"))
        .status()
        .expect("run python3 benches/datapath.py");
    assert!(status.success(), "benches/datapath.py --short failed");
    let json = std::fs::read_to_string(out.path().join("latest.json")).unwrap();
    let results: serde_json::Value = serde_json::from_str(&json).unwrap();
    // router, edge and edge-fused.
    assert_eq!(results["cases"].as_array().map(Vec::len), Some(3));
    assert!(out.path().join("latest.svg").exists());
    assert!(
        namespaces_with_prefix("nfvb-").is_empty(),
        "namespaces left behind"
    );
}
