//! The NAT VNF: an IPv4 hop between an inside (LAN) and an outside (WAN)
//! port that masquerades LAN flows behind its outside address, forwards
//! configured ports to LAN hosts, and translates ICMP errors about
//! translated flows. See README.md.

mod bindings;
mod config;
mod icmp_errors;
mod state;
mod translate;

use std::net::Ipv4Addr;

use vnf_sdk::neighbor::{ArpMetrics, LinkAddr, Resolver};
use vnf_sdk::prelude::*;
use vnf_sdk::wire::{
    EtherType, EthernetFrame, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet,
};

pub use config::Config;

use bindings::{Proto, Refused, Table};
use config::{Forward, Route, Side};
use icmp_errors::{IcmpError, Origin};
use translate::End;

const ETH: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

struct Counters {
    translated_out: Counter,
    translated_in: Counter,
    dnat_hits: Counter,
    bindings_refused: Counter,
    bindings_expired: Counter,
    icmp_errors_translated: Counter,
    icmp_echo_replies: Counter,
    icmp_errors_sent: Counter,
    bindings_active: Gauge,
    arp: ArpMetrics,
}

impl Counters {
    fn declare(ctx: &mut InitContext) -> Counters {
        let forwarded = ctx.counter(
            "forwarded",
            "IPv4 packets sent on (translated or not), including those released after ARP",
        );
        Counters {
            translated_out: ctx.counter(
                "translated_out",
                "packets translated from the inside to the outside",
            ),
            translated_in: ctx.counter(
                "translated_in",
                "packets translated from the outside to the inside",
            ),
            dnat_hits: ctx.counter("dnat_hits", "new flows created by a port forward"),
            bindings_refused: ctx.counter(
                "bindings_refused",
                "new flows dropped because the binding table or the port range was full",
            ),
            bindings_expired: ctx
                .counter("bindings_expired", "bindings removed after their timeout"),
            icmp_errors_translated: ctx.counter(
                "icmp_errors_translated",
                "ICMP errors about translated packets translated back",
            ),
            icmp_echo_replies: ctx.counter(
                "icmp_echo_replies",
                "echo replies for the NAT's own addresses",
            ),
            icmp_errors_sent: ctx.counter(
                "icmp_errors_sent",
                "ICMP errors sent (net unreachable, time exceeded)",
            ),
            bindings_active: ctx.gauge("bindings_active", "bindings in the table"),
            arp: ArpMetrics::declare(ctx, forwarded),
        }
    }
}

/// The NAT.
pub struct Nat {
    inside: Side,
    outside: Side,
    routes: Vec<Route>,
    forwards: Vec<Forward>,
    table: Table,
    arp: Resolver,
    counters: Counters,
    ident: u16,
}

/// What the outside-to-inside path decided.
enum Inbound {
    /// Rewrite the destination to this binding's inside endpoint.
    Flow(u32, bool, bool),
    /// An ICMP error quoting this binding's flow.
    Error(u32),
    /// An echo request to the outside address.
    Local,
    /// Not translated: this verdict.
    Verdict(Verdict),
}

impl Vnf for Nat {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        let s = config::validate(ctx, config)?;
        let counters = Counters::declare(ctx);
        log_info!(
            "inside {} ({}/{}), outside {} ({}/{}), {} routes, {} port forwards",
            ctx.ports()[usize::from(s.inside.port)],
            s.inside.link.addr,
            s.inside.link.prefix_len,
            ctx.ports()[usize::from(s.outside.port)],
            s.outside.link.addr,
            s.outside.link.prefix_len,
            s.routes.len(),
            s.forwards.len()
        );
        Ok(Nat {
            inside: s.inside,
            outside: s.outside,
            routes: s.routes,
            forwards: s.forwards,
            table: Table::new(
                s.max_bindings,
                s.port_range,
                s.timeouts,
                vnf_sdk::hash::seed_from_name(ctx.vnf_name()),
            ),
            arp: Resolver::new(s.arp_timeout_ns, counters.arp),
            counters,
            ident: 0,
        })
    }

    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let in_port = frame.in_port();
        let Some(side) = self.side(in_port) else {
            return Verdict::Drop(DropReason::Other);
        };
        let Ok(eth) = EthernetFrame::new_checked(frame.data()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let broadcast = eth.dst_addr().is_broadcast();
        if eth.dst_addr() != side.link.mac && !broadcast {
            return Verdict::Drop(DropReason::NotForUs);
        }
        match eth.ethertype() {
            EtherType::Arp => self.arp.receive(ctx, side.port, &side.link, frame.data()),
            EtherType::Ipv4 if broadcast => Verdict::Drop(DropReason::NotForUs),
            EtherType::Ipv4 => self.handle_ipv4(ctx, side, frame),
            _ => Verdict::Drop(DropReason::Unsupported),
        }
    }

    const STATE_VERSION: u32 = state::VERSION;

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(state::save(self))
    }

    fn load_state(&mut self, version: u32, bytes: &[u8]) -> Result<(), StateError> {
        state::load(self, version, bytes)
    }

    fn tick(&mut self, ctx: &mut Context) {
        let now = ctx.now_ns();
        let expired = self.table.expire(now);
        self.counters.bindings_expired.add(expired as u64);
        self.update_gauges();
        let due = self.arp.maintain(now);
        let (inside, outside) = (self.inside, self.outside);
        self.arp.send_due(ctx, due, |port| {
            if port == inside.port {
                inside.link
            } else {
                outside.link
            }
        });
    }
}

impl Nat {
    fn side(&self, port: u16) -> Option<Side> {
        [self.inside, self.outside]
            .into_iter()
            .find(|s| s.port == port)
    }

    fn link(&self, port: u16) -> LinkAddr {
        if port == self.inside.port {
            self.inside.link
        } else {
            self.outside.link
        }
    }

    fn update_gauges(&self) {
        self.counters.bindings_active.set(self.table.len() as u64);
    }

    fn lookup_route(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
        self.routes
            .iter()
            .find(|r| r.prefix.contains(dst))
            .map(|r| (r.port, r.via.unwrap_or(dst)))
    }

    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    fn handle_ipv4(&mut self, ctx: &mut Context, side: Side, frame: &mut Frame<'_>) -> Verdict {
        let data = frame.data();
        let Ok(ip) = Ipv4Packet::new_checked(&data[ETH..]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if !ip.verify_checksum() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if src.is_unspecified()
            || src.is_loopback()
            || src.is_multicast()
            || src.is_broadcast()
            || src.octets()[0] == 0
        {
            return Verdict::Drop(DropReason::Policy);
        }
        if dst.is_multicast() || dst.is_broadcast() {
            return Verdict::Drop(DropReason::Unsupported);
        }
        let from_outside = side.port == self.outside.port;
        if from_outside {
            if dst != self.outside.link.addr {
                // Nothing is routed into the LAN untranslated.
                return Verdict::Drop(DropReason::NotForUs);
            }
            return match self.inbound(ctx, &ip, frame.checksum_partial()) {
                Inbound::Verdict(v) => v,
                Inbound::Local => self.deliver_local(ctx, side, frame.data()),
                Inbound::Flow(idx, fin, rst) => {
                    let b = *self.table.get(idx);
                    if let Some(v) = self.route_checks(ctx, side, frame, b.inside.0) {
                        return v;
                    }
                    self.table.touch(idx, ctx.now_ns(), false, fin, rst);
                    let partial = frame.checksum_partial();
                    translate::rewrite(
                        &mut frame.data_mut()[ETH..],
                        End::Dst,
                        b.inside.0,
                        b.inside.1,
                        partial,
                    );
                    self.counters.translated_in.inc();
                    self.forward_after_checks(ctx, frame, b.inside.0)
                }
                Inbound::Error(idx) => {
                    let b = *self.table.get(idx);
                    self.translate_error_in(ctx, side, frame, b)
                }
            };
        }
        if dst == self.inside.link.addr || dst == self.outside.link.addr {
            return self.deliver_local(ctx, side, frame.data());
        }
        if self.link(side.port).on_link(dst) && dst == self.inside.link.broadcast() {
            return Verdict::Drop(DropReason::NotForUs);
        }
        if let Some(v) = self.route_checks(ctx, side, frame, dst) {
            return v;
        }
        let (egress, _) = self.lookup_route(dst).expect("checked");
        if egress == self.outside.port {
            if let Some(v) = self.translate_out(ctx, frame) {
                return v;
            }
        }
        self.forward_after_checks(ctx, frame, dst)
    }

    /// No route → net unreachable; TTL ≤ 1 → time exceeded; above the egress
    /// MTU → fragmentation needed (with DF) and dropped. `None` if the
    /// packet may go on to `dst`.
    fn route_checks(
        &mut self,
        ctx: &mut Context,
        side: Side,
        frame: &Frame<'_>,
        dst: Ipv4Addr,
    ) -> Option<Verdict> {
        let data = frame.data();
        let ip = Ipv4Packet::new_unchecked(&data[ETH..]);
        if self.lookup_route(dst).is_none() {
            self.send_error(ctx, side, IcmpError::NetUnreachable, data);
            return Some(Verdict::Drop(DropReason::NoRoute));
        }
        if ip.ttl() <= 1 {
            self.send_error(ctx, side, IcmpError::TimeExceeded, data);
            return Some(Verdict::Drop(DropReason::TtlExceeded));
        }
        let (egress, _) = self.lookup_route(dst)?;
        let mtu = self.side(egress).map_or(u16::MAX, |s| s.mtu);
        // A super-frame leaves as segments: the MTU applies to one of them.
        let Some(on_wire) = frame.ipv4_wire_len() else {
            return Some(Verdict::Drop(DropReason::Malformed));
        };
        if on_wire > usize::from(mtu) {
            if ip.dont_frag() {
                self.send_error(ctx, side, IcmpError::FragNeeded(mtu), data);
            }
            return Some(Verdict::Drop(DropReason::TooBig));
        }
        None
    }

    /// The outside-to-inside decision for a packet to the outside address.
    /// `partial`: the frame's L4 checksum is partial (offload) and cannot
    /// be verified.
    fn inbound(&mut self, ctx: &mut Context, ip: &Ipv4Packet<&[u8]>, partial: bool) -> Inbound {
        if ip.is_fragment() {
            return Inbound::Verdict(Verdict::Drop(DropReason::Unsupported));
        }
        let src = ip.src_addr();
        let payload = ip.payload();
        if ip.protocol() == IpProtocol::Icmp {
            let Ok(icmp) = Icmpv4Packet::new_checked(payload) else {
                return Inbound::Verdict(Verdict::Drop(DropReason::Malformed));
            };
            if !partial && !icmp.verify_checksum() {
                return Inbound::Verdict(Verdict::Drop(DropReason::Malformed));
            }
            match icmp.msg_type() {
                Icmpv4Message::EchoRequest => return Inbound::Local,
                Icmpv4Message::EchoReply => {}
                _ => {
                    let Some((qsrc, qdst, p)) = icmp_errors::quoted(payload) else {
                        return Inbound::Verdict(Verdict::Drop(DropReason::Unsupported));
                    };
                    if qsrc != self.outside.link.addr {
                        return Inbound::Verdict(Verdict::Drop(DropReason::Policy));
                    }
                    let rport = if p.proto == Proto::Icmp { 0 } else { p.dst };
                    return match self.table.find_in(&(p.proto, p.src, qdst, rport)) {
                        Some(idx) => Inbound::Error(idx),
                        None => Inbound::Verdict(Verdict::Drop(DropReason::Policy)),
                    };
                }
            }
        }
        let Some(p) = translate::ports(ip.protocol(), payload) else {
            return Inbound::Verdict(Verdict::Drop(DropReason::Unsupported));
        };
        let rport = if p.proto == Proto::Icmp { 0 } else { p.src };
        if let Some(idx) = self.table.find_in(&(p.proto, p.dst, src, rport)) {
            return Inbound::Flow(idx, p.fin, p.rst);
        }
        let Some(fwd) = self
            .forwards
            .iter()
            .find(|f| f.proto == p.proto && f.port == p.dst)
            .copied()
        else {
            return Inbound::Verdict(Verdict::Drop(DropReason::NotForUs));
        };
        match self
            .table
            .create_dnat(p.proto, fwd.to, fwd.port, (src, rport), ctx.now_ns())
        {
            Ok(idx) => {
                self.counters.dnat_hits.inc();
                self.update_gauges();
                Inbound::Flow(idx, p.fin, p.rst)
            }
            Err(_) => {
                self.counters.bindings_refused.inc();
                Inbound::Verdict(Verdict::Drop(DropReason::TableFull))
            }
        }
    }

    /// Masquerades a packet leaving by the outside; `Some` if it must not.
    fn translate_out(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Option<Verdict> {
        let now = ctx.now_ns();
        let partial = frame.checksum_partial();
        let data = frame.data();
        let ip = Ipv4Packet::new_unchecked(&data[ETH..]);
        if ip.is_fragment() {
            return Some(Verdict::Drop(DropReason::Unsupported));
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ip.protocol() == IpProtocol::Icmp {
            let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
                return Some(Verdict::Drop(DropReason::Malformed));
            };
            if !partial && !icmp.verify_checksum() {
                return Some(Verdict::Drop(DropReason::Malformed));
            }
            match icmp.msg_type() {
                Icmpv4Message::EchoRequest => {}
                Icmpv4Message::EchoReply => return Some(Verdict::Drop(DropReason::Unsupported)),
                _ => {
                    // An error from a LAN host about a packet that came in
                    // translated: quote src is the remote, quote dst the host.
                    let Some((qsrc, qdst, p)) = icmp_errors::quoted(ip.payload()) else {
                        return Some(Verdict::Drop(DropReason::Unsupported));
                    };
                    let rport = if p.proto == Proto::Icmp { 0 } else { p.src };
                    let Some(idx) = self.table.find_out(&(p.proto, qdst, p.dst, qsrc, rport))
                    else {
                        return Some(Verdict::Drop(DropReason::Policy));
                    };
                    let b = *self.table.get(idx);
                    let out = self.outside.link.addr;
                    icmp_errors::translate(
                        &mut frame.data_mut()[ETH..],
                        End::Src,
                        out,
                        b.outside_port,
                    );
                    self.counters.icmp_errors_translated.inc();
                    return None;
                }
            }
        }
        let Some(p) = translate::ports(ip.protocol(), ip.payload()) else {
            return Some(Verdict::Drop(DropReason::Unsupported));
        };
        let rport = if p.proto == Proto::Icmp { 0 } else { p.dst };
        let idx = match self.table.find_out(&(p.proto, src, p.src, dst, rport)) {
            Some(idx) => idx,
            None => match self
                .table
                .create_snat(p.proto, (src, p.src), (dst, rport), now)
            {
                Ok(idx) => {
                    self.update_gauges();
                    idx
                }
                Err(Refused::TableFull | Refused::NoPort) => {
                    self.counters.bindings_refused.inc();
                    return Some(Verdict::Drop(DropReason::TableFull));
                }
            },
        };
        self.table.touch(idx, now, true, p.fin, p.rst);
        let port = self.table.get(idx).outside_port;
        translate::rewrite(
            &mut frame.data_mut()[ETH..],
            End::Src,
            self.outside.link.addr,
            port,
            partial,
        );
        self.counters.translated_out.inc();
        None
    }

    fn translate_error_in(
        &mut self,
        ctx: &mut Context,
        side: Side,
        frame: &mut Frame<'_>,
        b: bindings::Binding,
    ) -> Verdict {
        if let Some(v) = self.route_checks(ctx, side, frame, b.inside.0) {
            return v;
        }
        icmp_errors::translate(
            &mut frame.data_mut()[ETH..],
            End::Dst,
            b.inside.0,
            b.inside.1,
        );
        self.counters.icmp_errors_translated.inc();
        self.forward_after_checks(ctx, frame, b.inside.0)
    }

    /// Decrements TTL and sends the packet towards `dst` (after any
    /// translation), resolving the next hop.
    fn forward_after_checks(
        &mut self,
        ctx: &mut Context,
        frame: &mut Frame<'_>,
        dst: Ipv4Addr,
    ) -> Verdict {
        let Some((port, hop)) = self.lookup_route(dst) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        Ipv4Packet::new_unchecked(&mut frame.data_mut()[ETH..]).decrement_ttl_incremental();
        let link = self.link(port);
        self.arp.forward(ctx, frame, port, hop, &link)
    }

    /// Ping to one of our addresses; everything else to us is unsupported.
    fn deliver_local(&mut self, ctx: &mut Context, side: Side, data: &[u8]) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(&data[ETH..]);
        if ip.is_fragment() || ip.protocol() != IpProtocol::Icmp {
            return Verdict::Drop(DropReason::Unsupported);
        }
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let request = match Icmpv4Repr::parse(&icmp) {
            Ok(r @ Icmpv4Repr::EchoRequest { .. }) => r,
            Ok(_) => return Verdict::Drop(DropReason::Unsupported),
            Err(_) => return Verdict::Drop(DropReason::Malformed),
        };
        let origin = Origin {
            src_mac: side.link.mac,
            dst_mac: EthernetFrame::new_unchecked(data).src_addr(),
            src_ip: ip.dst_addr(),
            ident: self.next_ident(),
        };
        if !origin.dst_mac.is_unicast() {
            return Verdict::Drop(DropReason::Policy);
        }
        if let Some(reply) = icmp_errors::echo_reply(origin, ip.src_addr(), &request) {
            match ctx.emit(side.port, &reply) {
                Ok(()) => self.counters.icmp_echo_replies.inc(),
                Err(e) => log_warn!("echo reply not sent: {e}"),
            }
        }
        Verdict::Consume
    }

    fn send_error(&mut self, ctx: &mut Context, side: Side, kind: IcmpError, frame: &[u8]) {
        let eth = EthernetFrame::new_unchecked(frame);
        let ip = Ipv4Packet::new_unchecked(&frame[ETH..]);
        if !eth.src_addr().is_unicast() || !icmp_errors::error_allowed(&ip) {
            return;
        }
        let origin = Origin {
            src_mac: side.link.mac,
            dst_mac: eth.src_addr(),
            src_ip: side.link.addr,
            ident: self.next_ident(),
        };
        let bytes = icmp_errors::error(origin, kind, &ip);
        match ctx.emit(side.port, &bytes) {
            Ok(()) => self.counters.icmp_errors_sent.inc(),
            Err(e) => log_warn!("ICMP error not sent: {e}"),
        }
    }
}

vnf_sdk::export_vnf!(Nat);

#[cfg(test)]
mod tests;
