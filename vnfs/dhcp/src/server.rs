//! The DHCP server's decisions (RFC 2131 section 4.3), free of frames: a
//! validated client message in, at most one reply message out.

use std::net::Ipv4Addr;
use std::vec::Vec;

use vnf_sdk::wire::EthernetAddress;

use crate::config::Settings;
use crate::leases::{Leases, State};
use crate::message::{
    opt, Builder, MessageType, Request, CLIENT_PORT, FLAG_BROADCAST, SERVER_PORT,
};

/// How long an offered address is held for the client's REQUEST.
pub const OFFER_HOLD_NS: u64 = 60 * SEC;
/// How long a declined address is kept out of the pool.
pub const DECLINE_HOLD_NS: u64 = 600 * SEC;
const SEC: u64 = 1_000_000_000;

/// A reply and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// OFFER, ACK or NAK.
    pub kind: MessageType,
    /// The BOOTP message (UDP payload).
    pub message: Vec<u8>,
    pub dst_mac: EthernetAddress,
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
}

/// What the server made of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with this.
    Reply(Reply),
    /// No answer is due (RELEASE, DECLINE, a REQUEST for another server).
    Silent,
    /// A DISCOVER that found no free address.
    Exhausted,
    /// A message a client does not send (OFFER, ACK, unknown types).
    Unexpected,
}

/// The lease logic.
#[derive(Debug)]
pub struct Server {
    pub settings: Settings,
    pub leases: Leases,
}

impl Server {
    /// A server with no leases.
    pub fn new(settings: Settings) -> Server {
        Server {
            settings,
            leases: Leases::default(),
        }
    }

    /// Whether `addr` may be given to `mac` now.
    pub fn assignable(&self, mac: EthernetAddress, addr: Ipv4Addr) -> bool {
        let s = &self.settings;
        if !s.subnet.is_host(addr) || addr == s.addr || Some(addr) == s.router {
            return false;
        }
        match s.reserved_for(addr) {
            Some(owner) if owner != mac => return false,
            Some(_) => {}
            None if !s.in_pool(addr) => return false,
            None => {}
        }
        if s.reservation_of(mac).is_some_and(|r| r != addr) {
            return false;
        }
        if self.leases.is_declined(addr) {
            return false;
        }
        self.leases.holder(addr).is_none_or(|m| m == mac)
    }

    /// The first free pool address: never used ones first, then the ones
    /// other clients left.
    fn next_free(&self, mac: EthernetAddress) -> Option<Ipv4Addr> {
        let (first, last) = self.settings.pool;
        let mut reuse = None;
        for n in u32::from(first)..=u32::from(last) {
            let a = Ipv4Addr::from(n);
            if !self.assignable(mac, a) {
                continue;
            }
            if self.leases.get(a).is_none() {
                return Some(a);
            }
            reuse = reuse.or(Some(a));
        }
        reuse
    }

    /// The address to offer `req`'s client.
    fn choose(&self, req: &Request) -> Option<Ipv4Addr> {
        let mac = req.chaddr;
        if let Some(r) = self.settings.reservation_of(mac) {
            return self.assignable(mac, r).then_some(r);
        }
        if let Some((a, _)) = self
            .leases
            .of(mac)
            .filter(|(a, _)| self.assignable(mac, *a))
        {
            return Some(a);
        }
        if let Some(a) = req.requested_ip.filter(|a| self.assignable(mac, *a)) {
            return Some(a);
        }
        self.next_free(mac)
    }

    /// Handles one client message. `src_mac` and `src_ip` are the frame's
    /// Ethernet and IP sources.
    pub fn handle(
        &mut self,
        req: &Request,
        src_mac: EthernetAddress,
        src_ip: Ipv4Addr,
        now_ns: u64,
    ) -> Outcome {
        let ours = self.settings.addr;
        let for_other = req.server_id.is_some_and(|id| id != ours);
        match req.message_type {
            MessageType::Discover => {
                let Some(addr) = self.choose(req) else {
                    return Outcome::Exhausted;
                };
                let bound = self.leases.of(req.chaddr).is_some_and(|(a, l)| {
                    a == addr && l.state == State::Bound && l.expires_ns > now_ns
                });
                if !bound {
                    self.leases.set(
                        addr,
                        req.chaddr,
                        State::Offered,
                        now_ns.saturating_add(OFFER_HOLD_NS),
                    );
                }
                Outcome::Reply(self.lease_reply(req, MessageType::Offer, addr, src_mac))
            }
            MessageType::Request => {
                if for_other {
                    // The client chose another server (SELECTING).
                    self.leases.withdraw_offer(req.chaddr);
                    return Outcome::Silent;
                }
                let nonzero_ciaddr = (!req.ciaddr.is_unspecified()).then_some(req.ciaddr);
                let addr = if req.server_id.is_some() {
                    // SELECTING: option 50 carries the offered address.
                    req.requested_ip.or(nonzero_ciaddr)
                } else {
                    // INIT-REBOOT (option 50), RENEWING/REBINDING (ciaddr).
                    nonzero_ciaddr.or(req.requested_ip)
                };
                let Some(addr) = addr else {
                    return Outcome::Reply(self.nak(req, src_mac, "no address requested"));
                };
                if !self.settings.subnet.contains(addr) {
                    return Outcome::Reply(self.nak(req, src_mac, "wrong network"));
                }
                if !self.assignable(req.chaddr, addr) {
                    return Outcome::Reply(self.nak(req, src_mac, "address not available"));
                }
                let expires = now_ns.saturating_add(u64::from(self.settings.lease_time) * SEC);
                self.leases.set(addr, req.chaddr, State::Bound, expires);
                Outcome::Reply(self.lease_reply(req, MessageType::Ack, addr, src_mac))
            }
            MessageType::Release => {
                if !for_other {
                    self.leases.free(req.ciaddr, req.chaddr);
                }
                Outcome::Silent
            }
            MessageType::Decline => {
                if let Some(addr) = req.requested_ip.filter(|_| !for_other) {
                    if self.leases.get(addr).is_some_and(|l| l.mac == req.chaddr) {
                        self.leases
                            .decline(addr, now_ns.saturating_add(DECLINE_HOLD_NS));
                    }
                }
                Outcome::Silent
            }
            MessageType::Inform => {
                let mut b =
                    Builder::reply(req, MessageType::Ack, req.ciaddr, Ipv4Addr::UNSPECIFIED);
                b.addrs(opt::SERVER_ID, &[ours]);
                self.parameters(&mut b, req);
                let (dst_ip, dst_mac) = if !req.ciaddr.is_unspecified() {
                    (req.ciaddr, src_mac)
                } else if !src_ip.is_unspecified() {
                    (src_ip, src_mac)
                } else {
                    (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST)
                };
                let (dst_ip, dst_mac, dst_port) = if req.giaddr.is_unspecified() {
                    (dst_ip, dst_mac, CLIENT_PORT)
                } else {
                    (req.giaddr, src_mac, SERVER_PORT)
                };
                Outcome::Reply(Reply {
                    kind: MessageType::Ack,
                    message: b.finish(),
                    dst_mac,
                    dst_ip,
                    dst_port,
                })
            }
            MessageType::Offer | MessageType::Ack | MessageType::Nak | MessageType::Other(_) => {
                Outcome::Unexpected
            }
        }
    }

    /// Options 1, 3, 6, 15 (those configured), in the order of the
    /// client's parameter request list, then the ones it did not ask for;
    /// then the client identifier echoed (RFC 6842).
    fn parameters(&self, b: &mut Builder, req: &Request) {
        const OURS: [u8; 4] = [opt::SUBNET_MASK, opt::ROUTER, opt::DNS, opt::DOMAIN];
        let mut order: Vec<u8> = Vec::with_capacity(OURS.len());
        for code in req.parameters.iter().copied().chain(OURS) {
            if OURS.contains(&code) && !order.contains(&code) {
                order.push(code);
            }
        }
        let s = &self.settings;
        for code in order {
            match code {
                opt::SUBNET_MASK => {
                    b.addrs(code, &[s.subnet.netmask()]);
                }
                opt::ROUTER => {
                    if let Some(r) = s.router {
                        b.addrs(code, &[r]);
                    }
                }
                opt::DNS if !s.dns.is_empty() => {
                    b.addrs(code, &s.dns);
                }
                opt::DOMAIN => {
                    if let Some(d) = &s.domain {
                        b.option(code, d.as_bytes());
                    }
                }
                _ => {}
            }
        }
        if let Some(id) = &req.client_id {
            b.option(opt::CLIENT_ID, id);
        }
    }

    /// An OFFER or ACK of `addr`.
    fn lease_reply(
        &self,
        req: &Request,
        kind: MessageType,
        addr: Ipv4Addr,
        src_mac: EthernetAddress,
    ) -> Reply {
        let s = &self.settings;
        // ciaddr is echoed in an ACK (table 3), zero in an OFFER.
        let ciaddr = if kind == MessageType::Ack {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let mut b = Builder::reply(req, kind, ciaddr, addr);
        b.addrs(opt::SERVER_ID, &[s.addr]);
        b.u32(opt::LEASE_TIME, s.lease_time);
        b.u32(opt::RENEWAL_TIME, s.renewal_time);
        b.u32(opt::REBINDING_TIME, s.rebinding_time);
        self.parameters(&mut b, req);
        // RFC 2131 4.1: relay, then ciaddr, then broadcast bit, then unicast to yiaddr.
        let (dst_ip, dst_mac, dst_port) = if !req.giaddr.is_unspecified() {
            (req.giaddr, src_mac, SERVER_PORT)
        } else if !req.ciaddr.is_unspecified() {
            (req.ciaddr, req.chaddr, CLIENT_PORT)
        } else if req.broadcast() {
            (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST, CLIENT_PORT)
        } else {
            (addr, req.chaddr, CLIENT_PORT)
        };
        Reply {
            kind,
            message: b.finish(),
            dst_mac,
            dst_ip,
            dst_port,
        }
    }

    /// A NAK: broadcast, or to the relay with the broadcast bit set.
    fn nak(&self, req: &Request, src_mac: EthernetAddress, why: &str) -> Reply {
        let mut relayed = req.clone();
        if !req.giaddr.is_unspecified() {
            relayed.flags |= FLAG_BROADCAST;
        }
        let mut b = Builder::reply(
            &relayed,
            MessageType::Nak,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
        );
        b.addrs(opt::SERVER_ID, &[self.settings.addr]);
        b.option(opt::MESSAGE, why.as_bytes());
        if let Some(id) = &req.client_id {
            b.option(opt::CLIENT_ID, id);
        }
        let (dst_ip, dst_mac, dst_port) = if req.giaddr.is_unspecified() {
            (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST, CLIENT_PORT)
        } else {
            (req.giaddr, src_mac, SERVER_PORT)
        };
        Reply {
            kind: MessageType::Nak,
            message: b.finish(),
            dst_mac,
            dst_ip,
            dst_port,
        }
    }
}
