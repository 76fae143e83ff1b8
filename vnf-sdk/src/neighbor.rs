//! IPv4 neighbour resolution (ARP) for VNFs that route: an ARP cache with
//! expiry and refresh, a bounded queue of frames per unresolved next hop,
//! request rate limiting, and the ARP protocol handling around them.
//!
//! Most VNFs keep one [`Resolver`], which wraps the table, sends what has
//! to be sent, keeps the metrics and answers with a [`Verdict`]:
//! [`Resolver::receive`] for ARP frames, [`Resolver::forward`] to send an
//! IPv4 frame to a next hop, and [`Resolver::maintain`] then
//! [`Resolver::send_due`] from [`crate::Vnf::tick`]. Each port's own
//! address is a [`LinkAddr`].
//!
//! Underneath, [`Neighbors`] is the table alone:
//!
//! - for an ARP frame received on a port, [`Neighbors::handle_arp`] learns
//!   the sender (RFC 826 rules), returns the reply to send and the frames
//!   that were waiting for the sender; send them with [`emit_released`];
//! - to forward, [`Neighbors::resolve`] either gives the next hop's MAC (no
//!   allocation) or queues a copy of the frame and says whether to send an
//!   ARP request now ([`send_request`]);
//! - [`Neighbors::maintain`] expires entries and queued frames and says
//!   which requests and refreshes are due.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    WireError,
};
use crate::{Context, Counter, DropReason, EmitError, Frame, Gauge, InitContext, Verdict};

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
/// A cache entry in use is re-confirmed with a unicast ARP request this long
/// before it expires (capped at half the lifetime by [`refresh_window`]).
pub const REFRESH_WINDOW_NS: u64 = 5_000_000_000;

/// A neighbour is keyed by the port it lives on and its address.
pub type Key = (u16, Ipv4Addr);

/// The refresh window for a cache lifetime: [`REFRESH_WINDOW_NS`], at most
/// half the lifetime.
pub fn refresh_window(lifetime_ns: u64) -> u64 {
    (lifetime_ns / 2).min(REFRESH_WINDOW_NS)
}

/// The VNF's own address on one link (port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkAddr {
    /// Our MAC on the port.
    pub mac: EthernetAddress,
    /// Our IPv4 address on the port.
    pub addr: Ipv4Addr,
    /// Prefix length of the connected subnet (0 to 32).
    pub prefix_len: u8,
}

impl LinkAddr {
    fn mask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        }
    }

    /// Whether `ip` is inside the connected subnet.
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }

    /// The network address of the connected subnet.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The directed broadcast address of the connected subnet.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip`/`mac` could be a neighbour on this link: a unicast host
    /// address of the subnet other than ours, with a unicast, non-zero MAC.
    pub fn plausible_neighbor(&self, ip: Ipv4Addr, mac: EthernetAddress) -> bool {
        self.on_link(ip)
            && ip != self.addr
            && (self.prefix_len >= 31 || (ip != self.network() && ip != self.broadcast()))
            && mac.is_unicast()
            && mac != EthernetAddress([0; 6])
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: EthernetAddress,
    expires_ns: u64,
    /// Forwarded through since it was learned.
    used: bool,
    /// A unicast refresh request went out for this entry.
    refresh_sent: bool,
}

/// A frame waiting for its next hop's MAC.
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

/// The answer of [`Neighbors::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The next hop's MAC is cached: send the frame now.
    Known(EthernetAddress),
    /// A copy of the frame was queued; send an ARP request if `request`.
    Queued {
        /// Whether an ARP request is due for this next hop.
        request: bool,
    },
    /// The queue is full; drop the frame ([`DropReason::NoNeighbor`]).
    Full,
}

/// What [`Neighbors::handle_arp`] decided about one ARP frame.
#[derive(Debug)]
pub struct ArpHandled {
    /// The verdict for the ARP frame.
    pub verdict: Verdict,
    /// An ARP reply to send back out of the port, if the request was for us.
    pub reply: Option<Vec<u8>>,
    /// Frames that were waiting for the sender, to send with
    /// [`emit_released`] to `sender_mac`.
    pub released: VecDeque<Queued>,
    /// The sender's MAC.
    pub sender_mac: EthernetAddress,
}

/// Work due from [`Neighbors::maintain`].
#[derive(Debug, Default)]
pub struct Maintenance {
    /// Cache entries that expired.
    pub expired: usize,
    /// Queued frames given up on (waited [`PENDING_MAX_AGE_NS`]); a router
    /// answers each with ICMP host unreachable.
    pub failed: Vec<Queued>,
    /// Next hops that still have frames waiting and are due a broadcast
    /// request.
    pub requests: Vec<Key>,
    /// Entries in use that are about to expire: send each a unicast request.
    pub refreshes: Vec<(Key, EthernetAddress)>,
}

/// ARP cache plus pending queue.
#[derive(Debug, Default)]
pub struct Neighbors {
    cache: BTreeMap<Key, Entry>,
    pending: BTreeMap<Key, Pending>,
    pending_total: usize,
}

/// A saved cache entry: `(port, address, MAC, expires_ns, used)`.
pub type SavedEntry = (u16, [u8; 4], [u8; 6], u64, bool);
/// A saved waiting frame: `(port, next hop, queued_ns, in_port, frame)`.
pub type SavedFrame = (u16, [u8; 4], u64, u16, Vec<u8>);

/// The neighbour table as carried to a replacement instance (see
/// [`crate::state`]): cache entries and the frames waiting for resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedNeighbors {
    /// The cache entries.
    pub cache: Vec<SavedEntry>,
    /// The frames waiting for resolution.
    pub pending: Vec<SavedFrame>,
}

impl Neighbors {
    /// The cache and the waiting frames, for a replacement instance.
    pub fn save(&self) -> SavedNeighbors {
        SavedNeighbors {
            cache: self
                .cache
                .iter()
                .map(|((port, ip), e)| (*port, ip.octets(), e.mac.0, e.expires_ns, e.used))
                .collect(),
            pending: self
                .pending
                .iter()
                .flat_map(|((port, ip), p)| {
                    p.frames
                        .iter()
                        .map(move |f| (*port, ip.octets(), f.queued_ns, f.in_port, f.bytes.clone()))
                })
                .collect(),
        }
    }

    /// Takes over what [`Neighbors::save`] saved (within this table's bounds);
    /// waiting next hops are asked again at the next tick.
    pub fn restore(&mut self, saved: &SavedNeighbors) {
        for &(port, ip, mac, expires_ns, used) in &saved.cache {
            self.learn((port, Ipv4Addr::from(ip)), EthernetAddress(mac), expires_ns);
            if let Some(e) = self.cache.get_mut(&(port, Ipv4Addr::from(ip))) {
                e.used = used;
            }
        }
        for (port, ip, queued_ns, in_port, bytes) in &saved.pending {
            let key = (*port, Ipv4Addr::from(*ip));
            let _ = self.enqueue(key, *queued_ns, *in_port, bytes);
            if let Some(p) = self.pending.get_mut(&key) {
                p.last_request_ns = None;
            }
        }
    }

    /// The cached MAC of a neighbour, marking the entry as in use; no allocation.
    pub fn lookup(&mut self, key: Key) -> Option<EthernetAddress> {
        self.cache.get_mut(&key).map(|e| {
            e.used = true;
            e.mac
        })
    }

    /// The MAC to send a frame to `key` with, or queues a copy of `frame`
    /// (which arrived on `in_port`) until it is known. Allocates only when
    /// queueing.
    pub fn resolve(&mut self, key: Key, now_ns: u64, in_port: u16, frame: &[u8]) -> Resolution {
        if let Some(mac) = self.lookup(key) {
            return Resolution::Known(mac);
        }
        match self.enqueue(key, now_ns, in_port, frame) {
            Enqueued::Queued { request } => Resolution::Queued { request },
            Enqueued::Full => Resolution::Full,
        }
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

    /// The timer's work, in order: [`Neighbors::expire`],
    /// [`Neighbors::due_requests`], then [`Neighbors::due_refresh`] for
    /// entries of a cache whose lifetime is `lifetime_ns`.
    pub fn maintain(&mut self, now_ns: u64, lifetime_ns: u64) -> Maintenance {
        let (expired, failed) = self.expire(now_ns);
        let requests = self.due_requests(now_ns);
        let refreshes = self.due_refresh(now_ns, refresh_window(lifetime_ns));
        Maintenance {
            expired,
            failed,
            requests,
            refreshes,
        }
    }

    /// Handles an ARP message (`arp`: the Ethernet payload) received on
    /// `port`, where we are `link`. The sender is learned (with lifetime
    /// until `expires_ns`) when the message is addressed to us, or refreshed
    /// when already cached (RFC 826), if it is a plausible neighbour on the
    /// link. A request for our address gets a reply (no proxy ARP).
    pub fn handle_arp(
        &mut self,
        port: u16,
        link: &LinkAddr,
        arp: &[u8],
        expires_ns: u64,
    ) -> ArpHandled {
        let mut handled = ArpHandled {
            verdict: Verdict::Drop(DropReason::NotForUs),
            reply: None,
            released: VecDeque::new(),
            sender_mac: EthernetAddress([0; 6]),
        };
        let packet = match ArpPacket::new_checked(arp) {
            Ok(p) => p,
            Err(WireError::Unsupported { .. }) => {
                handled.verdict = Verdict::Drop(DropReason::Unsupported);
                return handled;
            }
            Err(_) => {
                handled.verdict = Verdict::Drop(DropReason::Malformed);
                return handled;
            }
        };
        let Ok(repr) = ArpRepr::parse(&packet) else {
            handled.verdict = Verdict::Drop(DropReason::Malformed);
            return handled;
        };
        let sender = repr.source_protocol_addr;
        let sender_mac = repr.source_hardware_addr;
        handled.sender_mac = sender_mac;
        let for_us = repr.target_protocol_addr == link.addr;
        let key = (port, sender);
        let mut learned = false;
        if link.plausible_neighbor(sender, sender_mac) && (for_us || self.contains(key)) {
            handled.released = self.learn(key, sender_mac, expires_ns);
            learned = true;
        }
        if for_us && repr.operation == ArpOperation::Request {
            handled.reply = Some(arp_frame(sender_mac, link.mac, &repr.reply(link.mac)));
        }
        if for_us || learned {
            handled.verdict = Verdict::Consume;
        }
        handled
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

/// A who-has request for `target` from `link`, broadcast unless `to` names
/// its MAC (a unicast refresh).
pub fn request(link: &LinkAddr, target: Ipv4Addr, to: Option<EthernetAddress>) -> Vec<u8> {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: link.mac,
        source_protocol_addr: link.addr,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    arp_frame(to.unwrap_or(EthernetAddress::BROADCAST), link.mac, &repr)
}

/// Sends [`request`] out of `port`.
pub fn send_request(
    ctx: &mut Context,
    port: u16,
    link: &LinkAddr,
    target: Ipv4Addr,
    to: Option<EthernetAddress>,
) -> Result<(), EmitError> {
    ctx.emit(port, &request(link, target, to))
}

/// Sends frames that were waiting for a neighbour out of `port`, with the
/// Ethernet destination `dst_mac` and source `src_mac`. Returns how many
/// were sent and the first error, if any.
pub fn emit_released(
    ctx: &mut Context,
    port: u16,
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    frames: VecDeque<Queued>,
) -> (usize, Option<EmitError>) {
    let mut sent = 0;
    let mut error = None;
    for mut q in frames {
        if q.bytes.len() < EthernetFrame::<&[u8]>::HEADER_LEN {
            continue;
        }
        set_macs(&mut q.bytes, dst_mac, src_mac);
        match ctx.emit(port, &q.bytes) {
            Ok(()) => sent += 1,
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (sent, error)
}

/// Rewrites the Ethernet destination and source of `frame` (at least an
/// Ethernet header long).
fn set_macs(frame: &mut [u8], dst_mac: EthernetAddress, src_mac: EthernetAddress) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(src_mac);
}

/// The metrics of a VNF that resolves next hops, kept by [`Resolver`].
#[derive(Clone, Copy, Debug)]
pub struct ArpMetrics {
    /// Frames sent on to a resolved next hop, at once or released after ARP.
    pub forwarded: Counter,
    /// ARP requests sent (broadcast and unicast refreshes).
    pub requests_sent: Counter,
    /// ARP replies sent for our own addresses.
    pub replies_sent: Counter,
    /// Frames dropped because the queue waiting for ARP was full.
    pub queue_drops: Counter,
    /// Queued frames given up on after [`PENDING_MAX_AGE_NS`].
    pub failed: Counter,
    /// Entries in the ARP cache.
    pub cache_entries: Gauge,
    /// Frames waiting for ARP resolution.
    pub pending_frames: Gauge,
}

impl ArpMetrics {
    /// Declares the ARP counters and gauges (`arp_requests_sent`,
    /// `arp_replies_sent`, `arp_queue_drops`, `arp_failed`,
    /// `arp_cache_entries`, `arp_pending_frames`) around the VNF's own
    /// `forwarded` counter, which also counts frames released after ARP.
    pub fn declare(ctx: &mut InitContext, forwarded: Counter) -> ArpMetrics {
        ArpMetrics {
            forwarded,
            requests_sent: ctx.counter(
                "arp_requests_sent",
                "ARP requests sent to resolve next hops",
            ),
            replies_sent: ctx.counter(
                "arp_replies_sent",
                "ARP replies sent for the VNF's own addresses",
            ),
            queue_drops: ctx.counter(
                "arp_queue_drops",
                "packets dropped because the queue waiting for ARP was full",
            ),
            failed: ctx.counter(
                "arp_failed",
                "queued packets given up on after 3 s without an ARP reply",
            ),
            cache_entries: ctx.gauge("arp_cache_entries", "entries in the ARP cache"),
            pending_frames: ctx.gauge("arp_pending_frames", "packets waiting for ARP resolution"),
        }
    }
}

/// Next-hop resolution as a routing VNF uses it: a [`Neighbors`] table with
/// its cache lifetime and metrics, which sends the ARP replies, requests and
/// released frames itself and answers with the [`Verdict`] for the frame at
/// hand.
///
/// ```
/// use vnf_sdk::neighbor::{ArpMetrics, LinkAddr, Resolver};
/// use vnf_sdk::prelude::*;
/// use vnf_sdk::wire::{EtherType, EthernetAddress, EthernetFrame, Ipv4Addr};
///
/// /// Sends every IPv4 frame to one next hop out of port 1, resolving it
/// /// with ARP, and answers ARP for its own addresses.
/// struct Hop { arp: Resolver, links: [LinkAddr; 2], hop: Ipv4Addr }
///
/// impl Vnf for Hop {
///     type Config = serde_json::Value;
///     fn new(ctx: &mut InitContext, _config: serde_json::Value) -> Result<Self, ConfigError> {
///         let link = |i: u8| LinkAddr {
///             mac: EthernetAddress([2, 0, 0, 0, 0, i]),
///             addr: Ipv4Addr::new(10, 0, i, 1),
///             prefix_len: 24,
///         };
///         let forwarded = ctx.counter("forwarded", "Frames sent on");
///         let metrics = ArpMetrics::declare(ctx, forwarded);
///         Ok(Hop {
///             arp: Resolver::new(60_000_000_000, metrics),
///             links: [link(1), link(2)],
///             hop: Ipv4Addr::new(10, 0, 2, 254),
///         })
///     }
///     fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
///         let port = frame.in_port();
///         let Ok(eth) = EthernetFrame::new_checked(frame.data()) else {
///             return Verdict::Drop(DropReason::Malformed);
///         };
///         match eth.ethertype() {
///             // Learn the sender, answer a request for us, release frames.
///             EtherType::Arp => {
///                 let link = self.links[usize::from(port)];
///                 self.arp.receive(ctx, port, &link, frame.data())
///             }
///             // (A real hop decrements the TTL first.)
///             EtherType::Ipv4 => {
///                 let link = self.links[1];
///                 self.arp.forward(ctx, frame, 1, self.hop, &link)
///             }
///             _ => Verdict::Drop(DropReason::Unsupported),
///         }
///     }
///     fn tick(&mut self, ctx: &mut Context) {
///         // Expire entries, retry requests, fail what waited too long.
///         let due = self.arp.maintain(ctx.now_ns());
///         let links = self.links;
///         self.arp.send_due(ctx, due, |port| links[usize::from(port)]);
///     }
/// }
///
/// # use vnf_sdk::testing::{frames, Harness};
/// let mut h = Harness::<Hop>::new(&["lan", "wan"], serde_json::json!({})).unwrap();
/// let me = EthernetAddress([2, 0, 0, 0, 1, 0x10]);
/// let who_has = frames::arp_request(me, Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 1, 1));
/// let out = h.process(0, &who_has);
/// assert_eq!(out.verdict, Verdict::Consume);
/// assert_eq!(out.emitted.len(), 1, "an ARP reply on lan");
/// assert_eq!(out.emitted[0].0, 0);
/// ```
#[derive(Debug)]
pub struct Resolver {
    neighbors: Neighbors,
    lifetime_ns: u64,
    metrics: ArpMetrics,
}

impl Resolver {
    /// An empty cache whose entries live `lifetime_ns`.
    pub fn new(lifetime_ns: u64, metrics: ArpMetrics) -> Resolver {
        Resolver {
            neighbors: Neighbors::default(),
            lifetime_ns,
            metrics,
        }
    }

    /// The cache and queue.
    pub fn neighbors(&self) -> &Neighbors {
        &self.neighbors
    }

    /// The cache and queue, for a replacement instance.
    pub fn save(&self) -> SavedNeighbors {
        self.neighbors.save()
    }

    /// Takes over a predecessor's cache and queue, and shows them in the
    /// gauges.
    pub fn restore(&mut self, saved: &SavedNeighbors) {
        self.neighbors.restore(saved);
        self.metrics
            .cache_entries
            .set(self.neighbors.cache_len() as u64);
        self.metrics
            .pending_frames
            .set(self.neighbors.pending_len() as u64);
    }

    /// The cache and queue, to change them.
    pub fn neighbors_mut(&mut self) -> &mut Neighbors {
        &mut self.neighbors
    }

    /// Handles the ARP `frame` (a whole Ethernet frame) received on `port`,
    /// where we are `link`: learns the sender, answers a request for us and
    /// sends the frames that were waiting for the sender.
    pub fn receive(
        &mut self,
        ctx: &mut Context,
        port: u16,
        link: &LinkAddr,
        frame: &[u8],
    ) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let expires = ctx.now_ns().saturating_add(self.lifetime_ns);
        let handled = self
            .neighbors
            .handle_arp(port, link, eth.payload(), expires);
        if !handled.released.is_empty() {
            let (sent, error) =
                emit_released(ctx, port, handled.sender_mac, link.mac, handled.released);
            self.metrics.forwarded.add(sent as u64);
            if let Some(e) = error {
                crate::log_warn!("queued packet not sent: {e}");
            }
        }
        if let Some(reply) = handled.reply {
            match ctx.emit(port, &reply) {
                Ok(()) => self.metrics.replies_sent.inc(),
                Err(e) => crate::log_warn!("ARP reply on port {port} not sent: {e}"),
            }
        }
        self.update_gauges();
        handled.verdict
    }

    /// Sends the IPv4 `frame` to the next hop `hop` out of `port`, where we
    /// are `link`: [`Verdict::Forward`] with the Ethernet addresses
    /// rewritten if the hop's MAC is known; otherwise a copy waits for ARP
    /// ([`Verdict::Consume`], a request goes out when one is due) or, with
    /// the queue full, [`DropReason::NoNeighbor`]. A frame with offload
    /// metadata that has to wait is made ordinary first, since it will leave
    /// through [`Context::emit`].
    pub fn forward(
        &mut self,
        ctx: &mut Context,
        frame: &mut Frame<'_>,
        port: u16,
        hop: Ipv4Addr,
        link: &LinkAddr,
    ) -> Verdict {
        let key = (port, hop);
        if frame.has_offload() && self.neighbors.lookup(key).is_none() && !frame.make_ordinary() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let verdict = match self
            .neighbors
            .resolve(key, ctx.now_ns(), frame.in_port(), frame.data())
        {
            Resolution::Known(mac) => {
                set_macs(frame.data_mut(), mac, link.mac);
                self.metrics.forwarded.inc();
                return Verdict::Forward(port);
            }
            Resolution::Full => {
                self.metrics.queue_drops.inc();
                Verdict::Drop(DropReason::NoNeighbor)
            }
            Resolution::Queued { request } => {
                if request {
                    self.send_request(ctx, port, link, hop, None);
                }
                Verdict::Consume
            }
        };
        self.update_gauges();
        verdict
    }

    /// Sends a who-has for `target` out of `port` ([`request`]), counted.
    pub fn send_request(
        &self,
        ctx: &mut Context,
        port: u16,
        link: &LinkAddr,
        target: Ipv4Addr,
        to: Option<EthernetAddress>,
    ) {
        match send_request(ctx, port, link, target, to) {
            Ok(()) => self.metrics.requests_sent.inc(),
            Err(e) => crate::log_warn!("ARP request for {target} not sent: {e}"),
        }
    }

    /// The timer's bookkeeping ([`Neighbors::maintain`]); counts the frames
    /// given up on. Hand the result to [`Resolver::send_due`] after dealing
    /// with [`Maintenance::failed`].
    pub fn maintain(&mut self, now_ns: u64) -> Maintenance {
        let due = self.neighbors.maintain(now_ns, self.lifetime_ns);
        self.metrics.failed.add(due.failed.len() as u64);
        due
    }

    /// Sends the requests and refreshes `due` from [`Resolver::maintain`],
    /// with `link_of(port)` our address on each port, and updates the
    /// gauges.
    pub fn send_due(&self, ctx: &mut Context, due: Maintenance, link_of: impl Fn(u16) -> LinkAddr) {
        for (port, hop) in due.requests {
            self.send_request(ctx, port, &link_of(port), hop, None);
        }
        for ((port, hop), mac) in due.refreshes {
            self.send_request(ctx, port, &link_of(port), hop, Some(mac));
        }
        self.update_gauges();
    }

    /// Sets the cache and queue gauges.
    pub fn update_gauges(&self) {
        self.metrics
            .cache_entries
            .set(self.neighbors.cache_len() as u64);
        self.metrics
            .pending_frames
            .set(self.neighbors.pending_len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 9]);
    const US: LinkAddr = LinkAddr {
        mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
        addr: Ipv4Addr::new(10, 0, 2, 1),
        prefix_len: 24,
    };

    #[test]
    fn queue_bounds_and_release() {
        let mut n = Neighbors::default();
        let key = (1, Ipv4Addr::new(10, 0, 2, 9));
        assert_eq!(
            n.enqueue(key, 0, 0, &[1]),
            Enqueued::Queued { request: true }
        );
        assert_eq!(
            n.resolve(key, 10, 0, &[2]),
            Resolution::Queued { request: false }
        );
        for _ in 2..MAX_PENDING_PER_HOP {
            assert!(matches!(
                n.enqueue(key, 20, 0, &[3]),
                Enqueued::Queued { .. }
            ));
        }
        assert_eq!(n.enqueue(key, 30, 0, &[4]), Enqueued::Full);
        assert_eq!(n.resolve(key, 30, 0, &[4]), Resolution::Full);
        assert_eq!(n.pending_len(), MAX_PENDING_PER_HOP);
        assert_eq!(n.enqueue(key, REQUEST_INTERVAL_NS, 0, &[]), Enqueued::Full);
        let released = n.learn(key, M, 100);
        assert_eq!(released.len(), MAX_PENDING_PER_HOP);
        assert_eq!(released[0].bytes, [1]);
        assert_eq!(n.pending_len(), 0);
        assert_eq!(n.resolve(key, 40, 0, &[5]), Resolution::Known(M));
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

    #[test]
    fn maintenance_requests_refreshes_and_failures() {
        let mut n = Neighbors::default();
        let hop = (1, Ipv4Addr::new(10, 0, 2, 9));
        assert_eq!(
            n.resolve(hop, 0, 0, &[0; 14]),
            Resolution::Queued { request: true }
        );
        let m = n.maintain(REQUEST_INTERVAL_NS / 2, 60 * REQUEST_INTERVAL_NS);
        assert!(m.requests.is_empty() && m.failed.is_empty());
        let m = n.maintain(REQUEST_INTERVAL_NS, 60 * REQUEST_INTERVAL_NS);
        assert_eq!(m.requests, [hop]);
        let m = n.maintain(PENDING_MAX_AGE_NS, 60 * REQUEST_INTERVAL_NS);
        assert_eq!(m.failed.len(), 1);
        assert_eq!(m.failed[0].in_port, 0);
        // A used entry is refreshed once, within the window before expiry.
        let gw = (1, Ipv4Addr::new(10, 0, 2, 254));
        let life = 60 * REQUEST_INTERVAL_NS;
        n.learn(gw, M, life);
        assert_eq!(n.maintain(0, life).refreshes, []);
        assert_eq!(n.lookup(gw), Some(M));
        assert_eq!(
            n.maintain(life - REFRESH_WINDOW_NS, life).refreshes,
            [(gw, M)]
        );
        assert_eq!(n.maintain(life - 1, life).refreshes, []);
        assert_eq!(n.maintain(life, life).expired, 1);
        assert_eq!(
            refresh_window(4 * REQUEST_INTERVAL_NS),
            2 * REQUEST_INTERVAL_NS
        );
    }

    fn arp_msg(op: ArpOperation, sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        crate::testing::frames::arp(op, sha, spa, EthernetAddress([0; 6]), tpa)
    }

    #[test]
    fn arp_handling() {
        let mut n = Neighbors::default();
        let peer = Ipv4Addr::new(10, 0, 2, 9);
        // Queued frame released when the peer asks for us.
        n.enqueue((1, peer), 0, 0, &[0; 20]);
        let h = n.handle_arp(
            1,
            &US,
            &arp_msg(ArpOperation::Request, M, peer, US.addr),
            99,
        );
        assert_eq!(h.verdict, Verdict::Consume);
        assert_eq!(h.released.len(), 1);
        assert_eq!(h.sender_mac, M);
        let reply = h.reply.expect("a reply");
        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (M, US.mac));
        let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(r.operation, ArpOperation::Reply);
        assert_eq!(
            (r.source_protocol_addr, r.target_protocol_addr),
            (US.addr, peer)
        );
        assert!(n.contains((1, peer)));
        // For someone else, unknown sender: not learned, no reply.
        let other = Ipv4Addr::new(10, 0, 2, 10);
        let h = n.handle_arp(1, &US, &arp_msg(ArpOperation::Request, M, other, peer), 99);
        assert_eq!(h.verdict, Verdict::Drop(DropReason::NotForUs));
        assert!(h.reply.is_none() && !n.contains((1, other)));
        // Off-link or broadcast senders are never learned.
        for bad in [Ipv4Addr::new(10, 0, 3, 9), Ipv4Addr::new(10, 0, 2, 255)] {
            let h = n.handle_arp(1, &US, &arp_msg(ArpOperation::Reply, M, bad, US.addr), 99);
            assert!(!n.contains((1, bad)));
            assert_eq!(h.verdict, Verdict::Consume, "addressed to us");
        }
        assert_eq!(
            n.handle_arp(1, &US, &[0; 6], 99).verdict,
            Verdict::Drop(DropReason::Malformed)
        );
        let q = request(&US, peer, None);
        let eth = EthernetFrame::new_checked(&q[..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    }

    #[test]
    fn link_addr() {
        assert!(US.on_link(Ipv4Addr::new(10, 0, 2, 200)));
        assert!(!US.on_link(Ipv4Addr::new(10, 0, 3, 1)));
        assert_eq!(US.broadcast(), Ipv4Addr::new(10, 0, 2, 255));
        assert_eq!(US.network(), Ipv4Addr::new(10, 0, 2, 0));
        let p2p = LinkAddr {
            prefix_len: 31,
            addr: Ipv4Addr::new(10, 0, 0, 0),
            ..US
        };
        assert!(p2p.plausible_neighbor(Ipv4Addr::new(10, 0, 0, 1), M));
        assert!(!US.plausible_neighbor(Ipv4Addr::new(10, 0, 2, 9), EthernetAddress::BROADCAST));
    }

    /// Forwards every IPv4 frame from port 0 to the next hop 10.0.2.9 on
    /// port 1 through a [`Resolver`]; ARP on either port goes to it too.
    struct Hop {
        arp: Resolver,
    }

    const LAN: LinkAddr = LinkAddr {
        mac: EthernetAddress([2, 0, 0, 0, 1, 1]),
        addr: Ipv4Addr::new(10, 0, 1, 1),
        prefix_len: 24,
    };
    const HOP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 9);

    impl crate::Vnf for Hop {
        type Config = serde_json::Value;
        fn new(ctx: &mut InitContext, _: serde_json::Value) -> Result<Self, crate::ConfigError> {
            let forwarded = ctx.counter("forwarded", "frames forwarded");
            Ok(Hop {
                arp: Resolver::new(60_000_000_000, ArpMetrics::declare(ctx, forwarded)),
            })
        }
        fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
            let port = frame.in_port();
            let link = if port == 0 { LAN } else { US };
            let eth = EthernetFrame::new_unchecked(frame.data());
            if eth.ethertype() == EtherType::Arp {
                return self.arp.receive(ctx, port, &link, frame.data());
            }
            self.arp.forward(ctx, frame, 1, HOP, &US)
        }
        fn tick(&mut self, ctx: &mut Context) {
            let due = self.arp.maintain(ctx.now_ns());
            self.arp
                .send_due(ctx, due, |port| if port == 0 { LAN } else { US });
        }
    }

    #[test]
    fn resolver_queues_requests_releases_and_forwards() {
        use crate::testing::{frames, Harness};
        let mut h = Harness::<Hop>::new(&["lan", "wan"], serde_json::json!({})).unwrap();
        let host = EthernetAddress([2, 0, 0, 0, 1, 9]);
        let ip = frames::ipv4(
            Ipv4Addr::new(10, 0, 1, 9),
            HOP,
            crate::wire::IpProtocol::Udp,
            &[0; 8],
        );
        let packet = frames::ethernet(LAN.mac, host, EtherType::Ipv4, &ip);
        // Unknown hop: the frame waits and a broadcast request goes out.
        let out = h.process(0, &packet);
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 1);
        let (port, req) = &out.emitted[0];
        assert_eq!(*port, 1);
        let eth = EthernetFrame::new_checked(&req[..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
        let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(
            (r.source_protocol_addr, r.target_protocol_addr),
            (US.addr, HOP)
        );
        assert_eq!(h.counter("arp_requests_sent"), Some(1));
        assert_eq!(h.counter("arp_pending_frames"), Some(1));
        // A second frame within the interval: queued, no new request.
        assert_eq!(h.process(0, &packet).emitted.len(), 0);
        // The reply releases both, rewritten for the hop.
        let reply = frames::arp_frame(US.mac, ArpOperation::Reply, M, HOP, US.mac, US.addr);
        let out = h.process(1, &reply);
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 2);
        for (port, f) in &out.emitted {
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            assert_eq!((*port, eth.dst_addr(), eth.src_addr()), (1, M, US.mac));
            assert_eq!(eth.payload(), &ip[..]);
        }
        assert_eq!(h.counter("forwarded"), Some(2));
        assert_eq!(h.counter("arp_pending_frames"), Some(0));
        assert_eq!(h.counter("arp_cache_entries"), Some(1));
        // Known hop: forwarded in place.
        let out = h.process(0, &packet);
        assert_eq!(out.verdict, Verdict::Forward(1));
        let eth = EthernetFrame::new_checked(&out.frame[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (M, US.mac));
        assert_eq!(h.counter("forwarded"), Some(3));
        // A request for our LAN address is answered on the LAN.
        let ask = frames::arp_request(host, Ipv4Addr::new(10, 0, 1, 9), LAN.addr);
        let out = h.process(0, &ask);
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 1);
        assert_eq!(out.emitted[0].0, 0);
        assert_eq!(h.counter("arp_replies_sent"), Some(1));
        // Near expiry, the entry in use is refreshed by unicast.
        h.advance_ns(60_000_000_000 - REFRESH_WINDOW_NS);
        let sent = h.tick();
        assert_eq!(sent.len(), 1);
        let eth = EthernetFrame::new_checked(&sent[0].1[..]).unwrap();
        assert_eq!((sent[0].0, eth.dst_addr()), (1, M));
        assert_eq!(h.counter("arp_requests_sent"), Some(2));
    }
}
