//! The loop of a worker process: one module, or the several modules of a
//! fused group, each its own [`Worker`] (instance, memory, limits, epoch
//! deadline, stats segment) over its own ports.
//!
//! One wakeup runs to completion: after every member has read its kernel
//! ports once, frames a member forwarded over an in-memory link are
//! processed by the member at the other end in the same wakeup, round
//! after round, until no link holds a frame, with no system call between
//! the members. A forwarding loop between modules would never empty the
//! links: a wakeup stops after [`MAX_ROUNDS`] rounds (counted in the first
//! member's `hop_limit_hits`), and the frames left wait for the next one.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::worker::{Worker, WorkerError};

/// Rounds over the in-memory links per wakeup: a frame crosses at most this
/// many links of a group before the worker looks at its sockets and timers
/// again.
pub const MAX_ROUNDS: usize = 64;

/// Runs `members` until `stop()` says so: waits for frames on any of their
/// kernel ports (unless `busy_poll`), moves batches to completion, and
/// ticks every member every `tick_every`.
pub fn run_all(
    members: &mut [Worker<'_>],
    tick_every: Duration,
    busy_poll: bool,
    stop: impl Fn() -> bool,
) -> Result<(), WorkerError> {
    let mut next_tick = Instant::now() + tick_every;
    // After a wakeup that brought frames, read again before sleeping: under
    // load the sockets are rarely empty, and poll() would be a wasted call.
    let mut busy = false;
    while !stop() {
        if !busy && !busy_poll && !members.iter().any(|m| m.has_pending()) {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            Worker::wait_all(members, timeout)?;
        }
        busy = run_to_completion(members)? > 0;
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + tick_every;
            for m in members.iter_mut() {
                m.tick()?;
            }
        }
    }
    for m in members.iter() {
        m.mark_down();
    }
    Ok(())
}

/// One wakeup: every member reads its ports once, then the members with
/// frames waiting on an in-memory link take them, until none waits or
/// [`MAX_ROUNDS`] rounds have run. Returns the frames the members received.
pub fn run_to_completion(members: &mut [Worker<'_>]) -> Result<usize, WorkerError> {
    let mut moved = 0;
    for m in members.iter_mut() {
        moved += m.poll_once()?;
    }
    for _ in 0..MAX_ROUNDS {
        if !members.iter().any(|m| m.has_pending()) {
            return Ok(moved);
        }
        for m in members.iter_mut() {
            if m.has_pending() {
                moved += m.poll_pending()?;
            }
        }
    }
    if members.iter().any(|m| m.has_pending()) {
        if let Some(first) = members.first() {
            first.stats().hop_limit_hits.fetch_add(1, Relaxed);
        }
    }
    Ok(moved)
}
