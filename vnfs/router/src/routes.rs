//! The routing table: connected and static routes, longest-prefix match.

use core::net::Ipv4Addr;
use std::vec::Vec;

pub use vnf_sdk::prefix::Prefix;

/// Where a matching packet goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// The destination is on the link: ARP for the destination itself.
    Connected,
    /// Through this gateway, which is on the egress port's link.
    Via(Ipv4Addr),
}

/// One entry of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (host bits clear).
    pub prefix: Prefix,
    /// Egress port.
    pub port: u16,
    /// Gateway or connected.
    pub next_hop: NextHop,
}

/// Routes sorted by prefix length, longest first, so the first match is the
/// longest-prefix match. Connected routes win ties with static ones.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds the table; `routes` should list connected routes first.
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        // Stable sort: among equal lengths the given order (connected first) stays.
        routes.sort_by_key(|r| core::cmp::Reverse(r.prefix.len));
        RouteTable { routes }
    }

    /// The egress port and the next-hop address for `dst`; no allocation.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
        let d = u32::from(dst);
        self.routes
            .iter()
            .find(|r| (d ^ u32::from(r.prefix.addr)) & r.prefix.mask() == 0)
            .map(|r| {
                let hop = match r.next_hop {
                    NextHop::Connected => dst,
                    NextHop::Via(gw) => gw,
                };
                (r.port, hop)
            })
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).unwrap()
    }

    #[test]
    fn parse_prefixes() {
        assert_eq!(
            p("10.0.1.1/24"),
            Prefix {
                addr: Ipv4Addr::new(10, 0, 1, 1),
                len: 24
            }
        );
        assert!(Prefix::parse("10.0.1.1").is_none());
        assert!(Prefix::parse("10.0.1.1/33").is_none());
        assert!(Prefix::parse("10.0.1/24").is_none());
        assert!(Prefix::parse("10.0.1.1/+4").is_none());
        assert_eq!(p("10.0.1.1/24").network(), Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(p("10.0.1.1/24").broadcast(), Ipv4Addr::new(10, 0, 1, 255));
        assert!(p("0.0.0.0/0").contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(p("10.0.1.1/24").has_host_bits());
        assert!(!p("10.0.0.0/8").has_host_bits());
    }

    #[test]
    fn longest_prefix_wins() {
        let gw = |d| NextHop::Via(Ipv4Addr::new(10, 0, 2, d));
        let t = RouteTable::new(vec![
            Route {
                prefix: p("0.0.0.0/0"),
                port: 1,
                next_hop: gw(1),
            },
            Route {
                prefix: p("10.9.0.0/16"),
                port: 1,
                next_hop: gw(2),
            },
            Route {
                prefix: p("10.9.8.0/24"),
                port: 1,
                next_hop: gw(3),
            },
        ]);
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 9, 8, 7)),
            Some((1, Ipv4Addr::new(10, 0, 2, 3)))
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 9, 9, 7)),
            Some((1, Ipv4Addr::new(10, 0, 2, 2)))
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(8, 8, 8, 8)),
            Some((1, Ipv4Addr::new(10, 0, 2, 1)))
        );
    }
}
