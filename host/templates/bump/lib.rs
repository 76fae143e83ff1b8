//! {{name}}: a bump in the wire between two ports. Every frame leaves by
//! the other port unchanged, except frames whose EtherType is listed in
//! `block_ethertypes`, which are dropped (`policy`). It counts both.

use vnf_sdk::prelude::*;

/// The `config:` section of the VNF in the chain file.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// EtherTypes to drop, e.g. `[0x86dd]` for IPv6.
    #[serde(default)]
    pub block_ethertypes: Vec<u16>,
}

/// The function's state.
pub struct Bump {
    block: Vec<u16>,
    passed: Counter,
    blocked: Counter,
}

impl Vnf for Bump {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        if ctx.ports().len() != 2 {
            return Err(ConfigError::at(
                "",
                format!("a bump needs exactly two ports, not {}", ctx.ports().len()),
            ));
        }
        if let Some(i) = config.block_ethertypes.iter().position(|t| *t < 0x0600) {
            return Err(ConfigError::at(
                format!("block_ethertypes.{i}"),
                "an EtherType is at least 0x0600 (smaller values are 802.3 lengths)",
            ));
        }
        log_info!("blocking {} EtherTypes", config.block_ethertypes.len());
        Ok(Bump {
            block: config.block_ethertypes,
            passed: ctx.counter("frames_passed", "Frames passed to the other port"),
            blocked: ctx.counter("frames_blocked", "Frames dropped by block_ethertypes"),
        })
    }

    fn process(&mut self, _ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let Some(ethertype) = frame.data().get(12..14) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if self.block.contains(&u16::from_be_bytes([ethertype[0], ethertype[1]])) {
            self.blocked.inc();
            return Verdict::Drop(DropReason::Policy);
        }
        self.passed.inc();
        Verdict::Forward(1 - frame.in_port())
    }
}

vnf_sdk::export_vnf!(Bump);

#[cfg(test)]
mod tests {
    use super::*;
    use vnf_sdk::testing::{frames, Harness};
    use vnf_sdk::wire::{EtherType, EthernetAddress, IpProtocol, Ipv4Addr};

    fn udp_frame() -> Vec<u8> {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 20));
        frames::ethernet(
            EthernetAddress([2, 0, 0, 0, 0, 0x20]),
            EthernetAddress([2, 0, 0, 0, 0, 0x10]),
            EtherType::Ipv4,
            &frames::ipv4(a, b, IpProtocol::Udp, &frames::udp(a, b, 4000, 5000, b"hi")),
        )
    }

    #[test]
    fn frames_cross_to_the_other_port_unchanged() {
        let mut h = Harness::<Bump>::new(&["lan", "wan"], serde_json::json!({})).unwrap();
        let frame = udp_frame();
        let out = h.process(0, &frame);
        assert_eq!(out.verdict, Verdict::Forward(1));
        assert_eq!(out.frame, frame);
        assert_eq!(h.process(1, &frame).verdict, Verdict::Forward(0));
        assert_eq!(h.counter("frames_passed"), Some(2));
    }

    #[test]
    fn blocked_ethertypes_are_dropped_and_counted() {
        let config = serde_json::json!({ "block_ethertypes": [0x0800] });
        let mut h = Harness::<Bump>::new(&["lan", "wan"], config).unwrap();
        let out = h.process(0, &udp_frame());
        assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
        assert_eq!(h.counter("frames_blocked"), Some(1));
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let config = serde_json::json!({ "block_ethertypes": [0x0800, 12] });
        let e = Harness::<Bump>::new(&["lan", "wan"], config).err().unwrap();
        assert_eq!(e.path, "block_ethertypes.1");
    }
}
