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
