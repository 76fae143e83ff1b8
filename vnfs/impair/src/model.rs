//! The random parts of the netem model: a seeded generator, correlated
//! draws, the jitter distributions, the loss models, and the rate limiter.

use crate::config::{Distribution, GilbertElliott, Impairment};

/// xoshiro256** seeded through splitmix64: fast, good enough for
/// simulation, reproducible from the seed.
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A uniform draw correlated with the previous one, as netem does it:
/// `next = (1 - ρ) · fresh + ρ · last`.
#[derive(Default)]
pub struct Correlated {
    last: f64,
}

impl Correlated {
    pub fn draw(&mut self, rng: &mut Rng, rho: f64) -> f64 {
        let fresh = rng.uniform();
        self.last = if rho == 0.0 {
            fresh
        } else {
            (1.0 - rho) * fresh + rho * self.last
        };
        self.last
    }
}

/// A standard normal draw (mean 0, deviation 1) from two uniforms.
fn normal(u1: f64, u2: f64) -> f64 {
    (-2.0 * (1.0 - u1).ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
}

/// A Pareto draw (shape 3) standardised to mean 0, deviation 1.
fn pareto(u: f64) -> f64 {
    const SHAPE: f64 = 3.0;
    let x = 1.0 / (1.0 - u).powf(1.0 / SHAPE);
    let mean = SHAPE / (SHAPE - 1.0);
    let sd = (SHAPE / ((SHAPE - 1.0) * (SHAPE - 1.0) * (SHAPE - 2.0))).sqrt();
    (x - mean) / sd
}

/// The delay of one frame in ns: `delay` plus `jitter` drawn from the
/// distribution (uniform: ±jitter; normal and pareto: jitter is the
/// standard deviation), never below zero.
pub fn delay_ns(imp: &Impairment, rng: &mut Rng, corr: &mut Correlated) -> u64 {
    if imp.jitter_ns == 0 {
        return imp.delay_ns;
    }
    let u = corr.draw(rng, imp.delay_correlation);
    let z = match imp.distribution {
        Distribution::Uniform => 2.0 * u - 1.0,
        Distribution::Normal => normal(u, rng.uniform()),
        Distribution::Pareto => pareto(u),
    };
    (imp.delay_ns as f64 + z * imp.jitter_ns as f64).max(0.0) as u64
}

/// The loss model of one direction.
#[derive(Default)]
pub struct Loss {
    /// Gilbert-Elliott: in the bad state; random loss: the last frame was lost.
    bad: bool,
}

impl Loss {
    /// Whether the next frame is lost.
    pub fn lose(&mut self, imp: &Impairment, rng: &mut Rng) -> bool {
        match imp.gilbert_elliott {
            Some(GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            }) => {
                // Move first, then lose by the state's probability.
                let flip = rng.uniform();
                self.bad = if self.bad { flip >= r } else { flip < p };
                let loss = if self.bad { loss_bad } else { loss_good };
                rng.uniform() < loss
            }
            None if imp.loss > 0.0 => {
                // A two-state chain whose stationary loss rate is `loss`
                // and whose lag-1 correlation is `loss_correlation` (netem's
                // `(1-ρ)·u + ρ·last` formula would lower the loss rate).
                let (p, rho) = (imp.loss, imp.loss_correlation);
                let chance = if self.bad {
                    p + rho * (1.0 - p)
                } else {
                    p * (1.0 - rho)
                };
                self.bad = rng.uniform() < chance;
                self.bad
            }
            None => false,
        }
    }
}

/// A token bucket of `burst` bytes filling at `rate` bytes/s, as a virtual
/// clock (GCRA): each frame leaves when the bucket holds its bytes.
#[derive(Default)]
pub struct Shaper {
    /// When the bucket will be full again if nothing else is sent.
    tat_ns: u64,
}

impl Shaper {
    /// When a frame of `len` bytes that is ready at `ready_ns` leaves.
    pub fn departure(&mut self, imp: &Impairment, ready_ns: u64, len: usize) -> u64 {
        if imp.rate_bytes_per_s == 0 {
            return ready_ns;
        }
        let per_byte = 1e9 / imp.rate_bytes_per_s as f64;
        let burst_ns = (imp.burst_bytes as f64 * per_byte) as u64;
        let cost = (len as f64 * per_byte) as u64;
        // The frame may go once the bucket's debt, including its own
        // bytes, fits in the burst.
        let depart = ready_ns.max((self.tat_ns + cost).saturating_sub(burst_ns));
        self.tat_ns = self.tat_ns.max(depart) + cost;
        depart
    }
}
