//! The DHCP server VNF: a DHCPv4 server (RFC 2131/2132) placed as a bump in
//! the wire on the LAN side of a chain. See README.md.

mod config;
mod leases;
pub mod message;
mod server;

use std::net::Ipv4Addr;

use vnf_sdk::prelude::*;
use vnf_sdk::wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

pub use config::{Config, ReservationConfig};

use config::Settings;
use message::{MessageType, Request, CLIENT_PORT, SERVER_PORT};
use server::{Outcome, Reply, Server};

const ETH_HEADER: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

struct Counters {
    discovers: Counter,
    offers: Counter,
    requests: Counter,
    acks: Counter,
    naks: Counter,
    releases: Counter,
    declines: Counter,
    informs: Counter,
    malformed: Counter,
    pool_exhausted: Counter,
    rogue_server_drops: Counter,
    arp_replies: Counter,
    leases_active: Gauge,
    leases_offered: Gauge,
}

impl Counters {
    fn declare(ctx: &mut InitContext) -> Counters {
        Counters {
            discovers: ctx.counter("discovers", "DHCPDISCOVER messages received"),
            offers: ctx.counter("offers", "DHCPOFFER messages sent"),
            requests: ctx.counter("requests", "DHCPREQUEST messages received"),
            acks: ctx.counter("acks", "DHCPACK messages sent (leases and INFORM answers)"),
            naks: ctx.counter("naks", "DHCPNAK messages sent"),
            releases: ctx.counter("releases", "DHCPRELEASE messages received"),
            declines: ctx.counter("declines", "DHCPDECLINE messages received"),
            informs: ctx.counter("informs", "DHCPINFORM messages received"),
            malformed: ctx.counter("malformed", "malformed DHCP messages dropped unanswered"),
            pool_exhausted: ctx.counter(
                "pool_exhausted",
                "DHCPDISCOVER messages left unanswered for want of a free address",
            ),
            rogue_server_drops: ctx.counter(
                "rogue_server_drops",
                "DHCP server messages from the uplink dropped (rogue server protection)",
            ),
            arp_replies: ctx.counter("arp_replies", "ARP replies sent for the server's address"),
            leases_active: ctx.gauge("leases_active", "addresses bound to a client"),
            leases_offered: ctx.gauge(
                "leases_offered",
                "addresses offered and awaiting the client's request",
            ),
        }
    }
}

/// The DHCP server.
/// The DHCP server's state across `nfvhost replace`: its lease records.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    leases: leases::SavedLeases,
    ident: u16,
}

pub struct Dhcp {
    server: Server,
    counters: Counters,
    ident: u16,
}

impl Vnf for Dhcp {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        let settings = config::validate(ctx, config)?;
        let counters = Counters::declare(ctx);
        log_info!(
            "DHCP server {}/{} mac {} on port {}, pool {}-{}, lease {} s",
            settings.addr,
            settings.subnet.len,
            settings.mac,
            ctx.ports()[usize::from(settings.lan)],
            settings.pool.0,
            settings.pool.1,
            settings.lease_time
        );
        Ok(Dhcp {
            server: Server::new(settings),
            counters,
            ident: 0,
        })
    }

    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let s = &self.server.settings;
        let in_port = frame.in_port();
        let other = if in_port == s.lan {
            s.uplink
        } else if in_port == s.uplink {
            s.lan
        } else {
            return Verdict::Drop(DropReason::Other);
        };
        let data = frame.data();
        let Ok(eth) = EthernetFrame::new_checked(data) else {
            return Verdict::Forward(other);
        };
        let to_our_mac = eth.dst_addr() == s.mac;
        let handled = match eth.ethertype() {
            EtherType::Arp => self.handle_arp(ctx, in_port, eth.payload()),
            EtherType::Ipv4 => self.handle_ipv4(ctx, in_port, &eth, frame.checksum_partial()),
            _ => None,
        };
        match handled {
            Some(v) => v,
            // Nobody else answers to our MAC: do not pass it on.
            None if to_our_mac => Verdict::Drop(DropReason::Unsupported),
            None => Verdict::Forward(other),
        }
    }

    const STATE_VERSION: u32 = 1;

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(vnf_sdk::state::encode(&SavedState {
            leases: self.server.leases.save(),
            ident: self.ident,
        }))
    }

    /// Leases are taken over as they were, even those the new
    /// configuration would no longer hand out: a bound client keeps its
    /// address until it renews, when the new rules apply.
    fn load_state(&mut self, version: u32, bytes: &[u8]) -> Result<(), StateError> {
        let saved: SavedState = vnf_sdk::state::decode(Self::STATE_VERSION, version, bytes)?;
        self.server
            .leases
            .restore(&saved.leases)
            .map_err(StateError::new)?;
        self.ident = saved.ident;
        self.update_gauges();
        log_info!("took over {} lease records", saved.leases.records.len());
        Ok(())
    }

    fn tick(&mut self, ctx: &mut Context) {
        if self.server.leases.expire(ctx.now_ns()) > 0 {
            self.update_gauges();
        }
    }
}

vnf_sdk::export_vnf!(Dhcp);

impl Dhcp {
    fn settings(&self) -> &Settings {
        &self.server.settings
    }

    fn update_gauges(&self) {
        let (bound, offered) = self.server.leases.counts();
        self.counters.leases_active.set(bound);
        self.counters.leases_offered.set(offered);
    }

    /// Answers ARP requests for the server's address, from either side.
    fn handle_arp(&mut self, ctx: &mut Context, in_port: u16, payload: &[u8]) -> Option<Verdict> {
        let repr = ArpRepr::parse(&ArpPacket::new_checked(payload).ok()?).ok()?;
        let s = self.settings();
        if repr.operation != ArpOperation::Request
            || repr.target_protocol_addr != s.addr
            || repr.source_protocol_addr == s.addr
        {
            return None;
        }
        let reply = repr.reply(s.mac);
        let mut buf = vec![0u8; ETH_HEADER + reply.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: s.mac,
            dst_addr: repr.source_hardware_addr,
            ethertype: EtherType::Arp,
        }
        .emit(&mut f);
        reply.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        match ctx.emit(in_port, &buf) {
            Ok(()) => self.counters.arp_replies.inc(),
            Err(e) => log_warn!("ARP reply to {} not sent: {e}", repr.source_protocol_addr),
        }
        Some(Verdict::Consume)
    }

    /// DHCP for the server; server messages from the uplink. `None` for
    /// everything else. `partial`: the host says the UDP checksum is
    /// partial (offload), so it is not verified.
    fn handle_ipv4(
        &mut self,
        ctx: &mut Context,
        in_port: u16,
        eth: &EthernetFrame<&[u8]>,
        partial: bool,
    ) -> Option<Verdict> {
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        if ip.protocol() != IpProtocol::Udp || ip.is_fragment() {
            return None;
        }
        // The ports are judged even in a datagram too short to be UDP.
        if ip.payload().len() < 4 {
            return None;
        }
        let udp = UdpPacket::new_unchecked(ip.payload());
        let (sport, dport) = (udp.src_port(), udp.dst_port());
        let s = self.settings();
        if in_port == s.uplink {
            if sport == SERVER_PORT && dport == CLIENT_PORT {
                self.counters.rogue_server_drops.inc();
                return Some(Verdict::Drop(DropReason::Policy));
            }
            return None;
        }
        let dst = ip.dst_addr();
        let for_us = (eth.dst_addr().is_broadcast() || eth.dst_addr() == s.mac)
            && (dst.is_broadcast() || dst == s.addr || dst == s.subnet.broadcast());
        if dport != SERVER_PORT || !for_us {
            return None;
        }
        let src_ip = ip.src_addr();
        let parsed = if !ip.verify_checksum() {
            None
        } else {
            UdpPacket::new_checked(ip.payload())
                .ok()
                .filter(|u| {
                    partial || u.verify_checksum(src_ip, dst) || partial_checksum(u, src_ip, dst)
                })
                .and_then(|u| Request::parse(u.payload()).ok())
        };
        let Some(req) = parsed else {
            self.counters.malformed.inc();
            return Some(Verdict::Drop(DropReason::Malformed));
        };
        Some(self.handle_dhcp(ctx, &req, eth.src_addr(), src_ip))
    }

    fn handle_dhcp(
        &mut self,
        ctx: &mut Context,
        req: &Request,
        src_mac: EthernetAddress,
        src_ip: Ipv4Addr,
    ) -> Verdict {
        let c = &self.counters;
        match req.message_type {
            MessageType::Discover => c.discovers.inc(),
            MessageType::Request => c.requests.inc(),
            MessageType::Release => c.releases.inc(),
            MessageType::Decline => c.declines.inc(),
            MessageType::Inform => c.informs.inc(),
            _ => {}
        }
        let verdict = match self.server.handle(req, src_mac, src_ip, ctx.now_ns()) {
            Outcome::Reply(reply) => {
                self.send(ctx, &reply, req);
                Verdict::Consume
            }
            Outcome::Silent => Verdict::Consume,
            Outcome::Exhausted => {
                self.counters.pool_exhausted.inc();
                log_warn!("no free address for {}: pool exhausted", req.chaddr);
                Verdict::Consume
            }
            Outcome::Unexpected => match req.message_type {
                MessageType::Other(_) => Verdict::Drop(DropReason::Unsupported),
                // OFFER, ACK, NAK are server messages: not from a client.
                _ => {
                    self.counters.malformed.inc();
                    Verdict::Drop(DropReason::Malformed)
                }
            },
        };
        self.update_gauges();
        verdict
    }

    /// Frames a reply and emits it on the client port.
    fn send(&mut self, ctx: &mut Context, reply: &Reply, req: &Request) {
        self.ident = self.ident.wrapping_add(1);
        let s = &self.server.settings;
        let udp = UdpRepr {
            src_port: SERVER_PORT,
            dst_port: reply.dst_port,
            payload_len: reply.message.len(),
        };
        let ip = Ipv4Repr {
            src_addr: s.addr,
            dst_addr: reply.dst_ip,
            protocol: IpProtocol::Udp,
            payload_len: udp.buffer_len(),
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: self.ident,
            dont_frag: false,
        };
        let mut buf = vec![0u8; ETH_HEADER + ip.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: s.mac,
            dst_addr: reply.dst_mac,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p);
        let mut u = UdpPacket::new_unchecked(p.payload_mut());
        udp.emit(&mut u);
        u.payload_mut().copy_from_slice(&reply.message);
        u.fill_checksum(s.addr, reply.dst_ip);
        let yiaddr = message::DhcpPacket::new_checked(&reply.message[..])
            .map(|m| m.yiaddr())
            .ok();
        match ctx.emit(s.lan, &buf) {
            Ok(()) => {
                let c = &self.counters;
                match reply.kind {
                    MessageType::Offer => c.offers.inc(),
                    MessageType::Ack => c.acks.inc(),
                    MessageType::Nak => c.naks.inc(),
                    _ => {}
                }
                if reply.kind == MessageType::Ack && req.message_type == MessageType::Request {
                    log_info!(
                        "lease {} to {}",
                        yiaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
                        req.chaddr
                    );
                }
            }
            Err(e) => log_warn!("DHCP reply to {} not sent: {e}", req.chaddr),
        }
    }
}

/// Whether the UDP checksum field holds only the pseudo-header sum, as a
/// sender with transmit checksum offload leaves it (CHECKSUM_PARTIAL); such
/// a frame is accepted, since the sum over the data was never computed. The
/// host says so with `Frame::checksum_partial`; this also catches such a
/// frame when the flag was lost on the way.
fn partial_checksum(u: &UdpPacket<&[u8]>, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    u.checksum() == checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, u32::from(u.len()))
}

#[cfg(test)]
mod tests;
