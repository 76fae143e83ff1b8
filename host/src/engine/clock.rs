//! Where a module's time comes from: the host's monotonic clock (a worker),
//! or a clock the caller sets (`nfvhost test`, where a pcap's timestamps
//! drive time so that time-dependent modules behave the same on every run).

use std::time::Instant;

/// The time source of an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockMode {
    /// Nanoseconds since the instance was created, from the monotonic clock.
    #[default]
    Real,
    /// Starts at 0 and moves only by [`super::VnfInstance::set_time`].
    Manual,
}

/// The clock of one store.
#[derive(Debug)]
pub(super) struct Clock {
    origin: Instant,
    manual: Option<i64>,
}

impl Clock {
    pub(super) fn new(mode: ClockMode) -> Self {
        Clock {
            origin: Instant::now(),
            manual: (mode == ClockMode::Manual).then_some(0),
        }
    }

    /// A clock of `mode` whose real time counts from `origin` (the clock of
    /// the instance a replacement takes over from).
    pub(super) fn with_origin(mode: ClockMode, origin: Instant) -> Self {
        Clock {
            origin,
            ..Clock::new(mode)
        }
    }

    /// The instant real time counts from.
    pub(super) fn origin(&self) -> Instant {
        self.origin
    }

    /// The module's `now_ns`.
    pub(super) fn now_ns(&self) -> i64 {
        match self.manual {
            Some(ns) => ns,
            None => self.origin.elapsed().as_nanos() as i64,
        }
    }

    /// Sets a manual clock (time never goes back); a real clock ignores it.
    pub(super) fn set(&mut self, ns: i64) {
        if let Some(now) = &mut self.manual {
            *now = (*now).max(ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_forward_and_only_when_set() {
        let mut c = Clock::new(ClockMode::Manual);
        assert_eq!(c.now_ns(), 0);
        c.set(1_000);
        assert_eq!(c.now_ns(), 1_000);
        c.set(500);
        assert_eq!(c.now_ns(), 1_000);
        let mut r = Clock::new(ClockMode::Real);
        r.set(i64::MAX);
        assert!(r.now_ns() < i64::MAX);
    }
}
