//! Rules: what a packet that starts a new connection is matched on, and
//! what becomes of it.

use std::net::Ipv4Addr;

use vnf_sdk::prefix::Prefix;

/// What to do with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Track the connection and pass the packet.
    Accept,
    /// Drop the packet silently.
    Drop,
    /// Drop the packet and tell the sender (TCP RST or ICMP unreachable).
    Reject,
}

impl Action {
    /// Parses `accept`, `drop` or `reject`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "accept" => Some(Action::Accept),
            "drop" => Some(Action::Drop),
            "reject" => Some(Action::Reject),
            _ => None,
        }
    }
}

/// The protocol a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Any IPv4 protocol.
    Any,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
}

impl Proto {
    /// Parses `tcp`, `udp`, `icmp` or `any`.
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "any" => Some(Proto::Any),
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "icmp" => Some(Proto::Icmp),
            _ => None,
        }
    }

    fn matches(self, protocol: u8) -> bool {
        match self {
            Proto::Any => true,
            Proto::Tcp => protocol == 6,
            Proto::Udp => protocol == 17,
            Proto::Icmp => protocol == 1,
        }
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    fn contains(self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

/// One validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The port the packet came in on.
    pub in_port: Option<u16>,
    /// Source prefix.
    pub src: Option<Prefix>,
    /// Destination prefix.
    pub dst: Option<Prefix>,
    /// Protocol.
    pub proto: Proto,
    /// Source ports (TCP/UDP only).
    pub src_port: Option<PortRange>,
    /// Destination ports (TCP/UDP only).
    pub dst_port: Option<PortRange>,
    /// What to do on a match.
    pub action: Action,
}

/// What a rule looks at in a packet.
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    /// The port it came in on.
    pub in_port: u16,
    /// IPv4 protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source and destination port, when the packet has them (TCP and UDP,
    /// not in non-first fragments).
    pub ports: Option<(u16, u16)>,
}

impl Rule {
    /// Whether the rule has port matches (so it cannot judge a packet
    /// without ports).
    pub fn has_ports(&self) -> bool {
        self.src_port.is_some() || self.dst_port.is_some()
    }

    /// Whether the rule matches the packet.
    pub fn matches(&self, p: &Packet) -> bool {
        if self.in_port.is_some_and(|port| port != p.in_port)
            || self
                .src
                .is_some_and(|pre| !pre.contains(Ipv4Addr::from(p.src)))
            || self
                .dst
                .is_some_and(|pre| !pre.contains(Ipv4Addr::from(p.dst)))
            || !self.proto.matches(p.protocol)
        {
            return false;
        }
        if !self.has_ports() {
            return true;
        }
        let Some((sport, dport)) = p.ports else {
            return false;
        };
        self.src_port.is_none_or(|r| r.contains(sport))
            && self.dst_port.is_none_or(|r| r.contains(dport))
    }
}

/// The index of the first rule that matches.
pub fn first_match(rules: &[Rule], p: &Packet) -> Option<usize> {
    rules.iter().position(|r| r.matches(p))
}
