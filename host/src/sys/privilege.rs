//! Giving up privileges once a worker is set up: a private mount namespace
//! whose root is an empty read-only tmpfs, an unprivileged uid and gid, no
//! capabilities in any set (effective, permitted, inheritable, ambient,
//! bounding), and `no_new_privs`.
//!
//! Everything here acts on the calling thread's credentials (glibc
//! broadcasts the id changes to every thread, the rest is per thread), so
//! the caller must be single-threaded: [`require_single_thread`] checks it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// First uid/gid of the range workers run as. Numeric ids only: nothing is
/// written to /etc/passwd. The range is far above the ids distributions
/// hand out (and below 2^31, which some tools treat as signed).
pub const SANDBOX_ID_BASE: u32 = 0x6E66_0000;
/// How many ids the range holds.
pub const SANDBOX_ID_SPAN: u32 = 0x1_0000;

/// Errors giving up privileges; each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A system call of the named step failed.
    #[error("sandbox: couldn't {step}: {source}")]
    Step {
        step: &'static str,
        source: io::Error,
    },
    /// The process had more than one thread; the drop would miss some.
    #[error("sandbox: the worker has {0} threads; privileges must be dropped while it has one")]
    Threads(usize),
    /// The supervisor exited while the worker was dropping privileges.
    #[error("sandbox: the supervisor exited while the worker dropped its privileges")]
    ParentGone,
    /// A check after the drop found a privilege still held.
    #[error("sandbox: after dropping privileges, {0}")]
    StillPrivileged(String),
}

type Result<T> = std::result::Result<T, PrivilegeError>;

fn step(step: &'static str) -> impl FnOnce(io::Error) -> PrivilegeError {
    move |source| PrivilegeError::Step { step, source }
}

fn check(ret: libc::c_int, name: &'static str) -> Result<libc::c_int> {
    if ret < 0 {
        Err(step(name)(io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

/// The uid and gid a worker runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SandboxIds {
    pub uid: u32,
    pub gid: u32,
}

impl SandboxIds {
    /// A stable id per chain and VNF (FNV-1a of `chain/vnf` into the
    /// range), so workers of different VNFs normally differ and a restarted
    /// worker keeps its id.
    pub fn for_vnf(chain: &str, vnf: &str) -> SandboxIds {
        let mut hash: u32 = 0x811c_9dc5;
        for b in chain.bytes().chain([b'/']).chain(vnf.bytes()) {
            hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        let id = SANDBOX_ID_BASE + hash % SANDBOX_ID_SPAN;
        SandboxIds { uid: id, gid: id }
    }
}

/// Fails unless the calling process has exactly one thread (counted in
/// /proc/self/task, so call it before [`enter_empty_root`]).
pub fn require_single_thread() -> Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(step("count the worker's threads"))?
        .count();
    if threads != 1 {
        return Err(PrivilegeError::Threads(threads));
    }
    Ok(())
}

/// Moves the calling thread into a new mount namespace whose root is an
/// empty, read-only tmpfs. `scratch` is any existing directory; the tmpfs
/// is mounted over it in the new namespace only, so the host sees nothing.
/// Open descriptors and mappings stay valid; no path resolves afterwards.
pub fn enter_empty_root(scratch: &Path) -> Result<()> {
    let scratch = CString::new(scratch.as_os_str().as_bytes()).map_err(|_| {
        step("name the scratch directory")(io::Error::from(io::ErrorKind::InvalidInput))
    })?;
    check(
        // SAFETY: unshare takes flags only; it affects the calling thread.
        unsafe { libc::unshare(libc::CLONE_NEWNS) },
        "unshare the mount namespace",
    )?;
    check(
        // SAFETY: null source/type/data are allowed for a propagation change;
        // the target is a NUL-terminated literal.
        unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        },
        "make the mounts private",
    )?;
    let fs_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    check(
        // SAFETY: all strings are NUL-terminated and outlive the call.
        unsafe {
            libc::mount(
                c"nfvhost-sandbox".as_ptr(),
                scratch.as_ptr(),
                c"tmpfs".as_ptr(),
                fs_flags,
                c"size=4k,nr_inodes=8,mode=0555".as_ptr().cast(),
            )
        },
        "mount the empty root",
    )?;
    check(
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { libc::chdir(scratch.as_ptr()) },
        "enter the empty root",
    )?;
    // pivot_root(".", "."): the old root is stacked under the new one at
    // "/", then detached; this needs no directory inside the tmpfs.
    check(
        // SAFETY: both arguments are NUL-terminated literals.
        unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } as libc::c_int,
        "pivot_root into the empty root",
    )?;
    check(
        // SAFETY: a NUL-terminated literal; MNT_DETACH is a valid flag.
        unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) },
        "detach the host's root",
    )?;
    // SAFETY: a NUL-terminated literal.
    check(unsafe { libc::chdir(c"/".as_ptr()) }, "change to /")?;
    check(
        // SAFETY: as above; a remount of "/" changes flags only.
        unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | fs_flags,
                std::ptr::null(),
            )
        },
        "make the empty root read-only",
    )?;
    Ok(())
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two of them.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capget() -> Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 reads a header and writes two data structs, both
    // valid and exclusively borrowed for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    check(rc as libc::c_int, "read the capabilities")?;
    Ok(data)
}

/// Drops to `ids` for good: empties the ambient and bounding sets (while
/// still allowed to), clears supplementary groups, sets real, effective and
/// saved ids, clears every remaining capability, forbids core dumps and
/// ptrace by the same uid, and sets `no_new_privs`. Checks the result.
pub fn drop_privileges(ids: SandboxIds) -> Result<()> {
    check(
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        },
        "clear the ambient capabilities",
    )?;
    // Drop every capability the kernel knows from the bounding set; EINVAL
    // marks the first number past the last one.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(step("drop the bounding set")(e));
        }
    }
    check(
        // SAFETY: an empty list; the pointer is never read.
        unsafe { libc::setgroups(0, std::ptr::null()) },
        "clear the supplementary groups",
    )?;
    check(
        // SAFETY: integer arguments; glibc applies it to every thread.
        unsafe { libc::setresgid(ids.gid, ids.gid, ids.gid) },
        "set the group id",
    )?;
    check(
        // SAFETY: as above. Leaving uid 0 clears the permitted and effective
        // capabilities (no SECBIT_KEEP_CAPS is set).
        unsafe { libc::setresuid(ids.uid, ids.uid, ids.uid) },
        "set the user id",
    )?;
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let none = [CapData::default(); 2];
    // SAFETY: version 3 reads a header and two data structs, valid for the
    // call; all zero clears the inheritable set as well.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, none.as_ptr()) };
    check(rc as libc::c_int, "clear the capabilities")?;
    check(
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) },
        "forbid core dumps",
    )?;
    check(
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        "set no_new_privs",
    )?;
    verify(ids)
}

/// Re-arms the parent-death signal, which the kernel clears when the
/// credentials change (so [`drop_privileges`] cleared it), and fails if the
/// parent (`parent`, read before the drop) is already gone.
pub fn die_with_parent(signal: libc::c_int, parent: nix::unistd::Pid) -> Result<()> {
    check(
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) },
        "re-arm the parent-death signal",
    )?;
    if nix::unistd::getppid() != parent {
        return Err(PrivilegeError::ParentGone);
    }
    Ok(())
}

fn verify(ids: SandboxIds) -> Result<()> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid != ids.uid || gid != ids.gid {
        return Err(PrivilegeError::StillPrivileged(format!(
            "running as uid {uid} gid {gid}"
        )));
    }
    let caps = capget()?;
    if caps
        .iter()
        .any(|c| c.effective != 0 || c.permitted != 0 || c.inheritable != 0)
    {
        return Err(PrivilegeError::StillPrivileged(
            "capabilities remain".into(),
        ));
    }
    // SAFETY: prctl with integer arguments only; CAP_SYS_ADMIN is 21.
    if unsafe { libc::prctl(libc::PR_CAPBSET_READ, 21, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::StillPrivileged(
            "the bounding set still holds CAP_SYS_ADMIN".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_in_range_and_differ_per_vnf() {
        let a = SandboxIds::for_vnf("edge", "fw");
        assert_eq!(a, SandboxIds::for_vnf("edge", "fw"));
        assert_ne!(a, SandboxIds::for_vnf("edge", "nat"));
        assert_ne!(a, SandboxIds::for_vnf("edge2", "fw"));
        for ids in [a, SandboxIds::for_vnf("x", "y")] {
            assert!(ids.uid >= SANDBOX_ID_BASE && ids.uid < SANDBOX_ID_BASE + SANDBOX_ID_SPAN);
            assert_ne!(ids.uid, 0);
            assert!(ids.uid < 1 << 31);
        }
    }
}
