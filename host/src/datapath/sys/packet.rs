//! `AF_PACKET` raw sockets bound to one interface, with
//! `recvmmsg`/`sendmmsg` so a whole batch costs one system call each way.
//!
//! The kernel takes the outer 802.1Q/802.1ad tag out of every frame it
//! receives (software or hardware VLAN untagging) and hands it to packet
//! sockets only as `PACKET_AUXDATA`. The socket asks for that aux data and
//! puts the tag back between the source MAC and the EtherType
//! ([`crate::datapath::vlan`]), so a module sees the frame as it was on the
//! wire. Frames are sent as they are: a tag in the frame leaves in it.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nfvhost_abi::MAX_BATCH;

use super::check;
use crate::datapath::port::RecvStats;
use crate::datapath::vlan::{self, StrippedTag};
use crate::engine::{VnetHeader, VNET_HDR_LEN};

const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// `struct tpacket_auxdata` from `<linux/if_packet.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// `tp_status` bit: `tp_vlan_tci` holds a tag the kernel removed.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `tp_status` bit: `tp_vlan_tpid` says which TPID that tag had.
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// Room for one `PACKET_AUXDATA` control message (CMSG_SPACE of 20 bytes is
/// 40 on 64-bit Linux), aligned for `cmsghdr`.
#[derive(Clone, Copy, Default)]
struct AuxControl([u64; 8]);

/// The tag the kernel removed from the received message, from its
/// `PACKET_AUXDATA` control message.
fn stripped_tag(msg: &libc::msghdr) -> Option<StrippedTag> {
    // SAFETY: `msg` was filled by recvmmsg; its control pointer and length
    // describe a live AuxControl buffer, and CMSG_FIRSTHDR/CMSG_NXTHDR stay
    // within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is non-null and points inside the control buffer.
        let hdr = unsafe { &*cmsg };
        // SAFETY: CMSG_LEN is a pure size computation.
        let aux_len = unsafe { libc::CMSG_LEN(size_of::<TpacketAuxdata>() as u32) } as usize;
        if hdr.cmsg_level == libc::SOL_PACKET
            && hdr.cmsg_type == PACKET_AUXDATA
            && hdr.cmsg_len >= aux_len
        {
            // SAFETY: the message is at least as long as TpacketAuxdata, and
            // read_unaligned has no alignment requirement.
            let aux: TpacketAuxdata =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            if aux.tp_status & TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                vlan::TPID_8021Q
            };
            return Some(StrippedTag {
                tpid,
                tci: aux.tp_vlan_tci,
            });
        }
        // SAFETY: as for CMSG_FIRSTHDR above.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

/// The step of opening a socket that failed, for error messages.
pub type Step = &'static str;

/// The interface `ifname` (a name with a NUL in it is `InvalidInput`) as
/// a C string, and its index in the calling thread's namespace.
pub fn interface(ifname: &str) -> io::Result<(CString, u32)> {
    let c_ifname =
        CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let index = if_index(&c_ifname)?;
    Ok((c_ifname, index))
}

/// The index of interface `ifname` in the calling thread's namespace.
pub fn if_index(ifname: &CStr) -> io::Result<u32> {
    // SAFETY: ifname is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

pub(super) fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int of the stated size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Opens a non-blocking packet socket on interface `ifindex` that does not
/// read back the frames it sends; with `vnet`, every frame is preceded by
/// its `virtio_net_hdr`. On failure, says which step failed.
pub fn open(ifindex: u32, vnet: bool) -> Result<OwnedFd, (Step, io::Error)> {
    open_with(ifindex, vnet, |_| Ok(()))
}

/// [`open`], with `configure` run on the socket after its options and
/// before it is bound (a `TPACKET` ring must exist before the first frame
/// arrives, and after `PACKET_VNET_HDR`, which a ring freezes).
pub fn open_with(
    ifindex: u32,
    vnet: bool,
    configure: impl FnOnce(BorrowedFd<'_>) -> Result<(), (Step, io::Error)>,
) -> Result<OwnedFd, (Step, io::Error)> {
    // Protocol 0 at creation: the socket receives nothing until bind, so
    // no frame from another interface can slip in first.
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = check(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
    .map_err(|e| ("create socket", e))?;
    // SAFETY: raw is a freshly created descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        .map_err(|e| ("set PACKET_IGNORE_OUTGOING", e))?;
    // Not PACKET_QDISC_BYPASS: it would hide the frames the worker sends
    // from tcpdump inside the VNF's namespace, and every hop must stay
    // observable.
    set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_AUXDATA, 1)
        .map_err(|e| ("set PACKET_AUXDATA", e))?;
    if vnet {
        set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, 1)
            .map_err(|e| ("set PACKET_VNET_HDR", e))?;
    }
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // Failure (not root) only leaves the default size.
        let _ = set_int(fd.as_fd(), libc::SOL_SOCKET, opt, 8 << 20);
    }

    configure(fd.as_fd())?;
    bind(fd.as_fd(), ifindex).map_err(|e| ("bind", e))?;
    Ok(fd)
}

/// Binds packet socket `fd` to interface `ifindex`, all protocols. Needs no
/// privilege on a socket already open: a sandboxed worker rebinds its port
/// to a link that came back under the same name.
pub fn bind(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: addr is a valid sockaddr_ll and the length matches it.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// The index of interface `ifname` in the namespace of socket `fd` and
/// whether it is administratively up, asked through `fd` itself (no new
/// socket, no path: it works inside the worker's sandbox). `ENODEV` when
/// no interface has that name. (Both requests are on the worker's seccomp
/// allow-list: `crate::sys::seccomp::worker_ioctls`.)
pub fn link_index_and_up(fd: BorrowedFd<'_>, ifname: &CStr) -> io::Result<(u32, bool)> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.to_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    for (cell, byte) in req.ifr_name.iter_mut().zip(name) {
        *cell = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX reads the name and writes the index into the
    // live ifreq; the socket is the caller's.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) })?;
    // SAFETY: the kernel just wrote the index member of the union.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    // SAFETY: as above, SIOCGIFFLAGS writes the flags member.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the kernel just wrote the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok((index as u32, flags as libc::c_int & libc::IFF_UP != 0))
}

/// Whether the link `ifname` that packet socket `fd` (bound to
/// `*ifindex`) lost is usable again. A link set down and up keeps its index
/// (the kernel resumes delivery on its own); one deleted and created again
/// under the same name has a new one, and the socket is bound to it
/// (binding an open packet socket needs no privilege). Up once the link is
/// administratively up; the error the socket kept from the link going away
/// is cleared then.
pub fn rebind_when_back(fd: BorrowedFd<'_>, ifname: &CStr, ifindex: &mut u32) -> bool {
    let Ok((index, up)) = link_index_and_up(fd, ifname) else {
        return false;
    };
    if index != *ifindex {
        if bind(fd, index).is_err() {
            return false;
        }
        *ifindex = index;
    }
    if up {
        let _ = take_error(fd);
    }
    up
}

/// Reads and clears the socket's pending error (`SO_ERROR`), so an old
/// `ENETDOWN` is not reported again once the link is back.
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the option value points at a live c_int of `len` bytes.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(err)
}

/// Receives up to `bufs.len()` frames without blocking (at most
/// [`MAX_BATCH`]), frame `i` into `bufs[i]`, its length into `lens[i]` and,
/// with `vnet`, its header into `vnets[i]` (else `vnets[i]` is cleared).
pub fn recv_batch(
    fd: BorrowedFd<'_>,
    vnet: bool,
    bufs: &mut [&mut [u8]],
    lens: &mut [usize],
    vnets: &mut [VnetHeader],
) -> io::Result<RecvStats> {
    let n = bufs.len().min(lens.len()).min(vnets.len()).min(MAX_BATCH);
    if n == 0 {
        return Ok(RecvStats::default());
    }
    // Fixed-size arrays on the stack: no allocation per batch. With vnet
    // headers, each message scatters into [header | frame slot]. The slot
    // keeps TAG_LEN bytes free for a VLAN tag to be put back.
    // SAFETY: iovec and mmsghdr are plain old data; zero is valid.
    let mut iovs: [[libc::iovec; 2]; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut controls = [AuxControl::default(); MAX_BATCH];
    let parts = if vnet { 2 } else { 1 };
    for i in 0..n {
        let frame = libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: bufs[i].len().saturating_sub(vlan::TAG_LEN),
        };
        iovs[i] = if vnet {
            [
                libc::iovec {
                    iov_base: vnets[i].0.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                frame,
            ]
        } else {
            [frame, frame]
        };
        msgs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
        msgs[i].msg_hdr.msg_iovlen = parts;
        msgs[i].msg_hdr.msg_control = controls[i].0.as_mut_ptr().cast();
        msgs[i].msg_hdr.msg_controllen = size_of::<AuxControl>();
    }
    // SAFETY: msgs[..n] point at iovecs that describe live, exclusively
    // borrowed buffers (`bufs`, `vnets`) and at control buffers
    // (`controls`) of the stated length, all of which outlive the call.
    let got = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(RecvStats::default())
        } else {
            Err(e)
        };
    }
    let got = got as usize;
    let header = if vnet { VNET_HDR_LEN } else { 0 };
    let mut truncated = 0;
    for i in 0..got {
        let mut len = (msgs[i].msg_len as usize)
            .saturating_sub(header)
            .min(bufs[i].len().saturating_sub(vlan::TAG_LEN));
        if !vnet {
            vnets[i] = VnetHeader::NONE;
        }
        let mut cut = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        if let Some(tag) = stripped_tag(&msgs[i].msg_hdr) {
            match vlan::reinsert(bufs[i], len, tag, &mut vnets[i]) {
                Some(tagged) => len = tagged,
                None => cut = true,
            }
        }
        lens[i] = len;
        if cut {
            truncated += 1;
        }
    }
    Ok(RecvStats {
        frames: got,
        truncated,
    })
}

/// Sends frames without blocking, with `vnet` each after its header
/// (`vnets[i]`, none if missing). Returns how many the kernel took.
pub fn send_batch(
    fd: BorrowedFd<'_>,
    vnet: bool,
    frames: &[&[u8]],
    vnets: &[VnetHeader],
) -> io::Result<usize> {
    let mut sent = 0;
    while sent < frames.len() {
        let n = (frames.len() - sent).min(MAX_BATCH);
        // SAFETY: plain old data; zero is valid.
        let mut iovs: [[libc::iovec; 2]; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut headers = [VnetHeader::NONE; MAX_BATCH];
        for i in 0..n {
            let f = frames[sent + i];
            let frame = libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            };
            if vnet {
                headers[i] = vnets
                    .get(sent + i)
                    .map_or(VnetHeader::NONE, VnetHeader::for_transmit);
                iovs[i] = [
                    libc::iovec {
                        iov_base: headers[i].0.as_mut_ptr().cast(),
                        iov_len: VNET_HDR_LEN,
                    },
                    frame,
                ];
                msgs[i].msg_hdr.msg_iovlen = 2;
            } else {
                iovs[i] = [frame, frame];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            msgs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
        }
        // SAFETY: the iovecs describe live frames and headers that the
        // kernel only reads during the call.
        let got = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            if sent > 0 || e.kind() == io::ErrorKind::WouldBlock {
                return Ok(sent);
            }
            return Err(e);
        }
        sent += got as usize;
        if (got as usize) < n {
            break;
        }
    }
    Ok(sent)
}

/// Frames the kernel dropped for want of buffer space since the last call
/// (reading resets the count); 0 if it cannot be read.
pub fn take_drops(fd: BorrowedFd<'_>) -> u64 {
    // struct tpacket_stats { tp_packets, tp_drops }.
    let mut stats = [0u32; 2];
    let mut len = size_of::<[u32; 2]>() as libc::socklen_t;
    // SAFETY: the buffer is a live [u32; 2] of `len` bytes, which is
    // exactly struct tpacket_stats.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        0
    } else {
        u64::from(stats[1])
    }
}
