//! The impairment configuration: `tc netem`'s parameters, for each direction
//! of the link, with units as people write them (`10ms`, `1%`, `10mbit`).

use serde::Deserialize;
use vnf_sdk::ConfigError;

/// Default queue limit in frames (`tc netem`'s default).
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest queue limit.
pub const MAX_LIMIT: usize = 100_000;
/// Longest delay or jitter: one minute.
pub const MAX_DELAY_NS: u64 = 60_000_000_000;

/// A duration (`10ms`, `250us`, `1.5s`, `800ns`), a percentage (`1%`,
/// `0.5%`) or a rate (`10mbit`, `1gbit`, `500kbit`, `100bit`, `2mbps` in
/// bytes), as YAML strings; plain numbers are milliseconds, percent and
/// bit/s respectively.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub enum Quantity {
    Number(f64),
    Text(String),
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    #[serde(default)]
    pub delay: Option<Quantity>,
    #[serde(default)]
    pub jitter: Option<Quantity>,
    #[serde(default)]
    pub delay_correlation: Option<Quantity>,
    #[serde(default)]
    pub distribution: Option<String>,
    #[serde(default)]
    pub loss: Option<Quantity>,
    #[serde(default)]
    pub loss_correlation: Option<Quantity>,
    #[serde(default)]
    pub gilbert_elliott: Option<GeConfig>,
    #[serde(default)]
    pub duplicate: Option<Quantity>,
    #[serde(default)]
    pub reorder: Option<Quantity>,
    #[serde(default)]
    pub reorder_gap: Option<u32>,
    #[serde(default)]
    pub corrupt: Option<Quantity>,
    #[serde(default)]
    pub rate: Option<Quantity>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Mininet's `TCLink` `bw`: Mbit/s, a number.
    #[serde(default)]
    pub bw: Option<f64>,
    /// Mininet's `TCLink` `max_queue_size`: the same as `limit`.
    #[serde(default)]
    pub max_queue_size: Option<usize>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct GeConfig {
    pub p: Quantity,
    pub r: Quantity,
    #[serde(default)]
    pub loss_bad: Option<Quantity>,
    #[serde(default)]
    pub loss_good: Option<Quantity>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Applies to both directions, unless a direction has its own block.
    #[serde(flatten)]
    pub both: DirectionConfig,
    #[serde(default)]
    pub a_to_b: Option<DirectionConfig>,
    #[serde(default)]
    pub b_to_a: Option<DirectionConfig>,
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The jitter's distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    Normal,
    Pareto,
}

/// Gilbert-Elliott loss: a good and a bad state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of going from good to bad, per frame.
    pub p: f64,
    /// Probability of going from bad to good, per frame.
    pub r: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
    /// Loss probability in the good state.
    pub loss_good: f64,
}

/// Checked parameters of one direction. Probabilities are 0..=1.
#[derive(Clone, Debug, PartialEq)]
pub struct Impairment {
    pub delay_ns: u64,
    pub jitter_ns: u64,
    pub delay_correlation: f64,
    pub distribution: Distribution,
    pub loss: f64,
    pub loss_correlation: f64,
    pub gilbert_elliott: Option<GilbertElliott>,
    pub duplicate: f64,
    pub reorder: f64,
    pub reorder_gap: u32,
    pub corrupt: f64,
    /// Bytes per second; 0 = unlimited.
    pub rate_bytes_per_s: u64,
    pub burst_bytes: u64,
    pub limit: usize,
}

fn duration_ns(path: &str, q: &Quantity) -> Result<u64, ConfigError> {
    let bad = |what: &str| ConfigError::at(path, what.to_string());
    let ns = match q {
        Quantity::Number(ms) => ms * 1e6,
        Quantity::Text(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| c.is_ascii_alphabetic())
                .ok_or_else(|| bad(&format!("`{s}` needs a unit: ns, us, ms or s")))?;
            let (num, unit) = s.split_at(split);
            let n: f64 = num.trim().parse().map_err(|_| {
                bad(&format!(
                    "expected a duration like 10ms or 250us, but got `{s}`"
                ))
            })?;
            n * match unit {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                _ => return Err(bad(&format!("unknown unit `{unit}`; use ns, us, ms or s"))),
            }
        }
    };
    if !(0.0..=MAX_DELAY_NS as f64).contains(&ns) {
        return Err(bad("must be between 0 and 60s"));
    }
    Ok(ns.round() as u64)
}

fn probability(path: &str, q: &Quantity) -> Result<f64, ConfigError> {
    let pct = match q {
        Quantity::Number(n) => *n,
        Quantity::Text(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| {
                ConfigError::at(
                    path,
                    format!("expected a percentage like 1% or 0.5%, but got `{s}`"),
                )
            })?,
    };
    if !(0.0..=100.0).contains(&pct) {
        return Err(ConfigError::at(
            path,
            format!("{pct}% is not between 0% and 100%"),
        ));
    }
    Ok(pct / 100.0)
}

fn rate_bytes(path: &str, q: &Quantity) -> Result<u64, ConfigError> {
    let bits = match q {
        Quantity::Number(n) => *n,
        Quantity::Text(s) => {
            let t = s.trim().to_ascii_lowercase();
            let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: f64 = num.trim().parse().map_err(|_| {
                ConfigError::at(path, format!("expected a rate like 10mbit, but got `{s}`"))
            })?;
            n * match unit {
                "" | "bit" => 1.0,
                "kbit" => 1e3,
                "mbit" => 1e6,
                "gbit" => 1e9,
                "bps" => 8.0,
                "kbps" => 8e3,
                "mbps" => 8e6,
                "gbps" => 8e9,
                _ => {
                    return Err(ConfigError::at(
                        path,
                        format!("unknown unit `{unit}`; use bit, kbit, mbit, gbit (or bps, kbps, mbps, gbps for bytes)"),
                    ))
                }
            }
        }
    };
    if !(8.0..=1e12).contains(&bits) {
        return Err(ConfigError::at(
            path,
            "a rate must be between 8bit and 1000gbit",
        ));
    }
    Ok((bits / 8.0).round() as u64)
}

impl Impairment {
    /// Checks one direction's block; `path` is where it sits in `config:`.
    pub fn check(c: &DirectionConfig, path: &str) -> Result<Impairment, ConfigError> {
        let key = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        let prob = |k: &str, q: &Option<Quantity>| -> Result<f64, ConfigError> {
            q.as_ref().map_or(Ok(0.0), |q| probability(&key(k), q))
        };
        let dur = |k: &str, q: &Option<Quantity>| -> Result<u64, ConfigError> {
            q.as_ref().map_or(Ok(0), |q| duration_ns(&key(k), q))
        };
        let distribution = match c.distribution.as_deref() {
            None | Some("uniform") => Distribution::Uniform,
            Some("normal") => Distribution::Normal,
            Some("pareto") => Distribution::Pareto,
            Some(other) => {
                return Err(ConfigError::at(
                    key("distribution"),
                    format!("expected uniform, normal or pareto, but got `{other}`"),
                ))
            }
        };
        let gilbert_elliott = match &c.gilbert_elliott {
            None => None,
            Some(ge) => {
                if c.loss.is_some() {
                    return Err(ConfigError::at(
                        key("gilbert_elliott"),
                        "use either `loss` or `gilbert_elliott`, not both",
                    ));
                }
                let p = key("gilbert_elliott");
                Some(GilbertElliott {
                    p: probability(&format!("{p}.p"), &ge.p)?,
                    r: probability(&format!("{p}.r"), &ge.r)?,
                    loss_bad: ge
                        .loss_bad
                        .as_ref()
                        .map_or(Ok(1.0), |q| probability(&format!("{p}.loss_bad"), q))?,
                    loss_good: ge
                        .loss_good
                        .as_ref()
                        .map_or(Ok(0.0), |q| probability(&format!("{p}.loss_good"), q))?,
                })
            }
        };
        let rate_bytes_per_s = match (&c.rate, c.bw) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    key("bw"),
                    "use either `rate` or `bw`, not both",
                ))
            }
            (Some(q), None) => rate_bytes(&key("rate"), q)?,
            (None, Some(mbit)) => rate_bytes(&key("bw"), &Quantity::Number(mbit * 1e6))?,
            (None, None) => 0,
        };
        if c.burst.is_some() && rate_bytes_per_s == 0 {
            return Err(ConfigError::at(key("burst"), "`burst` needs a `rate`"));
        }
        let burst_bytes = c.burst.unwrap_or(1514).max(1514);
        if c.limit.is_some() && c.max_queue_size.is_some() {
            return Err(ConfigError::at(
                key("max_queue_size"),
                "use either `limit` or `max_queue_size`, not both",
            ));
        }
        let limit_key = if c.max_queue_size.is_some() {
            "max_queue_size"
        } else {
            "limit"
        };
        let limit = c.limit.or(c.max_queue_size).unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ConfigError::at(
                key(limit_key),
                format!("{limit} is out of range; use 1 to {MAX_LIMIT} frames"),
            ));
        }
        let reorder = prob("reorder", &c.reorder)?;
        if c.reorder_gap.is_some() && reorder == 0.0 {
            return Err(ConfigError::at(
                key("reorder_gap"),
                "`reorder_gap` needs `reorder`",
            ));
        }
        Ok(Impairment {
            delay_ns: dur("delay", &c.delay)?,
            jitter_ns: dur("jitter", &c.jitter)?,
            delay_correlation: prob("delay_correlation", &c.delay_correlation)?,
            distribution,
            loss: prob("loss", &c.loss)?,
            loss_correlation: prob("loss_correlation", &c.loss_correlation)?,
            gilbert_elliott,
            duplicate: prob("duplicate", &c.duplicate)?,
            reorder,
            reorder_gap: c.reorder_gap.unwrap_or(0),
            corrupt: prob("corrupt", &c.corrupt)?,
            rate_bytes_per_s,
            burst_bytes,
            limit,
        })
    }

    /// Whether frames pass untouched and at once.
    pub fn is_none(&self) -> bool {
        self.delay_ns == 0
            && self.jitter_ns == 0
            && self.loss == 0.0
            && self.gilbert_elliott.is_none()
            && self.duplicate == 0.0
            && self.corrupt == 0.0
            && self.rate_bytes_per_s == 0
    }
}
