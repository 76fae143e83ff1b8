//! Port health: which ports of a worker are down because their link went
//! away (deleted, or set down) and when to look at each again.
//!
//! The worker marks a port down when `poll` reports its descriptor broken
//! (`POLLERR`, `POLLHUP`, `POLLNVAL`) or a receive or send fails with an
//! error that says the link is gone ([`link_gone`]). A down port is out of
//! the poll set (a dead TAP descriptor is always "ready": waiting on it
//! would spin), its `up` counter is 0, and frames the module forwards to it
//! are dropped as `port_down`. Every [`RETRY_EVERY`] the worker asks the
//! port whether its link is back ([`super::port::Port::recheck`]).

use std::io;
use std::time::{Duration, Instant};

/// How often a down port is looked at again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Whether `e`, from a receive or a send, says the port's link is gone or
/// down rather than that one frame failed: `ENXIO` (a packet socket whose
/// interface was deleted), `ENETDOWN` (its interface went down),
/// `ENODEV`, and `EBADFD` (a TAP descriptor whose device was deleted).
pub fn link_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENXIO | libc::ENETDOWN | libc::ENODEV | libc::EBADFD)
    )
}

/// Per port: up, or down with the time of the next look.
#[derive(Debug)]
pub struct PortHealth {
    retry_at: Vec<Option<Instant>>,
}

impl PortHealth {
    /// `ports` ports, all up.
    pub fn new(ports: usize) -> Self {
        PortHealth {
            retry_at: vec![None; ports],
        }
    }

    pub fn is_down(&self, port: usize) -> bool {
        self.retry_at.get(port).is_some_and(Option::is_some)
    }

    /// Marks `port` down, to be looked at again [`RETRY_EVERY`] after
    /// `now`. Returns whether it was up.
    pub fn mark_down(&mut self, port: usize, now: Instant) -> bool {
        let was_up = !self.is_down(port);
        if let Some(cell) = self.retry_at.get_mut(port) {
            *cell = Some(now + RETRY_EVERY);
        }
        was_up
    }

    pub fn mark_up(&mut self, port: usize) {
        if let Some(cell) = self.retry_at.get_mut(port) {
            *cell = None;
        }
    }

    /// The down ports due for a look at `now`.
    pub fn due(&self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        self.retry_at
            .iter()
            .enumerate()
            .filter(move |(_, at)| at.is_some_and(|at| at <= now))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_port_is_due_once_a_second_until_it_is_up() {
        let t0 = Instant::now();
        let mut h = PortHealth::new(3);
        assert!(h.mark_down(1, t0));
        assert!(!h.mark_down(1, t0), "already down");
        assert!(h.is_down(1) && !h.is_down(0) && !h.is_down(7));
        assert_eq!(h.due(t0).count(), 0);
        let later = t0 + RETRY_EVERY;
        assert_eq!(h.due(later).collect::<Vec<_>>(), [1]);
        h.mark_down(1, later);
        assert_eq!(h.due(later).count(), 0, "the next look is a second on");
        h.mark_up(1);
        assert!(!h.is_down(1));
        assert_eq!(h.due(later + RETRY_EVERY * 5).count(), 0);
    }

    #[test]
    fn only_errors_that_say_the_link_is_gone_take_a_port_down() {
        for errno in [libc::ENXIO, libc::ENETDOWN, libc::ENODEV, libc::EBADFD] {
            assert!(link_gone(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::EMSGSIZE, libc::ENOBUFS, libc::EAGAIN, libc::EINVAL] {
            assert!(!link_gone(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
    }
}
