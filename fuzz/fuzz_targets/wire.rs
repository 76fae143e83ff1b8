//! Packet views: after `new_checked` succeeds, no accessor may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnf_sdk::wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(eth) = EthernetFrame::new_checked(data) {
        let _ = (eth.src_addr(), eth.dst_addr(), eth.ethertype());
        if let Ok(arp) = ArpPacket::new_checked(eth.payload()) {
            let _ = ArpRepr::parse(&arp);
        }
        if let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) {
            let _ = (ip.verify_checksum(), ip.ttl(), ip.src_addr(), ip.dst_addr(), ip.options());
            let _ = Ipv4Repr::parse(&ip);
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if let Ok(udp) = UdpPacket::new_checked(ip.payload()) {
                let _ = (udp.verify_checksum(src, dst), udp.payload(), udp.dst_port());
            }
            if let Ok(tcp) = TcpPacket::new_checked(ip.payload()) {
                let _ = (tcp.verify_checksum(src, dst), tcp.flags(), tcp.options(), tcp.payload());
            }
            if let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) {
                let _ = Icmpv4Repr::parse(&icmp);
            }
        }
        if let Ok(ip6) = Ipv6Packet::new_checked(eth.payload()) {
            let _ = (ip6.payload_len(), ip6.next_header(), ip6.payload());
        }
    }
    let _ = nfvhost_abi::Verdict::decode(u32::from_le_bytes([0, 0, 0, 0].map(|i: u8| data.get(i as usize).copied().unwrap_or(0))), 4);
});
