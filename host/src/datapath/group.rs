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

use super::worker::{serve_control, sleep_for, Worker, WorkerError};
use crate::chain::PollMode;

/// Rounds over the in-memory links per wakeup: a frame crosses at most this
/// many links of a group before the worker looks at its sockets and timers
/// again.
pub const MAX_ROUNDS: usize = 64;

/// Runs `members` until `stop()` says so: waits for frames on any of their
/// kernel ports (as `poll` says) or for the earliest member's one-shot
/// timer, moves batches to completion, runs each member's due timer, hands
/// each member the configuration `nfvhost link set` left for it (on
/// SIGUSR1), and every `tick_every` ticks every member and serves
/// `nfvhost replace` for any member over the process's one control channel.
pub fn run_all(
    members: &mut [Worker<'_>],
    tick_every: Duration,
    poll: PollMode,
    stop: impl Fn() -> bool,
) -> Result<(), WorkerError> {
    // One channel per process, whichever member was handed it.
    let mut control = members.iter_mut().find_map(|m| m.take_control());
    let reconfigurable = members.iter().any(|m| m.link_set.is_some());
    let mut next_tick = Instant::now() + tick_every;
    // After a wakeup that brought frames, read again before sleeping: under
    // load the sockets are rarely empty, and poll() would be a wasted call.
    let mut busy = false;
    // An adaptive worker reads without sleeping until then (see PollMode).
    let mut awake_until = Instant::now();
    while !stop() {
        if !stays_awake(poll, busy, Instant::now(), awake_until)
            && !members.iter().any(|m| m.has_pending())
        {
            // Until a frame, the tick or the earliest member's timer.
            let timer = members.iter().filter_map(|m| m.timer_deadline()).min();
            let timeout = sleep_for(Instant::now(), next_tick, timer);
            if !timeout.is_zero() {
                Worker::wait_all(members, timeout)?;
            }
        }
        busy = run_to_completion(members)? > 0;
        if busy && poll == PollMode::Adaptive {
            awake_until = Instant::now() + PollMode::ADAPTIVE_SPIN;
        }
        // What a timer emits onto an in-memory link waits there: the next
        // turn does not sleep while a link holds a frame.
        for m in members.iter_mut() {
            m.fire_timer()?;
        }
        if reconfigurable && super::sys::process::reconfigure_requested() {
            for m in members.iter_mut() {
                m.reconfigure();
            }
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + tick_every;
            for m in members.iter_mut() {
                m.tick()?;
            }
            serve_control(&mut control, members);
        }
    }
    for m in members.iter() {
        m.mark_down();
    }
    Ok(())
}

/// Whether the loop reads again without sleeping: after a turn that brought
/// frames (`busy`) in every mode but busy polling, which never sleeps; and
/// in adaptive mode also until `awake_until`, [`PollMode::ADAPTIVE_SPIN`]
/// after the last frame.
fn stays_awake(poll: PollMode, busy: bool, now: Instant, awake_until: Instant) -> bool {
    match poll {
        PollMode::Sleep => busy,
        PollMode::Adaptive => busy || now < awake_until,
        PollMode::Busy => true,
    }
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
    use crate::datapath::worker::Instantiator;

    /// One member per rig in a line, linked in memory: a fake wire, member
    /// 0, ..., the last member, a fake wire. The test module forwards a
    /// frame to its other port.
    fn line(rigs: &[Member]) -> (Vec<Worker<'_>>, FakeHandle, FakeHandle) {
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
            .enumerate()
            .map(|(i, (rig, (l, r)))| {
                let instantiator = match &rig.module {
                    Some(wat) => with_module(&rig.rig.engine, wat),
                    None => instantiator(&rig.rig.engine),
                };
                let instantiator = Instantiator {
                    vnf: format!("m{i}"),
                    ..instantiator
                };
                Worker::new(vec![l, r], &rig.rig.stats, instantiator).unwrap()
            })
            .collect();
        (members, wire_in, wire_out)
    }

    /// A member's rig and, unless it runs the scripted test module, its
    /// module's text.
    struct Member {
        rig: Rig,
        module: Option<&'static str>,
    }

    fn scripted(n: usize) -> Vec<Member> {
        (0..n)
            .map(|_| Member {
                rig: Rig::new(),
                module: None,
            })
            .collect()
    }

    fn with_module(engine: &crate::engine::Engine, wat: &str) -> Instantiator {
        Instantiator {
            module: engine
                .load_bytes(std::path::Path::new("member.wat"), wat.as_bytes())
                .expect("the test module loads"),
            ..instantiator(engine)
        }
    }

    /// Consumes every frame and sets its one-shot timer due at once;
    /// `nfv_timer` emits 14 bytes starting "timer" on port 1.
    const TIMER: &str = r#"(module
      (import "nfv" "emit" (func $emit (param i32 i32 i32) (result i32)))
      (import "nfv" "timer_at" (func $timer_at (param i64)))
      (memory (export "memory") 4)
      (global $heap (mut i32) (i32.const 1024))
      (data (i32.const 16) "timer")
      (func (export "nfv_abi_version") (result i32) (i32.const 3))
      (func (export "nfv_alloc") (param $len i32) (result i32)
        (local $p i32)
        (local.set $p (global.get $heap))
        (global.set $heap
          (i32.and (i32.add (i32.add (local.get $p) (local.get $len)) (i32.const 15))
                   (i32.const -16)))
        (local.get $p))
      (func (export "nfv_init") (param i32 i32) (result i32) (i32.const 0))
      (func (export "nfv_tick") (param i64))
      (func (export "nfv_timer") (param i64)
        (drop (call $emit (i32.const 1) (i32.const 16) (i32.const 14))))
      (func (export "nfv_process") (param $descs i32) (param $count i32) (result i32)
        (local $i i32)
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
            (i32.store offset=16
              (i32.add (local.get $descs) (i32.mul (local.get $i) (i32.const 24)))
              (i32.const 0x03000000))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
        (call $timer_at (i64.const 0))
        (i32.const 0)))"#;

    #[test]
    fn only_busy_and_adaptive_modes_stay_awake_after_the_traffic() {
        let now = Instant::now();
        let later = now + PollMode::ADAPTIVE_SPIN;
        // A turn that brought frames reads again in every mode.
        for mode in PollMode::ALL {
            assert!(stays_awake(*mode, true, now, now), "{mode:?}");
        }
        // A quiet turn: a sleeping worker sleeps; an adaptive one only once
        // its spin after the last frame is over; a busy one never.
        assert!(!stays_awake(PollMode::Sleep, false, now, later));
        assert!(stays_awake(PollMode::Adaptive, false, now, later));
        assert!(!stays_awake(PollMode::Adaptive, false, later, later));
        assert!(stays_awake(PollMode::Busy, false, later, now));
    }

    /// Runs `run_all` for `turns` turns of its loop.
    fn run_turns(members: &mut [Worker<'_>], turns: usize) {
        let left = std::cell::Cell::new(turns);
        run_all(members, Duration::from_millis(1), PollMode::Sleep, || {
            let n = left.get();
            left.set(n.saturating_sub(1));
            n == 0
        })
        .unwrap();
    }

    #[test]
    fn the_timer_of_a_member_behind_an_in_memory_link_fires_in_the_group_loop() {
        let mut rigs = scripted(1);
        rigs.push(Member {
            rig: Rig::new(),
            module: Some(TIMER),
        });
        let (mut members, wire_in, wire_out) = line(&rigs);
        assert!(members.iter().all(|m| m.timer_deadline().is_none()));
        wire_in.inject(&frame(0, 1));
        run_turns(&mut members, 3);
        // Member 0 forwarded the frame in memory, member 1 consumed it and
        // set its timer, whose frame left by member 1's port 1.
        let sent = wire_out.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(&sent[0][..5], b"timer");
        let stats = &rigs[1].rig.stats;
        assert_eq!(stats.consumed.load(Relaxed), 1);
        assert_eq!(stats.emitted.load(Relaxed), 1);
        assert!(members[1].timer_deadline().is_none(), "one-shot");
    }

    #[test]
    fn replace_reaches_the_member_the_request_names_and_only_it() {
        use std::os::fd::AsFd as _;

        use crate::datapath::worker::{ReplaceReply, ReplaceRequest};
        use crate::sys::handover;

        let rigs = scripted(3);
        let (mut members, _wire_in, _wire_out) = line(&rigs);
        let (supervisor, worker_end) = handover::socket_pair().unwrap();
        let mut control = Some(worker_end);
        let engine = &rigs[0].rig.engine;
        let mut ask = |vnf: &str, generation: u64| -> ReplaceReply {
            let module = with_module(engine, include_str!("testdata/scripted.wat")).module;
            let bytes = module.module.serialize().unwrap();
            let artifact = handover::sealed_memfd("test-module", &bytes).unwrap();
            let request = ReplaceRequest {
                vnf: vnf.into(),
                generation,
                module: "member.wat".into(),
                digest: module.digest.clone(),
                init_document: "{}".into(),
            };
            let text = serde_json::to_vec(&request).unwrap();
            handover::send(supervisor.as_fd(), &text, Some(artifact.as_fd())).unwrap();
            serve_control(&mut control, &mut members);
            let mut buf = vec![0u8; handover::MAX_MESSAGE];
            let (len, _) = handover::recv(supervisor.as_fd(), &mut buf, true)
                .unwrap()
                .expect("an answer");
            serde_json::from_slice(&buf[..len]).unwrap()
        };
        let done = ask("m1", 7);
        assert_eq!(done.generation, 7);
        assert!(done.result.is_ok(), "{:?}", done.result);
        let generations: Vec<u64> = rigs
            .iter()
            .map(|r| r.rig.stats.instance_generation.load(Relaxed))
            .collect();
        assert_eq!(generations, [1, 2, 1]);
        let refused = ask("nobody", 8);
        let error = refused.result.unwrap_err();
        assert!(error.contains("`nobody`"), "{error}");
        assert_eq!(rigs[1].rig.stats.instance_generation.load(Relaxed), 2);
    }

    #[test]
    fn capture_mirrors_both_directions_of_an_in_memory_link_then_closes() {
        use std::io::Read as _;
        use std::os::fd::AsFd as _;

        use pcap_file::pcap::PcapReader;

        use crate::datapath::worker::{capture_message, CaptureRequest};
        use crate::sys::handover;

        let rigs = scripted(2);
        let (mut members, wire_in, wire_out) = line(&rigs);
        let (supervisor, worker_end) = handover::socket_pair().unwrap();
        let mut control = Some(worker_end);
        let ask = |vnf: &str, port: &str, count| {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
            let request = CaptureRequest {
                vnf: vnf.into(),
                port: port.into(),
                count,
                duration_ms: None,
            };
            let text = capture_message(&request);
            handover::send(supervisor.as_fd(), &text, Some(w.as_fd())).unwrap();
            std::fs::File::from(r)
        };
        let read_all = |pipe: &mut std::fs::File| {
            let mut bytes = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => return (bytes, true),
                    Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    Err(_) => return (bytes, false),
                }
            }
        };
        // No such port, no such VNF: refused, the pipe closes at once.
        let mut refused = ask("m0", "nope", None);
        serve_control(&mut control, &mut members);
        assert_eq!(read_all(&mut refused), (Vec::new(), true));
        let mut refused = ask("m9", "right", None);
        serve_control(&mut control, &mut members);
        assert_eq!(read_all(&mut refused), (Vec::new(), true));
        // m0's port to m1 (in memory), two frames: one each way.
        let mut pipe = ask("m0", "right", Some(2));
        serve_control(&mut control, &mut members);
        for (wire, f) in [(&wire_in, 1), (&wire_out, 3), (&wire_in, 5)] {
            wire.inject(&frame(0, f));
            run_to_completion(&mut members).unwrap();
        }
        assert_eq!(wire_out.sent(), [frame(0, 1), frame(0, 5)]);
        assert_eq!(wire_in.sent(), [frame(0, 3)]);
        // Count reached: the next tick closes the pipe.
        for m in members.iter_mut() {
            m.tick().unwrap();
        }
        let (bytes, closed) = read_all(&mut pipe);
        assert!(closed, "the worker closed its end");
        let mut pcap = PcapReader::new(&bytes[..]).unwrap();
        let mut frames = Vec::new();
        while let Some(p) = pcap.next_packet() {
            frames.push(p.unwrap().data.into_owned());
        }
        // Sent to m1 (frame 1), received from it (frame 3); the count
        // stopped it before frame 5.
        assert_eq!(frames, [frame(0, 1), frame(0, 3)]);
    }

    #[test]
    fn a_frame_crosses_every_member_both_ways_in_one_wakeup() {
        let members_rigs = scripted(4);
        let (mut members, wire_in, wire_out) = line(&members_rigs);
        let rigs: Vec<&Rig> = members_rigs.iter().map(|m| &m.rig).collect();
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
        let members_rigs = scripted(2);
        let (mut members, wire_in, wire_out) = line(&members_rigs);
        let rigs: Vec<&Rig> = members_rigs.iter().map(|m| &m.rig).collect();
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
