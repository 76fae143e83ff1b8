//! Run a VNF's logic natively under `cargo test`: no wasm, no root.
//!
//! ```
//! use vnf_sdk::prelude::*;
//! use vnf_sdk::testing::Harness;
//!
//! /// Counts frames, and every 100 ms of host time emits a 60-byte beacon
//! /// out of port 0.
//! struct Beacon { seen: Counter, last_ns: u64 }
//!
//! impl Vnf for Beacon {
//!     type Config = serde_json::Value;
//!     fn new(ctx: &mut InitContext, _config: serde_json::Value) -> Result<Self, ConfigError> {
//!         Ok(Beacon { seen: ctx.counter("seen", "Frames seen"), last_ns: 0 })
//!     }
//!     fn process(&mut self, _ctx: &mut Context, frame: &mut Frame) -> Verdict {
//!         self.seen.inc();
//!         Verdict::Forward(1 - frame.in_port())
//!     }
//!     fn tick(&mut self, ctx: &mut Context) {
//!         if ctx.now_ns() - self.last_ns >= 100_000_000 {
//!             self.last_ns = ctx.now_ns();
//!             let _ = ctx.emit(0, &[0xff; 60]);
//!         }
//!     }
//! }
//!
//! let mut h = Harness::<Beacon>::new(&["lan", "wan"], serde_json::json!({})).unwrap();
//! let out = h.process(0, &[0u8; 64]);
//! assert_eq!(out.verdict, Verdict::Forward(1));
//! assert_eq!(out.frame.len(), 64);
//! assert!(h.tick().is_empty(), "no time has passed");
//! h.advance_ns(150_000_000);
//! assert_eq!(h.tick(), vec![(0, vec![0xff; 60])]);
//! assert_eq!(h.counter("seen"), Some(1));
//! ```

pub mod frames;

use std::cell::Cell;
use std::vec::Vec;

use nfvhost_abi::{LogLevel, MetricKind, Verdict};

use crate::{ConfigError, Context, Frame, Vnf};

/// The native stand-in for the host, behind the seam in `hostcalls`.
pub(crate) mod native {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    pub(crate) struct NativeHost {
        pub now_ns: u64,
        pub emitted: Vec<(u16, Vec<u8>)>,
        pub logs: Vec<(LogLevel, String)>,
        pub counters: Vec<(MetricKind, String, &'static Cell<u64>)>,
        pub config_errors: Vec<(String, String)>,
        pub port_count: u16,
        /// The one-shot timer the module set, in `now_ns` time.
        pub timer_ns: Option<u64>,
    }

    thread_local! {
        pub(crate) static HOST: RefCell<NativeHost> = RefCell::new(NativeHost::default());
    }

    pub(crate) fn log(level: LogLevel, msg: &str) {
        HOST.with(|h| h.borrow_mut().logs.push((level, msg.to_string())));
    }
    pub(crate) fn now_ns() -> u64 {
        HOST.with(|h| h.borrow().now_ns)
    }
    pub(crate) fn timer_at(at_ns: i64) {
        HOST.with(|h| h.borrow_mut().timer_ns = u64::try_from(at_ns).ok());
    }
    pub(crate) fn emit(port: u16, frame: &[u8]) -> i32 {
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            if port >= h.port_count {
                return nfvhost_abi::STATUS_NO_SUCH_PORT;
            }
            if frame.len() > nfvhost_abi::MAX_EMIT_LEN {
                return nfvhost_abi::STATUS_TOO_LARGE;
            }
            h.emitted.push((port, frame.to_vec()));
            nfvhost_abi::STATUS_OK
        })
    }
    pub(crate) fn counter_define(
        kind: MetricKind,
        name: &str,
        _help: &str,
        cell: &'static Cell<u64>,
    ) -> i32 {
        HOST.with(|h| h.borrow_mut().counters.push((kind, name.to_string(), cell)));
        nfvhost_abi::STATUS_OK
    }
    pub(crate) fn config_error(path: &str, msg: &str) {
        HOST.with(|h| {
            h.borrow_mut()
                .config_errors
                .push((path.to_string(), msg.to_string()))
        });
    }
}

/// What became of one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The module's verdict.
    pub verdict: Verdict,
    /// The frame as the module left it (rewritten, resized).
    pub frame: Vec<u8>,
    /// Frames the module emitted while handling this frame.
    pub emitted: Vec<(u16, Vec<u8>)>,
}

/// Drives one VNF instance natively, with a clock the test controls.
pub struct Harness<V: Vnf> {
    vnf: V,
    /// Capacity given to each frame (room to grow), like the host's slots.
    pub frame_capacity: usize,
}

impl<V: Vnf> Harness<V> {
    /// Builds the VNF with these port names and `config:` (as JSON), through
    /// the same decoding path the wasm module uses.
    pub fn new(ports: &[&str], config: serde_json::Value) -> Result<Self, ConfigError> {
        let ports: Vec<(&str, u16)> = ports
            .iter()
            .map(|p| (*p, crate::PortLink::DEFAULT_MTU))
            .collect();
        Self::with_link_mtus(&ports, config)
    }

    /// As [`Harness::new`], with each port's link MTU as the host would pass
    /// it in the init document.
    pub fn with_link_mtus(
        ports: &[(&str, u16)],
        config: serde_json::Value,
    ) -> Result<Self, ConfigError> {
        native::HOST.with(|h| {
            *h.borrow_mut() = native::NativeHost {
                port_count: ports.len() as u16,
                ..Default::default()
            };
        });
        let ports: Vec<serde_json::Value> = ports
            .iter()
            .map(|(name, mtu)| serde_json::json!({ "name": name, "mtu": mtu, "mac": null }))
            .collect();
        let document = serde_json::json!({ "abi": nfvhost_abi::ABI_VERSION, "vnf": "test", "ports": ports, "config": config });
        let vnf = crate::runtime::build::<V>(document.to_string().as_bytes())?;
        Ok(Harness {
            vnf,
            frame_capacity: 2048,
        })
    }

    /// Hands one frame to the module.
    pub fn process(&mut self, in_port: u16, frame: &[u8]) -> Output {
        self.process_batch(&[(in_port, frame)])
            .pop()
            .expect("one frame in, one out")
    }

    /// Hands one frame to the module with offload state, as the host does
    /// for frames it read with a virtio-net header: `flags` are
    /// `nfvhost_abi::FLAG_*`, `gso_size` the TCP payload bytes per segment
    /// of a super-frame. The frame gets at least `frame_capacity` bytes.
    pub fn process_with_offload(
        &mut self,
        in_port: u16,
        frame: &[u8],
        flags: u16,
        gso_size: u32,
    ) -> Output {
        self.run(&[(in_port, frame, flags, gso_size)])
            .pop()
            .expect("one frame in, one out")
    }

    /// Hands a batch to the module in one call; emitted frames are all
    /// attached to the last output.
    pub fn process_batch(&mut self, frames: &[(u16, &[u8])]) -> Vec<Output> {
        let frames: Vec<(u16, &[u8], u16, u32)> = frames
            .iter()
            .map(|&(port, bytes)| (port, bytes, 0, 0))
            .collect();
        self.run(&frames)
    }

    fn run(&mut self, frames: &[(u16, &[u8], u16, u32)]) -> Vec<Output> {
        let mut buffers: Vec<Vec<u8>> = frames
            .iter()
            .map(|(_, bytes, _, _)| {
                let mut b = vec![0u8; self.frame_capacity.max(bytes.len())];
                b[..bytes.len()].copy_from_slice(bytes);
                b
            })
            .collect();
        let mut views: Vec<Frame<'_>> = buffers
            .iter_mut()
            .zip(frames)
            .map(|(buf, &(port, bytes, flags, gso_size))| {
                Frame::with_offload(port, buf, bytes.len(), flags, gso_size)
            })
            .collect();
        let mut verdicts = vec![Verdict::Consume; views.len()];
        self.vnf
            .process_batch(&mut Context::new(), &mut views, &mut verdicts);
        let lens: Vec<usize> = views.iter().map(|f| f.len()).collect();
        drop(views);
        let mut outputs: Vec<Output> = buffers
            .into_iter()
            .zip(lens)
            .zip(verdicts)
            .map(|((mut buf, len), verdict)| {
                buf.truncate(len);
                Output {
                    verdict,
                    frame: buf,
                    emitted: Vec::new(),
                }
            })
            .collect();
        if let Some(last) = outputs.last_mut() {
            last.emitted = take_emitted();
        }
        outputs
    }

    /// Moves the clock forward.
    pub fn advance_ns(&mut self, ns: u64) {
        native::HOST.with(|h| h.borrow_mut().now_ns += ns);
    }

    /// Moves the clock forward by `ns` as the host would: every time the
    /// module's one-shot timer expires on the way, the clock stops there
    /// and [`Vnf::timer`] runs. Returns what the timer calls emitted, with
    /// the time each was emitted at.
    pub fn run_for(&mut self, ns: u64) -> Vec<(u64, u16, Vec<u8>)> {
        let end = native::now_ns().saturating_add(ns);
        let mut out = Vec::new();
        loop {
            let due = native::HOST.with(|h| {
                let mut h = h.borrow_mut();
                match h.timer_ns {
                    Some(at) if at <= end => {
                        h.now_ns = h.now_ns.max(at);
                        h.timer_ns = None;
                        Some(h.now_ns)
                    }
                    _ => None,
                }
            });
            let Some(now) = due else { break };
            self.vnf.timer(&mut Context::new());
            out.extend(take_emitted().into_iter().map(|(p, f)| (now, p, f)));
        }
        native::HOST.with(|h| h.borrow_mut().now_ns = end);
        out
    }

    /// Hands the running VNF a new `config:` (as JSON), as `nfvhost link
    /// set` does through the host.
    pub fn reconfigure(&mut self, config: serde_json::Value) -> Result<(), ConfigError> {
        let document = serde_json::json!({ "abi": nfvhost_abi::ABI_VERSION, "vnf": "test", "ports": [], "config": config });
        crate::runtime::reconfigure_with(&mut self.vnf, document.to_string().as_bytes())
    }

    /// When the module's one-shot timer is set to expire, if it is.
    pub fn timer(&self) -> Option<u64> {
        native::HOST.with(|h| h.borrow().timer_ns)
    }

    /// Runs the VNF's timer; returns what it emitted.
    pub fn tick(&mut self) -> Vec<(u16, Vec<u8>)> {
        self.vnf.tick(&mut Context::new());
        take_emitted()
    }

    /// The current value of a declared counter or gauge.
    pub fn counter(&self, name: &str) -> Option<u64> {
        native::HOST.with(|h| {
            h.borrow()
                .counters
                .iter()
                .find(|(_, n, _)| n == name)
                .map(|(_, _, c)| c.get())
        })
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        native::HOST.with(|h| h.borrow().logs.clone())
    }

    /// The instance, for assertions on its state.
    pub fn vnf(&mut self) -> &mut V {
        &mut self.vnf
    }

    /// Does what `nfvhost replace` does: saves this instance's state,
    /// builds a fresh instance of `W` with these ports and `config:` on the
    /// same clock, and loads the state into it. Counters start again, as
    /// for a new module instance on the host.
    pub fn replace<W: Vnf>(
        self,
        ports: &[&str],
        config: serde_json::Value,
    ) -> Result<Harness<W>, ReplaceError> {
        let saved = self.vnf.save_state();
        let now = native::now_ns();
        drop(self);
        let mut next = Harness::<W>::new(ports, config).map_err(ReplaceError::Init)?;
        native::HOST.with(|h| h.borrow_mut().now_ns = now);
        if let Some(blob) = saved {
            next.vnf
                .load_state(V::STATE_VERSION, &blob)
                .map_err(ReplaceError::Refused)?;
        }
        Ok(next)
    }
}

/// Why [`Harness::replace`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplaceError {
    /// The new instance refused its configuration.
    Init(ConfigError),
    /// The new instance refused the saved state.
    Refused(crate::StateError),
}

fn take_emitted() -> Vec<(u16, Vec<u8>)> {
    native::HOST.with(|h| std::mem::take(&mut h.borrow_mut().emitted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfigError, InitContext};

    /// Echoes every frame back out of the port it came in on, emits a copy
    /// on port 1, and counts.
    struct Echo {
        seen: crate::Counter,
        copy: bool,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EchoConfig {
        #[serde(default)]
        copy: bool,
        #[serde(default)]
        limit: Option<u8>,
    }

    impl Vnf for Echo {
        type Config = EchoConfig;
        fn new(ctx: &mut InitContext, config: EchoConfig) -> Result<Self, ConfigError> {
            if config.limit == Some(0) {
                return Err(ConfigError::at("limit", "must be at least 1"));
            }
            Ok(Echo {
                seen: ctx.counter("seen", "Frames seen."),
                copy: config.copy,
            })
        }
        fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
            self.seen.inc();
            if self.copy {
                ctx.emit(1, frame.data()).unwrap();
            }
            frame.data_mut()[0] = 0xee;
            Verdict::Forward(frame.in_port())
        }
    }

    /// Holds every frame for 1 ms and then sends it back, one timer for
    /// the oldest held frame.
    struct Hold {
        held: std::collections::VecDeque<(u64, u16, Vec<u8>)>,
    }

    impl Vnf for Hold {
        type Config = serde_json::Value;
        fn new(_: &mut InitContext, _: serde_json::Value) -> Result<Self, ConfigError> {
            Ok(Hold {
                held: Default::default(),
            })
        }
        fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
            let due = ctx.now_ns() + 1_000_000;
            if self.held.is_empty() {
                ctx.set_timer(due);
            }
            self.held
                .push_back((due, frame.in_port(), frame.data().to_vec()));
            Verdict::Consume
        }
        fn timer(&mut self, ctx: &mut Context) {
            while let Some((due, port, _)) = self.held.front() {
                if *due > ctx.now_ns() {
                    ctx.set_timer(*due);
                    return;
                }
                let (_, port, frame) = (*due, *port, self.held.pop_front().unwrap().2);
                ctx.emit(port, &frame).unwrap();
            }
        }
    }

    #[test]
    fn run_for_fires_timers_at_their_time() {
        let mut h = Harness::<Hold>::new(&["a"], serde_json::json!({})).unwrap();
        assert_eq!(h.timer(), None);
        h.process(0, &[1]);
        h.advance_ns(400_000);
        h.process(0, &[2]);
        assert_eq!(h.timer(), Some(1_000_000));
        assert!(h.run_for(500_000).is_empty(), "nothing due before 1 ms");
        let out = h.run_for(2_000_000);
        assert_eq!(
            out,
            vec![(1_000_000, 0, vec![1]), (1_400_000, 0, vec![2])],
            "each frame leaves exactly 1 ms after it came"
        );
        assert_eq!(h.timer(), None, "nothing left to wait for");
        h.process(0, &[3]);
        assert_eq!(h.timer(), Some(3_900_000));
    }

    #[test]
    fn runs_frames_and_collects_emits_and_counters() {
        let mut h = Harness::<Echo>::new(&["a", "b"], serde_json::json!({ "copy": true })).unwrap();
        let out = h.process(0, &[1, 2, 3]);
        assert_eq!(out.verdict, Verdict::Forward(0));
        assert_eq!(out.frame, vec![0xee, 2, 3], "rewritten in place");
        assert_eq!(out.emitted, vec![(1, vec![1, 2, 3])]);
        assert_eq!(h.counter("seen"), Some(1));
        assert_eq!(h.counter("nope"), None);
    }

    #[test]
    fn config_errors_carry_their_path() {
        let err = Harness::<Echo>::new(&["a"], serde_json::json!({ "limit": 0 }))
            .err()
            .unwrap();
        assert_eq!(err, ConfigError::at("limit", "must be at least 1"));
        let err = Harness::<Echo>::new(&["a"], serde_json::json!({ "colour": 1 }))
            .err()
            .unwrap();
        assert_eq!(err.path, "colour");
        assert!(err.message.contains("unknown field"), "{err}");
        let err = Harness::<Echo>::new(&["a"], serde_json::json!({ "copy": "yes" }))
            .err()
            .unwrap();
        assert_eq!(err.path, "copy");
    }

    /// Reports the offload state it sees by writing it into the frame.
    struct Offload;

    impl Vnf for Offload {
        type Config = serde_json::Value;
        fn new(_: &mut InitContext, _: serde_json::Value) -> Result<Self, ConfigError> {
            Ok(Offload)
        }
        fn process(&mut self, _: &mut Context, frame: &mut Frame<'_>) -> Verdict {
            let partial = frame.checksum_partial();
            let sup = frame.is_super_frame();
            let seg = frame.gso_segment_size().unwrap_or(0);
            let d = frame.data_mut();
            d[0] = u8::from(partial);
            d[1] = u8::from(sup);
            d[2..4].copy_from_slice(&seg.to_be_bytes());
            Verdict::Forward(0)
        }
    }

    #[test]
    fn offload_state_reaches_the_frame() {
        use nfvhost_abi::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};
        let mut h = Harness::<Offload>::new(&["a"], serde_json::json!({})).unwrap();
        let big = vec![0u8; 30_000];
        let out = h.process_with_offload(0, &big, FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4, 1448);
        assert_eq!(&out.frame[..4], &[1, 1, 0x05, 0xa8]);
        assert_eq!(out.frame.len(), 30_000, "super-frames fit");
        let out = h.process_with_offload(0, &[9; 60], FLAG_CSUM_PARTIAL, 0);
        assert_eq!(&out.frame[..4], &[1, 0, 0, 0]);
        let out = h.process(0, &[9; 60]);
        assert_eq!(&out.frame[..4], &[0, 0, 0, 0]);
    }

    #[test]
    fn emitting_on_a_missing_port_is_refused() {
        let mut h = Harness::<Echo>::new(&["a"], serde_json::json!({})).unwrap();
        let mut ctx = Context::new();
        assert_eq!(ctx.emit(3, &[0]), Err(crate::EmitError::NoSuchPort));
        assert_eq!(h.process(0, &[9]).verdict, Verdict::Forward(0));
    }
}
