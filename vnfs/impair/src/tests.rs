use serde_json::json;
use vnf_sdk::testing::Harness;

use super::*;

const MS: u64 = 1_000_000;

/// A 64-byte frame whose payload carries `n`.
fn frame(n: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&n.to_be_bytes());
    f
}

fn number(f: &[u8]) -> u32 {
    u32::from_be_bytes(f[14..18].try_into().unwrap())
}

fn harness(config: serde_json::Value) -> Harness<Impair> {
    Harness::<Impair>::new(&["a", "b"], config).unwrap()
}

/// Sends `n` frames a→b, one every `every_ns`, and returns each frame's
/// one-way delay in ns (None if it never left), plus the frames that
/// left in the order they left.
fn run(h: &mut Harness<Impair>, n: u32, every_ns: u64) -> (Vec<Option<u64>>, Vec<u32>) {
    let mut sent_at = Vec::new();
    let mut delays = vec![None; n as usize];
    let mut order = Vec::new();
    let mut now = 0;
    let mut record = |t: u64, f: &[u8], sent_at: &[u64], order: &mut Vec<u32>| {
        let k = number(f);
        delays[k as usize] = Some(t - sent_at[k as usize]);
        order.push(k);
    };
    for k in 0..n {
        sent_at.push(now);
        let out = h.process(0, &frame(k));
        if out.verdict == Verdict::Forward(1) {
            record(now, &out.frame, &sent_at, &mut order);
        }
        for (t, port, f) in h.run_for(every_ns) {
            assert_eq!(port, 1);
            record(t, &f, &sent_at, &mut order);
        }
        now += every_ns;
    }
    for (t, _, f) in h.run_for(120_000 * MS) {
        record(t, &f, &sent_at, &mut order);
    }
    (delays, order)
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn fixed_delay_holds_each_frame_exactly_that_long_and_counts_it_queued() {
    let mut h = harness(json!({ "delay": "10ms" }));
    assert_eq!(h.process(0, &frame(0)).verdict, Verdict::Consume);
    assert_eq!(
        h.counter("impair_queued"),
        Some(1),
        "held: neither forwarded nor dropped"
    );
    assert_eq!(h.timer(), Some(10 * MS));
    assert!(h.run_for(10 * MS - 1).is_empty());
    assert_eq!(h.run_for(1), vec![(10 * MS, 1, frame(0))]);
    assert_eq!(h.counter("impair_queued"), Some(0));
    assert_eq!(h.counter("impair_released"), Some(1));
    let mut h = harness(json!({ "delay": "10ms" }));
    let (delays, order) = run(&mut h, 100, MS / 3);
    assert!(delays.iter().all(|d| *d == Some(10 * MS)));
    assert_eq!(order, (0..100).collect::<Vec<_>>());
}

#[test]
fn directions_are_configured_on_their_own() {
    let mut h = harness(json!({ "a_to_b": { "delay": "5ms" } }));
    assert_eq!(h.process(0, &frame(0)).verdict, Verdict::Consume);
    assert_eq!(h.process(1, &frame(1)).verdict, Verdict::Forward(0));
    assert_eq!(h.run_for(5 * MS), vec![(5 * MS, 1, frame(0))]);
}

#[test]
fn uniform_jitter_stays_within_its_bounds_and_centres_on_the_delay() {
    let mut h = harness(json!({ "delay": "20ms", "jitter": "5ms", "seed": 1 }));
    let (delays, order) = run(&mut h, 5000, MS);
    let d: Vec<f64> = delays.iter().map(|d| d.unwrap() as f64).collect();
    assert!(d
        .iter()
        .all(|&x| (15.0 * MS as f64..=25.0 * MS as f64).contains(&x)));
    let (mean, sd) = mean_sd(&d);
    assert!((mean - 20e6).abs() < 0.2e6, "mean {mean}");
    // Uniform on ±5 ms: deviation 5/√3 ms.
    assert!((sd - 5e6 / 3f64.sqrt()).abs() < 0.2e6, "sd {sd}");
    assert_ne!(
        order,
        (0..5000).collect::<Vec<_>>(),
        "jitter reorders, as netem does"
    );
}

#[test]
fn normal_and_pareto_jitter_have_the_configured_deviation() {
    for dist in ["normal", "pareto"] {
        let mut h =
            harness(json!({ "delay": "50ms", "jitter": "5ms", "distribution": dist, "seed": 2 }));
        let (delays, _) = run(&mut h, 20_000, MS / 4);
        let d: Vec<f64> = delays.iter().map(|d| d.unwrap() as f64).collect();
        let (mean, sd) = mean_sd(&d);
        assert!((mean - 50e6).abs() < 0.3e6, "{dist}: mean {mean}");
        assert!((sd - 5e6).abs() < 0.5e6, "{dist}: sd {sd}");
    }
}

#[test]
fn correlated_delay_changes_slowly() {
    let lag1 = |rho: &str| {
        let mut h = harness(
            json!({ "delay": "50ms", "jitter": "10ms", "delay_correlation": rho, "seed": 3 }),
        );
        let (delays, _) = run(&mut h, 4000, MS);
        let d: Vec<f64> = delays.iter().map(|d| d.unwrap() as f64).collect();
        let (mean, sd) = mean_sd(&d);
        d.windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>()
            / ((d.len() - 1) as f64 * sd * sd)
    };
    assert!(lag1("0%").abs() < 0.1);
    assert!(lag1("75%") > 0.5);
}

#[test]
fn one_percent_loss_over_100000_frames_is_within_three_sigma() {
    let mut h = harness(json!({ "loss": "1%", "seed": 4 }));
    let mut lost = 0u32;
    for k in 0..100_000 {
        if h.process(0, &frame(k)).verdict == Verdict::Drop(DropReason::Policy) {
            lost += 1;
        }
    }
    let sigma = (100_000.0f64 * 0.01 * 0.99).sqrt();
    eprintln!(
        "loss 1%: {lost} of 100000 lost (expected 1000 ± {:.0} at 3σ)",
        3.0 * sigma
    );
    assert!(
        (f64::from(lost) - 1000.0).abs() < 3.0 * sigma,
        "lost {lost}"
    );
    assert_eq!(h.counter("impair_lost"), Some(u64::from(lost)));
}

/// Lengths of runs of consecutive losses.
fn bursts(h: &mut Harness<Impair>, n: u32) -> Vec<u32> {
    let mut runs = Vec::new();
    let mut cur = 0;
    for k in 0..n {
        if h.process(0, &frame(k)).verdict == Verdict::Drop(DropReason::Policy) {
            cur += 1;
        } else if cur > 0 {
            runs.push(cur);
            cur = 0;
        }
    }
    runs
}

#[test]
fn gilbert_elliott_bursts_have_the_configured_mean_length() {
    // Bad state entered with p = 1 %, left with r = 25 %: bursts of
    // 1/r = 4 frames on average, loss rate p/(p+r) ≈ 3.85 %.
    let mut h = harness(json!({ "gilbert_elliott": { "p": "1%", "r": "25%" }, "seed": 5 }));
    let runs = bursts(&mut h, 200_000);
    let mean = runs.iter().sum::<u32>() as f64 / runs.len() as f64;
    let rate = runs.iter().sum::<u32>() as f64 / 200_000.0;
    eprintln!("Gilbert-Elliott p=1% r=25%: mean burst {mean:.2} (expected 4), loss rate {:.2}% (expected 3.85%)", rate * 100.0);
    assert!((mean - 4.0).abs() < 0.3, "mean burst {mean}");
    assert!((rate - 0.01 / 0.26).abs() < 0.004, "loss rate {rate}");
    // Random loss at the same rate has bursts of about one frame.
    let mut h = harness(json!({ "loss": "3.85%", "seed": 5 }));
    let runs = bursts(&mut h, 200_000);
    assert!(runs.iter().sum::<u32>() as f64 / (runs.len() as f64) < 1.1);
}

#[test]
fn correlated_loss_keeps_its_rate_and_makes_longer_bursts() {
    // p = 5 %, ρ = 90 %: bursts of 1/((1-p)(1-ρ)) ≈ 10.5 frames.
    let mut h = harness(json!({ "loss": "5%", "loss_correlation": "90%", "seed": 6 }));
    let runs = bursts(&mut h, 400_000);
    let lost = runs.iter().sum::<u32>() as f64;
    assert!(
        (lost / 400_000.0 - 0.05).abs() < 0.005,
        "rate {}",
        lost / 400_000.0
    );
    let mean = lost / runs.len() as f64;
    assert!((mean - 1.0 / (0.95 * 0.1)).abs() < 1.0, "mean burst {mean}");
}

#[test]
fn rate_spaces_frames_by_their_serialisation_time_after_the_burst() {
    // 10 Mbit/s: a 1250-byte frame takes 1 ms; the burst lets the first
    // 1514 bytes through at once.
    let mut h = harness(json!({ "rate": "10mbit", "seed": 7 }));
    let big = |k: u32| {
        let mut f = frame(k);
        f.resize(1250, 0);
        f
    };
    let mut left = Vec::new();
    for k in 0..50 {
        let out = h.process(0, &big(k));
        if out.verdict == Verdict::Forward(1) {
            left.push(0);
        }
    }
    left.extend(h.run_for(1000 * MS).into_iter().map(|(t, _, _)| t));
    assert_eq!(left.len(), 50);
    assert_eq!(left[0], 0, "the first frame fits the burst");
    let spacing: Vec<u64> = left.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
    assert!(spacing.iter().all(|&s| s == MS), "{spacing:?}");
    // The burst (1514 bytes = 1.2112 ms) lets the second frame go at
    // 2 ms - 1.2112 ms; the other 48 follow 1 ms apart.
    assert_eq!(left[1], 788_800);
    assert_eq!(*left.last().unwrap(), 48 * MS + 788_800);
}

#[test]
fn a_full_queue_tail_drops_and_conservation_holds() {
    // 1000-byte frames at 1 Mbit/s take 8 ms each; only the first fits
    // the burst.
    let mut h = harness(json!({ "rate": "1mbit", "limit": 10 }));
    let mut verdicts = Vec::new();
    for k in 0..30 {
        let mut f = frame(k);
        f.resize(1000, 0);
        verdicts.push(h.process(0, &f).verdict);
    }
    let forwarded = verdicts
        .iter()
        .filter(|v| **v == Verdict::Forward(1))
        .count() as u64;
    let held = verdicts.iter().filter(|v| **v == Verdict::Consume).count() as u64;
    let dropped = verdicts
        .iter()
        .filter(|v| **v == Verdict::Drop(DropReason::Limit))
        .count() as u64;
    assert_eq!((forwarded, held, dropped), (1, 10, 19));
    assert_eq!(h.counter("impair_queued"), Some(10));
    assert_eq!(h.counter("impair_tail_drops"), Some(dropped));
    assert_eq!(forwarded + held + dropped, 30);
    let released = h.run_for(1000 * MS).len() as u64;
    assert_eq!(released, held);
    assert_eq!(h.counter("impair_queued"), Some(0));
}

#[test]
fn reorder_sends_some_frames_ahead_of_the_delayed_ones() {
    let mut h = harness(json!({ "delay": "10ms", "reorder": "25%", "seed": 8 }));
    let (delays, order) = run(&mut h, 4000, MS / 10);
    let ahead = delays.iter().filter(|d| **d == Some(0)).count() as f64;
    assert!((ahead / 4000.0 - 0.25).abs() < 0.03, "{ahead}");
    assert_eq!(h.counter("impair_reordered"), Some(ahead as u64));
    assert_ne!(order, (0..4000).collect::<Vec<_>>());
    // With a gap of 5, at most every fifth frame goes ahead.
    let mut h = harness(json!({ "delay": "10ms", "reorder": "100%", "reorder_gap": 5 }));
    let (delays, _) = run(&mut h, 100, MS);
    assert_eq!(delays.iter().filter(|d| **d == Some(0)).count(), 20);
}

#[test]
fn duplicate_and_corrupt() {
    let mut h = harness(json!({ "duplicate": "100%" }));
    let out = h.process(0, &frame(1));
    assert_eq!(out.verdict, Verdict::Forward(1));
    assert_eq!(h.run_for(1), vec![(0, 1, frame(1))], "the copy follows");
    assert_eq!(h.counter("impair_duplicated"), Some(1));

    let mut h = harness(json!({ "corrupt": "100%" }));
    let out = h.process(0, &frame(1));
    let flipped: u32 = out
        .frame
        .iter()
        .zip(frame(1))
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(flipped, 1, "one bit");
    assert_eq!(
        &out.frame[..14],
        &frame(1)[..14],
        "never the Ethernet header"
    );
}

#[test]
fn mininet_keys_mean_what_they_mean_in_tclink() {
    let h = harness(json!({ "bw": 10, "max_queue_size": 50 }));
    let imp = &h_dirs(h)[0];
    assert_eq!(imp.rate_bytes_per_s, 10_000_000 / 8);
    assert_eq!(imp.limit, 50);
}

fn h_dirs(mut h: Harness<Impair>) -> Vec<Impairment> {
    h.vnf().dirs.iter().map(|d| d.imp.clone()).collect()
}

#[test]
fn reconfiguring_keeps_the_queue_and_applies_to_new_frames() {
    let mut h = harness(json!({ "delay": "10ms" }));
    h.process(0, &frame(0));
    assert!(
        h.reconfigure(json!({ "loss": "200%" })).is_err(),
        "checked first"
    );
    h.reconfigure(json!({ "delay": "50ms" })).unwrap();
    assert_eq!(h.counter("impair_queued"), Some(1), "the held frame stays");
    h.process(0, &frame(1));
    let out = h.run_for(100 * MS);
    assert_eq!(
        out,
        vec![(10 * MS, 1, frame(0)), (50 * MS, 1, frame(1))],
        "old frames keep their time, new ones get the new delay"
    );
}

#[test]
fn config_errors_name_the_key() {
    let err = |c| {
        Harness::<Impair>::new(&["a", "b"], c)
            .err()
            .expect("refused")
    };
    assert_eq!(err(json!({ "delay": "10" })).path, "delay");
    assert_eq!(err(json!({ "delay": "10 parsecs" })).path, "delay");
    assert_eq!(err(json!({ "loss": "101%" })).path, "loss");
    assert_eq!(
        err(json!({ "a_to_b": { "rate": "10furlongs" } })).path,
        "a_to_b.rate"
    );
    assert_eq!(
        err(json!({ "distribution": "cauchy" })).path,
        "distribution"
    );
    assert_eq!(err(json!({ "burst": 3000 })).path, "burst");
    assert_eq!(err(json!({ "limit": 0 })).path, "limit");
    assert_eq!(
        err(json!({ "loss": "1%", "gilbert_elliott": { "p": "1%", "r": "10%" } })).path,
        "gilbert_elliott"
    );
    assert_eq!(
        err(json!({ "gilbert_elliott": { "p": "1%", "r": "200%" } })).path,
        "gilbert_elliott.r"
    );
    assert!(err(json!({ "bogus": 1 })).message.contains("unknown field"));
    assert_eq!(err(json!({ "bw": 10, "rate": "10mbit" })).path, "bw");
    assert_eq!(err(json!({ "max_queue_size": 0 })).path, "max_queue_size");
    assert!(Harness::<Impair>::new(&["a"], json!({})).is_err());
}
