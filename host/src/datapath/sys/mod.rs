//! Every system call the data path makes, behind safe wrappers: the rest of
//! `datapath` has `#![deny(unsafe_code)]`, as smoltcp keeps its unsafe in
//! `phy`.
//!
//! - [`packet`]: `AF_PACKET` sockets and their batched I/O.
//! - [`fd`]: non-blocking descriptors, `read`/`write`, `poll`.
//! - [`mapping`]: the shared file mapping under the stats segment.
//! - [`tpacket`]: `AF_PACKET` sockets with mapped `TPACKET` rings.
//! - [`uring`]: batched `read`/`write` on a TAP descriptor through a
//!   locked-down io_uring.
//! - [`process`]: the worker process's own set-up (parent death signal,
//!   stop signals, CPU affinity).
//! - [`xdp`]: `AF_XDP` sockets on veth ends, their rings, and the XDP
//!   program that steers frames to them.
#![allow(unsafe_code)]

pub mod fd;
pub mod mapping;
pub mod packet;
pub mod process;
pub mod tpacket;
pub mod uring;
pub mod xdp;

use std::io;

/// A libc return value as a result: negative means `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
