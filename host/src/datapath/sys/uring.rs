//! Batched `read`/`write` on one descriptor through io_uring: a batch of
//! frames in one system call on a descriptor that has no `recvmmsg` (a TAP
//! device).
//!
//! The ring is made for one descriptor and locked down before the sandbox:
//! it is created disabled (`IORING_SETUP_R_DISABLED`), the descriptor is
//! registered as fixed file 0, and `IORING_REGISTER_RESTRICTIONS` allows
//! only `READ`, `READV`, `WRITE` and `WRITEV`, only on fixed files, before
//! the ring is enabled. io_uring operations are not system calls that
//! seccomp sees; with these restrictions a taken-over worker holding the
//! ring can do no more with it than read and write its own TAP device (no
//! `openat`, `connect`, `socket`… through the ring, no other descriptor, no
//! new registrations: `io_uring_register` is also off the allow-list).
//!
//! Every call submits its batch and reaps every completion before it
//! returns, so the kernel touches the caller's buffers only during the
//! call: the buffers are borrowed, not handed over.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{opcode, register::Restriction, squeue, types, IoUring};

/// `RWF_NOWAIT` (linux/fs.h): a read that would wait for a frame fails
/// with `EAGAIN` instead of staying posted until one arrives.
const RWF_NOWAIT: i32 = 0x08;

/// An io_uring that can only read and write one descriptor.
pub struct FileRing {
    ring: IoUring,
    /// Per entry, the iovecs of a vectored operation: they must stay put
    /// until the kernel has taken the entry.
    iovecs: Vec<[libc::iovec; 2]>,
    /// Per entry, the last call's result: bytes, or `-errno`.
    results: Vec<i32>,
    /// Set when entries may be left in the submission queue that the
    /// kernel never took: the ring is never entered again (they would be
    /// taken later, pointing at buffers long returned).
    broken: bool,
}

// SAFETY: the raw iovec pointers are only written and read by calls that
// hold `&mut self`, and they point at nothing once a call returns.
unsafe impl Send for FileRing {}

impl FileRing {
    /// A ring of `entries` operations on `fd`, restricted as above. `fd`
    /// stays the caller's; the ring holds its own reference to the file.
    pub fn new(fd: BorrowedFd<'_>, entries: u32) -> io::Result<Self> {
        let ring: IoUring = IoUring::builder()
            .setup_r_disabled()
            // Go on past an entry that fails to start, so one call's
            // completions are always as many as its entries.
            .setup_submit_all()
            // The worker's only thread that enters the ring is its own:
            // no need to interrupt it to run completion work.
            .setup_coop_taskrun()
            .build(entries)?;
        let submitter = ring.submitter();
        submitter.register_files(&[fd.as_raw_fd()])?;
        let fixed = squeue::Flags::FIXED_FILE.bits();
        let link = squeue::Flags::IO_LINK.bits();
        submitter.register_restrictions(&mut [
            Restriction::sqe_op(opcode::Read::CODE),
            Restriction::sqe_op(opcode::Readv::CODE),
            Restriction::sqe_op(opcode::Write::CODE),
            Restriction::sqe_op(opcode::Writev::CODE),
            Restriction::sqe_flags_allowed(fixed | link),
            Restriction::sqe_flags_required(fixed),
        ])?;
        submitter.register_enable_rings()?;
        let n = ring.params().sq_entries() as usize;
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Ok(FileRing {
            ring,
            iovecs: vec![[empty; 2]; n],
            results: vec![0; n],
            broken: false,
        })
    }

    /// How many operations one call can carry.
    pub fn capacity(&self) -> usize {
        self.results.len()
    }

    /// Reads one frame into each `[head, body]` (head may be empty: one
    /// plain read into body) without waiting for frames, all in one system
    /// call, at most [`FileRing::capacity`] of them. Returns one result per
    /// read submitted, in order: the bytes read or `-errno` (`-EAGAIN` once
    /// nothing is left to read). An error means no frame moved and the
    /// ring is unusable from now on (use plain `read`/`write`).
    pub fn read_each<'a>(
        &mut self,
        parts: impl Iterator<Item = [&'a mut [u8]; 2]>,
    ) -> io::Result<&[i32]> {
        let mut n = 0;
        {
            let mut sq = self.ring.submission();
            for ([head, body], iov) in parts.zip(self.iovecs.iter_mut()) {
                let entry = if head.is_empty() {
                    opcode::Read::new(types::Fixed(0), body.as_mut_ptr(), len32(body.len()))
                        .offset(u64::MAX)
                        .rw_flags(RWF_NOWAIT)
                        .build()
                } else {
                    *iov = [
                        iovec(head.as_mut_ptr(), head.len()),
                        iovec(body.as_mut_ptr(), body.len()),
                    ];
                    opcode::Readv::new(types::Fixed(0), iov.as_ptr(), 2)
                        .offset(u64::MAX)
                        .rw_flags(RWF_NOWAIT)
                        .build()
                };
                // SAFETY: the buffers and iovecs stay borrowed until
                // `complete` has reaped this entry, before we return.
                if unsafe { sq.push(&entry.user_data(n as u64)) }.is_err() {
                    break;
                }
                n += 1;
            }
        }
        self.complete(n)
    }

    /// Writes each `[head, body]` as one frame (head may be empty), in
    /// order, in one system call, at most [`FileRing::capacity`] of them.
    /// The writes are linked: after one that fails or is short, the rest
    /// are not tried (`-ECANCELED`), so the frames taken are always the
    /// first ones. Results as for [`FileRing::read_each`].
    pub fn write_each<'a>(
        &mut self,
        parts: impl Iterator<Item = [&'a [u8]; 2]>,
    ) -> io::Result<&[i32]> {
        let mut parts = parts.take(self.capacity()).peekable();
        let mut n = 0;
        {
            let mut sq = self.ring.submission();
            while let Some([head, body]) = parts.next() {
                let iov = &mut self.iovecs[n];
                let entry = if head.is_empty() {
                    opcode::Write::new(types::Fixed(0), body.as_ptr(), len32(body.len()))
                        .offset(u64::MAX)
                        .build()
                } else {
                    *iov = [
                        iovec(head.as_ptr().cast_mut(), head.len()),
                        iovec(body.as_ptr().cast_mut(), body.len()),
                    ];
                    opcode::Writev::new(types::Fixed(0), iov.as_ptr(), 2)
                        .offset(u64::MAX)
                        .build()
                };
                let entry = if parts.peek().is_some() {
                    entry.flags(squeue::Flags::IO_LINK)
                } else {
                    entry
                };
                // SAFETY: as in read_each; the kernel only reads these.
                if unsafe { sq.push(&entry.user_data(n as u64)) }.is_err() {
                    break;
                }
                n += 1;
            }
        }
        self.complete(n)
    }

    /// Submits the `n` entries queued and reaps all `n` completions. An
    /// error means no frame moved and the ring is unusable from now on
    /// (use plain `read`/`write`).
    fn complete(&mut self, n: usize) -> io::Result<&[i32]> {
        if self.broken {
            return Err(io::Error::other("the ring failed before"));
        }
        let mut reaped = 0;
        while reaped < n {
            if let Err(e) = self.ring.submit_and_wait(n - reaped) {
                let again = matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                );
                let untaken = self.ring.submission().len();
                if !again && untaken == n - reaped {
                    // Nothing of this call reached the kernel: its
                    // buffers are safe, but the entries wait in the queue.
                    self.broken = true;
                    return Err(e);
                }
                if !again {
                    // Operations in flight on borrowed buffers, and no way
                    // to wait for them: returning would let the kernel
                    // write into memory that is no longer theirs.
                    eprintln!("nfvhost: io_uring wait failed with operations in flight: {e}");
                    std::process::abort();
                }
            }
            for cqe in self.ring.completion() {
                if let Some(r) = self.results.get_mut(cqe.user_data() as usize) {
                    *r = cqe.result();
                }
                reaped += 1;
            }
        }
        Ok(&self.results[..n])
    }
}

fn iovec(base: *mut u8, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: base.cast(),
        iov_len: len,
    }
}

fn len32(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, OwnedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        (r, w)
    }

    /// Submits one raw entry and returns its result.
    fn raw(ring: &mut FileRing, entry: squeue::Entry) -> i32 {
        // SAFETY: the entries below point at live buffers of this frame,
        // and we wait for the completion.
        unsafe { ring.ring.submission().push(&entry).unwrap() };
        ring.ring.submit_and_wait(1).unwrap();
        ring.ring.completion().next().unwrap().result()
    }

    #[test]
    fn the_ring_does_nothing_but_read_and_write_its_one_file() {
        let (r, w) = pipe();
        let (other_r, other_w) = pipe();
        let mut ring = FileRing::new(w.as_fd(), 8).unwrap();
        let msg = b"hello";
        // Allowed: a write to fixed file 0, the pipe the ring was made for.
        let ok = opcode::Write::new(types::Fixed(0), msg.as_ptr(), 5).build();
        assert_eq!(raw(&mut ring, ok), 5);
        // Refused: the same write to a descriptor by number, to another
        // descriptor, and an opcode outside the list.
        let by_number = opcode::Write::new(types::Fd(other_w.as_raw_fd()), msg.as_ptr(), 5).build();
        assert_eq!(raw(&mut ring, by_number), -libc::EACCES);
        assert_eq!(raw(&mut ring, opcode::Nop::new().build()), -libc::EACCES);
        let close = opcode::Close::new(types::Fd(other_r.as_raw_fd())).build();
        assert_eq!(raw(&mut ring, close), -libc::EACCES);
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], msg);
        let mut other = [0u8; 8];
        assert!(
            nix::unistd::read(&other_r, &mut other).is_err(),
            "nothing reached the other pipe"
        );
    }

    #[test]
    fn batched_writes_and_reads_move_bytes_and_an_empty_read_does_not_wait() {
        let (r, w) = pipe();
        let mut out = FileRing::new(w.as_fd(), 8).unwrap();
        let mut inp = FileRing::new(r.as_fd(), 8).unwrap();
        let results = out
            .write_each([[&b"ab"[..], &b"cd"[..]], [&[][..], &b"ef"[..]]].into_iter())
            .unwrap()
            .to_vec();
        assert_eq!(results, [4, 2]);
        let (mut head, mut a, mut b) = ([0u8; 1], [0u8; 16], [0u8; 16]);
        let results = inp
            .read_each([[&mut head[..], &mut a[..]], [&mut [][..], &mut b[..]]].into_iter())
            .unwrap()
            .to_vec();
        // A pipe is a stream: the first read takes all six bytes, the
        // second finds nothing and says so at once.
        assert_eq!(results, [6, -libc::EAGAIN]);
        assert_eq!((&head, &a[..5]), (b"a", &b"bcdef"[..]));
    }
}
