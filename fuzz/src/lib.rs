//! Shared pieces of the fuzz targets: frame descriptions that `arbitrary`
//! derives from the fuzzer's bytes and a builder that turns them into frames
//! with valid checksums, so inputs get past the header checks and into
//! conntrack, NAT bindings and the DHCP server.
use std::cell::RefCell;
use std::net::Ipv4Addr;

use arbitrary::Arbitrary;
use vnf_sdk::testing::Harness;
use vnf_sdk::wire::{Icmpv4Packet, Ipv4Packet, TcpPacket, UdpPacket};

/// The four VNFs, natively, with state kept across inputs as in a running
/// chain.
pub struct Vnfs {
    pub router: Harness<vnf_router::Router>,
    pub fw: Harness<vnf_firewall::Firewall>,
    pub nat: Harness<vnf_nat::Nat>,
    pub dhcp: Harness<vnf_dhcp::Dhcp>,
}

thread_local! {
    /// The instances, built once per fuzzing process.
    pub static VNFS: RefCell<Option<Vnfs>> = const { RefCell::new(None) };
}

/// Every shipped VNF, with `capacity` bytes per frame, configured with the MACs and networks of [`MACS`]
/// and `NETS`.
pub fn vnfs(capacity: usize) -> Vnfs {
    let mut router = Harness::<vnf_router::Router>::new(
        &["lan", "wan"],
        serde_json::json!({
            "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" },
            "mac": { "lan": "02:00:00:00:01:01", "wan": "02:00:00:00:01:02" },
        }),
    )
    .unwrap();
    let mut fw = Harness::<vnf_firewall::Firewall>::new(
        &["inside", "outside"],
        serde_json::json!({ "rules": [
            { "in": "inside", "action": "accept" },
            { "in": "outside", "proto": "tcp", "action": "reject" },
        ] }),
    )
    .unwrap();
    let mut nat = Harness::<vnf_nat::Nat>::new(
        &["inside", "outside"],
        serde_json::json!({
            "inside": { "port": "inside", "address": "10.255.0.2/30", "mac": "02:00:00:00:02:01" },
            "outside": { "port": "outside", "address": "203.0.113.1/24", "mac": "02:00:00:00:02:02" },
            "routes": [{ "to": "192.168.1.0/24", "via": "10.255.0.1" }]
        }),
    )
    .unwrap();
    let mut dhcp = Harness::<vnf_dhcp::Dhcp>::new(
        &["lan", "up"],
        serde_json::json!({
            "port": "lan", "address": "192.168.1.2/24", "pool": "192.168.1.100-192.168.1.103",
            "lease_time": 60, "mac": "02:00:00:00:03:01",
        }),
    )
    .unwrap();
    router.frame_capacity = capacity;
    fw.frame_capacity = capacity;
    nat.frame_capacity = capacity;
    dhcp.frame_capacity = capacity;
    Vnfs {
        router,
        fw,
        nat,
        dhcp,
    }
}

/// MACs the VNFs are configured with (see `vnf_flows`), then others.
pub const MACS: [[u8; 6]; 8] = [
    [0xff; 6],
    [0x02, 0, 0, 0, 0x01, 0x01],
    [0x02, 0, 0, 0, 0x01, 0x02],
    [0x02, 0, 0, 0, 0x02, 0x01],
    [0x02, 0, 0, 0, 0x02, 0x02],
    [0x02, 0, 0, 0, 0x03, 0x01],
    [0x02, 0, 0, 0, 0x09, 0x01],
    [0x02, 0, 0, 0, 0x09, 0x02],
];

/// Networks the VNFs are configured on; an address is one of these plus a
/// host byte.
const NETS: [[u8; 3]; 8] = [
    [10, 0, 1],
    [10, 0, 2],
    [10, 255, 0],
    [203, 0, 113],
    [192, 168, 1],
    [198, 51, 100],
    [0, 0, 0],
    [255, 255, 255],
];

/// An IPv4 address near the configured ones.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Addr {
    pub net: u8,
    pub host: u8,
}

impl Addr {
    pub fn ip(self) -> Ipv4Addr {
        let [a, b, c] = NETS[usize::from(self.net) % NETS.len()];
        Ipv4Addr::new(a, b, c, self.host)
    }
}

/// Ports worth hitting: DHCP, DNS, HTTP, ephemeral.
fn port(p: u16) -> u16 {
    const WELL_KNOWN: [u16; 6] = [67, 68, 53, 80, 443, 1024];
    if p < 0x100 {
        WELL_KNOWN[usize::from(p) % WELL_KNOWN.len()]
    } else {
        p
    }
}

#[derive(Arbitrary, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
    },
    Dhcp(Dhcp),
    Icmp {
        kind: u8,
        code: u8,
        rest: u32,
        /// For errors: the offending datagram's header and first bytes.
        inner: Option<Box<Ip>>,
    },
    /// Any other protocol number and bytes.
    Other {
        proto: u8,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
pub struct Dhcp {
    pub op: u8,
    pub xid: u32,
    pub client: u8,
    pub ciaddr: Option<Addr>,
    pub msg_type: u8,
    pub requested: Option<Addr>,
    pub server_id: Option<Addr>,
    pub extra_options: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
pub struct Ip {
    pub src: Addr,
    pub dst: Addr,
    pub ttl: u8,
    pub id: u16,
    /// Flags and fragment offset, usually zero.
    pub frag: Option<u16>,
    pub l4: L4,
}

#[derive(Arbitrary, Debug)]
pub enum Payload {
    Ipv4(Ip),
    Arp {
        op: u8,
        sha: u8,
        spa: Addr,
        tha: u8,
        tpa: Addr,
    },
    /// Any ethertype and bytes (IPv6, VLAN, junk).
    Raw {
        ethertype: u16,
        bytes: Vec<u8>,
    },
}

/// One frame as the fuzzer describes it.
#[derive(Arbitrary, Debug)]
pub struct FrameSpec {
    pub port: bool,
    pub dst_mac: u8,
    pub src_mac: u8,
    pub payload: Payload,
    /// Zero bytes appended to the L4 payload: frames up to 64 KiB.
    pub pad: u16,
    /// Offload state the host would attach (`FLAG_*` bits, any value).
    pub offload: Option<(u16, u16)>,
    /// Leave the L4 checksum wrong (as a partial-checksum frame has it).
    pub bad_l4_checksum: bool,
}

fn mac(i: u8) -> [u8; 6] {
    if i < 0x80 {
        MACS[usize::from(i) % MACS.len()]
    } else {
        [0x02, 0x10, 0, 0, 0, i]
    }
}

impl FrameSpec {
    /// The frame's bytes, with valid checksums unless asked otherwise.
    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(64);
        f.extend_from_slice(&mac(self.dst_mac));
        f.extend_from_slice(&mac(self.src_mac));
        match &self.payload {
            Payload::Ipv4(ip) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                f.extend_from_slice(&ip.build(self.pad, !self.bad_l4_checksum));
            }
            Payload::Arp {
                op,
                sha,
                spa,
                tha,
                tpa,
            } => {
                f.extend_from_slice(&0x0806u16.to_be_bytes());
                f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1 + (op & 1)]);
                f.extend_from_slice(&mac(*sha));
                f.extend_from_slice(&spa.ip().octets());
                f.extend_from_slice(&mac(*tha));
                f.extend_from_slice(&tpa.ip().octets());
                f.resize(f.len() + usize::from(self.pad % 64), 0);
            }
            Payload::Raw { ethertype, bytes } => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(bytes);
                f.resize(f.len() + usize::from(self.pad), 0);
            }
        }
        f.truncate(65_535);
        f
    }
}

impl Ip {
    /// The IPv4 datagram (header without options, then L4).
    pub fn build(&self, pad: u16, l4_checksum: bool) -> Vec<u8> {
        let (src, dst) = (self.src.ip(), self.dst.ip());
        let (proto, mut l4) = self.l4.build();
        // Room for the header within 64 KiB.
        let room = 65_535 - 14 - 20;
        l4.resize(
            (l4.len() + usize::from(pad))
                .min(room)
                .max(l4.len().min(room)),
            0,
        );
        l4.truncate(room);
        match proto {
            6 if l4.len() >= 20 && l4_checksum => {
                TcpPacket::new_unchecked(&mut l4[..]).fill_checksum(src, dst)
            }
            17 if l4.len() >= 8 => {
                let len = l4.len() as u16;
                l4[4..6].copy_from_slice(&len.to_be_bytes());
                if l4_checksum {
                    UdpPacket::new_unchecked(&mut l4[..]).fill_checksum(src, dst)
                }
            }
            1 if l4.len() >= 8 && l4_checksum => {
                Icmpv4Packet::new_unchecked(&mut l4[..]).fill_checksum()
            }
            _ => {}
        }
        let total = (20 + l4.len()) as u16;
        let frag = self.frag.unwrap_or(0x4000);
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[self.ttl.max(1), proto, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p.extend_from_slice(&l4);
        p
    }
}

impl L4 {
    fn build(&self) -> (u8, Vec<u8>) {
        match self {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload,
            } => {
                let mut t = Vec::with_capacity(20 + payload.len());
                t.extend_from_slice(&port(*sport).to_be_bytes());
                t.extend_from_slice(&port(*dport).to_be_bytes());
                t.extend_from_slice(&seq.to_be_bytes());
                t.extend_from_slice(&ack.to_be_bytes());
                t.extend_from_slice(&[0x50, *flags]);
                t.extend_from_slice(&window.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 0]);
                t.extend_from_slice(payload);
                (6, t)
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => (17, udp(port(*sport), port(*dport), payload)),
            L4::Dhcp(d) => {
                let (sport, dport) = if d.op & 1 == 1 { (68, 67) } else { (67, 68) };
                (17, udp(sport, dport, &d.build()))
            }
            L4::Icmp {
                kind,
                code,
                rest,
                inner,
            } => {
                let mut t = vec![*kind, *code, 0, 0];
                t.extend_from_slice(&rest.to_be_bytes());
                if let Some(inner) = inner {
                    let datagram = inner.build(0, true);
                    t.extend_from_slice(&datagram[..datagram.len().min(20 + 8 + 32)]);
                }
                (1, t)
            }
            L4::Other { proto, payload } => (*proto, payload.clone()),
        }
    }
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 0, 0, 0]);
    u.extend_from_slice(payload);
    u
}

impl Dhcp {
    /// A BOOTP message with the magic cookie and common options.
    pub fn build(&self) -> Vec<u8> {
        let mut m = vec![0u8; 236];
        m[0] = 1 + ((self.op & 1) ^ 1);
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&self.xid.to_be_bytes());
        m[10] = 0x80; // broadcast flag
        if let Some(a) = self.ciaddr {
            m[12..16].copy_from_slice(&a.ip().octets());
        }
        m[28..34].copy_from_slice(&[0x02, 0, 0, 0, 0x01, 0x40 | (self.client & 0x1f)]);
        m.extend_from_slice(&[99, 130, 83, 99]);
        m.extend_from_slice(&[53, 1, self.msg_type % 9]);
        if let Some(a) = self.requested {
            m.extend_from_slice(&[50, 4]);
            m.extend_from_slice(&a.ip().octets());
        }
        if let Some(a) = self.server_id {
            m.extend_from_slice(&[54, 4]);
            m.extend_from_slice(&a.ip().octets());
        }
        m.extend_from_slice(&[55, 3, 1, 3, 6]);
        m.extend_from_slice(&self.extra_options);
        m.push(255);
        m
    }
}
