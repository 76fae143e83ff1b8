//! Building frames and running them through a compiled module in the host
//! engine, shared by the per-VNF engine tests.

use nfvhost::engine::{
    Batch, CallFailure, Engine, FrameIn, InstanceError, InstanceLimits, VnfInstance,
};
use nfvhost_abi::Verdict;
use vnf_sdk::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

use crate::support::vnfs_built;

pub const H1_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x10]);

pub fn engine() -> Engine {
    Engine::new(None).unwrap()
}

pub fn instance(
    engine: &Engine,
    module: &str,
    ports: &[&str],
    config: serde_json::Value,
) -> Result<VnfInstance, InstanceError> {
    let path = vnfs_built().join(module);
    let loaded = engine.load(&path).unwrap();
    let doc =
        serde_json::json!({ "abi": nfvhost_abi::ABI_VERSION, "vnf": "t", "ports": ports, "config": config }).to_string();
    VnfInstance::new(
        engine,
        &loaded,
        "t",
        ports.len() as u16,
        doc.as_bytes(),
        InstanceLimits::default(),
    )
}

/// Puts frames into the instance's slots and runs one batch.
pub fn run_batch(
    vnf: &mut VnfInstance,
    frames: &[(u16, Vec<u8>)],
) -> Result<Vec<(Verdict, Vec<u8>)>, CallFailure> {
    for (slot, (_, bytes)) in vnf.slots_mut().zip(frames) {
        slot[..bytes.len()].copy_from_slice(bytes);
    }
    let mut batch = Batch::new(frames.len());
    for (p, b) in frames {
        batch.push(FrameIn::plain(*p, b.len()));
    }
    vnf.process(&mut batch)?;
    Ok(batch
        .verdicts()
        .iter()
        .enumerate()
        .map(|(i, (v, len))| (*v, vnf.frame(i, *len).to_vec()))
        .collect())
}

pub fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: H1_MAC,
        source_protocol_addr: [10, 0, 1, 10].into(),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target.into(),
    };
    let eth = EthernetRepr {
        src_addr: H1_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    };
    let mut buf = vec![0u8; 14 + arp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

pub fn udp_frame(
    dst_mac: EthernetAddress,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    port: u16,
) -> Vec<u8> {
    let payload = b"nfvhost";
    let udp = UdpRepr {
        src_port: 40000,
        dst_port: port,
        payload_len: payload.len(),
    };
    let ip = Ipv4Repr {
        src_addr: src.into(),
        dst_addr: dst.into(),
        protocol: IpProtocol::Udp,
        payload_len: udp.buffer_len(),
        ttl,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: false,
    };
    let eth = EthernetRepr {
        src_addr: H1_MAC,
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv4,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut ipp = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut ipp);
    let mut u = UdpPacket::new_unchecked(ipp.payload_mut());
    udp.emit(&mut u);
    u.payload_mut()[..payload.len()].copy_from_slice(payload);
    u.fill_checksum(std::net::Ipv4Addr::from(src), std::net::Ipv4Addr::from(dst));
    buf
}
