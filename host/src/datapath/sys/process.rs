//! The worker process's own set-up: die with the supervisor, stop on
//! SIGTERM/SIGINT, run on given CPUs.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use super::check;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Relaxed);
}

/// Asks the kernel to send SIGTERM to this process when its parent dies, so
/// a worker never lingers unsupervised.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) }).map(drop)
}

/// Module timers promise microseconds: drop this thread's timer slack
/// (50 µs by default, which stretches every wait by up to that much) to
/// 1 ns, the least the kernel takes (0 would mean "the default"). Done
/// before the sandbox (prctl is not on the seccomp list). Best effort.
pub fn fine_timer_slack() {
    // SAFETY: prctl with PR_SET_TIMERSLACK takes a nanosecond count.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1) };
}

/// The nice value of a worker whose module runs timers.
pub const TIMER_NICE: i32 = -10;

/// Gives this process a higher CPU weight ([`TIMER_NICE`]): a module timer
/// promises microseconds, and under load an ordinary-weight worker waits
/// milliseconds for the CPU after its timer expires. Still ordinary
/// (SCHED_OTHER) scheduling: a worker in a loop cannot starve the machine.
/// Done before the sandbox (needs CAP_SYS_NICE; setpriority is not on the
/// seccomp list).
pub fn favour_timers() -> io::Result<()> {
    // SAFETY: setpriority takes plain integers; 0 = this process.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, TIMER_NICE) }).map(drop)
}

/// Set by SIGUSR1: `nfvhost link set` left a new configuration.
static RECONFIGURE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_reconfigure_signal(_: libc::c_int) {
    RECONFIGURE.store(true, Relaxed);
}

/// Makes SIGUSR1 set the flag [`reconfigure_requested`] takes.
pub fn catch_reconfigure_signal() -> io::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    let old = unsafe {
        libc::signal(
            libc::SIGUSR1,
            on_reconfigure_signal as *const () as libc::sighandler_t,
        )
    };
    if old == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether SIGUSR1 arrived since the last call (clears the flag).
pub fn reconfigure_requested() -> bool {
    RECONFIGURE.swap(false, Relaxed)
}

/// Makes SIGTERM and SIGINT set the flag [`stop_requested`] reads instead
/// of killing the process.
pub fn catch_stop_signals() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        let old = unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) };
        if old == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGTERM or SIGINT arrived since [`catch_stop_signals`].
pub fn stop_requested() -> bool {
    STOP.load(Relaxed)
}

/// Pins the calling thread (the whole worker, before it starts any other
/// thread) to `cpus`; an empty list leaves it on any CPU.
pub fn pin_to_cpus(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain old data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is past the largest CPU set"),
            ));
        }
        // SAFETY: CPU_SET only writes inside `set`; cpu < CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the stated size; 0 = this thread.
    check(unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}
