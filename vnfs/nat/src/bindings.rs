//! The binding table: one binding per translated flow, bounded, with
//! timeouts and masquerade port allocation.

use std::collections::HashMap;

use std::net::Ipv4Addr;
use std::vec::Vec;
use vnf_sdk::hash::FlowHash;

use crate::config::Timeouts;

/// A translated protocol. For ICMP the "port" is the echo identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo.
    Icmp,
}

impl Proto {
    fn index(self) -> usize {
        self as usize
    }
}

/// (proto, inside address, inside port, remote address, remote port).
pub type OutKey = (Proto, Ipv4Addr, u16, Ipv4Addr, u16);
/// (proto, outside port, remote address, remote port).
pub type InKey = (Proto, u16, Ipv4Addr, u16);

/// One flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Protocol.
    pub proto: Proto,
    /// LAN endpoint.
    pub inside: (Ipv4Addr, u16),
    /// Port (or ICMP identifier) on the outside address.
    pub outside_port: u16,
    /// The far end.
    pub remote: (Ipv4Addr, u16),
    /// Created by a port forward (the port is not from the masquerade range).
    pub forwarded: bool,
    /// When it expires unless refreshed.
    pub expires_ns: u64,
    fin_out: bool,
    fin_in: bool,
    closing: bool,
}

/// A binding as carried to a replacement instance.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedBinding {
    /// 0 TCP, 1 UDP, 2 ICMP.
    pub proto: u8,
    pub inside: ([u8; 4], u16),
    pub outside_port: u16,
    pub remote: ([u8; 4], u16),
    pub forwarded: bool,
    pub expires_ns: u64,
    /// TCP: FIN seen outbound, inbound; closing.
    pub fin: (bool, bool, bool),
}

/// The table as carried to a replacement instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedTable {
    pub bindings: Vec<SavedBinding>,
    /// Where the masquerade port search resumes, per protocol.
    pub cursor: [u16; 3],
}

/// Why no binding could be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `max_bindings` reached.
    TableFull,
    /// Every port of the range is in use for this protocol.
    NoPort,
}

/// The table. Lookups and refreshes do not allocate.
#[derive(Debug)]
pub struct Table {
    slots: Vec<Option<Binding>>,
    free: Vec<u32>,
    by_out: HashMap<OutKey, u32, FlowHash>,
    by_in: HashMap<InKey, u32, FlowHash>,
    /// Per protocol, a bit per port: in use by a masquerade binding.
    ports: [Vec<u64>; 3],
    cursor: [u16; 3],
    range: (u16, u16),
    max: usize,
    timeouts_ns: [u64; 4],
    len: usize,
}

const SEC: u64 = 1_000_000_000;

impl Table {
    /// An empty table of at most `max` bindings, masquerading into `range`.
    pub fn new(max: usize, range: (u16, u16), t: Timeouts, seed: u64) -> Table {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            // Sized now: no rehash (and no allocation) on the packet path.
            by_out: HashMap::with_capacity_and_hasher(max, FlowHash::with_seed(seed)),
            by_in: HashMap::with_capacity_and_hasher(max, FlowHash::with_seed(seed ^ 0x5bd1_e995)),
            ports: [vec![0; 1024], vec![0; 1024], vec![0; 1024]],
            cursor: [range.0; 3],
            range,
            max,
            timeouts_ns: [t.tcp * SEC, t.tcp_closing * SEC, t.udp * SEC, t.icmp * SEC],
            len: 0,
        }
    }

    /// Bindings in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The binding for a packet leaving by the outside.
    pub fn find_out(&self, key: &OutKey) -> Option<u32> {
        self.by_out.get(key).copied()
    }

    /// The binding for a packet arriving on the outside.
    pub fn find_in(&self, key: &InKey) -> Option<u32> {
        self.by_in.get(key).copied()
    }

    /// A binding by index.
    pub fn get(&self, idx: u32) -> &Binding {
        self.slots[idx as usize]
            .as_ref()
            .expect("index from a lookup")
    }

    fn used(&self, proto: Proto, port: u16) -> bool {
        self.ports[proto.index()][usize::from(port / 64)] & (1 << (port % 64)) != 0
    }

    fn set_used(&mut self, proto: Proto, port: u16, on: bool) {
        let word = &mut self.ports[proto.index()][usize::from(port / 64)];
        if on {
            *word |= 1 << (port % 64);
        } else {
            *word &= !(1 << (port % 64));
        }
    }

    fn timeout(&self, b: &Binding) -> u64 {
        match b.proto {
            Proto::Tcp if b.closing => self.timeouts_ns[1],
            Proto::Tcp => self.timeouts_ns[0],
            Proto::Udp => self.timeouts_ns[2],
            Proto::Icmp => self.timeouts_ns[3],
        }
    }

    /// A masquerade port: `wanted` if it is in the range and free, else the
    /// next free one after the last allocated.
    fn allocate(&mut self, proto: Proto, wanted: u16) -> Option<u16> {
        let (lo, hi) = self.range;
        if (lo..=hi).contains(&wanted) && !self.used(proto, wanted) {
            return Some(wanted);
        }
        let size = u32::from(hi - lo) + 1;
        let start = self.cursor[proto.index()];
        for i in 0..size {
            let port = lo + ((u32::from(start - lo) + i) % size) as u16;
            if !self.used(proto, port) {
                self.cursor[proto.index()] = if port == hi { lo } else { port + 1 };
                return Some(port);
            }
        }
        None
    }

    fn insert(&mut self, b: Binding) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(b);
                i
            }
            None => {
                self.slots.push(Some(b));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_out.insert(
            (b.proto, b.inside.0, b.inside.1, b.remote.0, b.remote.1),
            idx,
        );
        self.by_in
            .insert((b.proto, b.outside_port, b.remote.0, b.remote.1), idx);
        if !b.forwarded {
            self.set_used(b.proto, b.outside_port, true);
        }
        self.len += 1;
        idx
    }

    /// Creates a masquerade binding for a new flow from the LAN.
    pub fn create_snat(
        &mut self,
        proto: Proto,
        inside: (Ipv4Addr, u16),
        remote: (Ipv4Addr, u16),
        now_ns: u64,
    ) -> Result<u32, Refused> {
        if self.len >= self.max {
            return Err(Refused::TableFull);
        }
        let port = self.allocate(proto, inside.1).ok_or(Refused::NoPort)?;
        let mut b = Binding {
            proto,
            inside,
            outside_port: port,
            remote,
            forwarded: false,
            expires_ns: 0,
            fin_out: false,
            fin_in: false,
            closing: false,
        };
        b.expires_ns = now_ns.saturating_add(self.timeout(&b));
        Ok(self.insert(b))
    }

    /// Creates a binding for a new flow to a port forward.
    pub fn create_dnat(
        &mut self,
        proto: Proto,
        target: (Ipv4Addr, u16),
        outside_port: u16,
        remote: (Ipv4Addr, u16),
        now_ns: u64,
    ) -> Result<u32, Refused> {
        if self.len >= self.max {
            return Err(Refused::TableFull);
        }
        if self
            .by_out
            .contains_key(&(proto, target.0, target.1, remote.0, remote.1))
        {
            // The target already talks to this remote from the same port
            // through a masquerade binding: the forward cannot be told apart.
            return Err(Refused::NoPort);
        }
        let mut b = Binding {
            proto,
            inside: target,
            outside_port,
            remote,
            forwarded: true,
            expires_ns: 0,
            fin_out: false,
            fin_in: false,
            closing: false,
        };
        b.expires_ns = now_ns.saturating_add(self.timeout(&b));
        Ok(self.insert(b))
    }

    /// Refreshes a binding on a packet; `outbound` is the direction,
    /// `fin`/`rst` the TCP flags seen. No allocation.
    pub fn touch(&mut self, idx: u32, now_ns: u64, outbound: bool, fin: bool, rst: bool) {
        let Some(b) = self.slots[idx as usize].as_mut() else {
            return;
        };
        if b.proto == Proto::Tcp {
            if outbound {
                b.fin_out |= fin;
            } else {
                b.fin_in |= fin;
            }
            b.closing |= rst || (b.fin_out && b.fin_in);
        }
        let b = *b;
        let expires = now_ns.saturating_add(self.timeout(&b));
        if let Some(slot) = self.slots[idx as usize].as_mut() {
            slot.expires_ns = expires;
        }
    }

    /// Every binding and the port allocation state, for a replacement.
    pub fn save(&self) -> SavedTable {
        SavedTable {
            bindings: self
                .slots
                .iter()
                .flatten()
                .map(|b| SavedBinding {
                    proto: b.proto as u8,
                    inside: (b.inside.0.octets(), b.inside.1),
                    outside_port: b.outside_port,
                    remote: (b.remote.0.octets(), b.remote.1),
                    forwarded: b.forwarded,
                    expires_ns: b.expires_ns,
                    fin: (b.fin_out, b.fin_in, b.closing),
                })
                .collect(),
            cursor: self.cursor,
        }
    }

    /// Takes over a predecessor's bindings (as many as this table holds;
    /// a flow or outside port already taken is skipped) and its port
    /// allocation state. Returns the bindings taken over.
    pub fn restore(&mut self, saved: &SavedTable) -> Result<usize, String> {
        let mut taken = 0;
        for s in &saved.bindings {
            let proto = match s.proto {
                0 => Proto::Tcp,
                1 => Proto::Udp,
                2 => Proto::Icmp,
                other => return Err(format!("saved binding with unknown protocol {other}")),
            };
            let b = Binding {
                proto,
                inside: (Ipv4Addr::from(s.inside.0), s.inside.1),
                outside_port: s.outside_port,
                remote: (Ipv4Addr::from(s.remote.0), s.remote.1),
                forwarded: s.forwarded,
                expires_ns: s.expires_ns,
                fin_out: s.fin.0,
                fin_in: s.fin.1,
                closing: s.fin.2,
            };
            let out_key = (b.proto, b.inside.0, b.inside.1, b.remote.0, b.remote.1);
            let in_key = (b.proto, b.outside_port, b.remote.0, b.remote.1);
            if self.len >= self.max
                || self.by_out.contains_key(&out_key)
                || self.by_in.contains_key(&in_key)
                || (!b.forwarded && self.used(proto, b.outside_port))
            {
                continue;
            }
            self.insert(b);
            taken += 1;
        }
        let (lo, hi) = self.range;
        for (cell, saved) in self.cursor.iter_mut().zip(saved.cursor) {
            if (lo..=hi).contains(&saved) {
                *cell = saved;
            }
        }
        Ok(taken)
    }

    /// Removes bindings that expired; returns how many.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        let mut removed = 0;
        for i in 0..self.slots.len() {
            let Some(b) = self.slots[i] else { continue };
            if b.expires_ns > now_ns {
                continue;
            }
            self.slots[i] = None;
            self.free.push(i as u32);
            self.by_out
                .remove(&(b.proto, b.inside.0, b.inside.1, b.remote.0, b.remote.1));
            self.by_in
                .remove(&(b.proto, b.outside_port, b.remote.0, b.remote.1));
            if !b.forwarded {
                self.set_used(b.proto, b.outside_port, false);
            }
            removed += 1;
        }
        self.len -= removed;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const R: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    fn table(max: usize, range: (u16, u16)) -> Table {
        Table::new(max, range, Timeouts::default(), 1)
    }

    #[test]
    fn preserve_then_allocate_and_wrap() {
        let mut t = table(10, (100, 102));
        let a = t.create_snat(Proto::Udp, (H, 101), (R, 53), 0).unwrap();
        assert_eq!(t.get(a).outside_port, 101);
        let h2 = Ipv4Addr::new(192, 168, 1, 11);
        let b = t.create_snat(Proto::Udp, (h2, 101), (R, 53), 0).unwrap();
        assert_eq!(t.get(b).outside_port, 100);
        let c = t.create_snat(Proto::Udp, (h2, 5000), (R, 53), 0).unwrap();
        assert_eq!(t.get(c).outside_port, 102);
        // Ports are per protocol.
        let d = t.create_snat(Proto::Tcp, (h2, 101), (R, 53), 0).unwrap();
        assert_eq!(t.get(d).outside_port, 101);
        assert_eq!(
            t.create_snat(Proto::Udp, (h2, 6000), (R, 53), 0),
            Err(Refused::NoPort)
        );
        assert_eq!(t.find_in(&(Proto::Udp, 100, R, 53)), Some(b));
        assert_eq!(t.find_out(&(Proto::Udp, H, 101, R, 53)), Some(a));
        // UDP lives 60 s, TCP 7200 s.
        assert_eq!(t.expire(60 * SEC), 3);
        assert_eq!(t.len(), 1);
        assert!(t.find_in(&(Proto::Udp, 100, R, 53)).is_none());
        let e = t.create_snat(Proto::Udp, (h2, 6000), (R, 53), 0).unwrap();
        assert!((100..=102).contains(&t.get(e).outside_port));
    }

    #[test]
    fn save_and_restore_keep_flows_ports_and_the_cursor() {
        let mut t = table(10, (100, 110));
        let a = t.create_snat(Proto::Tcp, (H, 5000), (R, 80), 0).unwrap();
        t.touch(a, 5, true, true, false);
        t.create_dnat(Proto::Udp, (H, 53), 5353, (R, 9), 0).unwrap();
        let saved = t.save();
        let mut fresh = table(10, (100, 110));
        assert_eq!(fresh.restore(&saved), Ok(2));
        assert_eq!(fresh.save(), saved);
        let b = fresh.find_in(&(Proto::Tcp, 100, R, 80)).unwrap();
        assert_eq!(fresh.get(b), t.get(a));
        // The restored port is in use: the next flow gets the next one.
        let c = fresh
            .create_snat(Proto::Tcp, (H, 5001), (R, 80), 0)
            .unwrap();
        assert_eq!(fresh.get(c).outside_port, 101);
        // A smaller table takes what fits.
        let mut small = table(1, (100, 110));
        assert_eq!(small.restore(&saved), Ok(1));
    }

    #[test]
    fn bounded_and_tcp_closing() {
        let mut t = table(1, (100, 200));
        let a = t.create_snat(Proto::Tcp, (H, 150), (R, 80), 0).unwrap();
        assert_eq!(
            t.create_dnat(Proto::Tcp, (H, 80), 8080, (R, 9), 0),
            Err(Refused::TableFull)
        );
        t.touch(a, 10, true, true, false);
        assert_eq!(t.get(a).expires_ns, 10 + 7200 * SEC);
        t.touch(a, 20, false, true, false);
        assert_eq!(t.get(a).expires_ns, 20 + 60 * SEC);
        assert_eq!(t.expire(20 + 60 * SEC), 1);
        assert_eq!(t.len(), 0);
    }
}
