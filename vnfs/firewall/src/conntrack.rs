//! The connection table.

use std::collections::HashMap;
use vnf_sdk::hash::FlowHash;

use crate::config::Timeouts;

/// IPv4 protocol numbers.
pub const ICMP: u8 = 1;
/// TCP.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;

/// A connection as seen in one direction. For ICMP echo both ports hold the
/// identifier; for protocols without ports both are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Key {
    /// IPv4 protocol number.
    pub proto: u8,
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

impl Key {
    /// The same connection seen from the other end.
    pub fn reverse(self) -> Key {
        Key {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// Which way a packet travels relative to the packet that opened the
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Same way as the first packet.
    Orig,
    /// The reply direction.
    Reply,
}

/// Where a TCP connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TcpState {
    /// SYN seen from the originator.
    SynSent,
    /// SYN-ACK seen from the responder.
    SynRecv,
    /// Handshake completed.
    Established,
    /// A FIN seen from one side.
    FinWait,
    /// FIN both ways, or RST.
    Closing,
}

/// What kind of connection an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// TCP with its state.
    Tcp(TcpState),
    /// UDP or another protocol without state.
    Datagram,
    /// ICMP echo.
    Echo,
}

/// One tracked connection, stored under the originator's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The port the first packet came in on.
    pub orig_port: u16,
    /// Kind and state.
    pub kind: Kind,
    /// FIN seen from the originator.
    pub fin_orig: bool,
    /// FIN seen from the responder.
    pub fin_reply: bool,
    /// When it expires (host nanoseconds).
    pub expires_ns: u64,
}

impl Entry {
    /// The timeout for the entry's current state.
    pub fn timeout(&self, t: &Timeouts) -> u64 {
        match self.kind {
            Kind::Tcp(TcpState::Established) => t.tcp_established,
            Kind::Tcp(_) => t.tcp_transitory,
            Kind::Datagram => t.udp,
            Kind::Echo => t.icmp,
        }
    }

    /// Whether a packet in `dir` arriving on `in_port` fits the entry:
    /// originator packets come in on the originator's port, replies on the
    /// other one.
    pub fn port_ok(&self, dir: Dir, in_port: u16) -> bool {
        (dir == Dir::Orig) == (in_port == self.orig_port)
    }

    /// Follows a TCP segment with `syn`, `ack`, `fin`, `rst` in `dir`.
    pub fn tcp_update(&mut self, dir: Dir, syn: bool, ack: bool, fin: bool, rst: bool) {
        let Kind::Tcp(state) = self.kind else { return };
        let next = if rst {
            TcpState::Closing
        } else {
            match state {
                TcpState::SynSent if dir == Dir::Reply && syn && ack => TcpState::SynRecv,
                TcpState::SynRecv if dir == Dir::Orig && ack && !syn => TcpState::Established,
                TcpState::Closing if dir == Dir::Orig && syn && !ack => {
                    // The tuple is being reused for a new connection.
                    self.fin_orig = false;
                    self.fin_reply = false;
                    TcpState::SynSent
                }
                s => s,
            }
        };
        let next = if fin
            && matches!(
                next,
                TcpState::Established | TcpState::FinWait | TcpState::SynRecv
            ) {
            match dir {
                Dir::Orig => self.fin_orig = true,
                Dir::Reply => self.fin_reply = true,
            }
            if self.fin_orig && self.fin_reply {
                TcpState::Closing
            } else {
                TcpState::FinWait
            }
        } else {
            next
        };
        self.kind = Kind::Tcp(next);
    }
}

/// The bounded connection table.
pub struct Table {
    map: HashMap<Key, Entry, FlowHash>,
    max: usize,
}

impl Table {
    /// A table for at most `max` connections, allocated now.
    pub fn new(max: usize, seed: u64) -> Table {
        Table {
            map: HashMap::with_capacity_and_hasher(max, FlowHash::with_seed(seed)),
            max,
        }
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is room for another connection.
    pub fn is_full(&self) -> bool {
        self.map.len() >= self.max
    }

    /// The live entry for a packet with `key` travelling in `dir`; an
    /// expired entry is removed and not returned.
    pub fn get(&mut self, key: Key, dir: Dir, now: u64) -> Option<&mut Entry> {
        let stored = match dir {
            Dir::Orig => key,
            Dir::Reply => key.reverse(),
        };
        let expired = self.map.get(&stored)?.expires_ns <= now;
        if expired {
            self.map.remove(&stored);
            return None;
        }
        self.map.get_mut(&stored)
    }

    /// The live entry for a packet with `key`, in whichever direction it is
    /// tracked (originator first).
    pub fn find(&mut self, key: Key, now: u64) -> Option<(Dir, &mut Entry)> {
        if self.get(key, Dir::Orig, now).is_some() {
            return self.get(key, Dir::Orig, now).map(|e| (Dir::Orig, e));
        }
        self.get(key, Dir::Reply, now).map(|e| (Dir::Reply, e))
    }

    /// Adds a connection (the caller checks [`Table::is_full`] first).
    pub fn insert(&mut self, key: Key, entry: Entry) {
        self.map.insert(key, entry);
    }

    /// Every connection, for a replacement instance (in no given order).
    pub fn save(&self) -> Vec<(Key, Entry)> {
        self.map.iter().map(|(k, e)| (*k, *e)).collect()
    }

    /// Takes over a predecessor's connections, as many as fit; returns how
    /// many were taken.
    pub fn restore(&mut self, saved: &[(Key, Entry)]) -> usize {
        let mut taken = 0;
        for (key, entry) in saved {
            if self.is_full() {
                break;
            }
            self.map.insert(*key, *entry);
            taken += 1;
        }
        taken
    }

    /// Removes every connection expired at `now`; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| e.expires_ns > now);
        before - self.map.len()
    }
}
