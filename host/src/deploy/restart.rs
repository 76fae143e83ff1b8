//! When the supervisor restarts a worker, and when it gives up: a restart
//! budget with exponential backoff that resets after a healthy period, and
//! the heartbeat rule for a worker that is alive but stuck.

use std::time::{Duration, Instant};

/// Failures in a row (without a healthy period between) before giving up.
pub const RESTART_BUDGET: u32 = 8;
/// A worker that ran this long was healthy: its next failure starts a new
/// series (restarted at once, full budget).
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Delay before the second restart of a series; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A worker whose loop has not turned for this long (plus three ticks) is
/// hung and killed.
pub const HANG_AFTER: Duration = Duration::from_secs(2);
/// How long after a (re)start the heartbeat is not yet checked.
pub const START_GRACE: Duration = Duration::from_secs(5);

/// What to do about a worker that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start a new worker at this time.
    RestartAt(Instant),
    /// The budget is spent: leave the VNF down.
    GiveUp { failures: u32 },
}

/// One VNF's restart history.
#[derive(Clone, Debug, Default)]
pub struct RestartPolicy {
    /// Failures in the current series.
    failures: u32,
}

impl RestartPolicy {
    /// A worker that started at `started` exited at `now`.
    pub fn on_exit(&mut self, started: Instant, now: Instant) -> Decision {
        if now.saturating_duration_since(started) >= HEALTHY_AFTER {
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures > RESTART_BUDGET {
            return Decision::GiveUp {
                failures: self.failures - 1,
            };
        }
        // The first failure of a series restarts at once: a single crash
        // costs only the start-up time.
        let delay = match self.failures {
            1 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_BACKOFF),
        };
        Decision::RestartAt(now + delay)
    }
}

/// Whether a worker started at `started_ms` whose last heartbeat is
/// `heartbeat_ms` (0: none yet) is hung at `now_ms` (all CLOCK_MONOTONIC
/// milliseconds), given its tick period.
pub fn hung(started_ms: u64, heartbeat_ms: u64, now_ms: u64, tick: Duration) -> bool {
    let limit = (HANG_AFTER + tick * 3).as_millis() as u64;
    let last = heartbeat_ms.max(started_ms + START_GRACE.as_millis() as u64);
    now_ms.saturating_sub(last) > limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_crash_restarts_at_once_and_a_loop_backs_off_then_gives_up() {
        let mut p = RestartPolicy::default();
        let t0 = Instant::now();
        assert_eq!(p.on_exit(t0, t0), Decision::RestartAt(t0));
        let mut delays = Vec::new();
        for _ in 1..RESTART_BUDGET {
            match p.on_exit(t0, t0) {
                Decision::RestartAt(at) => delays.push(at - t0),
                other => panic!("gave up early: {other:?}"),
            }
        }
        assert_eq!(delays[0], FIRST_BACKOFF);
        assert_eq!(delays[1], FIRST_BACKOFF * 2);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), MAX_BACKOFF);
        assert_eq!(
            p.on_exit(t0, t0),
            Decision::GiveUp {
                failures: RESTART_BUDGET
            }
        );
    }

    #[test]
    fn a_healthy_period_resets_the_budget() {
        let mut p = RestartPolicy::default();
        let t0 = Instant::now();
        for _ in 0..RESTART_BUDGET {
            p.on_exit(t0, t0);
        }
        let later = t0 + HEALTHY_AFTER;
        assert_eq!(p.on_exit(t0, later), Decision::RestartAt(later));
    }

    #[test]
    fn a_worker_is_hung_when_its_heartbeat_stops() {
        let tick = Duration::from_millis(100);
        let start = 1_000_000;
        // No heartbeat yet, within the start-up grace: not hung.
        assert!(!hung(start, 0, start + 5_000, tick));
        // Beating: not hung.
        assert!(!hung(start, start + 9_000, start + 9_100, tick));
        // Stopped for longer than HANG_AFTER plus three ticks: hung.
        assert!(hung(start, start + 9_000, start + 9_000 + 2_301, tick));
        assert!(!hung(start, start + 9_000, start + 9_000 + 2_299, tick));
        // Never beat at all after the grace: hung.
        assert!(hung(start, 0, start + 5_000 + 2_301, tick));
    }
}
