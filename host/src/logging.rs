//! Log lines from the host and from modules, one format for both.
//!
//! Every process (CLI, supervisor, worker) logs through `tracing`,
//! installed by [`init`]. A module's log lines are untrusted: [`ModuleLog`] caps each line at
//! [`MAX_LINE`] bytes, escapes control characters (a line can neither forge
//! a second line nor drive the terminal of whoever runs `nfvhost logs`), and
//! limits the rate to [`LINES_PER_SEC`] with a burst of [`BURST`]; lines over
//! the rate are counted and reported once per episode. The supervisor's
//! [`pump`] then writes the worker's output into a log file capped at
//! [`MAX_LOG_FILE`] bytes with one rotated predecessor.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nfvhost_abi::LogLevel;

/// Longest module log line kept, in bytes of the message (before escaping).
pub const MAX_LINE: usize = 4096;
/// Module log lines per second kept in the long run.
pub const LINES_PER_SEC: f64 = 100.0;
/// Module log lines that may come at once.
pub const BURST: f64 = 200.0;
/// Size at which a VNF's log file is rotated (to `<name>.log.1`).
pub const MAX_LOG_FILE: u64 = 1 << 20;
/// Longest line the pump copies (longer ones are cut): a host line is far
/// shorter, a module line at most [`MAX_LINE`] escaped four times over.
const MAX_PUMP_LINE: usize = 4 * MAX_LINE + 256;

/// A module's log line: rate-limited, cut and escaped.
#[derive(Debug)]
pub struct ModuleLog {
    vnf: String,
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl ModuleLog {
    pub fn new(vnf: &str) -> Self {
        ModuleLog {
            vnf: vnf.to_owned(),
            tokens: BURST,
            last: Instant::now(),
            suppressed: 0,
        }
    }

    /// Logs `raw` (the module's bytes) at `level`, unless over the rate.
    pub fn log(&mut self, level: LogLevel, raw: &[u8]) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * LINES_PER_SEC).min(BURST);
        if self.tokens < 1.0 {
            if self.suppressed == 0 {
                host_log(
                    &self.vnf,
                    LogLevel::Warn,
                    &format!(
                        "module logs more than {LINES_PER_SEC} lines/s; dropping lines until it slows down"
                    ),
                );
            }
            self.suppressed += 1;
            return;
        }
        self.tokens -= 1.0;
        if self.suppressed > 0 {
            host_log(
                &self.vnf,
                LogLevel::Warn,
                &format!(
                    "dropped {} module log lines over the rate limit",
                    self.suppressed
                ),
            );
            self.suppressed = 0;
        }
        vnf_log(&self.vnf, level, &sanitize(raw, MAX_LINE));
    }

    /// Lines dropped in the current episode (for tests).
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// `raw` as one printable line: cut at `max` bytes, invalid UTF-8 replaced,
/// control characters and backslashes escaped (`\n`, `\u{1b}`, `\\`).
pub fn sanitize(raw: &[u8], max: usize) -> String {
    let cut = raw.len().saturating_sub(max);
    let text = String::from_utf8_lossy(&raw[..raw.len() - cut]);
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut > 0 {
        let _ = write!(out, " [{cut} more bytes cut]");
    }
    out
}

/// The environment variable that sets the log filter, in `RUST_LOG`
/// syntax: `debug`, or `info,module=trace`.
pub const LOG_ENV: &str = "NFVHOST_LOG";

/// The target of a module's own log lines (host lines have `nfvhost`), so
/// a filter can tell them apart: `NFVHOST_LOG=warn,module=info`.
pub const MODULE_TARGET: &str = "module";

/// Installs this process's log subscriber: one line per event on stderr,
/// `2026-12-02T00:26:10.123456Z  INFO nfvhost: message vnf=r1`, with an
/// RFC 3339 UTC timestamp and no colours (the supervisor's and workers'
/// stderr go to log files). [`LOG_ENV`] overrides `default`; an invalid
/// filter is reported and `default` used. A second call does nothing.
pub fn init(default: &str) {
    let default_filter = || tracing_subscriber::EnvFilter::new(default);
    let filter = match std::env::var(LOG_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&text).unwrap_or_else(|e| {
                let _ = writeln!(
                    std::io::stderr(),
                    "nfvhost: warning: {LOG_ENV}={text:?} is not a log filter ({e}); using {default:?}"
                );
                default_filter()
            })
        }
        _ => default_filter(),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// The `tracing` level of a module log level.
pub fn tracing_level(level: LogLevel) -> tracing::Level {
    match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    }
}

/// `tracing::event!` at a level known only at run time (the macro wants a
/// constant).
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            LogLevel::Error => tracing::error!($($rest)+),
            LogLevel::Warn => tracing::warn!($($rest)+),
            LogLevel::Info => tracing::info!($($rest)+),
            LogLevel::Debug => tracing::debug!($($rest)+),
            LogLevel::Trace => tracing::trace!($($rest)+),
        }
    };
}

/// Logs a module's log line (already sanitized).
pub fn vnf_log(vnf: &str, level: LogLevel, msg: &str) {
    event_at!(level, target: MODULE_TARGET, vnf = %vnf, "{msg}");
}

/// Logs a host line about `who` (a VNF, or the chain's supervisor).
pub fn host_log(who: &str, level: LogLevel, msg: &str) {
    event_at!(level, target: "nfvhost", vnf = %who, "{msg}");
}

/// Copies lines from `input` (a worker's stderr) into the log file at
/// `path`, cutting lines at a bounded length and rotating the file to
/// `<path>.1` when it passes `max_file` bytes. So a VNF's logs never take
/// more than about twice `max_file` of the run dir (which is RAM). Returns
/// when `input` reaches its end.
pub fn pump(input: impl std::io::Read, path: &Path, max_file: u64) -> std::io::Result<()> {
    let mut input = std::io::BufReader::new(input);
    let mut file = crate::sys::private_file::open_append(path).map_err(std::io::Error::other)?;
    let mut size = file.metadata()?.len();
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let complete = read_line_bounded(&mut input, &mut line, MAX_PUMP_LINE)?;
        if line.is_empty() && !complete {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            line.extend_from_slice(b" [cut]\n");
        }
        if size + line.len() as u64 > max_file && size > 0 {
            file = rotate(path)?;
            size = 0;
        }
        file.write_all(&line)?;
        size += line.len() as u64;
    }
}

/// Reads up to and including `\n` into `out`, at most `max` bytes kept; the
/// rest of an over-long line is skipped. False at end of input.
fn read_line_bounded(
    input: &mut impl BufRead,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(false);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        input.consume(n);
        if done {
            // A cut line lacks its `\n`; the caller marks it.
            return Ok(true);
        }
    }
}

fn rotate(path: &Path) -> std::io::Result<std::fs::File> {
    let mut old = PathBuf::from(path);
    old.as_mut_os_string().push(".1");
    std::fs::rename(path, &old)?;
    crate::sys::private_file::open_append(path).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_and_escaped() {
        assert_eq!(sanitize(b"plain text", 100), "plain text");
        assert_eq!(
            sanitize(b"a\nFAKE 0 ERROR x\x1b[2J\\", 100),
            "a\\nFAKE 0 ERROR x\\u{1b}[2J\\\\"
        );
        let long = vec![b'x'; 70_000];
        let s = sanitize(&long, MAX_LINE);
        assert!(s.starts_with(&"x".repeat(MAX_LINE)));
        assert!(s.ends_with(" [65904 more bytes cut]"), "{}", &s[MAX_LINE..]);
        assert_eq!(sanitize(b"\xff\xfeok", 10), "\u{fffd}\u{fffd}ok");
    }

    #[test]
    fn rate_is_limited_and_excess_counted() {
        let mut log = ModuleLog::new("t");
        for _ in 0..1000 {
            log.log(LogLevel::Info, b"x");
        }
        // The burst passes, the rest (but for the trickle refilled while
        // looping) is counted.
        assert!(log.suppressed() >= 700, "{}", log.suppressed());
    }

    #[test]
    fn pump_caps_and_rotates_the_file() {
        let dir = std::env::temp_dir().join(format!("nfvhost-pump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.log");
        let line = format!("{}\n", "y".repeat(1000));
        let mut input = line.repeat(500).into_bytes();
        input.extend(vec![b'z'; 100_000]); // one endless line at the end
        input.push(b'\n');
        pump(&input[..], &path, 64 << 10).unwrap();
        let cur = std::fs::metadata(&path).unwrap().len();
        let mut old = path.clone();
        old.as_mut_os_string().push(".1");
        let prev = std::fs::metadata(&old).unwrap().len();
        assert!(cur <= 64 << 10 && prev <= 64 << 10, "{cur} {prev}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|l| l.len() <= MAX_PUMP_LINE + 6));
        assert!(text.ends_with(" [cut]\n"), "{}", &text[text.len() - 20..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
