//! A shared mapping of the start of a file, viewed as one `T` made of
//! atomics: the stats segment's writer and readers in other processes.

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;

/// Types every bit pattern of which is a valid value, and that are safe to
/// share between threads and processes: structs made only of atomics.
///
/// # Safety
/// The implementer guarantees that all-zero and any bytes another process
/// writes are a valid value, and that every field is accessed atomically.
pub unsafe trait SharedPod: Sync {}

// SAFETY: StatsLayout is repr(C) and made only of AtomicU64 (directly, in
// arrays, and in repr(C) structs of them), for which every bit pattern is
// valid and every access is atomic.
unsafe impl SharedPod for crate::datapath::stats::StatsLayout {}

/// `size_of::<T>()` bytes of a file, mapped shared; derefs to `&T`.
pub struct SharedMapping<T: SharedPod> {
    ptr: *mut T,
    _file: File,
    _type: PhantomData<T>,
}

// SAFETY: the mapping is only accessed through `&T`, and `T: SharedPod` is
// made of atomics, which are safe to share between threads.
unsafe impl<T: SharedPod> Send for SharedMapping<T> {}
// SAFETY: as above.
unsafe impl<T: SharedPod> Sync for SharedMapping<T> {}

impl<T: SharedPod> SharedMapping<T> {
    /// Maps the first `size_of::<T>()` bytes of `file` (which must be at
    /// least that long), read-write or read-only.
    pub fn new(file: File, writable: bool) -> io::Result<Self> {
        if file.metadata()?.len() < size_of::<T>() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file shorter than the mapping",
            ));
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: mapping size_of::<T>() bytes of a file at least that long,
        // shared; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size_of::<T>(),
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMapping {
            ptr: ptr.cast(),
            _file: file,
            _type: PhantomData,
        })
    }
}

impl<T: SharedPod> std::ops::Deref for SharedMapping<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: ptr maps size_of::<T>() bytes, page-aligned, for the life
        // of self, and any bytes there are a valid T (`SharedPod`).
        unsafe { &*self.ptr }
    }
}

impl<T: SharedPod> Drop for SharedMapping<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mapped in `new`; no `&T`
        // outlives self.
        unsafe {
            libc::munmap(self.ptr.cast(), size_of::<T>());
        }
    }
}

/// A shared mapping of a socket's memory (a `TPACKET` ring), which the
/// kernel writes while we read it: only raw pointers come out of it, and
/// [`crate::datapath::sys::tpacket`] decides which bytes the kernel has
/// handed over.
pub struct SocketMapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is a plain region of memory owned by self; the
// pointer is only dereferenced by its owner under the ring protocol.
unsafe impl Send for SocketMapping {}

impl SocketMapping {
    /// Maps `len` bytes of socket `fd` from offset 0, shared, read-write,
    /// populated up front (no page faults in the loop).
    pub fn new(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        // SAFETY: mapping `len` bytes of a socket the caller borrows; the
        // kernel checks the length against the ring; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SocketMapping {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The start of the mapping; `len()` bytes from it are mapped for the
    /// life of self.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for SocketMapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mapped in `new`; no pointer
        // into it outlives self (its owner holds the ring's cursors only).
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}
