//! Building frames and running them through a compiled module in the host
//! engine, shared by the per-VNF engine tests.

use nfvhost::engine::{
    Batch, CallFailure, Engine, FrameIn, InstanceError, InstanceLimits, VnfInstance,
};
use nfvhost_abi::Verdict;
use std::net::Ipv4Addr;
use vnf_sdk::testing::frames;
use vnf_sdk::wire::{EtherType, EthernetAddress, IpProtocol, Ipv4Repr};

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

/// A broadcast who-has for `target` from H1 (10.0.1.10).
pub fn arp_request(target: [u8; 4]) -> Vec<u8> {
    frames::arp_request(H1_MAC, [10, 0, 1, 10].into(), target.into())
}

/// A UDP datagram from H1 (40000 to `port`, identification 1) to `dst_mac`.
pub fn udp_frame(
    dst_mac: EthernetAddress,
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    port: u16,
) -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    let header = Ipv4Repr {
        ttl,
        ident: 1,
        ..frames::ipv4_header(src, dst, IpProtocol::Udp)
    };
    let datagram = frames::udp(src, dst, 40000, port, b"nfvhost");
    frames::ethernet(
        dst_mac,
        H1_MAC,
        EtherType::Ipv4,
        &frames::ipv4_with(header, &datagram),
    )
}
