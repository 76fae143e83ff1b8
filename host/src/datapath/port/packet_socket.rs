//! A port on a kernel interface through an `AF_PACKET` socket, with
//! `recvmmsg`/`sendmmsg` so a whole batch costs one system call each way.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Port, RecvStats};
use crate::datapath::sys::packet;
use crate::engine::VnetHeader;

/// Errors opening a packet socket.
#[derive(Debug, thiserror::Error)]
pub enum PacketSocketError {
    #[error("couldn't find interface {ifname}: {source}")]
    NoInterface { ifname: String, source: io::Error },
    #[error("couldn't {what} for packet socket on {ifname}: {source}")]
    Socket {
        ifname: String,
        what: &'static str,
        source: io::Error,
    },
}

/// An `AF_PACKET` raw socket bound to one interface.
pub struct PacketSocketPort {
    name: String,
    fd: OwnedFd,
    /// The interface's name and the index the socket is bound to: a link
    /// that comes back under the same name gets a new index.
    ifname: CString,
    ifindex: u32,
    /// Frames carry a `virtio_net_hdr` (PACKET_VNET_HDR): checksum and
    /// segmentation offload cross the worker instead of being undone.
    vnet: bool,
}

impl PacketSocketPort {
    /// Opens a non-blocking packet socket on `ifname` in the calling thread's
    /// network namespace. Frames this socket sends are not read back. With `vnet`,
    /// every frame is preceded by its `virtio_net_hdr`.
    pub fn open(name: &str, ifname: &str, vnet: bool) -> Result<Self, PacketSocketError> {
        let (c_ifname, ifindex) =
            packet::interface(ifname).map_err(|source| PacketSocketError::NoInterface {
                ifname: ifname.into(),
                source,
            })?;
        let fd =
            packet::open(ifindex, vnet).map_err(|(what, source)| PacketSocketError::Socket {
                ifname: ifname.into(),
                what,
                source,
            })?;
        Ok(PacketSocketPort {
            name: name.into(),
            fd,
            ifname: c_ifname,
            ifindex,
            vnet,
        })
    }
}

impl Port for PacketSocketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<RecvStats> {
        packet::recv_batch(self.fd.as_fd(), self.vnet, bufs, lens, vnets)
    }

    fn send_batch(&mut self, frames: &[&[u8]], vnets: &[VnetHeader]) -> io::Result<usize> {
        packet::send_batch(self.fd.as_fd(), self.vnet, frames, vnets)
    }

    fn carries_offload(&self) -> bool {
        self.vnet
    }

    /// See [`packet::rebind_when_back`].
    fn recheck(&mut self) -> bool {
        packet::rebind_when_back(self.fd.as_fd(), &self.ifname, &mut self.ifindex)
    }

    fn take_kernel_drops(&mut self) -> u64 {
        packet::take_drops(self.fd.as_fd())
    }
}
