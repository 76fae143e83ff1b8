//! The neighbour table: ARP cache and the queue of frames waiting for it.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::vec::Vec;

use vnf_sdk::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
};

/// Frames queued per unresolved next hop.
pub const MAX_PENDING_PER_HOP: usize = 16;
/// Frames queued in total.
pub const MAX_PENDING_TOTAL: usize = 256;
/// Cache entries kept; the entry closest to expiry makes room for a new one.
pub const MAX_CACHE_ENTRIES: usize = 1024;
/// How long a queued frame waits for its ARP reply.
pub const PENDING_MAX_AGE_NS: u64 = 3_000_000_000;
/// At most one ARP request per next hop in this interval.
pub const REQUEST_INTERVAL_NS: u64 = 1_000_000_000;

/// A neighbour is keyed by the port it lives on and its address.
pub type Key = (u16, Ipv4Addr);

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: EthernetAddress,
    expires_ns: u64,
    /// Forwarded through since it was learned.
    used: bool,
    /// A unicast refresh request went out for this entry.
    refresh_sent: bool,
}

/// A frame waiting for its next hop's MAC (already TTL-decremented).
#[derive(Debug)]
pub struct Queued {
    /// When it was queued.
    pub queued_ns: u64,
    /// The port it arrived on (for an ICMP error if resolution fails).
    pub in_port: u16,
    /// The whole Ethernet frame.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct Pending {
    frames: VecDeque<Queued>,
    last_request_ns: Option<u64>,
}

/// What became of a frame handed to [`Neighbors::enqueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued; send an ARP request if `request` is set.
    Queued {
        /// Whether an ARP request is due for this next hop.
        request: bool,
    },
    /// The per-hop or total bound was reached; the frame was not queued.
    Full,
}

/// ARP cache plus pending queue.
#[derive(Debug, Default)]
pub struct Neighbors {
    cache: BTreeMap<Key, Entry>,
    pending: BTreeMap<Key, Pending>,
    pending_total: usize,
}

impl Neighbors {
    /// The cached MAC of a neighbour, marking the entry as in use; no allocation.
    pub fn lookup(&mut self, key: Key) -> Option<EthernetAddress> {
        self.cache.get_mut(&key).map(|e| {
            e.used = true;
            e.mac
        })
    }

    /// Entries in use that expire within `window_ns` and have not been
    /// refreshed yet: the caller sends each a unicast ARP request so that a
    /// neighbour in use does not drop out of the cache (RFC 1122 2.3.2.1).
    pub fn due_refresh(&mut self, now_ns: u64, window_ns: u64) -> Vec<(Key, EthernetAddress)> {
        let mut due = Vec::new();
        for (key, e) in self.cache.iter_mut() {
            if e.used && !e.refresh_sent && e.expires_ns.saturating_sub(now_ns) <= window_ns {
                e.refresh_sent = true;
                due.push((*key, e.mac));
            }
        }
        due
    }

    /// Whether the neighbour is in the cache.
    pub fn contains(&self, key: Key) -> bool {
        self.cache.contains_key(&key)
    }

    /// Records a mapping and hands back the frames that were waiting for it.
    pub fn learn(&mut self, key: Key, mac: EthernetAddress, expires_ns: u64) -> VecDeque<Queued> {
        if !self.cache.contains_key(&key) && self.cache.len() >= MAX_CACHE_ENTRIES {
            if let Some(victim) = self
                .cache
                .iter()
                .min_by_key(|(_, e)| e.expires_ns)
                .map(|(k, _)| *k)
            {
                self.cache.remove(&victim);
            }
        }
        self.cache.insert(
            key,
            Entry {
                mac,
                expires_ns,
                used: false,
                refresh_sent: false,
            },
        );
        match self.pending.remove(&key) {
            Some(p) => {
                self.pending_total -= p.frames.len();
                p.frames
            }
            None => VecDeque::new(),
        }
    }

    /// Queues a copy of `bytes` for `key`.
    pub fn enqueue(&mut self, key: Key, now_ns: u64, in_port: u16, bytes: &[u8]) -> Enqueued {
        let pending = self.pending.entry(key).or_default();
        if pending.frames.len() >= MAX_PENDING_PER_HOP || self.pending_total >= MAX_PENDING_TOTAL {
            if pending.frames.is_empty() {
                self.pending.remove(&key);
            }
            return Enqueued::Full;
        }
        pending.frames.push_back(Queued {
            queued_ns: now_ns,
            in_port,
            bytes: bytes.to_vec(),
        });
        self.pending_total += 1;
        let request = match pending.last_request_ns {
            Some(last) => now_ns.saturating_sub(last) >= REQUEST_INTERVAL_NS,
            None => true,
        };
        if request {
            pending.last_request_ns = Some(now_ns);
        }
        Enqueued::Queued { request }
    }

    /// Removes cache entries that have expired and queued frames older than
    /// [`PENDING_MAX_AGE_NS`]; returns the number of expired cache entries
    /// and the frames given up on.
    pub fn expire(&mut self, now_ns: u64) -> (usize, Vec<Queued>) {
        let before = self.cache.len();
        self.cache.retain(|_, e| e.expires_ns > now_ns);
        let expired = before - self.cache.len();
        let mut failed = Vec::new();
        self.pending.retain(|_, p| {
            while p
                .frames
                .front()
                .is_some_and(|f| now_ns.saturating_sub(f.queued_ns) >= PENDING_MAX_AGE_NS)
            {
                failed.extend(p.frames.pop_front());
            }
            !p.frames.is_empty()
        });
        self.pending_total -= failed.len();
        (expired, failed)
    }

    /// Next hops still waiting whose last request is at least
    /// [`REQUEST_INTERVAL_NS`] old; marks them as requested now.
    pub fn due_requests(&mut self, now_ns: u64) -> Vec<Key> {
        let mut due = Vec::new();
        for (key, p) in self.pending.iter_mut() {
            if p.last_request_ns
                .is_none_or(|last| now_ns.saturating_sub(last) >= REQUEST_INTERVAL_NS)
            {
                p.last_request_ns = Some(now_ns);
                due.push(*key);
            }
        }
        due
    }

    /// Cache entries.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Frames queued.
    pub fn pending_len(&self) -> usize {
        self.pending_total
    }
}

/// An Ethernet frame carrying an ARP message.
pub fn arp_frame(eth_dst: EthernetAddress, eth_src: EthernetAddress, repr: &ArpRepr) -> Vec<u8> {
    let mut bytes = vec![0u8; EthernetFrame::<&[u8]>::buffer_len(repr.buffer_len())];
    let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
    EthernetRepr {
        src_addr: eth_src,
        dst_addr: eth_dst,
        ethertype: EtherType::Arp,
    }
    .emit(&mut eth);
    repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    bytes
}

/// A who-has request for `target`, broadcast unless `to` names its MAC.
pub fn request(
    our_mac: EthernetAddress,
    our_ip: Ipv4Addr,
    target: Ipv4Addr,
    to: Option<EthernetAddress>,
) -> Vec<u8> {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: our_mac,
        source_protocol_addr: our_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    arp_frame(to.unwrap_or(EthernetAddress::BROADCAST), our_mac, &repr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 9]);

    #[test]
    fn queue_bounds_and_release() {
        let mut n = Neighbors::default();
        let key = (1, Ipv4Addr::new(10, 0, 2, 9));
        assert_eq!(
            n.enqueue(key, 0, 0, &[1]),
            Enqueued::Queued { request: true }
        );
        assert_eq!(
            n.enqueue(key, 10, 0, &[2]),
            Enqueued::Queued { request: false }
        );
        for _ in 2..MAX_PENDING_PER_HOP {
            assert!(matches!(
                n.enqueue(key, 20, 0, &[3]),
                Enqueued::Queued { .. }
            ));
        }
        assert_eq!(n.enqueue(key, 30, 0, &[4]), Enqueued::Full);
        assert_eq!(n.pending_len(), MAX_PENDING_PER_HOP);
        assert_eq!(n.enqueue(key, REQUEST_INTERVAL_NS, 0, &[]), Enqueued::Full);
        let released = n.learn(key, M, 100);
        assert_eq!(released.len(), MAX_PENDING_PER_HOP);
        assert_eq!(released[0].bytes, [1]);
        assert_eq!(n.pending_len(), 0);
        assert_eq!(n.lookup(key), Some(M));
        assert_eq!(n.expire(100).0, 1);
        assert_eq!(n.lookup(key), None);
    }

    #[test]
    fn total_bound() {
        let mut n = Neighbors::default();
        for i in 0..MAX_PENDING_TOTAL {
            let key = (0, Ipv4Addr::from(i as u32));
            assert!(matches!(n.enqueue(key, 0, 0, &[]), Enqueued::Queued { .. }));
        }
        assert_eq!(
            n.enqueue((0, Ipv4Addr::new(1, 1, 1, 1)), 0, 0, &[]),
            Enqueued::Full
        );
        assert_eq!(n.pending.len(), MAX_PENDING_TOTAL);
        let (_, failed) = n.expire(PENDING_MAX_AGE_NS);
        assert_eq!(failed.len(), MAX_PENDING_TOTAL);
        assert_eq!(n.pending_len(), 0);
    }
}
