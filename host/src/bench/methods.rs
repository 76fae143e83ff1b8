//! The RFC 2544 procedures (with RFC 9004's back-to-back update), against
//! any [`Runner`] of trials: the real one sends frames through a chain; the
//! unit tests use a model of a device with a known capacity.

use serde::Serialize;

use super::report::Trial;
use super::trial::Offer;
use super::BenchError;
use std::time::Duration;

/// Runs one trial and records it.
pub trait Runner {
    fn trial(&mut self, test: &'static str, offer: Offer) -> Result<Trial, BenchError>;
}

/// How long and how fine the searches are.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Settings {
    /// Length of a search or loss trial.
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// The binary search stops when its interval is below this fraction of
    /// the maximum rate.
    pub resolution: f64,
    /// The PDR's loss tolerance, as a ratio (0.005 = 0.5 %).
    pub loss_tolerance: f64,
    /// Repetitions of the back-to-back burst search (RFC 9004 asks for 50).
    pub trials: u32,
    /// Longest back-to-back burst tried, in seconds at the maximum rate
    /// (RFC 9004: at least 2 s).
    pub burst_seconds: f64,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// NDR and PDR of one frame size.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub ndr_pps: f64,
    pub pdr_pps: f64,
    /// The search stops when the interval is this narrow.
    pub resolution_pps: f64,
    /// Whether a final trial at the reported rate confirmed it.
    pub ndr_verified: bool,
    pub pdr_verified: bool,
    /// True when the chain lost nothing at the generator's maximum: the
    /// figure is the generator's limit, not the chain's.
    pub generator_limited: bool,
    /// Index (in the run's trial list) of the NDR's verification trial.
    pub ndr_trial: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
struct Bounds {
    pass: f64,
    fail: Option<f64>,
}

impl Bounds {
    fn update(&mut self, rate: f64, ok: bool) {
        if ok {
            self.pass = self.pass.max(rate);
            if self.fail.is_some_and(|f| f <= rate) {
                self.fail = None;
            }
        } else if self.fail.is_none_or(|f| rate < f) {
            self.fail = Some(rate);
            self.pass = self.pass.min(rate);
        }
    }

    fn open(&self, resolution: f64) -> Option<f64> {
        self.fail
            .filter(|f| f - self.pass > resolution)
            .map(|f| (f + self.pass) / 2.0)
    }
}

fn passes(t: &Trial, tolerance: f64) -> bool {
    if tolerance == 0.0 {
        t.lost == 0
    } else {
        t.loss_ratio <= tolerance
    }
}

/// Binary search for NDR (zero loss) and PDR (loss within the tolerance)
/// between 0 and `max_pps`, both from the same trials, then one
/// verification trial each at the rate found (stepping down by the
/// resolution, at most three times, if a verification fails).
pub fn throughput(
    r: &mut dyn Runner,
    trials: &mut Vec<Trial>,
    size: usize,
    max_pps: f64,
    s: &Settings,
) -> Result<Throughput, BenchError> {
    let res = (max_pps * s.resolution).max(1.0);
    let offer = |rate: f64| Offer {
        size,
        rate_pps: Some(rate),
        duration: s.duration,
        count: None,
    };
    let mut ndr = Bounds {
        pass: 0.0,
        fail: Some(max_pps),
    };
    let mut pdr = ndr;
    let mut rate = max_pps;
    for _ in 0..40 {
        let t = r.trial("throughput", offer(rate))?;
        ndr.update(rate, passes(&t, 0.0));
        pdr.update(rate, passes(&t, s.loss_tolerance));
        trials.push(t);
        match ndr.open(res).or_else(|| pdr.open(res)) {
            Some(next) => rate = next,
            None => break,
        }
    }
    let generator_limited = ndr.fail.is_none();
    let mut verify = |b: &mut Bounds, tol: f64| -> Result<(bool, Option<usize>), BenchError> {
        for _ in 0..3 {
            if b.pass <= 0.0 {
                return Ok((false, None));
            }
            let t = r.trial("throughput-verify", offer(b.pass))?;
            let ok = passes(&t, tol);
            trials.push(t);
            if ok {
                return Ok((true, Some(trials.len() - 1)));
            }
            b.fail = Some(b.pass);
            b.pass = (b.pass - res).max(0.0);
        }
        Ok((false, None))
    };
    let (ndr_verified, ndr_trial) = verify(&mut ndr, 0.0)?;
    let (pdr_verified, _) = verify(&mut pdr, s.loss_tolerance)?;
    Ok(Throughput {
        ndr_pps: ndr.pass,
        pdr_pps: pdr.pass.max(ndr.pass),
        resolution_pps: res,
        ndr_verified,
        pdr_verified,
        generator_limited,
        ndr_trial,
    })
}

/// Load levels latency is measured at, as fractions of NDR.
pub const LATENCY_LOADS: [f64; 3] = [0.1, 0.5, 0.9];

/// Latency trials at 10, 50 and 90 % of `ndr_pps`; returns their indexes.
pub fn latency(
    r: &mut dyn Runner,
    trials: &mut Vec<Trial>,
    size: usize,
    ndr_pps: f64,
    s: &Settings,
) -> Result<Vec<(f64, usize)>, BenchError> {
    let mut out = Vec::new();
    for load in LATENCY_LOADS {
        let rate = (ndr_pps * load).max(1.0);
        let t = r.trial(
            "latency",
            Offer {
                size,
                rate_pps: Some(rate),
                duration: s.duration,
                count: None,
            },
        )?;
        trials.push(t);
        out.push((load, trials.len() - 1));
    }
    Ok(out)
}

/// Frame loss rate from 100 % of `max_pps` down in 10 % steps, until two
/// steps in a row lose nothing; returns (load, trial index) pairs.
pub fn loss(
    r: &mut dyn Runner,
    trials: &mut Vec<Trial>,
    size: usize,
    max_pps: f64,
    s: &Settings,
) -> Result<Vec<(f64, usize)>, BenchError> {
    let mut out = Vec::new();
    let mut clean = 0;
    for step in (1..=10).rev() {
        let load = f64::from(step) / 10.0;
        let t = r.trial(
            "loss",
            Offer {
                size,
                rate_pps: Some(max_pps * load),
                duration: s.duration,
                count: None,
            },
        )?;
        clean = if t.lost == 0 { clean + 1 } else { 0 };
        trials.push(t);
        out.push((load, trials.len() - 1));
        if clean == 2 {
            break;
        }
    }
    Ok(out)
}

/// Back-to-back result (RFC 9004).
#[derive(Clone, Debug, Serialize)]
pub struct BackToBack {
    /// Longest burst without loss, per repetition.
    pub bursts: Vec<u64>,
    pub average_frames: f64,
    /// True if even the longest burst tried crossed without loss.
    pub at_longest_tried: bool,
    /// Burst length / rate the bursts were sent at.
    pub implied_buffer_time_s: f64,
    /// RFC 9004 section 3's corrected buffer time, with the measured
    /// throughput (NDR): implied × throughput / rate (the frames the chain
    /// forwards during the burst did not need buffering).
    pub corrected_buffer_time_s: Option<f64>,
    pub rate_pps: f64,
}

/// RFC 9004 back-to-back frames: bursts at the maximum rate, binary search
/// on the burst length (to 1 % of the result, or 16 frames) for the longest without loss,
/// repeated `s.trials` times.
pub fn back_to_back(
    r: &mut dyn Runner,
    trials: &mut Vec<Trial>,
    size: usize,
    max_pps: f64,
    ndr_pps: Option<f64>,
    s: &Settings,
) -> Result<BackToBack, BenchError> {
    let longest = ((max_pps * s.burst_seconds) as u64).max(64);
    let mut bursts = Vec::new();
    let burst = |n: u64| Offer {
        size,
        rate_pps: None,
        duration: s.duration,
        count: Some(n),
    };
    for _ in 0..s.trials.max(1) {
        let (mut pass, mut fail) = (0u64, None::<u64>);
        let mut n = longest;
        for _ in 0..30 {
            let t = r.trial("back-to-back", burst(n))?;
            let ok = t.lost == 0 && t.sent == n;
            trials.push(t);
            if ok {
                pass = pass.max(n);
            } else {
                fail = Some(fail.map_or(n, |f| f.min(n)));
            }
            match fail {
                Some(f) if f - pass > (pass / 100).max(16) => n = (f + pass) / 2,
                _ => break,
            }
        }
        bursts.push(pass);
    }
    let average = bursts.iter().sum::<u64>() as f64 / bursts.len() as f64;
    let implied = average / max_pps;
    Ok(BackToBack {
        at_longest_tried: bursts.iter().all(|&b| b >= longest),
        average_frames: average,
        bursts,
        implied_buffer_time_s: implied,
        corrected_buffer_time_s: ndr_pps
            .filter(|&t| t > 0.0)
            .map(|t| implied / (1.0 + (max_pps - t) / t)),
        rate_pps: max_pps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Trial;

    /// A device that forwards up to `capacity` pps and buffers `buffer`
    /// frames; loss above capacity is the excess.
    struct Model {
        capacity: f64,
        buffer: u64,
        max: f64,
        calls: usize,
    }

    impl Runner for Model {
        fn trial(&mut self, test: &'static str, o: Offer) -> Result<Trial, BenchError> {
            self.calls += 1;
            let rate = o.rate_pps.unwrap_or(self.max);
            let sent = o.count.unwrap_or((rate * o.duration.as_secs_f64()) as u64);
            let received = match o.count {
                // A burst at `max` fills the buffer at (max - capacity).
                Some(n) => {
                    let kept = (self.buffer as f64 / (1.0 - self.capacity / self.max)) as u64;
                    n.min(kept)
                }
                None if rate <= self.capacity => sent,
                None => (sent as f64 * self.capacity / rate) as u64,
            };
            Ok(Trial::synthetic(test, o, sent, received))
        }
    }

    fn settings() -> Settings {
        Settings {
            duration: Duration::from_secs(1),
            resolution: 0.01,
            loss_tolerance: 0.005,
            trials: 2,
            burst_seconds: 2.0,
        }
    }

    #[test]
    fn ndr_and_pdr_bracket_the_capacity() {
        let mut m = Model {
            capacity: 300_000.0,
            buffer: 0,
            max: 1_000_000.0,
            calls: 0,
        };
        let mut trials = Vec::new();
        let t = throughput(&mut m, &mut trials, 64, 1e6, &settings()).unwrap();
        assert!(t.ndr_pps <= 300_000.0 && t.ndr_pps > 300_000.0 - 2.0 * t.resolution_pps);
        assert!(t.pdr_pps >= t.ndr_pps && t.pdr_pps <= 300_000.0 / 0.995 + 1.0);
        assert!(t.ndr_verified && t.pdr_verified && !t.generator_limited);
        let ndr = &trials[t.ndr_trial.unwrap()];
        assert_eq!(ndr.lost, 0);
        assert!(m.calls < 30, "{} trials", m.calls);
    }

    #[test]
    fn a_device_faster_than_the_generator_is_reported_as_generator_limited() {
        let mut m = Model {
            capacity: 2e6,
            buffer: 0,
            max: 1e6,
            calls: 0,
        };
        let t = throughput(&mut m, &mut Vec::new(), 64, 1e6, &settings()).unwrap();
        assert!(t.generator_limited);
        assert_eq!(t.ndr_pps, 1e6);
    }

    #[test]
    fn loss_steps_down_until_two_clean_steps() {
        let mut m = Model {
            capacity: 450_000.0,
            buffer: 0,
            max: 1e6,
            calls: 0,
        };
        let mut trials = Vec::new();
        let steps = loss(&mut m, &mut trials, 64, 1e6, &settings()).unwrap();
        let loads: Vec<f64> = steps.iter().map(|s| s.0).collect();
        assert_eq!(loads, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
        assert!(trials[steps[0].1].lost > 0 && trials[steps[7].1].lost == 0);
    }

    #[test]
    fn back_to_back_finds_the_buffer() {
        let mut m = Model {
            capacity: 500_000.0,
            buffer: 10_000,
            max: 1e6,
            calls: 0,
        };
        let b = back_to_back(&mut m, &mut Vec::new(), 64, 1e6, Some(5e5), &settings()).unwrap();
        // 10 000 buffered at half rate: 20 000 frames cross.
        assert!(
            (b.average_frames - 20_000.0).abs() <= 20_000.0 * 0.01 + 16.0,
            "{b:?}"
        );
        assert!(!b.at_longest_tried);
        // Corrected: the chain forwarded half of the burst meanwhile.
        let c = b.corrected_buffer_time_s.unwrap();
        assert!((c - b.implied_buffer_time_s / 2.0).abs() < 1e-9);
    }
}
