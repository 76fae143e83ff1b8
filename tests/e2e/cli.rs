//! The command line: exit codes and error messages, without root.

use crate::support::{nfvhost, root, vnfs_built};

fn write_chain(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("chain.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_accepts_the_shipped_chains() {
    vnfs_built();
    for file in ["chains/basic.yaml", "tests/chains/faulty.yaml"] {
        let out = nfvhost().args(["validate", file]).output().unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
    }
}

#[test]
fn validate_reports_file_line_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(
        &dir,
        "name: t\nhosts:\n  h1:\n    interfaces:\n      eth0: { adress: 10.0.0.1/24 }\nchain: [h1]\n",
    );
    let out = nfvhost().arg("validate").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5:", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("address"),
        "a suggestion is expected: {stderr}"
    );
    assert!(out.stdout.is_empty(), "errors go to stderr");
}

#[test]
fn a_module_config_error_points_at_the_key() {
    vnfs_built();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("chains/basic.yaml"))
        .unwrap()
        .replace(
            "        wan: 10.0.2.1/24\n",
            "        wan: 10.0.2.1/24\n      colour: blue\n",
        );
    let path = write_chain(&dir, &text);
    let line = text.lines().position(|l| l.contains("colour")).unwrap() + 1;
    let out = nfvhost().arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(":{line}:")),
        "expected line {line}: {stderr}"
    );
    assert!(stderr.contains("colour"), "{stderr}");
}

#[test]
fn a_module_without_the_abi_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest valid wasm module: no exports at all.
    std::fs::write(dir.path().join("empty.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm").unwrap();
    for (module, expect) in [
        ("empty.wasm", "does not export `memory`"),
        ("junk.wasm", "not a valid WebAssembly module"),
    ] {
        let text = format!(
            "name: t\nhosts:\n  h1: {{ interfaces: {{ eth0: {{ address: 10.0.0.1/24 }} }} }}\n  h2: {{ interfaces: {{ eth0: {{ address: 10.0.0.2/24 }} }} }}\nvnfs:\n  v1: {{ module: {module}, ports: [a, b] }}\nchain: [h1, v1, h2]\n"
        );
        let path = write_chain(&dir, &text);
        let out = nfvhost().arg("validate").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expect), "{module}: {stderr}");
        assert!(stderr.contains(":6:"), "points at the VNF entry: {stderr}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = nfvhost().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = nfvhost()
        .args(["validate", "/nonexistent/chain.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/chain.yaml"));
}

#[test]
fn a_module_mtu_above_its_links_is_refused_at_the_key() {
    vnfs_built();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("chains/basic.yaml"))
        .unwrap()
        .replace(
            "        wan: 10.0.2.1/24\n",
            "        wan: 10.0.2.1/24\n      mtu: { wan: 1500 }\n",
        )
        .replace(
            "  - [r1:wan, h2:eth0]",
            "  - { a: r1:wan, b: h2:eth0, mtu: 1400 }",
        );
    let path = write_chain(&dir, &text);
    let line = text.lines().position(|l| l.contains("mtu: { wan")).unwrap() + 1;
    let out = nfvhost().arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:{line}:", path.display())),
        "expected line {line}: {stderr}"
    );
    assert!(stderr.contains("1400"), "names the link's MTU: {stderr}");
    // At or below the link's MTU it is accepted.
    let ok = write_chain(
        &dir,
        &text.replace("mtu: { wan: 1500 }", "mtu: { wan: 1400 }"),
    );
    let out = nfvhost().arg("validate").arg(&ok).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
