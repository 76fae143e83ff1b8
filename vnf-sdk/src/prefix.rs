//! IPv4 prefixes as written in configurations: `10.9.0.0/16`, or an
//! interface address with its subnet, `10.0.1.1/24`.

use core::net::Ipv4Addr;

/// An IPv4 prefix such as `10.9.0.0/16` (the address may carry host bits
/// when it describes an interface, like `10.0.1.1/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The address as written.
    pub addr: Ipv4Addr,
    /// Prefix length, 0 to 32.
    pub len: u8,
}

impl Prefix {
    /// Parses `a.b.c.d/len`.
    pub fn parse(s: &str) -> Option<Prefix> {
        let (addr, len) = s.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u8 = len.parse().ok()?;
        (len <= 32).then_some(Prefix { addr, len })
    }

    /// Parses `a.b.c.d/len`, or a bare address as a /32 (a rule that names
    /// one host).
    pub fn parse_or_host(s: &str) -> Option<Prefix> {
        let s = s.trim();
        if s.contains('/') {
            return Prefix::parse(s);
        }
        let addr: Ipv4Addr = s.parse().ok()?;
        Some(Prefix { addr, len: 32 })
    }

    /// The netmask as an integer.
    pub fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The netmask as an address (`255.255.255.0`).
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The network address (host bits cleared).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The directed broadcast address of the subnet.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }

    /// Whether `ip` is a usable host address of the subnet: inside it, and
    /// neither its network nor its broadcast address.
    pub fn is_host(self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network() && ip != self.broadcast()
    }

    /// Whether the address has bits set past the prefix length.
    pub fn has_host_bits(self) -> bool {
        u32::from(self.addr) & !self.mask() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Prefix::parse("10.0.1.1/24").unwrap();
        assert_eq!(p.network(), Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(p.broadcast(), Ipv4Addr::new(10, 0, 1, 255));
        assert!(p.contains(Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!p.contains(Ipv4Addr::new(10, 0, 2, 1)));
        assert!(p.has_host_bits());
        assert_eq!(Prefix::parse("0.0.0.0/0").unwrap().mask(), 0);
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/008",
        ] {
            assert_eq!(Prefix::parse(bad), None, "{bad}");
            assert_eq!(
                Prefix::parse_or_host(bad).filter(|_| bad.contains('/')),
                None
            );
        }
        let host = Prefix::parse_or_host(" 192.168.1.50 ").unwrap();
        assert_eq!((host.addr, host.len), (Ipv4Addr::new(192, 168, 1, 50), 32));
        assert!(host.contains(Ipv4Addr::new(192, 168, 1, 50)));
        assert_eq!(
            Prefix::parse_or_host("10.0.0.0/8"),
            Prefix::parse("10.0.0.0/8")
        );
        assert_eq!(Prefix::parse_or_host("example"), None);
        assert_eq!(p.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(p.is_host(Ipv4Addr::new(10, 0, 1, 254)));
        assert!(!p.is_host(p.network()) && !p.is_host(p.broadcast()));
        assert!(!p.is_host(Ipv4Addr::new(10, 0, 2, 1)));
    }
}
