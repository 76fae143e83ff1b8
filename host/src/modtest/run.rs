//! Feeding frames through a module the way a worker does (the same engine,
//! instance and batch), one frame per call, with the frames' timestamps as
//! the module's clock and its timer ticked on the worker's schedule.

use std::time::Duration;

use nfvhost_abi::{DropReason, Verdict};

use super::target::Target;
use crate::engine::{Batch, CallFailure, Engine, FrameIn, InstanceError, VnfInstance};

/// Longest stretch of module time a run simulates (ticks are run one by
/// one, as a worker would).
pub const MAX_SPAN: Duration = Duration::from_secs(24 * 3600);

/// A frame to feed in.
#[derive(Clone, Debug)]
pub struct Input {
    /// Its capture timestamp.
    pub ts: Duration,
    /// The port it arrives on.
    pub port: u16,
    pub data: Vec<u8>,
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// The module's timer period (the worker's).
    pub tick_every: Duration,
    /// Module time to keep ticking after the last frame (timeouts, leases).
    pub linger: Duration,
}

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("couldn't start the module: {0}")]
    Instantiate(#[from] Box<InstanceError>),
    #[error("input frame {number} is {len} bytes; the module's frame slots hold {slot} (set `datapath: {{ offload: true }}` in the chain file for larger frames)")]
    TooLarge {
        number: usize,
        len: usize,
        slot: usize,
    },
    #[error("the input spans {span:?} of time; a test simulates at most {MAX_SPAN:?}")]
    TooLong { span: Duration },
    #[error("the module's one-shot timer fired {MAX_TIMERS_AT_ONCE} times without time moving on (it keeps setting it in the past)")]
    TimerLoop,
}

/// How many one-shot timer calls may come due at one instant before a test
/// gives up on the module (a worker would spin on it).
const MAX_TIMERS_AT_ONCE: usize = 10_000;

/// What happened to one input frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent out of this port, `len` bytes.
    Forward {
        port: u16,
        len: usize,
    },
    Drop(DropReason),
    Consume,
    /// The call failed (trap or timeout); the instance was restarted, as a
    /// worker does.
    Failed(CallFailure),
}

/// One call into the module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// Input frame `number` (1-based, in feeding order).
    Frame {
        number: usize,
        in_port: u16,
        len: usize,
        outcome: Outcome,
    },
    /// The timer; listed only when it emitted something or failed.
    Tick { failure: Option<CallFailure> },
    /// The module's one-shot timer (`nfv_timer`); listed like a tick.
    Timer { failure: Option<CallFailure> },
}

/// One call, when it happened (module time) and what the module emitted
/// during it: (port, length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub kind: StepKind,
    pub emitted: Vec<(u16, usize)>,
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct Run {
    pub steps: Vec<Step>,
    /// Per port: the frames that left it, with capture timestamps (the
    /// first input's timestamp plus module time), in order.
    pub outputs: Vec<Vec<(Duration, Vec<u8>)>>,
}

struct Runner<'a> {
    engine: &'a Engine,
    target: &'a Target,
    instance: VnfInstance,
    batch: Batch,
    origin: Duration,
    run: Run,
}

impl Runner<'_> {
    fn instantiate(engine: &Engine, target: &Target) -> Result<VnfInstance, RunError> {
        VnfInstance::new(
            engine,
            &target.module,
            &target.vnf,
            target.ports.len() as u16,
            target.init_document.as_bytes(),
            target.limits.clone(),
        )
        .map_err(|e| RunError::Instantiate(Box::new(e)))
    }

    /// After a failed call: a fresh instance whose clock continues at `at`.
    fn restart(&mut self, at: Duration) -> Result<(), RunError> {
        self.instance = Self::instantiate(self.engine, self.target)?;
        self.instance.set_time(nanos(at));
        Ok(())
    }

    fn collect_emitted(&mut self, at: Duration) -> Vec<(u16, usize)> {
        let ts = self.origin + at;
        let mut emitted = Vec::new();
        for (port, bytes) in self.instance.emitted() {
            emitted.push((port, bytes.len()));
            self.run.outputs[usize::from(port)].push((ts, bytes.to_vec()));
        }
        emitted
    }

    fn tick(&mut self, at: Duration) -> Result<(), RunError> {
        self.fire_timers_until(at)?;
        self.instance.set_time(nanos(at));
        let failure = self.instance.tick().err();
        self.record_timer_call(at, failure, |failure| StepKind::Tick { failure })
    }

    /// Runs every one-shot timer the module set for `until` or earlier, each
    /// at its own time, as a worker would between frames.
    fn fire_timers_until(&mut self, until: Duration) -> Result<(), RunError> {
        let mut at_once = 0;
        let mut last = None;
        while let Some(ns) = self
            .instance
            .timer_ns()
            .filter(|ns| *ns <= nanos(until) as u64)
        {
            at_once = if last == Some(ns) { at_once + 1 } else { 0 };
            if at_once >= MAX_TIMERS_AT_ONCE {
                return Err(RunError::TimerLoop);
            }
            last = Some(ns);
            let at = Duration::from_nanos(ns);
            self.instance.set_time(ns as i64);
            let failure = self.instance.fire_timer().err();
            self.record_timer_call(at, failure, |failure| StepKind::Timer { failure })?;
        }
        Ok(())
    }

    /// Collects what a tick or timer call at `at` emitted (or restarts the
    /// instance after a failure) and lists the call when it did something.
    fn record_timer_call(
        &mut self,
        at: Duration,
        failure: Option<CallFailure>,
        kind: impl FnOnce(Option<CallFailure>) -> StepKind,
    ) -> Result<(), RunError> {
        let emitted = if failure.is_none() {
            self.collect_emitted(at)
        } else {
            self.restart(at)?;
            Vec::new()
        };
        if failure.is_some() || !emitted.is_empty() {
            self.run.steps.push(Step {
                at,
                kind: kind(failure),
                emitted,
            });
        }
        Ok(())
    }

    fn frame(&mut self, number: usize, at: Duration, input: &Input) -> Result<(), RunError> {
        let slot = self.instance.slot_size();
        if input.data.len() > slot {
            return Err(RunError::TooLarge {
                number,
                len: input.data.len(),
                slot,
            });
        }
        self.fire_timers_until(at)?;
        self.instance.set_time(nanos(at));
        let first = self
            .instance
            .slots_mut()
            .next()
            .expect("a batch has a slot");
        first[..input.data.len()].copy_from_slice(&input.data);
        self.batch.clear();
        self.batch
            .push(FrameIn::plain(input.port, input.data.len()));
        let (outcome, emitted) = match self.instance.process(&mut self.batch) {
            Ok(()) => {
                let (verdict, len) = self.batch.verdicts()[0];
                let outcome = match verdict {
                    Verdict::Forward(port) => {
                        let ts = self.origin + at;
                        let bytes = self.instance.frame(0, len).to_vec();
                        self.run.outputs[usize::from(port)].push((ts, bytes));
                        Outcome::Forward { port, len }
                    }
                    Verdict::Drop(reason) => Outcome::Drop(reason),
                    Verdict::Consume => Outcome::Consume,
                };
                (outcome, self.collect_emitted(at))
            }
            Err(failure) => {
                self.restart(at)?;
                (Outcome::Failed(failure), Vec::new())
            }
        };
        self.run.steps.push(Step {
            at,
            kind: StepKind::Frame {
                number,
                in_port: input.port,
                len: input.data.len(),
                outcome,
            },
            emitted,
        });
        Ok(())
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Feeds `inputs` (already in arrival order) through the module of
/// `target`. Module time starts at 0 at the first frame's timestamp; a
/// frame never moves time back. Before each frame the timer runs for every
/// period that has passed, as in a worker.
pub fn run(
    engine: &Engine,
    target: &Target,
    inputs: &[Input],
    options: &Options,
) -> Result<Run, RunError> {
    let origin = inputs.iter().map(|i| i.ts).min().unwrap_or_default();
    let last = inputs
        .iter()
        .map(|i| i.ts - origin)
        .max()
        .unwrap_or_default();
    let span = last + options.linger;
    if span > MAX_SPAN {
        return Err(RunError::TooLong { span });
    }
    let tick_every = options.tick_every.max(Duration::from_millis(1));
    let mut runner = Runner {
        engine,
        target,
        instance: Runner::instantiate(engine, target)?,
        batch: Batch::new(1),
        origin,
        run: Run {
            steps: Vec::new(),
            outputs: vec![Vec::new(); target.ports.len()],
        },
    };
    let mut now = Duration::ZERO;
    let mut next_tick = tick_every;
    for (i, input) in inputs.iter().enumerate() {
        now = now.max(input.ts.saturating_sub(origin));
        while next_tick <= now {
            runner.tick(next_tick)?;
            next_tick += tick_every;
        }
        runner.frame(i + 1, now, input)?;
    }
    while next_tick <= span {
        runner.tick(next_tick)?;
        next_tick += tick_every;
    }
    runner.fire_timers_until(span)?;
    Ok(runner.run)
}
