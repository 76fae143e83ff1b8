//! `faulty`: a two-port wire that misbehaves on purpose, for testing how the
//! host contains a broken module. It forwards every frame to the other port,
//! except UDP datagrams to `trap_on_udp_port` (it panics, which traps) and
//! to `spin_on_udp_port` (it loops forever, which the host's deadline
//! interrupts), `grow_on_udp_port` (it allocates without bound, until the
//! host's memory limit refuses) and `recurse_on_udp_port` (it recurses
//! without bound, until the stack overflows). With `drop_one_in: N` it drops
//! every Nth frame (policy), a known loss for `nfvhost bench` to find
//! (100: 1 %). With `flood_log: true` it
//! logs a 64 KiB line, with a newline and an escape sequence in it, for
//! every frame it forwards. It carries its forwarded count across
//! `nfvhost replace`; with `refuse_state: true` the new instance refuses
//! that state, so the replace rolls back.
//!
//! ```yaml
//! config:
//!   trap_on_udp_port: 6666   # optional
//!   spin_on_udp_port: 6667   # optional
//!   grow_on_udp_port: 6668   # optional
//!   recurse_on_udp_port: 6669 # optional
//!   drop_one_in: 100         # optional, at least 2
//!   flood_log: false         # optional
//!   refuse_state: false      # optional
//! ```

use serde::Deserialize;
use vnf_sdk::prelude::*;
use vnf_sdk::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub trap_on_udp_port: Option<u16>,
    #[serde(default)]
    pub spin_on_udp_port: Option<u16>,
    #[serde(default)]
    pub grow_on_udp_port: Option<u16>,
    #[serde(default)]
    pub recurse_on_udp_port: Option<u16>,
    #[serde(default)]
    pub drop_one_in: Option<u32>,
    #[serde(default)]
    pub flood_log: bool,
    #[serde(default)]
    pub refuse_state: bool,
}

/// Allocates 1 MiB blocks and keeps them until allocation fails (which
/// aborts, a trap).
fn grow_without_bound() -> usize {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(core::hint::black_box(vec![1u8; 1 << 20]));
        if kept.len() == usize::MAX {
            return kept.len();
        }
    }
}

/// Recurses until the wasm stack overflows (a `stack_overflow` trap).
///
/// Nothing here may live in linear memory: a local whose address is taken
/// (an array, or any value passed through `black_box`) goes on the shadow
/// stack in linear memory, which then runs out first and wraps below
/// address 0, so the module traps with `memory_out_of_bounds` instead (it
/// did, with a 512-byte array per call). The result goes through a rotate
/// before the xor so LLVM cannot turn the recursion into a loop with an
/// accumulator.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1).rotate_left(7) ^ depth
}

/// Bytes of each line logged with `flood_log`.
pub const FLOOD_LINE: usize = 64 * 1024;

pub struct Faulty {
    config: Config,
    forwarded: Counter,
    /// The line logged per frame with `flood_log`, built once.
    flood_line: String,
    /// Frames seen, for `drop_one_in`.
    seen: u64,
}

/// The UDP destination port of an IPv4/UDP frame, if it is one.
fn udp_dst_port(frame: &[u8]) -> Option<u16> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != IpProtocol::Udp {
        return None;
    }
    Some(UdpPacket::new_checked(ip.payload()).ok()?.dst_port())
}

impl Vnf for Faulty {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        if ctx.ports().len() != 2 {
            return Err(ConfigError::at("", "faulty needs exactly two ports"));
        }
        if config.drop_one_in.is_some_and(|n| n < 2) {
            return Err(ConfigError::at(
                "drop_one_in",
                "must be at least 2 (1 would drop everything)",
            ));
        }
        let forwarded = ctx.counter("faulty_forwarded", "Frames passed to the other port.");
        let flood_line = if config.flood_log {
            let mut line = String::from("flood\nFORGED ERROR line\x1b[2J");
            line.extend(core::iter::repeat_n('x', FLOOD_LINE - line.len()));
            line
        } else {
            String::new()
        };
        Ok(Faulty {
            config,
            forwarded,
            flood_line,
            seen: 0,
        })
    }

    fn process(&mut self, _ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let port = udp_dst_port(frame.data());
        if port.is_some() && port == self.config.trap_on_udp_port {
            panic!("faulty: asked to trap on UDP port {port:?}");
        }
        if port.is_some() && port == self.config.spin_on_udp_port {
            let mut n: u64 = 0;
            loop {
                n = core::hint::black_box(n.wrapping_add(1));
            }
        }
        if port.is_some() && port == self.config.grow_on_udp_port {
            core::hint::black_box(grow_without_bound());
        }
        if port.is_some() && port == self.config.recurse_on_udp_port {
            core::hint::black_box(recurse(0));
        }
        self.seen += 1;
        if let Some(n) = self.config.drop_one_in {
            if self.seen.is_multiple_of(u64::from(n)) {
                return Verdict::Drop(DropReason::Policy);
            }
        }
        if self.config.flood_log {
            log_info!("{}", self.flood_line);
        }
        self.forwarded.inc();
        Verdict::Forward(1 - frame.in_port())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(vnf_sdk::state::encode(&self.forwarded.get()))
    }

    fn load_state(&mut self, version: u32, bytes: &[u8]) -> Result<(), StateError> {
        if self.config.refuse_state {
            return Err(StateError::new(
                "faulty refuses the saved state (refuse_state: true)",
            ));
        }
        let forwarded: u64 = vnf_sdk::state::decode(Self::STATE_VERSION, version, bytes)?;
        self.forwarded.add(forwarded);
        Ok(())
    }
}

vnf_sdk::export_vnf!(Faulty);

#[cfg(test)]
mod tests {
    use super::*;
    use vnf_sdk::testing::{Harness, ReplaceError};

    #[test]
    fn carries_its_count_or_refuses_as_configured() {
        let mut h = Harness::<Faulty>::new(&["a", "b"], serde_json::json!({})).unwrap();
        h.process(0, &[0u8; 60]);
        h.process(1, &[0u8; 60]);
        let h = h
            .replace::<Faulty>(&["a", "b"], serde_json::json!({}))
            .unwrap();
        assert_eq!(h.counter("faulty_forwarded"), Some(2));
        let e = h
            .replace::<Faulty>(&["a", "b"], serde_json::json!({ "refuse_state": true }))
            .err()
            .unwrap();
        assert!(
            matches!(&e, ReplaceError::Refused(r) if r.message.contains("refuse_state")),
            "{e:?}"
        );
    }

    #[test]
    fn forwards_to_the_other_port() {
        let mut h = Harness::<Faulty>::new(&["a", "b"], serde_json::json!({})).unwrap();
        assert_eq!(h.process(0, &[0u8; 60]).verdict, Verdict::Forward(1));
        assert_eq!(h.process(1, &[0u8; 60]).verdict, Verdict::Forward(0));
        assert_eq!(h.counter("faulty_forwarded"), Some(2));
    }

    #[test]
    fn flood_log_logs_a_64k_line_per_frame() {
        let mut h =
            Harness::<Faulty>::new(&["a", "b"], serde_json::json!({ "flood_log": true })).unwrap();
        assert_eq!(h.process(0, &[0u8; 60]).verdict, Verdict::Forward(1));
        let logs = h.logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].1.len(), FLOOD_LINE);
    }

    #[test]
    fn drop_one_in_drops_every_nth_frame() {
        let mut h =
            Harness::<Faulty>::new(&["a", "b"], serde_json::json!({ "drop_one_in": 100 })).unwrap();
        let dropped = (0..1000)
            .filter(|_| h.process(0, &[0u8; 60]).verdict == Verdict::Drop(DropReason::Policy))
            .count();
        assert_eq!(dropped, 10);
        assert_eq!(h.counter("faulty_forwarded"), Some(990));
        assert!(
            Harness::<Faulty>::new(&["a", "b"], serde_json::json!({ "drop_one_in": 1 })).is_err()
        );
    }

    #[test]
    fn refuses_unknown_keys() {
        let err = Harness::<Faulty>::new(&["a", "b"], serde_json::json!({ "trap_on": 1 }))
            .err()
            .unwrap();
        assert!(err.message.contains("unknown field"), "{err}");
    }
}
