//! The worker's seccomp allow-list: the system calls its data path, the
//! wasm runtime (traps, memory growth, re-instantiation after a trap) and
//! its logging need, and nothing else.
//!
//! A call outside the list kills the whole worker process with SIGSYS
//! (`SECCOMP_RET_KILL_PROCESS`): a worker that tries one is either broken
//! or taken over, and the supervisor restarts it (counted in
//! `nfvhost_vnf_restarts_total`, the reason in the chain's log). The list
//! was found by running workers under `strace -f` on live chains, with
//! traffic, traps, timeouts and ticks.
//!
//! The filter is built with `seccompiler` (firecracker's), not hand-written
//! BPF.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Errors installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// This architecture has no filter.
    #[error("seccomp: no filter for architecture {0}")]
    Arch(&'static str),
    /// seccompiler refused the filter or the kernel refused to install it.
    #[error("seccomp: couldn't {what}: {source}")]
    Filter {
        what: &'static str,
        source: seccompiler::Error,
    },
}

/// The system calls a worker may make once it runs its data path.
pub fn worker_allow_list() -> Vec<(i64, &'static str)> {
    let mut list = vec![
        // The data path: packet sockets and TAP descriptors.
        (libc::SYS_recvmmsg, "recvmmsg"),
        (libc::SYS_sendmmsg, "sendmmsg"),
        (libc::SYS_recvfrom, "recvfrom"),
        (libc::SYS_sendto, "sendto"),
        (libc::SYS_recvmsg, "recvmsg"),
        (libc::SYS_sendmsg, "sendmsg"),
        (libc::SYS_read, "read"),
        // Also `nfvhost capture`: pcap records go out with write(2) to the
        // pipe handed over on the control channel (recvmsg, SCM_RIGHTS);
        // ppoll/poll below see its reader go away, close ends it. No new
        // call: the worker opens nothing for a capture.
        (libc::SYS_write, "write"),
        (libc::SYS_readv, "readv"),
        (libc::SYS_writev, "writev"),
        (libc::SYS_pwrite64, "pwrite64"),
        (libc::SYS_ftruncate, "ftruncate"),
        (libc::SYS_lseek, "lseek"),
        (libc::SYS_getsockopt, "getsockopt"),
        // A port whose link went away: rebinding its packet socket to the
        // link when it comes back under the same name (no new socket).
        (libc::SYS_bind, "bind"),
        // TAP ports asked to (`datapath: { tap_io: io_uring }`; not the default)
        // move a batch of frames per call through an io_uring set up
        // before the sandbox (datapath::sys::uring). Its operations are not
        // system calls seccomp sees, so the ring itself is locked down
        // (IORING_REGISTER_RESTRICTIONS): read/readv/write/writev on the
        // one TAP descriptor registered as a fixed file, nothing else.
        // io_uring_setup and io_uring_register stay off this list: no new
        // ring, no new registration; a worker without a ring can do
        // nothing with this call.
        (libc::SYS_io_uring_enter, "io_uring_enter"),
        (libc::SYS_ppoll, "ppoll"),
        (libc::SYS_close, "close"),
        // `nfvhost replace`: mapping the compiled module handed over as a
        // memfd (std's File::metadata tries statx on the descriptor, then
        // fstat).
        (libc::SYS_fstat, "fstat"),
        (libc::SYS_statx, "statx"),
        // Memory: wasm linear memory, its growth, and re-instantiation.
        (libc::SYS_mmap, "mmap"),
        (libc::SYS_munmap, "munmap"),
        (libc::SYS_mprotect, "mprotect"),
        (libc::SYS_madvise, "madvise"),
        (libc::SYS_mremap, "mremap"),
        (libc::SYS_brk, "brk"),
        // Threads and time: the epoch thread, locks, sleeps.
        (libc::SYS_futex, "futex"),
        (libc::SYS_clock_gettime, "clock_gettime"),
        (libc::SYS_clock_nanosleep, "clock_nanosleep"),
        (libc::SYS_nanosleep, "nanosleep"),
        (libc::SYS_sched_yield, "sched_yield"),
        (libc::SYS_getrandom, "getrandom"),
        (libc::SYS_getpid, "getpid"),
        (libc::SYS_gettid, "gettid"),
        // Signals: wasm traps arrive as SIGSEGV/SIGILL/SIGFPE on the
        // alternate stack; SIGTERM asks the worker to stop.
        (libc::SYS_rt_sigreturn, "rt_sigreturn"),
        (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
        (libc::SYS_sigaltstack, "sigaltstack"),
        (libc::SYS_exit, "exit"),
        (libc::SYS_exit_group, "exit_group"),
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([(libc::SYS_poll, "poll")]);
    list
}

/// The only `ioctl` requests a worker may make (on its own packet sockets,
/// while a port is down): an interface's index and flags by name, to see
/// whether its link is back (`datapath::sys::packet::link_index_and_up`).
pub fn worker_ioctls() -> [(libc::c_ulong, &'static str); 2] {
    [
        (libc::SIOCGIFINDEX, "SIOCGIFINDEX"),
        (libc::SIOCGIFFLAGS, "SIOCGIFFLAGS"),
    ]
}

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH))
}

/// The compiled filter: allow-list, anything else kills the process.
pub fn worker_filter() -> Result<BpfProgram, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = worker_allow_list()
        .into_iter()
        .map(|(nr, _)| (nr, Vec::new()))
        .collect();
    let build = |e: seccompiler::BackendError| SeccompError::Filter {
        what: "build the filter",
        source: e.into(),
    };
    let ioctl_rules = worker_ioctls()
        .into_iter()
        .map(|(request, _)| {
            let cond = seccompiler::SeccompCondition::new(
                1,
                seccompiler::SeccompCmpArgLen::Dword,
                seccompiler::SeccompCmpOp::Eq,
                request,
            )?;
            seccompiler::SeccompRule::new(vec![cond])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build)?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch()?,
    )
    .map_err(build)?;
    filter.try_into().map_err(|e| SeccompError::Filter {
        what: "compile the filter",
        source: seccompiler::Error::Backend(e),
    })
}

/// Installs `filter` on every thread of the process (TSYNC). The caller
/// has set `no_new_privs` (seccompiler sets it as well).
pub fn install_all_threads(filter: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter_all_threads(filter).map_err(|source| SeccompError::Filter {
        what: "install the filter",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_leaves_out_what_a_worker_must_not_do() {
        let filter = worker_filter().expect("filter builds");
        assert!(!filter.is_empty());
        let allowed: Vec<i64> = worker_allow_list().iter().map(|(nr, _)| *nr).collect();
        for forbidden in [
            libc::SYS_execve,
            libc::SYS_socket,
            libc::SYS_openat,
            libc::SYS_mount,
            libc::SYS_ptrace,
            libc::SYS_setuid,
            libc::SYS_kill,
            libc::SYS_clone,
            libc::SYS_bpf,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_register,
        ] {
            assert!(!allowed.contains(&forbidden), "{forbidden} allowed");
        }
    }
}

/// TEST ONLY: ways for the end-to-end tests to make a sandboxed worker
/// misbehave outside wasm, which a module cannot do.
///
/// Armed only when the worker starts with `NFVHOST_TEST_WORKER_PROBE` in
/// its environment (inherited from `nfvhost deploy`); then SIGUSR2 makes the
/// worker's loop either call a forbidden system call (`syscall`: it opens a
/// UDP socket, which the filter answers by killing the worker) or stop
/// turning (`hang`: it sleeps forever, as a worker stuck outside wasm
/// would). Without the variable SIGUSR2 keeps its default action and the
/// loop never does either.
pub mod test_probe {
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};

    /// The environment variable that arms the probe: `syscall` or `hang`.
    pub const ENV: &str = "NFVHOST_TEST_WORKER_PROBE";

    const OFF: u8 = 0;
    const SYSCALL: u8 = 1;
    const HANG: u8 = 2;

    static MODE: AtomicU8 = AtomicU8::new(OFF);
    static ASKED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_usr2(_: libc::c_int) {
        ASKED.store(true, Relaxed);
    }

    /// Installs the SIGUSR2 handler if the environment asks for it. Call
    /// before the filter is installed.
    pub fn arm_if_enabled() {
        let mode = match std::env::var(ENV).as_deref() {
            Ok("syscall") => SYSCALL,
            Ok("hang") => HANG,
            _ => return,
        };
        MODE.store(mode, Relaxed);
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { libc::signal(libc::SIGUSR2, on_usr2 as *const () as libc::sighandler_t) };
    }

    /// Misbehaves as armed, once signalled.
    pub fn fire_if_asked() {
        if !ASKED.load(Relaxed) {
            return;
        }
        ASKED.store(false, Relaxed);
        match MODE.load(Relaxed) {
            // socket(2) is not on the allow-list: the worker dies here.
            SYSCALL => drop(std::net::UdpSocket::bind("127.0.0.1:0")),
            HANG => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            _ => {}
        }
    }
}
