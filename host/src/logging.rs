//! Log lines from the host and from modules, one format for both.

use nfvhost_abi::LogLevel;

/// Writes a module's log line to stderr (the worker's log file).
pub fn vnf_log(vnf: &str, level: LogLevel, msg: &str) {
    eprintln!("{} {:<5} {vnf}: {msg}", timestamp(), level.label());
}

/// Writes a host log line to stderr.
pub fn host_log(who: &str, level: LogLevel, msg: &str) {
    eprintln!("{} {:<5} [{who}] {msg}", timestamp(), level.label());
}

/// Seconds since the epoch with milliseconds, as `1764390000.123`.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}
