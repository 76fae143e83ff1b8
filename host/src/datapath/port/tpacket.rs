//! A port on a kernel interface through an `AF_PACKET` socket whose frames
//! arrive in a mapped `TPACKET` ring (V3 blocks by default, V2 frames on
//! request): receiving a batch costs no system call, only copies out of the
//! ring. Frames leave through `sendmmsg` as with
//! [`super::packet_socket`], or through a `PACKET_TX_RING` kicked once per
//! batch.
//!
//! The socket is the packet socket's (same options, same bind), so the
//! link's coming and going, the drop counter and VLAN tags behave the same.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::packet_socket::PacketSocketError;
use super::{Port, RecvStats};
use crate::datapath::sys::packet;
use crate::datapath::sys::tpacket::{self, Geometry, Rings};
use crate::engine::VnetHeader;

pub use crate::datapath::sys::tpacket::Version;

/// How the port is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpacketOptions {
    /// The receive ring's layout.
    pub version: Version,
    /// Send through a transmit ring instead of `sendmmsg`.
    pub tx_ring: bool,
    /// The longest frame that may arrive or leave: the link MTU plus its
    /// Ethernet and VLAN headers, or a super-frame with offload.
    pub max_frame: usize,
}

/// An `AF_PACKET` socket with mapped rings, bound to one interface.
pub struct TpacketPort {
    name: String,
    // Dropped after the rings: the mapping goes before the socket.
    rings: Rings,
    fd: OwnedFd,
    ifname: CString,
    ifindex: u32,
    vnet: bool,
}

impl TpacketPort {
    /// Opens the socket and its rings on `ifname` in the calling thread's
    /// namespace (needs `CAP_NET_RAW`: call it before the sandbox). With
    /// `vnet`, every frame is preceded by its `virtio_net_hdr`.
    pub fn open(
        name: &str,
        ifname: &str,
        vnet: bool,
        options: TpacketOptions,
    ) -> Result<Self, PacketSocketError> {
        let (c_ifname, ifindex) =
            packet::interface(ifname).map_err(|source| PacketSocketError::NoInterface {
                ifname: ifname.into(),
                source,
            })?;
        let geometry = Geometry::for_port(options.version, options.max_frame, options.tx_ring);
        let (fd, rings) = tpacket::open(ifindex, vnet, geometry).map_err(|(what, source)| {
            PacketSocketError::Socket {
                ifname: ifname.into(),
                what,
                source,
            }
        })?;
        Ok(TpacketPort {
            name: name.into(),
            rings,
            fd,
            ifname: c_ifname,
            ifindex,
            vnet,
        })
    }
}

impl Port for TpacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    /// A V3 block handed over and only partly read: the socket does not
    /// signal its remaining frames again.
    fn has_pending(&self) -> bool {
        self.rings.has_pending()
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<RecvStats> {
        Ok(self.rings.recv_batch(self.fd.as_fd(), bufs, lens, vnets))
    }

    fn send_batch(&mut self, frames: &[&[u8]], vnets: &[VnetHeader]) -> io::Result<usize> {
        if self.rings.has_tx_ring() {
            self.rings.send_batch(self.fd.as_fd(), frames, vnets)
        } else {
            packet::send_batch(self.fd.as_fd(), self.vnet, frames, vnets)
        }
    }

    fn carries_offload(&self) -> bool {
        self.vnet
    }

    /// As [`super::packet_socket::PacketSocketPort`]'s: the ring stays
    /// mapped while the link is away, and binding again to a link that
    /// came back under the same name needs no privilege.
    fn recheck(&mut self) -> bool {
        packet::rebind_when_back(self.fd.as_fd(), &self.ifname, &mut self.ifindex)
    }

    /// Frames the kernel dropped because the ring was full.
    fn take_kernel_drops(&mut self) -> u64 {
        packet::take_drops(self.fd.as_fd())
    }
}
