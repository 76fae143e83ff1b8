//! `nfvhost bench` on real chains: the JSON is complete and consistent, the
//! charts are written, and a chain that drops 1 % is reported with loss.
//! Short mode only; no assertion on a performance figure.

use serde_json::Value;

use crate::support::{have_root, nfvhost, run_ok, Chain};

fn bench_json(chain: &str, extra: &[&str]) -> Value {
    let out = run_ok(
        nfvhost()
            .args(["bench", "--chain", chain, "--from", "h1", "--to", "h2:eth0"])
            .args(["--short", "-o", "json"])
            .args(extra),
    );
    serde_json::from_slice(&out.stdout).expect("bench -o json prints JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

#[test]
fn short_bench_on_basic_is_complete_and_consistent() {
    if !have_root("short_bench_on_basic_is_complete_and_consistent") {
        return;
    }
    let chain = Chain::deploy("chains/basic.yaml", "basic", "127.0.0.1:9464");
    let plots = tempfile::tempdir().unwrap();
    let plot_dir = plots.path().to_str().unwrap();
    let r = bench_json(&chain.name, &["--sizes", "64", "--plot", plot_dir]);

    assert_eq!(r["chain"], "basic");
    assert_eq!(r["from"], "h1:eth0");
    let trials = r["trials"].as_array().unwrap();
    assert!(!trials.is_empty());
    for t in trials {
        let (sent, received, lost) = (u(&t["sent"]), u(&t["received"]), u(&t["lost"]));
        assert!(sent > 0, "{t}");
        assert!(received <= sent, "received more than sent: {t}");
        assert_eq!(lost, sent - received, "{t}");
        assert!(t["vnfs"]["r1"].is_object(), "per-VNF counters: {t}");
        assert!(
            t["kernel_src_tx"].is_u64() && t["kernel_dst_rx"].is_u64(),
            "{t}"
        );
        if let Some(l) = t["latency"].as_object() {
            let seq = ["min_us", "median_us", "p99_us", "p999_us", "max_us"].map(|k| f(&l[k]));
            assert!(
                seq.windows(2).all(|w| w[0] <= w[1]),
                "percentiles out of order: {t}"
            );
        }
    }
    let sizes = r["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 1);
    let s = &sizes[0];
    assert_eq!(s["size"], 64);
    assert!(f(&s["generator_max_pps"]) > 0.0);
    let tp = &s["throughput"];
    assert!(f(&tp["pdr_pps"]) >= f(&tp["ndr_pps"]));
    if let Some(i) = tp["ndr_trial"].as_u64() {
        let ndr = &trials[i as usize];
        assert_eq!(u(&ndr["lost"]), 0, "the NDR trial lost frames: {ndr}");
        assert!(tp["ndr_verified"].as_bool().unwrap());
    }
    assert_eq!(s["latency"].as_array().unwrap().len(), 3);
    assert!(!s["loss"].as_array().unwrap().is_empty());
    assert!(s["back_to_back"]["average_frames"].is_number());
    // Some frames crossed the router, and its /metrics saw them.
    assert!(trials
        .iter()
        .any(|t| u(&t["received"]) > 0 && u(&t["vnfs"]["r1"]["forwarded"]) > 0));
    for chart in ["throughput", "latency", "loss"] {
        for ext in ["svg", "png"] {
            let p = plots.path().join(format!("{chart}.{ext}"));
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            assert!(len > 1000, "{} missing or empty", p.display());
        }
    }
    assert!(plots.path().join("bench.json").exists());
}

#[test]
fn a_chain_that_drops_one_percent_is_reported_with_loss() {
    if !have_root("a_chain_that_drops_one_percent_is_reported_with_loss") {
        return;
    }
    let chain = Chain::deploy("tests/chains/lossy.yaml", "lossy", "127.0.0.1:9493");
    let r = bench_json(
        &chain.name,
        &[
            "--sizes",
            "64",
            "--tests",
            "throughput",
            "--loss-tolerance",
            "3%",
        ],
    );
    let trials = r["trials"].as_array().unwrap();
    // Every trial sends far more than 100 frames, so every one loses some.
    for t in trials {
        assert!(u(&t["sent"]) > 300, "{t}");
        assert!(u(&t["lost"]) > 0, "a 1 % dropper lost nothing: {t}");
    }
    // At the lowest rate tried the chain is not overloaded: the loss is the
    // module's drops, about 1 %, and /metrics counted them.
    let low = trials
        .iter()
        .min_by(|a, b| f(&a["offered_pps"]).total_cmp(&f(&b["offered_pps"])))
        .unwrap();
    let ratio = f(&low["loss_ratio"]);
    assert!(
        (0.005..0.03).contains(&ratio),
        "loss {ratio} at the lowest rate: {low}"
    );
    assert!(u(&low["vnfs"]["w1"]["dropped"]) > 0, "{low}");
    let tp = &r["sizes"][0]["throughput"];
    assert!(!tp["ndr_verified"].as_bool().unwrap() || f(&tp["ndr_pps"]) == 0.0);
    assert!(f(&tp["pdr_pps"]) > f(&tp["ndr_pps"]), "{tp}");
}

/// `--compare-kernel` on the basic router: the same tests on the kernel's
/// forwarding in namespaces of its own, ratios per size, and nothing of
/// the kernel's topology left afterwards.
#[test]
fn compare_kernel_reports_the_kernel_and_the_ratios() {
    if !have_root("compare_kernel_reports_the_kernel_and_the_ratios") {
        return;
    }
    let chain = Chain::deploy("chains/basic.yaml", "basic", "127.0.0.1:9464");
    let r = bench_json(
        &chain.name,
        &[
            "--sizes",
            "64",
            "--tests",
            "throughput,latency",
            "--compare-kernel",
        ],
    );
    let k = &r["kernel"];
    assert_eq!(k["target"], "kernel", "{r}");
    assert_eq!(r["target"], "nfvhost");
    let ktp = &k["sizes"][0]["throughput"];
    assert!(f(&ktp["pdr_pps"]) >= f(&ktp["ndr_pps"]), "{ktp}");
    assert!(
        f(&ktp["pdr_pps"]) > 0.0,
        "the kernel forwarded nothing: {ktp}"
    );
    for t in k["trials"].as_array().unwrap() {
        assert!(u(&t["received"]) <= u(&t["sent"]), "{t}");
    }
    let ratios = r["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 1, "{r}");
    assert_eq!(ratios[0]["size"], 64);
    let pdr = f(&ratios[0]["pdr"]);
    let ours = f(&r["sizes"][0]["throughput"]["pdr_pps"]);
    assert!(
        (pdr - ours / f(&ktp["pdr_pps"])).abs() < 1e-9,
        "the ratio is nfvhost over kernel: {r}"
    );
    assert!(
        crate::support::namespaces_with_prefix(nfvhost::bench::kernel::NETNS_PREFIX).is_empty(),
        "the kernel's namespaces outlived the bench"
    );
}

/// A chain with a module the kernel has no equivalent for is benched
/// alone, and the report says why there is no kernel figure.
#[test]
fn compare_kernel_says_when_a_chain_has_no_kernel_equivalent() {
    if !have_root("compare_kernel_says_when_a_chain_has_no_kernel_equivalent") {
        return;
    }
    let chain = Chain::deploy("tests/chains/lossy.yaml", "lossy", "127.0.0.1:9493");
    let r = bench_json(
        &chain.name,
        &["--sizes", "64", "--tests", "throughput", "--compare-kernel"],
    );
    assert!(r["kernel"].is_null(), "{r}");
    let note = r["kernel_note"].as_str().unwrap_or_default();
    assert!(note.contains("no kernel equivalent"), "{note}");
    assert!(r["ratios"].as_array().unwrap().is_empty());
}
