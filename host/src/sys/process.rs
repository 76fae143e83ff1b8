//! Safe wrappers for process plumbing: what a child does between fork and
//! exec (a new session, entering a namespace), and a stop flag set by
//! signal handlers.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use super::netns::NetNs;

/// Makes the child of `cmd` start its own session (`setsid`), detached
/// from our terminal, so it outlives the command that started it, and
/// marks every descriptor it inherits above stdio close-on-exec: a
/// long-lived child must not keep what our caller had open (a `flock`
/// held around `nfvhost deploy` stayed held until the chain was destroyed).
pub fn new_session_on_exec(cmd: &mut Command) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: between fork and exec the closure only calls setsid(2) and
    // close_range(2), both async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the child of `cmd` start its own session and enter `ns` before
/// it executes, so it runs inside the namespace without the parent ever
/// leaving its own. The namespace stays open as long as `cmd` does.
pub fn new_session_in_netns_on_exec(cmd: &mut Command, ns: &NetNs) -> io::Result<()> {
    // Our own descriptor, owned by the closure: it lives as long as `cmd`.
    let ns_file = ns.file().try_clone()?;
    // SAFETY: between fork and exec the closure only calls setsid(2) and
    // setns(2) on a descriptor it owns, both async-signal-safe, and
    // allocates nothing (io::Error::last_os_error does not allocate).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

/// The signal that sets the reload flag ([`reload_requested`]).
pub const RELOAD_SIGNAL: nix::sys::signal::Signal = nix::sys::signal::Signal::SIGUSR1;

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Relaxed);
}

extern "C" fn on_reload_signal(_: libc::c_int) {
    RELOAD.store(true, Relaxed);
}

/// Installs handlers for SIGTERM and SIGINT that set the stop flag
/// ([`stop_requested`]) instead of killing the process, and for
/// [`RELOAD_SIGNAL`] that sets the reload flag.
pub fn install_stop_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe)
        // and has the signature signal(2) expects.
        unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) };
    }
    // SAFETY: as above.
    unsafe {
        libc::signal(
            RELOAD_SIGNAL as libc::c_int,
            on_reload_signal as *const () as libc::sighandler_t,
        )
    };
}

/// Whether [`RELOAD_SIGNAL`] arrived since the last call (clears the flag).
pub fn reload_requested() -> bool {
    RELOAD.swap(false, Relaxed)
}

/// Whether SIGTERM or SIGINT arrived since [`install_stop_handlers`].
pub fn stop_requested() -> bool {
    STOP.load(Relaxed)
}
