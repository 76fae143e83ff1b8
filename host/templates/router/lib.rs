//! {{name}}: a small IPv4 router. One subnet per port (connected routes),
//! an optional default gateway, ARP resolution (answering ARP for its own
//! addresses, queueing packets while a next hop is resolved) and TTL
//! decrement. A starting point: add static routes, ICMP errors, filters.

use std::collections::BTreeMap;

use vnf_sdk::neighbor::{ArpMetrics, LinkAddr, Resolver};
use vnf_sdk::prefix::Prefix;
use vnf_sdk::prelude::*;
use vnf_sdk::wire::{EtherType, EthernetAddress, EthernetFrame, Ipv4Addr, Ipv4Packet};

/// The `config:` section of the VNF in the chain file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our address and subnet on each port, e.g. `lan: 10.0.1.1/24`.
    pub interfaces: BTreeMap<String, String>,
    /// Where packets for other subnets go; must be in a connected subnet.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// ARP cache lifetime in seconds.
    #[serde(default = "default_arp_timeout")]
    pub arp_timeout_s: u64,
}

fn default_arp_timeout() -> u64 {
    60
}

/// The router's state.
pub struct Router {
    /// Per port: our MAC, address and prefix length.
    links: Vec<LinkAddr>,
    /// The default route: (port, gateway).
    default: Option<(u16, Ipv4Addr)>,
    arp: Resolver,
}

impl Router {
    /// The port whose connected subnet holds `ip`.
    fn connected(&self, ip: Ipv4Addr) -> Option<u16> {
        self.links.iter().position(|l| {
            Prefix {
                addr: l.addr,
                len: l.prefix_len,
            }
            .contains(ip)
        })
        .map(|p| p as u16)
    }
}

impl Vnf for Router {
    type Config = Config;

    fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
        let mut links = Vec::new();
        for (i, port) in ctx.ports().iter().enumerate() {
            let text = config.interfaces.get(port).ok_or_else(|| {
                ConfigError::at("interfaces", format!("port `{port}` has no address"))
            })?;
            let prefix = Prefix::parse(text).ok_or_else(|| {
                ConfigError::at(
                    format!("interfaces.{port}"),
                    format!("expected an address with a prefix length like 10.0.1.1/24, got `{text}`"),
                )
            })?;
            links.push(LinkAddr {
                mac: EthernetAddress::derived(ctx.vnf_name(), i as u16),
                addr: prefix.addr,
                prefix_len: prefix.len,
            });
        }
        if let Some(extra) = config.interfaces.keys().find(|k| ctx.port(k).is_none()) {
            return Err(ConfigError::at(
                format!("interfaces.{extra}"),
                format!("this VNF has no port named `{extra}`"),
            ));
        }
        if !(1..=86_400).contains(&config.arp_timeout_s) {
            return Err(ConfigError::at("arp_timeout_s", "use 1 to 86400 seconds"));
        }
        let forwarded = ctx.counter("routed", "IPv4 packets routed");
        let mut router = Router {
            links,
            default: None,
            arp: Resolver::new(
                config.arp_timeout_s * 1_000_000_000,
                ArpMetrics::declare(ctx, forwarded),
            ),
        };
        if let Some(gw) = config.gateway {
            let port = router.connected(gw).ok_or_else(|| {
                ConfigError::at("gateway", format!("{gw} is not in a connected subnet"))
            })?;
            router.default = Some((port, gw));
        }
        Ok(router)
    }

    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict {
        let port = frame.in_port();
        let link = self.links[usize::from(port)];
        let Ok(eth) = EthernetFrame::new_checked(frame.data()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if eth.dst_addr() != link.mac && !eth.dst_addr().is_broadcast() {
            return Verdict::Drop(DropReason::NotForUs);
        }
        match eth.ethertype() {
            EtherType::Arp => return self.arp.receive(ctx, port, &link, frame.data()),
            EtherType::Ipv4 => {}
            _ => return Verdict::Drop(DropReason::Unsupported),
        }
        let Ok(mut eth) = EthernetFrame::new_checked(frame.data_mut()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let dst = ip.dst_addr();
        if self.links.iter().any(|l| l.addr == dst) {
            // Addressed to the router itself: a place to answer ping.
            return Verdict::Drop(DropReason::NotForUs);
        }
        if ip.ttl() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let (out, hop) = match (self.connected(dst), self.default) {
            (Some(out), _) => (out, dst),
            (None, Some(default)) => default,
            (None, None) => return Verdict::Drop(DropReason::NoRoute),
        };
        ip.set_ttl(ip.ttl() - 1);
        ip.fill_checksum();
        let out_link = self.links[usize::from(out)];
        self.arp.forward(ctx, frame, out, hop, &out_link)
    }

    fn tick(&mut self, ctx: &mut Context) {
        let due = self.arp.maintain(ctx.now_ns());
        let links = self.links.clone();
        self.arp.send_due(ctx, due, |port| links[usize::from(port)]);
    }
}

vnf_sdk::export_vnf!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use vnf_sdk::testing::{frames, Harness};
    use vnf_sdk::wire::{ArpOperation, IpProtocol};

    const H1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 1, 0x10]);
    const H2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 2, 0x10]);

    fn router() -> Harness<Router> {
        let config = serde_json::json!({
            "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" },
        });
        Harness::new(&["lan", "wan"], config).unwrap()
    }

    fn ping(ttl: u8, dst: Ipv4Addr) -> Vec<u8> {
        let src = Ipv4Addr::new(10, 0, 1, 10);
        let header = frames::ipv4_header(src, dst, IpProtocol::Icmp);
        let mac = EthernetAddress::derived("test", 0);
        frames::ethernet(
            mac,
            H1,
            EtherType::Ipv4,
            &frames::ipv4_with(
                vnf_sdk::wire::Ipv4Repr { ttl, ..header },
                &frames::echo(true, 1, 1, b"hi"),
            ),
        )
    }

    #[test]
    fn answers_arp_for_its_address() {
        let mut h = router();
        let req = frames::arp_request(H1, Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 1, 1));
        let out = h.process(0, &req);
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 1);
    }

    #[test]
    fn routes_after_resolving_the_next_hop() {
        let mut h = router();
        let h2 = Ipv4Addr::new(10, 0, 2, 10);
        // The packet waits while the router asks who has 10.0.2.10 ...
        let out = h.process(0, &ping(64, h2));
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 1, "an ARP request on wan");
        // ... and leaves, TTL 63, when the answer comes.
        let wan = EthernetAddress::derived("test", 1);
        let reply = frames::ethernet(
            wan,
            H2,
            EtherType::Arp,
            &frames::arp(ArpOperation::Reply, H2, h2, wan, Ipv4Addr::new(10, 0, 2, 1)),
        );
        let out = h.process(1, &reply);
        assert_eq!(out.emitted.len(), 1);
        let (port, sent) = &out.emitted[0];
        assert_eq!(*port, 1);
        let ip = Ipv4Packet::new_checked(&sent[14..]).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
        assert_eq!(h.counter("routed"), Some(1));
    }

    #[test]
    fn drops_expired_and_unroutable_packets() {
        let mut h = router();
        let out = h.process(0, &ping(1, Ipv4Addr::new(10, 0, 2, 10)));
        assert_eq!(out.verdict, Verdict::Drop(DropReason::TtlExceeded));
        let out = h.process(0, &ping(64, Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(out.verdict, Verdict::Drop(DropReason::NoRoute));
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let config = serde_json::json!({ "interfaces": { "lan": "10.0.1.1", "wan": "10.0.2.1/24" } });
        let e = Harness::<Router>::new(&["lan", "wan"], config).err().unwrap();
        assert_eq!(e.path, "interfaces.lan");
        let config = serde_json::json!({
            "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" },
            "gateway": "192.0.2.1",
        });
        let e = Harness::<Router>::new(&["lan", "wan"], config).err().unwrap();
        assert_eq!(e.path, "gateway");
    }
}
