//! The router VNF: static IPv4 routing between its ports, with ARP, ICMP
//! echo, and the ICMP errors a router owes (RFC 1812). See README.md.

mod config;
mod routes;

use std::net::Ipv4Addr;

use vnf_sdk::neighbor::{ArpMetrics, Resolver, SavedNeighbors};
use vnf_sdk::prelude::*;
use vnf_sdk::wire::{
    EtherType, EthernetFrame, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, WireError,
};

pub use config::{Config, RouteConfig};

use config::Iface;
use routes::RouteTable;
use vnf_sdk::icmp::{self, IcmpError, Origin};

const ETH_HEADER: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
/// ICMP errors allowed in a burst, and refilled per second (RFC 1812 4.3.2.8).
const ICMP_ERROR_BURST: u32 = 100;

struct Counters {
    arp: ArpMetrics,
    icmp_echo_replies: Counter,
    icmp_errors_sent: Counter,
    icmp_errors_limited: Counter,
    routes: Gauge,
}

impl Counters {
    fn declare(ctx: &mut InitContext) -> Counters {
        let forwarded = ctx.counter(
            "forwarded",
            "IPv4 packets forwarded (including those released after ARP resolution)",
        );
        Counters {
            arp: ArpMetrics::declare(ctx, forwarded),
            icmp_echo_replies: ctx.counter("icmp_echo_replies", "ICMP echo replies sent"),
            icmp_errors_sent: ctx.counter(
                "icmp_errors_sent",
                "ICMP errors sent (unreachable, time exceeded, fragmentation needed)",
            ),
            icmp_errors_limited: ctx.counter(
                "icmp_errors_limited",
                "ICMP errors not sent because of the rate limit",
            ),
            routes: ctx.gauge("routes", "routes in the table (connected and static)"),
        }
    }
}

/// A token bucket for ICMP errors.
struct Limiter {
    tokens: u32,
    last_ns: u64,
}

impl Limiter {
    fn allow(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        let refill = elapsed.saturating_mul(u64::from(ICMP_ERROR_BURST)) / 1_000_000_000;
        if refill > 0 {
            self.tokens = (u64::from(self.tokens) + refill).min(u64::from(ICMP_ERROR_BURST)) as u32;
            self.last_ns = now_ns;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// The router's state across `nfvhost replace`: its ARP cache, the frames
/// waiting for a next hop's address, and the ICMP identifier counter.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    arp: SavedNeighbors,
    ident: u16,
}

/// The router.
pub struct Router {
    ifaces: Vec<Iface>,
    table: RouteTable,
    arp: Resolver,
    counters: Counters,
    ident: u16,
    limiter: Limiter,
}

impl Vnf for Router {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        let settings = config::validate(ctx, config)?;
        let counters = Counters::declare(ctx);
        counters.routes.set(settings.table.len() as u64);
        for (port, iface) in settings.ifaces.iter().enumerate() {
            log_info!(
                "port {} ({}): {}/{} mac {} mtu {}",
                port,
                ctx.ports()[port],
                iface.addr,
                iface.subnet.len,
                iface.mac,
                iface.mtu
            );
        }
        Ok(Router {
            ifaces: settings.ifaces,
            table: settings.table,
            arp: Resolver::new(settings.arp_timeout_ns, counters.arp),
            counters,
            ident: 0,
            limiter: Limiter {
                tokens: ICMP_ERROR_BURST,
                last_ns: 0,
            },
        })
    }

    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let in_port = frame.in_port();
        let Some(iface) = self.ifaces.get(usize::from(in_port)).copied() else {
            return Verdict::Drop(DropReason::Other);
        };
        let Ok(eth) = EthernetFrame::new_checked(frame.data()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let dst_mac = eth.dst_addr();
        let broadcast = dst_mac.is_broadcast();
        if dst_mac != iface.mac && !broadcast {
            return Verdict::Drop(DropReason::NotForUs);
        }
        match eth.ethertype() {
            EtherType::Arp => self.arp.receive(ctx, in_port, &iface.link(), frame.data()),
            // Link-layer broadcasts are never routed.
            EtherType::Ipv4 if broadcast => Verdict::Drop(DropReason::NotForUs),
            EtherType::Ipv4 => self.handle_ipv4(ctx, frame),
            _ => Verdict::Drop(DropReason::Unsupported),
        }
    }

    const STATE_VERSION: u32 = 1;

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(vnf_sdk::state::encode(&SavedState {
            arp: self.arp.save(),
            ident: self.ident,
        }))
    }

    fn load_state(&mut self, version: u32, bytes: &[u8]) -> Result<(), StateError> {
        let saved: SavedState = vnf_sdk::state::decode(Self::STATE_VERSION, version, bytes)?;
        // Entries for ports this configuration does not have are dropped.
        let ports = self.ifaces.len() as u16;
        let arp = SavedNeighbors {
            cache: saved
                .arp
                .cache
                .into_iter()
                .filter(|e| e.0 < ports)
                .collect(),
            pending: saved
                .arp
                .pending
                .into_iter()
                .filter(|e| e.0 < ports && e.3 < ports)
                .collect(),
        };
        self.arp.restore(&arp);
        self.ident = saved.ident;
        log_info!(
            "took over {} ARP entries and {} frames waiting for ARP",
            arp.cache.len(),
            arp.pending.len()
        );
        Ok(())
    }

    fn tick(&mut self, ctx: &mut Context) {
        let mut due = self.arp.maintain(ctx.now_ns());
        for q in core::mem::take(&mut due.failed) {
            self.send_error(ctx, q.in_port, IcmpError::HostUnreachable, &q.bytes);
        }
        let ifaces = &self.ifaces;
        self.arp
            .send_due(ctx, due, |port| ifaces[usize::from(port)].link());
    }
}

impl Router {
    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    fn is_our_broadcast(&self, dst: Ipv4Addr) -> bool {
        dst.is_broadcast()
            || self
                .ifaces
                .iter()
                .any(|f| f.subnet.len < 31 && f.subnet.broadcast() == dst)
    }

    fn handle_ipv4(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let in_port = frame.in_port();
        let data = frame.data();
        let Ok(ip) = Ipv4Packet::new_checked(&data[ETH_HEADER..]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if !ip.verify_checksum() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let src = ip.src_addr();
        let dst = ip.dst_addr();
        // RFC 1812 5.3.7: never forward from martian sources.
        if src.is_unspecified()
            || src.is_loopback()
            || src.is_multicast()
            || src.is_broadcast()
            || src.octets()[0] == 0
        {
            return Verdict::Drop(DropReason::Policy);
        }
        if let Some(ours) = self.ifaces.iter().find(|f| f.addr == dst).copied() {
            return self.deliver_local(ctx, in_port, ours, data);
        }
        if self.is_our_broadcast(dst) {
            return Verdict::Drop(DropReason::NotForUs);
        }
        if dst.is_multicast() {
            return Verdict::Drop(DropReason::Unsupported);
        }
        let Some((port, hop)) = self.table.lookup(dst) else {
            self.send_error(ctx, in_port, IcmpError::NetUnreachable, data);
            return Verdict::Drop(DropReason::NoRoute);
        };
        if ip.ttl() <= 1 {
            self.send_error(ctx, in_port, IcmpError::TimeExceeded, data);
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let egress = self.ifaces[usize::from(port)];
        // A segmentation super-frame leaves as segments: the MTU applies to
        // one of them, not to the super-frame.
        let Some(on_wire) = frame.ipv4_wire_len() else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if on_wire > usize::from(egress.mtu) {
            if ip.dont_frag() {
                self.send_error(ctx, in_port, IcmpError::FragNeeded(egress.mtu), data);
            }
            // No fragmentation.
            return Verdict::Drop(DropReason::TooBig);
        }

        // TTL is not in the pseudo-header: a partial L4 checksum is unaffected.
        Ipv4Packet::new_unchecked(&mut frame.data_mut()[ETH_HEADER..]).decrement_ttl_incremental();
        self.arp.forward(ctx, frame, port, hop, &egress.link())
    }

    /// A packet for one of the router's own addresses (`ours`).
    fn deliver_local(
        &mut self,
        ctx: &mut Context,
        in_port: u16,
        ours: Iface,
        data: &[u8],
    ) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(&data[ETH_HEADER..]);
        if ip.is_fragment() || ip.protocol() != IpProtocol::Icmp {
            return Verdict::Drop(DropReason::Unsupported);
        }
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let request = match Icmpv4Repr::parse(&icmp) {
            Ok(r @ Icmpv4Repr::EchoRequest { .. }) => r,
            Ok(_) => return Verdict::Drop(DropReason::Unsupported),
            Err(WireError::BadChecksum { .. } | WireError::Truncated { .. }) => {
                return Verdict::Drop(DropReason::Malformed)
            }
            Err(_) => return Verdict::Drop(DropReason::Unsupported),
        };
        let iface = self.ifaces[usize::from(in_port)];
        let origin = Origin {
            src_mac: iface.mac,
            dst_mac: EthernetFrame::new_unchecked(data).src_addr(),
            src_ip: ours.addr,
            ident: self.next_ident(),
        };
        if !origin.dst_mac.is_unicast() {
            return Verdict::Drop(DropReason::Policy);
        }
        if let Some(reply) = icmp::echo_reply(origin, ip.src_addr(), &request) {
            match ctx.emit(in_port, &reply) {
                Ok(()) => self.counters.icmp_echo_replies.inc(),
                Err(e) => log_warn!("echo reply to {} not sent: {e}", ip.src_addr()),
            }
        }
        Verdict::Consume
    }

    /// Sends an ICMP error about `frame` (which arrived on `in_port`) back to
    /// the previous hop, if RFC 1812 allows one and the rate limit agrees.
    fn send_error(&mut self, ctx: &mut Context, in_port: u16, kind: IcmpError, frame: &[u8]) {
        let Some(iface) = self.ifaces.get(usize::from(in_port)).copied() else {
            return;
        };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return;
        };
        if !eth.src_addr().is_unicast()
            || eth.dst_addr().is_multicast()
            || !icmp::error_allowed(&ip)
            || self.is_our_broadcast(ip.dst_addr())
            || self.is_our_broadcast(ip.src_addr())
        {
            return;
        }
        if !self.limiter.allow(ctx.now_ns()) {
            self.counters.icmp_errors_limited.inc();
            return;
        }
        let origin = Origin {
            src_mac: iface.mac,
            dst_mac: eth.src_addr(),
            src_ip: iface.addr,
            ident: self.next_ident(),
        };
        let bytes = icmp::error(origin, kind, &ip);
        match ctx.emit(in_port, &bytes) {
            Ok(()) => self.counters.icmp_errors_sent.inc(),
            Err(e) => log_warn!("ICMP error to {} not sent: {e}", ip.src_addr()),
        }
    }
}

vnf_sdk::export_vnf!(Router);

#[cfg(test)]
mod tests;
