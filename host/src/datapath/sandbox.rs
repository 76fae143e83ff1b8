//! Entering the worker's sandbox once its setup is done: ports, stats
//! segment and log are open and the module is compiled. From then on the
//! worker runs unprivileged in an empty mount namespace under a seccomp
//! allow-list (see `sys::privilege` and `sys::seccomp`); everything it
//! still needs is an open descriptor or a mapping.

use std::path::Path;

use crate::engine::{Engine, EngineError};
use crate::sys::privilege::{self, PrivilegeError, SandboxIds};
use crate::sys::seccomp::{self, SeccompError};

/// What failed while entering the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Drops the worker's privileges, starts the engine's epoch thread (which
/// inherits the dropped credentials and namespace) and installs the
/// syscall filter on both threads. `scratch` is an existing directory the
/// empty root is mounted over (in the new namespace only).
pub fn enter(chain: &str, vnf: &str, scratch: &Path, engine: &Engine) -> Result<(), SandboxError> {
    // Built first: compiling the filter allocates and reads nothing.
    let filter = seccomp::worker_filter()?;
    seccomp::test_probe::arm_if_enabled();
    privilege::require_single_thread()?;
    privilege::enter_empty_root(scratch)?;
    let supervisor = nix::unistd::getppid();
    privilege::drop_privileges(SandboxIds::for_vnf(chain, vnf))?;
    // Still die with the supervisor: the id change cleared PR_SET_PDEATHSIG.
    privilege::die_with_parent(libc::SIGTERM, supervisor)?;
    engine.start_ticker()?;
    seccomp::install_all_threads(&filter)?;
    Ok(())
}

/// Why a worker exited, in words for the supervisor's log: a SIGSYS is the
/// seccomp filter refusing a system call.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(libc::SIGSYS) => {
            "killed by its sandbox: it made a system call outside the seccomp allow-list (SIGSYS)"
                .into()
        }
        Some(libc::SIGKILL) => "killed (SIGKILL)".into(),
        _ => format!("exited ({status})"),
    }
}
