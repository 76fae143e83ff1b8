//! The channel `nfvhost replace` uses to hand a running worker a new
//! module: a `SOCK_SEQPACKET` socket pair between the supervisor and the
//! worker (the worker's end is its stdin), carrying one message per request
//! or reply and, with a request, the compiled module as a sealed memfd.
//!
//! The worker is sandboxed (no paths, no `memfd_create`); it only calls
//! `recvmsg`, `sendmsg` and `fstat`/`statx` (to map the memfd) here.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd};

use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrStorage,
};

/// Largest message on the channel (a request carries the init document).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Errors on the channel.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("couldn't create the worker's control socket pair: {0}")]
    SocketPair(nix::Error),
    #[error("couldn't {what} on the worker's control socket: {source}")]
    Io {
        what: &'static str,
        source: nix::Error,
    },
    #[error("couldn't put the compiled module in a memfd: {0}")]
    Memfd(std::io::Error),
    #[error("a {0}-byte message is larger than the control channel carries")]
    TooLarge(usize),
}

/// A new socket pair: (supervisor's end, worker's end). Both close on exec;
/// the worker's end becomes the worker's stdin.
pub fn socket_pair() -> Result<(OwnedFd, OwnedFd), HandoverError> {
    socket::socketpair(
        socket::AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(HandoverError::SocketPair)
}

/// Whether `fd` is the seqpacket end of a control socket pair (a worker
/// started by hand has no channel: its stdin is something else).
pub fn is_control_socket(fd: BorrowedFd<'_>) -> bool {
    socket::getsockopt(&fd, socket::sockopt::SockType) == Ok(SockType::SeqPacket)
}

/// Copies `bytes` into an anonymous memfd sealed against any change.
pub fn sealed_memfd(name: &str, bytes: &[u8]) -> Result<File, HandoverError> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let err = |e: nix::Error| HandoverError::Memfd(std::io::Error::from(e));
    let fd =
        memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).map_err(err)?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(HandoverError::Memfd)?;
    fcntl(
        &file,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SEAL,
        ),
    )
    .map_err(err)?;
    Ok(file)
}

/// Sends one message, with `fd` attached when given.
pub fn send(
    sock: BorrowedFd<'_>,
    message: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), HandoverError> {
    if message.len() > MAX_MESSAGE {
        return Err(HandoverError::TooLarge(message.len()));
    }
    let fds = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> = fds
        .as_ref()
        .map(|f| vec![ControlMessage::ScmRights(f)])
        .unwrap_or_default();
    socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(message)],
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|source| HandoverError::Io {
        what: "send",
        source,
    })?;
    Ok(())
}

/// Receives one message into `buf` without blocking when `nonblocking`:
/// `Ok(None)` when none is waiting; `Ok(Some((0, None)))` when the other end
/// is closed. A descriptor that came with the message is returned owned.
pub fn recv(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
) -> Result<Option<(usize, Option<File>)>, HandoverError> {
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let msg = match socket::recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        flags,
    ) {
        Ok(m) => m,
        Err(nix::Error::EAGAIN) if nonblocking => return Ok(None),
        Err(source) => {
            return Err(HandoverError::Io {
                what: "receive",
                source,
            })
        }
    };
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(HandoverError::TooLarge(msg.bytes));
    }
    let mut file = None;
    for c in msg.cmsgs().map_err(|source| HandoverError::Io {
        what: "read the control messages",
        source,
    })? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel just installed `raw` in our table for
                // this message (SCM_RIGHTS); nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if file.is_none() {
                    file = Some(File::from(owned));
                }
            }
        }
    }
    Ok(Some((msg.bytes, file)))
}

/// Waits until `sock` is readable or `timeout` passes; true if readable.
pub fn wait_readable(sock: BorrowedFd<'_>, timeout: std::time::Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_and_a_sealed_memfd_cross_the_pair() {
        let (a, b) = socket_pair().unwrap();
        assert!(is_control_socket(b.as_fd()));
        let memfd = sealed_memfd("t", b"compiled").unwrap();
        send(a.as_fd(), b"hello", Some(memfd.as_fd())).unwrap();
        let mut buf = [0u8; 64];
        let (n, file) = recv(b.as_fd(), &mut buf, true).unwrap().unwrap();
        assert_eq!(&buf[..n], b"hello");
        let mut file = file.expect("the memfd came along");
        let mut text = [0u8; 16];
        // The sender's writes left the shared offset at the end.
        let n = std::os::unix::fs::FileExt::read_at(&file, &mut text, 0).unwrap();
        assert_eq!(&text[..n], b"compiled");
        use std::io::Write as _;
        assert!(file.write_all(b"x").is_err(), "sealed against writes");
        assert!(recv(b.as_fd(), &mut buf, true).unwrap().is_none());
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf, true).unwrap().unwrap().0, 0);
        assert!(!is_control_socket(memfd.as_fd()));
    }
}
