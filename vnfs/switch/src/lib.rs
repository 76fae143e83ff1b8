//! `switch`: an Ethernet learning bridge with VLANs. N ports, each an access
//! port (one VLAN, untagged), a trunk (802.1Q or 802.1ad tags, an allowed
//! list, an optional native VLAN) or a QinQ customer port (every frame gets
//! the port's S-VLAN; C-tags untouched). MAC addresses are learned per VLAN
//! with aging in a bounded table; unknown unicast, broadcast and multicast
//! are flooded within the VLAN. No spanning tree: the chain file refuses
//! loops unless told otherwise. See README.md.

mod config;
mod table;

use config::{Mode, Settings};
use table::{Learned, MacTable};
use vnf_sdk::prelude::*;
use vnf_sdk::wire::vlan::{self, VlanTag, TPID_8021Q};
use vnf_sdk::wire::EthernetAddress;

pub use config::Config;

/// Most per-VLAN counters; VLANs past these count in `switch_vlan_other_frames`.
const MAX_VLAN_COUNTERS: usize = 48;

pub struct Switch {
    modes: Vec<Mode>,
    table: MacTable,
    learned: Counter,
    moved: Counter,
    flooded: Counter,
    table_full: Counter,
    vlan_denied: Counter,
    aged: Counter,
    entries: Gauge,
    vlan_frames: Vec<(u16, Counter)>,
    vlan_other: Counter,
    /// Reused for building flooded copies.
    scratch: Vec<u8>,
}

/// Which VLAN a frame belongs to, and the tag that said so (which the
/// switch removes: inside, frames are untagged in their VLAN).
struct Ingress {
    vlan: u16,
    tag: Option<VlanTag>,
}

impl Switch {
    fn classify(&self, port: u16, frame: &[u8]) -> Option<Ingress> {
        match &self.modes[usize::from(port)] {
            Mode::Access { vlan } => match VlanTag::outer(frame, TPID_8021Q) {
                // A priority tag belongs to the port's VLAN.
                Some(tag) if tag.vid == 0 => Some(Ingress {
                    vlan: *vlan,
                    tag: Some(tag),
                }),
                Some(_) => None,
                None => Some(Ingress {
                    vlan: *vlan,
                    tag: None,
                }),
            },
            Mode::Trunk {
                tpid,
                allowed,
                native,
            } => match VlanTag::outer(frame, *tpid) {
                Some(tag) if tag.vid == 0 => native.map(|vlan| Ingress {
                    vlan,
                    tag: Some(tag),
                }),
                Some(tag) => allowed.contains(tag.vid).then_some(Ingress {
                    vlan: tag.vid,
                    tag: Some(tag),
                }),
                None => native.map(|vlan| Ingress { vlan, tag: None }),
            },
            Mode::Qinq { svlan } => Some(Ingress {
                vlan: *svlan,
                tag: None,
            }),
        }
    }

    /// The tag a frame of `vlan` needs to leave `port`, if any. `pcp` is
    /// the priority it came in with.
    fn egress_tag(&self, port: u16, vlan: u16, pcp: u8) -> Option<VlanTag> {
        match &self.modes[usize::from(port)] {
            Mode::Trunk { tpid, native, .. } if *native != Some(vlan) => Some(VlanTag {
                tpid: *tpid,
                pcp,
                dei: false,
                vid: vlan,
            }),
            _ => None,
        }
    }

    fn count_vlan(&self, vlan: u16) {
        match self.vlan_frames.iter().find(|(v, _)| *v == vlan) {
            Some((_, c)) => c.inc(),
            None => self.vlan_other.inc(),
        }
    }

    fn learn(&mut self, vlan: u16, src: EthernetAddress, port: u16, now: u64) {
        if !src.is_unicast() {
            return;
        }
        match self.table.learn(vlan, src, port, now) {
            Learned::New => self.learned.inc(),
            Learned::Moved => self.moved.inc(),
            Learned::Refreshed => {}
            Learned::Full => self.table_full.inc(),
        }
        self.entries.set(self.table.len() as u64);
    }

    /// Sends the (untagged, in-VLAN) frame out of every port in `members`:
    /// copies through `emit`, and the frame itself out of the last one. A
    /// frame with offload state is made ordinary and only copies leave
    /// (emitted frames carry no offload; the host would re-attach the old
    /// state to a forwarded one).
    fn flood(
        &mut self,
        ctx: &mut Context,
        frame: &mut Frame<'_>,
        vlan: u16,
        pcp: u8,
        members: &[u16],
    ) -> Verdict {
        let offloaded = frame.has_offload();
        if offloaded && !frame.make_ordinary() {
            return Verdict::Drop(DropReason::Malformed);
        }
        self.flooded.inc();
        let (copies, last) = match (offloaded, members.split_last()) {
            (false, Some((last, rest))) => (rest, Some(*last)),
            _ => (members, None),
        };
        for &port in copies {
            self.scratch.clear();
            self.scratch.extend_from_slice(frame.data());
            if let Some(tag) = self.egress_tag(port, vlan, pcp) {
                let mut bytes = [0u8; vlan::TAG_LEN];
                tag.emit(&mut bytes);
                self.scratch.splice(12..12, bytes);
            }
            // A full emit queue loses this copy only; the host counts it.
            let _ = ctx.emit(port, &self.scratch);
        }
        match last {
            Some(port) => self.send(frame, port, vlan, pcp),
            None => Verdict::Consume,
        }
    }

    /// Forwards the (untagged, in-VLAN) frame out of `port`, tagged as the
    /// port needs.
    fn send(&self, frame: &mut Frame<'_>, port: u16, vlan: u16, pcp: u8) -> Verdict {
        if let Some(tag) = self.egress_tag(port, vlan, pcp) {
            if !vlan::push(frame, tag) {
                return Verdict::Drop(DropReason::TooBig);
            }
        }
        Verdict::Forward(port)
    }
}

impl Vnf for Switch {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        let ports = ctx.ports().to_vec();
        let settings = Settings::check(config, &ports)?;
        let seed = vnf_sdk::hash::seed_from_name(ctx.vnf_name());
        let vlan_frames = settings
            .named_vlans
            .iter()
            .take(MAX_VLAN_COUNTERS)
            .map(|&v| {
                (
                    v,
                    ctx.counter(
                        &format!("switch_vlan_{v}_frames"),
                        &format!("Frames received in VLAN {v}."),
                    ),
                )
            })
            .collect();
        Ok(Switch {
            modes: settings.modes,
            table: MacTable::new(settings.table_size, settings.aging_ns, seed),
            learned: ctx.counter("switch_learned", "MAC addresses learned."),
            moved: ctx.counter("switch_moved", "MAC addresses seen moving to another port."),
            flooded: ctx.counter(
                "switch_flooded",
                "Frames flooded (broadcast, multicast, unknown unicast).",
            ),
            table_full: ctx.counter(
                "switch_table_full",
                "Source addresses not learned because the MAC table was full.",
            ),
            vlan_denied: ctx.counter(
                "switch_vlan_denied",
                "Frames dropped because their port does not carry their VLAN.",
            ),
            aged: ctx.counter("switch_aged", "MAC table entries removed by aging."),
            entries: ctx.gauge("switch_mac_entries", "Entries in the MAC table."),
            vlan_frames,
            vlan_other: ctx.counter(
                "switch_vlan_other_frames",
                "Frames received in VLANs without a counter of their own.",
            ),
            scratch: Vec::with_capacity(2048),
        })
    }

    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        if frame.len() < 14 {
            return Verdict::Drop(DropReason::Malformed);
        }
        let in_port = frame.in_port();
        let Some(ingress) = self.classify(in_port, frame.data()) else {
            self.vlan_denied.inc();
            return Verdict::Drop(DropReason::Policy);
        };
        let vlan = ingress.vlan;
        let pcp = ingress.tag.map_or(0, |t| t.pcp);
        if let Some(tag) = ingress.tag {
            vlan::pop(frame, tag.tpid);
        }
        self.count_vlan(vlan);
        let now = ctx.now_ns();
        let data = frame.data();
        let dst = EthernetAddress::from_bytes(&data[0..6]);
        let src = EthernetAddress::from_bytes(&data[6..12]);
        self.learn(vlan, src, in_port, now);
        let known = dst
            .is_unicast()
            .then(|| self.table.lookup(vlan, dst, now))
            .flatten();
        match known {
            Some(port) if port == in_port => Verdict::Drop(DropReason::NotForUs),
            Some(port) if self.modes[usize::from(port)].carries(vlan) => {
                self.send(frame, port, vlan, pcp)
            }
            _ => {
                let mut members = [0u16; nfvhost_abi::MAX_PORTS];
                let mut n = 0;
                for p in 0..self.modes.len() as u16 {
                    if p != in_port && self.modes[usize::from(p)].carries(vlan) {
                        members[n] = p;
                        n += 1;
                    }
                }
                if n == 0 {
                    return Verdict::Drop(DropReason::NotForUs);
                }
                self.flood(ctx, frame, vlan, pcp, &members[..n])
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context) {
        let gone = self.table.expire(ctx.now_ns());
        self.aged.add(gone as u64);
        self.entries.set(self.table.len() as u64);
    }
}

vnf_sdk::export_vnf!(Switch);

#[cfg(test)]
mod tests;
