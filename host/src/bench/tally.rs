//! What the receiver counts: frames by sequence number (received, lost,
//! reordered, duplicated) and one-way latency in a log-linear histogram
//! (HDR-style: 64 sub-buckets per power of two, under 1.6 % error), with
//! the exact minimum and maximum.

use serde::Serialize;

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = 64 * SUB;

/// One-way latencies in nanoseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let sub = (v >> shift) as usize & (SUB - 1);
    ((shift as usize + 1) << SUB_BITS) + sub
}

/// The largest value in bucket `b` (a percentile is never under-reported).
fn bucket_top(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let shift = (b >> SUB_BITS) as u32 - 1;
    let sub = (b & (SUB - 1)) as u64;
    (((SUB as u64) | sub) << shift) + ((1u64 << shift) - 1)
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += u128::from(ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), clamped to the exact max.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_top(b).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Min, median, p99, p99.9, max, mean, and packet delay variation as
    /// RFC 5481 defines it (PDV: each delay minus the minimum delay,
    /// reported at its 99th and 99.9th percentile).
    pub fn summary(&self) -> Option<LatencySummary> {
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |x| self.quantile(x).map(us);
        Some(LatencySummary {
            samples: self.total,
            min_us: us(self.min).min(q(0.0)?),
            median_us: q(0.5)?,
            p99_us: q(0.99)?,
            p999_us: q(0.999)?,
            max_us: us(self.max),
            mean_us: self.sum as f64 / self.total as f64 / 1000.0,
            pdv_p99_us: q(0.99)? - us(self.min),
            pdv_p999_us: q(0.999)? - us(self.min),
        })
    }
}

/// Latency figures of one trial, in microseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct LatencySummary {
    pub samples: u64,
    pub min_us: f64,
    pub median_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// RFC 5481 PDV (delay minus the minimum delay) at p99 and p99.9.
    pub pdv_p99_us: f64,
    pub pdv_p999_us: f64,
}

/// Counting by sequence number.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    seen: Vec<u64>,
    /// Distinct sequence numbers received.
    pub received: u64,
    pub duplicated: u64,
    /// Frames that arrived after a higher sequence number (RFC 4737's
    /// reordered: seq below the next expected).
    pub reordered: u64,
    next_expected: u64,
    pub latency: Histogram,
}

impl Tally {
    /// Counts frame `seq`, sent at `tx_ns`, received at `rx_ns`.
    pub fn record(&mut self, seq: u32, tx_ns: u64, rx_ns: u64) {
        let seq = u64::from(seq);
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize((word + 1).next_power_of_two(), 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicated += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.received += 1;
        if seq < self.next_expected {
            self.reordered += 1;
        } else {
            self.next_expected = seq + 1;
        }
        self.latency.record(rx_ns.saturating_sub(tx_ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(997).chain([u64::MAX / 2]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket of {v} went down");
            last = b;
            let top = bucket_top(b);
            assert!(top >= v, "top {top} < {v}");
            assert!((top - v) as f64 <= v as f64 / 60.0 + 1.0, "{v} -> {top}");
        }
    }

    #[test]
    fn percentiles_are_ordered_and_near_the_truth() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let s = h.summary().unwrap();
        assert_eq!(s.samples, 10_000);
        assert_eq!(s.min_us, 1.0);
        assert_eq!(s.max_us, 10_000.0);
        assert!((s.median_us - 5000.0).abs() < 5000.0 * 0.02, "{s:?}");
        assert!((s.p99_us - 9900.0).abs() < 9900.0 * 0.02, "{s:?}");
        assert!(s.min_us <= s.median_us && s.median_us <= s.p99_us);
        assert!(s.p99_us <= s.p999_us && s.p999_us <= s.max_us);
        assert!((s.pdv_p99_us - (s.p99_us - 1.0)).abs() < 1e-9);
        assert!(Histogram::default().summary().is_none());
    }

    #[test]
    fn sequence_accounting() {
        let mut t = Tally::default();
        for seq in [0, 1, 3, 2, 2, 5, 4, 200] {
            t.record(seq, 0, 10);
        }
        assert_eq!(t.received, 7);
        assert_eq!(t.duplicated, 1);
        assert_eq!(t.reordered, 2); // 2 after 3, 4 after 5
        assert_eq!(t.latency.count(), 7);
    }
}
