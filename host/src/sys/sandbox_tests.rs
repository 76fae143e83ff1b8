//! The sandbox tried in a forked child (needs root; skipped otherwise): every
//! step succeeds (and checks itself), allowed calls work, and a forbidden
//! one kills it with SIGSYS. Nothing outside the child changes:
//! the mount namespace is the child's own.

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

use super::privilege::{self, SandboxIds};
use super::seccomp;

/// Runs `f` in a forked child that enters the sandbox first; returns how
/// the child ended. The child exits with `f`'s code.
fn sandboxed_child(f: fn() -> i32) -> WaitStatus {
    let scratch = tempfile::tempdir().unwrap();
    let filter = seccomp::worker_filter().unwrap();
    // SAFETY: the child only runs the sandbox steps and `f`, then _exit()s
    // without returning into the test harness; glibc keeps malloc usable
    // after fork.
    match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => {
            let parent = nix::unistd::getppid();
            let code = (|| {
                privilege::require_single_thread().ok()?;
                privilege::enter_empty_root(scratch.path()).ok()?;
                privilege::drop_privileges(SandboxIds::for_vnf("test", "child")).ok()?;
                privilege::die_with_parent(libc::SIGKILL, parent).ok()?;
                seccomp::install_all_threads(&filter).ok()?;
                Some(f())
            })()
            .unwrap_or(99);
            // SAFETY: _exit ends the child at once, running no destructors
            // of the parent's state.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).unwrap(),
    }
}

fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipping: the sandbox tests need root");
    }
    root
}

#[test]
fn a_sandboxed_process_can_still_allocate_and_sleep() {
    if !root() {
        return;
    }
    let status = sandboxed_child(|| {
        // Allowed: memory (8 MiB: mmap), time, a sleep. (The ids and
        // capabilities were checked by drop_privileges before the filter.)
        let v = std::hint::black_box(vec![7u8; 8 << 20]);
        let started = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(1));
        if v[1] != 7 || started.elapsed().is_zero() {
            return 1;
        }
        0
    });
    assert_eq!(status, WaitStatus::Exited(status.pid().unwrap(), 0));
}

#[test]
fn a_forbidden_syscall_kills_the_sandboxed_process_with_sigsys() {
    if !root() {
        return;
    }
    let status = sandboxed_child(|| {
        // socket(2) is not allowed: the process dies here.
        let _ = std::net::UdpSocket::bind("127.0.0.1:0");
        2
    });
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
        "{status:?}"
    );
}

#[test]
fn opening_a_host_file_is_refused_in_the_sandbox() {
    if !root() {
        return;
    }
    // openat is not on the list either: even the empty root is not readable.
    let status = sandboxed_child(|| match std::fs::File::open("/etc/passwd") {
        Ok(_) => 3,
        Err(_) => 4,
    });
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
        "{status:?}"
    );
}
