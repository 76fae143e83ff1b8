//! `impair`: a two-port link impairment, the model of `tc netem` as a
//! function. Each direction has its own delay and jitter (uniform, normal,
//! pareto; correlated), loss (random with correlation, or Gilbert-Elliott),
//! duplication, reordering, corruption, and a rate limit (token bucket with
//! a burst, a queue limit in frames, tail drop). Frames it must hold wait in
//! its memory and leave from the one-shot timer. See README.md.

mod config;
mod model;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub use config::{Config, Impairment};
use model::{Correlated, Loss, Rng, Shaper};
use vnf_sdk::prelude::*;

/// Most frames released in one timer call (the host's emit limit).
const MAX_RELEASE: usize = nfvhost_abi::MAX_EMIT_PER_CALL;

/// A held frame: when it leaves, in arrival order among equals.
type Held = Reverse<(u64, u64, Vec<u8>)>;

/// One direction of the link: frames in on `from`, out on the other port.
struct Direction {
    imp: Impairment,
    loss: Loss,
    delay_corr: Correlated,
    reorder_corr: Correlated,
    shaper: Shaper,
    /// Frames delayed since the last one sent ahead (netem's reorder gap).
    since_reorder: u32,
    held: BinaryHeap<Held>,
}

impl Direction {
    fn new(imp: Impairment) -> Self {
        Direction {
            imp,
            loss: Loss::default(),
            delay_corr: Correlated::default(),
            reorder_corr: Correlated::default(),
            shaper: Shaper::default(),
            since_reorder: 0,
            held: BinaryHeap::new(),
        }
    }

    fn next_departure(&self) -> Option<u64> {
        self.held.peek().map(|Reverse((t, _, _))| *t)
    }
}

pub struct Impair {
    dirs: [Direction; 2],
    rng: Rng,
    seq: u64,
    armed: Option<u64>,
    queued: Gauge,
    released: Counter,
    lost: Counter,
    tail_drops: Counter,
    duplicated: Counter,
    corrupted: Counter,
    reordered: Counter,
}

/// What happens to one arriving frame.
enum Fate {
    Lost,
    TailDrop,
    /// Leaves at this time.
    Leaves(u64),
}

impl Impair {
    /// Decides when a frame of `len` bytes in direction `d` leaves.
    fn schedule(&mut self, d: usize, now: u64, len: usize) -> Fate {
        let dir = &mut self.dirs[d];
        if dir.loss.lose(&dir.imp, &mut self.rng) {
            return Fate::Lost;
        }
        if dir.held.len() >= dir.imp.limit {
            return Fate::TailDrop;
        }
        let gap = dir.imp.reorder_gap.max(1);
        let ahead = dir.imp.reorder > 0.0
            && dir.since_reorder + 1 >= gap
            && dir.reorder_corr.draw(&mut self.rng, 0.0) < dir.imp.reorder;
        let ready = if ahead {
            dir.since_reorder = 0;
            self.reordered.inc();
            now
        } else {
            dir.since_reorder = dir.since_reorder.saturating_add(1);
            now + model::delay_ns(&dir.imp, &mut self.rng, &mut dir.delay_corr)
        };
        Fate::Leaves(dir.shaper.departure(&dir.imp, ready, len))
    }

    fn hold(&mut self, d: usize, at: u64, frame: Vec<u8>) {
        self.seq += 1;
        self.dirs[d].held.push(Reverse((at, self.seq, frame)));
        self.queued.add(1);
    }

    /// Sets the timer for the earliest held frame.
    fn arm(&mut self, ctx: &mut Context) {
        let next = self.dirs.iter().filter_map(Direction::next_departure).min();
        if next != self.armed {
            match next {
                Some(t) => ctx.set_timer(t),
                None => ctx.cancel_timer(),
            }
            self.armed = next;
        }
    }

    /// Flips one random bit after the Ethernet header.
    fn corrupt(&mut self, data: &mut [u8]) {
        if data.len() > 14 {
            let bit = (self.rng.next_u64() % ((data.len() as u64 - 14) * 8)) as usize;
            data[14 + bit / 8] ^= 1 << (bit % 8);
        }
    }
}

/// Each direction's checked parameters: `a_to_b`, `b_to_a`.
fn directions(config: &Config) -> Result<[Impairment; 2], ConfigError> {
    let both = Impairment::check(&config.both, "")?;
    let a_to_b = match &config.a_to_b {
        Some(c) => Impairment::check(c, "a_to_b")?,
        None => both.clone(),
    };
    let b_to_a = match &config.b_to_a {
        Some(c) => Impairment::check(c, "b_to_a")?,
        None => both,
    };
    Ok([a_to_b, b_to_a])
}

impl Vnf for Impair {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        if ctx.ports().len() != 2 {
            return Err(ConfigError::at("", "impair needs exactly two ports"));
        }
        let [a_to_b, b_to_a] = directions(&config)?;
        let seed = config
            .seed
            .unwrap_or_else(|| vnf_sdk::hash::seed_from_name(ctx.vnf_name()));
        Ok(Impair {
            dirs: [Direction::new(a_to_b), Direction::new(b_to_a)],
            rng: Rng::new(seed),
            seq: 0,
            armed: None,
            queued: ctx.gauge(
                "impair_queued",
                "Frames held for later (delay, rate); neither forwarded nor dropped yet.",
            ),
            released: ctx.counter("impair_released", "Held frames sent when their time came."),
            lost: ctx.counter("impair_lost", "Frames lost by the loss model."),
            tail_drops: ctx.counter("impair_tail_drops", "Frames dropped: the queue was full."),
            duplicated: ctx.counter("impair_duplicated", "Extra copies sent."),
            corrupted: ctx.counter("impair_corrupted", "Frames with a bit flipped."),
            reordered: ctx.counter("impair_reordered", "Frames sent ahead of delayed ones."),
        })
    }

    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let d = usize::from(frame.in_port().min(1));
        let out = 1 - d as u16;
        if self.dirs[d].imp.is_none() && self.dirs[d].held.is_empty() {
            return Verdict::Forward(out);
        }
        let now = ctx.now_ns();
        let at = match self.schedule(d, now, frame.len()) {
            Fate::Lost => {
                self.lost.inc();
                return Verdict::Drop(DropReason::Policy);
            }
            Fate::TailDrop => {
                self.tail_drops.inc();
                return Verdict::Drop(DropReason::Limit);
            }
            Fate::Leaves(at) => at,
        };
        let imp = &self.dirs[d].imp;
        let (dup, corrupt) = (imp.duplicate, imp.corrupt);
        if corrupt > 0.0 && self.rng.uniform() < corrupt && frame.make_ordinary() {
            self.corrupted.inc();
            self.corrupt(frame.data_mut());
        }
        // Frames keep their order behind held ones unless the model says
        // otherwise; one that may leave now with nothing ahead goes at once.
        let verdict = if at <= now && self.dirs[d].next_departure().is_none_or(|t| t > now) {
            Verdict::Forward(out)
        } else if frame.make_ordinary() {
            // Held frames leave through emit, which carries no offload.
            self.hold(d, at, frame.data().to_vec());
            Verdict::Consume
        } else {
            Verdict::Drop(DropReason::Malformed)
        };
        // A copy leaves through emit, so only of a frame without offload
        // state (a forwarded frame keeps the state it arrived with).
        if dup > 0.0 && !frame.has_offload() && self.rng.uniform() < dup {
            self.duplicated.inc();
            if let Fate::Leaves(t) = self.schedule(d, now, frame.len()) {
                self.hold(d, t, frame.data().to_vec());
            }
        }
        self.arm(ctx);
        verdict
    }

    /// New parameters while running (`nfvhost link set`): held frames stay
    /// held with their departure times, the loss and rate state carries on.
    fn reconfigure(&mut self, _ctx: &mut Context, config: Config) -> Result<(), ConfigError> {
        let new = directions(&config)?;
        for (dir, imp) in self.dirs.iter_mut().zip(new) {
            dir.imp = imp;
        }
        Ok(())
    }

    fn timer(&mut self, ctx: &mut Context) {
        self.armed = None;
        let now = ctx.now_ns();
        let mut budget = MAX_RELEASE;
        for d in 0..2 {
            while budget > 0 && self.dirs[d].next_departure().is_some_and(|t| t <= now) {
                let Some(Reverse((_, _, frame))) = self.dirs[d].held.pop() else {
                    break;
                };
                budget -= 1;
                self.queued.sub(1);
                if ctx.emit(1 - d as u16, &frame).is_ok() {
                    self.released.inc();
                }
            }
        }
        if budget == 0 {
            // More are due: come back at once.
            ctx.set_timer(now);
            self.armed = Some(now);
        } else {
            self.arm(ctx);
        }
    }
}

vnf_sdk::export_vnf!(Impair);

#[cfg(test)]
mod tests;
