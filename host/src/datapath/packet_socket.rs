//! A port on a kernel interface through an `AF_PACKET` socket, with
//! `recvmmsg`/`sendmmsg` so a whole batch costs one system call each way.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::port::{Port, RecvStats};

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
}

const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl PacketSocketPort {
    /// Opens a non-blocking packet socket on `ifname` in the calling thread's
    /// network namespace. Frames this socket sends are not read back.
    pub fn open(name: &str, ifname: &str) -> Result<Self, PacketSocketError> {
        let err = |what: &'static str| {
            let ifname = ifname.to_string();
            move |source| PacketSocketError::Socket {
                ifname,
                what,
                source,
            }
        };
        let c_ifname = CString::new(ifname).map_err(|_| PacketSocketError::NoInterface {
            ifname: ifname.into(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        // SAFETY: c_ifname is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(c_ifname.as_ptr()) };
        if ifindex == 0 {
            return Err(PacketSocketError::NoInterface {
                ifname: ifname.into(),
                source: io::Error::last_os_error(),
            });
        }
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
        .map_err(err("create socket"))?;
        // SAFETY: raw is a freshly created, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let one: libc::c_int = 1;
        // SAFETY: option value points at a live c_int of the stated size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map_err(err("set PACKET_IGNORE_OUTGOING"))?;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            let size: libc::c_int = 4 << 20;
            // SAFETY: as above. Failure (not root) only leaves the default size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    4,
                );
            }
        }

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
        .map_err(err("bind"))?;
        Ok(PacketSocketPort {
            name: name.into(),
            fd,
        })
    }
}

impl Port for PacketSocketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn recv_batch(&mut self, bufs: &mut [&mut [u8]], lens: &mut [usize]) -> io::Result<RecvStats> {
        let n = bufs.len().min(lens.len()).min(nfvhost_abi::MAX_BATCH);
        if n == 0 {
            return Ok(RecvStats::default());
        }
        // Fixed-size arrays on the stack: no allocation per batch.
        // SAFETY: iovec and mmsghdr are plain old data; zero is valid.
        let mut iovs: [libc::iovec; nfvhost_abi::MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; nfvhost_abi::MAX_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: bufs[i].len(),
            };
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: msgs[..n] point at iovecs that describe live, exclusively
        // borrowed buffers (`bufs`), which outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
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
        let mut truncated = 0;
        for i in 0..got {
            lens[i] = (msgs[i].msg_len as usize).min(bufs[i].len());
            if msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                truncated += 1;
            }
        }
        Ok(RecvStats {
            frames: got,
            truncated,
        })
    }

    fn send_batch(&mut self, frames: &[&[u8]]) -> io::Result<usize> {
        let mut sent = 0;
        while sent < frames.len() {
            let n = (frames.len() - sent).min(nfvhost_abi::MAX_BATCH);
            // SAFETY: plain old data; zero is valid.
            let mut iovs: [libc::iovec; nfvhost_abi::MAX_BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; nfvhost_abi::MAX_BATCH] = unsafe { std::mem::zeroed() };
            for i in 0..n {
                let f = frames[sent + i];
                iovs[i] = libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                };
                msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: the iovecs describe live frames the kernel only reads.
            let got = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
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
}
