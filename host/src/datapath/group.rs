//! The loop of a worker process: one module, or the several modules of a
//! fused group, each its own [`Worker`] (instance, memory, limits, epoch
//! deadline, stats segment) over its own ports.
//!
//! One wakeup runs to completion: after every member has read its kernel
//! ports once, frames a member forwarded over an in-memory link are
//! processed by the member at the other end in the same wakeup, round
//! after round, until no link holds a frame, with no system call between
//! the members. A forwarding loop between modules would never empty the
//! links: a wakeup stops after [`MAX_ROUNDS`] rounds (counted in the
//! `hop_limit_hits` of each member with frames left), and the frames left
//! wait for the next one.

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
    for m in members.iter().filter(|m| m.has_pending()) {
        m.stats().hop_limit_hits.fetch_add(1, Relaxed);
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::datapath::port::fake::{FakeHandle, FakePort};
    use crate::datapath::port::memory;
    use crate::datapath::port::Port;
    use crate::datapath::worker::tests::{frame, instantiator, Rig};

    /// One member per rig in a line, linked in memory: a fake wire, member
    /// 0, ..., the last member, a fake wire. The test module forwards a
    /// frame to its other port.
    fn line(rigs: &[Rig]) -> (Vec<Worker<'_>>, FakeHandle, FakeHandle) {
        let (first, wire_in) = FakePort::new("in");
        let (last, wire_out) = FakePort::new("out");
        let mut lefts: Vec<Box<dyn Port>> = vec![Box::new(first)];
        let mut rights: Vec<Box<dyn Port>> = Vec::new();
        for _ in 1..rigs.len() {
            let (near, far) = memory::link("right", "left", 64);
            rights.push(Box::new(near));
            lefts.push(Box::new(far));
        }
        rights.push(Box::new(last));
        let members = rigs
            .iter()
            .zip(lefts.into_iter().zip(rights))
            .map(|(rig, (l, r))| {
                Worker::new(vec![l, r], &rig.stats, instantiator(&rig.engine)).unwrap()
            })
            .collect();
        (members, wire_in, wire_out)
    }

    #[test]
    fn a_frame_crosses_every_member_both_ways_in_one_wakeup() {
        let rigs: Vec<Rig> = (0..4).map(|_| Rig::new()).collect();
        let (mut members, wire_in, wire_out) = line(&rigs);
        wire_in.inject(&frame(0, 1));
        wire_in.inject(&frame(0, 2));
        // Against the members' order: one round per hop, same wakeup.
        wire_out.inject(&frame(0, 3));
        assert_eq!(run_to_completion(&mut members).unwrap(), 12);
        assert_eq!(wire_out.sent(), [frame(0, 1), frame(0, 2)]);
        assert_eq!(wire_in.sent(), [frame(0, 3)]);
        for rig in &rigs {
            assert_eq!(rig.assert_conserved(), (3, 3, 0, 0));
            // One call per direction at most: the batch moved whole.
            assert!(rig.stats.call_ns.count.load(Relaxed) <= 2);
        }
        // An internal link is a port with its counters, at both ends.
        assert_eq!(rigs[1].stats.ports[0].rx_packets.load(Relaxed), 2);
        assert_eq!(rigs[0].stats.ports[1].tx_packets.load(Relaxed), 2);
        assert_eq!(rigs[0].stats.hop_limit_hits.load(Relaxed), 0);
        assert_eq!(run_to_completion(&mut members).unwrap(), 0);
    }

    #[test]
    fn a_forwarding_loop_between_members_stops_at_the_hop_bound() {
        let rigs: Vec<Rig> = (0..2).map(|_| Rig::new()).collect();
        // a.1 -> b.0 and b.1 -> a.0: a ring the frame never leaves.
        let (a0, mut b1) = memory::link("a0", "b1", 64);
        let (a1, b0) = memory::link("a1", "b0", 64);
        assert_eq!(b1.send_batch(&[&frame(0, 7)], &[]).unwrap(), 1);
        let a = Worker::new(
            vec![Box::new(a0), Box::new(a1)],
            &rigs[0].stats,
            instantiator(&rigs[0].engine),
        );
        let b = Worker::new(
            vec![Box::new(b0), Box::new(b1)],
            &rigs[1].stats,
            instantiator(&rigs[1].engine),
        );
        let mut members = vec![a.unwrap(), b.unwrap()];
        let moved = run_to_completion(&mut members).unwrap();
        assert!(
            (MAX_ROUNDS..=2 * MAX_ROUNDS + 2).contains(&moved),
            "{moved}"
        );
        let hits = |r: &Rig| r.stats.hop_limit_hits.load(Relaxed);
        assert_eq!(hits(&rigs[0]) + hits(&rigs[1]), 1, "one frame, one member");
        // The frame waits for the next wakeup; the counts still conserve.
        assert!(members.iter().any(|m| m.has_pending()));
        for rig in &rigs {
            rig.assert_conserved();
        }
    }

    #[test]
    fn a_trap_in_one_member_restarts_that_member_only() {
        let rigs: Vec<Rig> = (0..2).map(|_| Rig::new()).collect();
        let (mut members, wire_in, wire_out) = line(&rigs);
        // 0x06: each module writes its call count into byte 1.
        for _ in 0..3 {
            wire_in.inject(&frame(6, 0));
            run_to_completion(&mut members).unwrap();
        }
        // From the far side, only member 1 sees the frame it traps on.
        wire_out.inject(&frame(0xee, 0));
        run_to_completion(&mut members).unwrap();
        assert_eq!(rigs[1].stats.instance_generation.load(Relaxed), 2);
        assert_eq!(rigs[0].stats.instance_generation.load(Relaxed), 1);
        wire_in.inject(&frame(6, 0));
        run_to_completion(&mut members).unwrap();
        // Member 0 kept its state (its 4th call); member 1 starts again,
        // and its count overwrites byte 1 last.
        let last = wire_out.sent().last().unwrap().clone();
        assert_eq!(last[1], 1, "member 1 was restarted");
        // Back the other way member 0 writes last: its 5th call, state kept.
        wire_out.inject(&frame(6, 0));
        run_to_completion(&mut members).unwrap();
        assert_eq!(
            wire_in.sent().last().unwrap()[1],
            5,
            "member 0 kept its state"
        );
        assert_eq!(rigs[1].stats.traps[1].load(Relaxed), 1);
        assert_eq!(
            rigs[0]
                .stats
                .traps
                .iter()
                .map(|t| t.load(Relaxed))
                .sum::<u64>(),
            0
        );
        for rig in &rigs {
            rig.assert_conserved();
        }
    }
}
