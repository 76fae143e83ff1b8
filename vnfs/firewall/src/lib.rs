//! The firewall VNF: a transparent, stateful IPv4 packet filter between two
//! ports, with ordered rules for new connections, connection tracking for
//! TCP, UDP and ICMP echo, related ICMP errors, and reject answers. See
//! README.md.

mod config;
mod conntrack;
mod reject;
mod rules;

use std::vec::Vec;

use vnf_sdk::prelude::*;
use vnf_sdk::wire::{Icmpv4Message, Icmpv4Packet, Ipv4Packet, TcpPacket, UdpPacket};

pub use config::{Config, PortValue, RuleConfig, TimeoutsConfig};

use config::Timeouts;
use conntrack::{Dir, Entry, Key, Kind, Table, TcpState, ICMP, TCP, UDP};
use rules::{Action, Packet, Rule};

/// Expired connections are swept at most this often (lookups also ignore
/// expired entries, so this only bounds memory).
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;

struct Counters {
    accepted: Counter,
    dropped_by_policy: Counter,
    rejected: Counter,
    invalid: Counter,
    table_full_drops: Counter,
    related_icmp: Counter,
    connections: Gauge,
    rule_hits: Vec<Counter>,
}

impl Counters {
    fn declare(ctx: &mut InitContext, names: &[Option<String>]) -> Counters {
        let rule_hits = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let help = match name {
                    Some(n) => format!("packets that matched rule {i} ({n})"),
                    None => format!("packets that matched rule {i}"),
                };
                ctx.counter(&format!("rule_{i}_hits"), &help)
            })
            .collect();
        Counters {
            accepted: ctx.counter(
                "accepted",
                "new connections accepted by a rule or the default policy",
            ),
            dropped_by_policy: ctx.counter(
                "dropped_by_policy",
                "packets dropped by a drop rule, the default policy, or the fragment policy",
            ),
            rejected: ctx.counter(
                "rejected",
                "new connections rejected (dropped and answered with TCP RST or ICMP prohibited)",
            ),
            invalid: ctx.counter(
                "invalid",
                "packets dropped because they fit no connection: TCP without SYN, echo replies, unrelated ICMP errors, wrong port",
            ),
            table_full_drops: ctx.counter(
                "table_full_drops",
                "new connections dropped because the connection table was full",
            ),
            related_icmp: ctx.counter(
                "related_icmp",
                "ICMP errors passed because they quote a tracked connection",
            ),
            connections: ctx.gauge("connections", "connections in the tracking table"),
            rule_hits,
        }
    }
}

/// The firewall.
/// The firewall's state across `nfvhost replace`: its tracked
/// connections, with their TCP state and timers.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    connections: Vec<(conntrack::Key, conntrack::Entry)>,
}

pub struct Firewall {
    rules: Vec<Rule>,
    default_policy: Action,
    timeouts: Timeouts,
    pass_non_ip: bool,
    table: Table,
    counters: Counters,
    last_sweep_ns: u64,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The offset of the layer-3 header and the ethertype, past up to two
/// VLAN tags (802.1Q / 802.1ad).
fn l3_offset(data: &[u8]) -> Option<(usize, u16)> {
    if data.len() < 14 {
        return None;
    }
    let mut off = 12;
    let mut ethertype = be16(&data[12..14]);
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        if data.len() < off + 8 {
            return None;
        }
        off += 4;
        ethertype = be16(&data[off..off + 2]);
    }
    Some((off + 2, ethertype))
}

/// How a new connection is tracked, if accepted.
#[derive(Clone, Copy)]
enum Track {
    Yes(Kind),
    No,
}

impl Vnf for Firewall {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        let settings = config::validate(ctx, config)?;
        let counters = Counters::declare(ctx, &settings.names);
        // Seed the table's hash from the instance name; see README (limits).
        let seed = vnf_sdk::hash::seed_from_name(ctx.vnf_name());
        log_info!(
            "{} rules, default policy {:?}, up to {} connections",
            settings.rules.len(),
            settings.default_policy,
            settings.max_connections
        );
        Ok(Firewall {
            rules: settings.rules,
            default_policy: settings.default_policy,
            timeouts: settings.timeouts,
            pass_non_ip: settings.pass_non_ip,
            table: Table::new(settings.max_connections, seed),
            counters,
            last_sweep_ns: 0,
        })
    }

    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let in_port = frame.in_port();
        if in_port > 1 {
            return Verdict::Drop(DropReason::Other);
        }
        let out = Verdict::Forward(1 - in_port);
        let data = frame.data();
        let Some((l3, ethertype)) = l3_offset(data) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if ethertype != 0x0800 {
            if self.pass_non_ip {
                return out;
            }
            self.counters.dropped_by_policy.inc();
            return Verdict::Drop(DropReason::Policy);
        }
        let Ok(ip) = Ipv4Packet::new_checked(&data[l3..]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if !ip.verify_checksum() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let now = ctx.now_ns();
        let protocol = u8::from(ip.protocol());
        let src = u32::from(ip.src_addr());
        let dst = u32::from(ip.dst_addr());
        if ip.frag_offset() != 0 {
            return self.fragment(
                Packet {
                    in_port,
                    protocol,
                    src,
                    dst,
                    ports: None,
                },
                out,
            );
        }
        let payload = ip.payload();
        let key = |sport, dport| Key {
            proto: protocol,
            src,
            dst,
            sport,
            dport,
        };
        match protocol {
            TCP => {
                let Ok(tcp) = TcpPacket::new_checked(payload) else {
                    return Verdict::Drop(DropReason::Malformed);
                };
                let k = key(tcp.src_port(), tcp.dst_port());
                let (syn, ack, fin, rst) = (tcp.syn(), tcp.ack(), tcp.fin(), tcp.rst());
                if let Some((dir, entry)) = self.table.find(k, now) {
                    if !entry.port_ok(dir, in_port) {
                        self.counters.invalid.inc();
                        return Verdict::Drop(DropReason::Policy);
                    }
                    entry.tcp_update(dir, syn, ack, fin, rst);
                    entry.expires_ns = now + entry.timeout(&self.timeouts);
                    return out;
                }
                if !syn || ack || rst {
                    self.counters.invalid.inc();
                    return Verdict::Drop(DropReason::Policy);
                }
                self.new_connection(
                    ctx,
                    k,
                    in_port,
                    Track::Yes(Kind::Tcp(TcpState::SynSent)),
                    data,
                    l3,
                    out,
                )
            }
            UDP => {
                let ports = if ip.more_frags() {
                    // A first fragment: the UDP length covers the whole datagram.
                    (payload.len() >= 8).then(|| (be16(&payload[0..2]), be16(&payload[2..4])))
                } else {
                    UdpPacket::new_checked(payload)
                        .ok()
                        .map(|u| (u.src_port(), u.dst_port()))
                };
                let Some((sport, dport)) = ports else {
                    return Verdict::Drop(DropReason::Malformed);
                };
                self.datagram(
                    ctx,
                    key(sport, dport),
                    in_port,
                    Kind::Datagram,
                    data,
                    l3,
                    out,
                    now,
                )
            }
            ICMP => {
                let Ok(icmp) = Icmpv4Packet::new_checked(payload) else {
                    return Verdict::Drop(DropReason::Malformed);
                };
                match icmp.msg_type() {
                    Icmpv4Message::EchoRequest => {
                        let id = icmp.echo_ident();
                        let k = key(id, id);
                        if let Some(entry) = self.table.get(k, Dir::Orig, now) {
                            if entry.port_ok(Dir::Orig, in_port) {
                                entry.expires_ns = now + self.timeouts.icmp;
                                return out;
                            }
                        }
                        self.new_connection(ctx, k, in_port, Track::Yes(Kind::Echo), data, l3, out)
                    }
                    Icmpv4Message::EchoReply => {
                        let id = icmp.echo_ident();
                        match self.table.get(key(id, id), Dir::Reply, now) {
                            Some(entry) if entry.port_ok(Dir::Reply, in_port) => {
                                entry.expires_ns = now + self.timeouts.icmp;
                                out
                            }
                            _ => {
                                self.counters.invalid.inc();
                                Verdict::Drop(DropReason::Policy)
                            }
                        }
                    }
                    Icmpv4Message::DstUnreachable | Icmpv4Message::TimeExceeded => {
                        if self.related(icmp.payload(), ip.dst_addr().into(), in_port, now) {
                            self.counters.related_icmp.inc();
                            out
                        } else {
                            self.counters.invalid.inc();
                            Verdict::Drop(DropReason::Policy)
                        }
                    }
                    // Other ICMP messages are judged by the rules, untracked.
                    _ => self.new_connection(ctx, key(0, 0), in_port, Track::No, data, l3, out),
                }
            }
            _ => self.datagram(ctx, key(0, 0), in_port, Kind::Datagram, data, l3, out, now),
        }
    }

    const STATE_VERSION: u32 = 1;

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(vnf_sdk::state::encode(&SavedState {
            connections: self.table.save(),
        }))
    }

    fn load_state(&mut self, version: u32, bytes: &[u8]) -> Result<(), StateError> {
        let saved: SavedState = vnf_sdk::state::decode(Self::STATE_VERSION, version, bytes)?;
        let taken = self.table.restore(&saved.connections);
        self.counters.connections.set(self.table.len() as u64);
        log_info!(
            "took over {taken} of {} tracked connections",
            saved.connections.len()
        );
        Ok(())
    }

    fn tick(&mut self, ctx: &mut Context) {
        let now = ctx.now_ns();
        if now.saturating_sub(self.last_sweep_ns) < SWEEP_INTERVAL_NS {
            return;
        }
        self.last_sweep_ns = now;
        self.table.expire(now);
        self.counters.connections.set(self.table.len() as u64);
    }
}

impl Firewall {
    /// UDP and protocols without ports: a pseudo-connection.
    #[allow(clippy::too_many_arguments)]
    fn datagram(
        &mut self,
        ctx: &mut Context,
        k: Key,
        in_port: u16,
        kind: Kind,
        data: &[u8],
        l3: usize,
        out: Verdict,
        now: u64,
    ) -> Verdict {
        if let Some((dir, entry)) = self.table.find(k, now) {
            if !entry.port_ok(dir, in_port) {
                self.counters.invalid.inc();
                return Verdict::Drop(DropReason::Policy);
            }
            entry.expires_ns = now + self.timeouts.udp;
            return out;
        }
        self.new_connection(ctx, k, in_port, Track::Yes(kind), data, l3, out)
    }

    /// Runs the rules for a packet that starts a new connection.
    #[allow(clippy::too_many_arguments)]
    fn new_connection(
        &mut self,
        ctx: &mut Context,
        k: Key,
        in_port: u16,
        track: Track,
        data: &[u8],
        l3: usize,
        out: Verdict,
    ) -> Verdict {
        let ports = matches!(k.proto, TCP | UDP).then_some((k.sport, k.dport));
        let packet = Packet {
            in_port,
            protocol: k.proto,
            src: k.src,
            dst: k.dst,
            ports,
        };
        let action = match rules::first_match(&self.rules, &packet) {
            Some(i) => {
                self.counters.rule_hits[i].inc();
                self.rules[i].action
            }
            None => self.default_policy,
        };
        match action {
            Action::Accept => {
                if let Track::Yes(kind) = track {
                    if self.table.is_full() {
                        self.counters.table_full_drops.inc();
                        return Verdict::Drop(DropReason::TableFull);
                    }
                    let mut entry = Entry {
                        orig_port: in_port,
                        kind,
                        fin_orig: false,
                        fin_reply: false,
                        expires_ns: 0,
                    };
                    entry.expires_ns = ctx.now_ns() + entry.timeout(&self.timeouts);
                    self.table.insert(k, entry);
                    self.counters.connections.set(self.table.len() as u64);
                }
                self.counters.accepted.inc();
                out
            }
            Action::Drop => {
                self.counters.dropped_by_policy.inc();
                Verdict::Drop(DropReason::Policy)
            }
            Action::Reject => {
                self.counters.rejected.inc();
                self.send_reject(ctx, in_port, data, l3);
                Verdict::Drop(DropReason::Policy)
            }
        }
    }

    fn send_reject(&self, ctx: &mut Context, in_port: u16, data: &[u8], l3: usize) {
        let Ok(ip) = Ipv4Packet::new_checked(&data[l3..]) else {
            return;
        };
        if !reject::allowed(&ip) {
            return;
        }
        let mut buf = [0u8; reject::MAX_LEN];
        let len = if ip.protocol() == vnf_sdk::wire::IpProtocol::Tcp {
            let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                return;
            };
            reject::tcp_rst(&mut buf, data, l3, &ip, &tcp)
        } else {
            reject::admin_prohibited(&mut buf, data, l3, &ip)
        };
        if let Err(e) = ctx.emit(in_port, &buf[..len]) {
            log_debug!("reject answer not sent: {e}");
        }
    }

    /// Non-first fragments carry no ports: only rules without port matches
    /// judge them; no match falls to the default policy (reject acts as
    /// drop). They are never tracked.
    fn fragment(&mut self, packet: Packet, out: Verdict) -> Verdict {
        let found = self
            .rules
            .iter()
            .position(|r| !r.has_ports() && r.matches(&packet));
        let action = match found {
            Some(i) => {
                self.counters.rule_hits[i].inc();
                self.rules[i].action
            }
            None => self.default_policy,
        };
        if action == Action::Accept {
            out
        } else {
            self.counters.dropped_by_policy.inc();
            Verdict::Drop(DropReason::Policy)
        }
    }

    /// Whether an ICMP error (its payload `quote`, sent to `outer_dst`,
    /// arriving on `in_port`) quotes a packet of a tracked connection.
    fn related(&mut self, quote: &[u8], outer_dst: u32, in_port: u16, now: u64) -> bool {
        if quote.len() < 20 || quote[0] >> 4 != 4 {
            return false;
        }
        let ihl = usize::from(quote[0] & 0x0f) * 4;
        if ihl < 20 || quote.len() < ihl + 8 {
            return false;
        }
        // A quote is cut short: the view is read only where checked above.
        let inner = Ipv4Packet::new_unchecked(quote);
        let proto = u8::from(inner.protocol());
        let isrc = u32::from(inner.src_addr());
        let idst = u32::from(inner.dst_addr());
        if isrc != outer_dst {
            return false;
        }
        let l4 = &quote[ihl..];
        let (sport, dport) = match proto {
            TCP | UDP => (be16(&l4[0..2]), be16(&l4[2..4])),
            ICMP => {
                let t = Icmpv4Message::from(l4[0]);
                if !matches!(t, Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply) {
                    return false;
                }
                let id = be16(&l4[4..6]);
                (id, id)
            }
            _ => (0, 0),
        };
        let k = Key {
            proto,
            src: isrc,
            dst: idst,
            sport,
            dport,
        };
        match self.table.find(k, now) {
            // The quoted packet went the other way from the error.
            Some((dir, entry)) => entry.port_ok(dir, 1 - in_port),
            None => false,
        }
    }
}

vnf_sdk::export_vnf!(Firewall);

#[cfg(test)]
mod tests;
