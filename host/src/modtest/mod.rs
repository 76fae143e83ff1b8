//! `nfvhost test`: runs frames from capture files through a module without
//! root, namespaces or links, and compares what leaves each port with
//! expected captures. It is how a VNF author regression-tests a module.
//!
//! The module runs in the engine a worker uses ([`crate::engine`]: the same
//! compile, ABI check, [`crate::engine::VnfInstance`] and
//! [`crate::engine::Batch`]), with the init document `deploy` would give it
//! (from the chain file, with fixed test MAC addresses,
//! [`target::test_mac`]).
//!
//! - `capture`: reading pcap/pcapng, writing pcap.
//! - `target`: the VNF under test, from a chain file or port names.
//! - `run`: feeding frames, ticking the timer, collecting what leaves.
//! - `diff`: the first difference between two lists of frames.
//!
//! Which port a frame arrives on: `--in PORT=FILE` puts every frame of
//! FILE on PORT; a bare `--in FILE` uses the pcapng interface of each frame
//! (an interface whose name is a port's name is that port, an unnamed
//! interface N is port N; a pcap file has only port 0). Several inputs are
//! merged by timestamp (ties: in the order given), each file's own order
//! kept.
//!
//! Time: module time is 0 at the earliest input timestamp and is each
//! frame's timestamp after that; the timer ticks every worker period
//! ([`crate::deploy::setup::TICK_MS`]) of module time before the frame that
//! passes it, so a time-dependent module behaves the same on every run.

pub mod capture;
pub mod diff;
pub mod run;
pub mod target;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use capture::{CaptureError, CapturedFrame};
pub use diff::{compare, Difference};
pub use run::{run, Input, Options, Outcome, Run, RunError, Step, StepKind};
pub use target::{bare_chain, prepare, test_mac, Target, TargetError};

/// Errors of `nfvhost test`.
#[derive(Debug, thiserror::Error)]
pub enum ModTestError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{what}: `{name}` is not a port of the module (its ports: {ports})")]
    UnknownPort {
        what: String,
        name: String,
        ports: String,
    },
    #[error("couldn't create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A capture to read, and where its frames arrive (or, for expected
/// frames, which port they should leave).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureArg {
    /// `PORT=FILE`: every frame belongs to PORT.
    Port(String, PathBuf),
    /// `FILE`: by pcapng interface (pcap: port 0). For `--expect`, a
    /// directory holds `<port>.pcap` per port.
    Bare(PathBuf),
}

impl CaptureArg {
    /// Parses `PORT=FILE` or `FILE` (a `=` in a path with a `/` before
    /// it is part of the path).
    pub fn parse(arg: &str) -> Self {
        match arg.split_once('=') {
            Some((port, file)) if !port.is_empty() && !port.contains('/') => {
                CaptureArg::Port(port.to_string(), PathBuf::from(file))
            }
            _ => CaptureArg::Bare(PathBuf::from(arg)),
        }
    }
}

fn port_index(ports: &[String], what: &str, name: &str) -> Result<u16, ModTestError> {
    ports
        .iter()
        .position(|p| p == name)
        .map(|i| i as u16)
        .ok_or_else(|| ModTestError::UnknownPort {
            what: what.to_string(),
            name: name.to_string(),
            ports: ports.join(", "),
        })
}

/// The port of each frame of a bare capture (see the module doc).
fn by_interface(
    path: &Path,
    frames: Vec<CapturedFrame>,
    ports: &[String],
) -> Result<Vec<(u16, CapturedFrame)>, ModTestError> {
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let port = match &f.interface_name {
                Some(name) => ports.iter().position(|p| p == name),
                None => Some(f.interface as usize).filter(|&n| n < ports.len()),
            };
            match port {
                Some(p) => Ok((p as u16, f)),
                None => Err(CaptureError::UnknownInterface {
                    path: path.to_owned(),
                    frame: i + 1,
                    interface: f.interface,
                    name: f.interface_name.clone(),
                    ports: ports.join(", "),
                }
                .into()),
            }
        })
        .collect()
}

/// Reads the input captures and merges them into arrival order.
pub fn load_inputs(args: &[CaptureArg], ports: &[String]) -> Result<Vec<Input>, ModTestError> {
    let mut files: Vec<Vec<Input>> = Vec::new();
    let mut total = 0;
    for arg in args {
        let frames = match arg {
            CaptureArg::Port(name, path) => {
                let port = port_index(ports, &format!("--in {name}={}", path.display()), name)?;
                capture::read(path)?
                    .into_iter()
                    .map(|f| (port, f))
                    .collect()
            }
            CaptureArg::Bare(path) => by_interface(path, capture::read(path)?, ports)?,
        };
        total += frames.len();
        if total > capture::MAX_FRAMES {
            let path = match arg {
                CaptureArg::Port(_, p) | CaptureArg::Bare(p) => p.clone(),
            };
            return Err(CaptureError::TooMany { path }.into());
        }
        files.push(
            frames
                .into_iter()
                .map(|(port, f)| Input {
                    ts: f.ts,
                    port,
                    data: f.data,
                })
                .collect(),
        );
    }
    Ok(merge(files))
}

/// Merges per-file frame lists by timestamp, keeping each list's order;
/// on equal timestamps the earlier list goes first.
fn merge(files: Vec<Vec<Input>>) -> Vec<Input> {
    let mut iters: Vec<_> = files
        .into_iter()
        .map(|f| f.into_iter().peekable())
        .collect();
    let mut out = Vec::new();
    loop {
        let next = iters
            .iter_mut()
            .enumerate()
            .filter_map(|(i, it)| it.peek().map(|f| (f.ts, i)))
            .min();
        match next {
            Some((_, i)) => out.extend(iters[i].next()),
            None => return out,
        }
    }
}

/// Expected frames per port; `None` for a port with no expectation.
pub fn load_expected(
    args: &[CaptureArg],
    ports: &[String],
) -> Result<Vec<Option<Vec<Vec<u8>>>>, ModTestError> {
    let mut expected: Vec<Option<Vec<Vec<u8>>>> = vec![None; ports.len()];
    for arg in args {
        match arg {
            CaptureArg::Port(name, path) => {
                let port = port_index(ports, &format!("--expect {name}={}", path.display()), name)?;
                expected[usize::from(port)] =
                    Some(capture::read(path)?.into_iter().map(|f| f.data).collect());
            }
            CaptureArg::Bare(dir) if dir.is_dir() => {
                // Every port is checked; a port without a file must send
                // nothing.
                for (port, name) in ports.iter().enumerate() {
                    let path = dir.join(format!("{name}.pcap"));
                    let frames = if path.exists() {
                        capture::read(&path)?.into_iter().map(|f| f.data).collect()
                    } else {
                        Vec::new()
                    };
                    expected[port] = Some(frames);
                }
            }
            CaptureArg::Bare(path) => {
                let frames = capture::read(path)?;
                // A pcap (or unnamed pcapng) always checks port 0, even
                // when it is empty.
                if frames.iter().all(|f| f.interface_name.is_none()) && !ports.is_empty() {
                    expected[0].get_or_insert_with(Vec::new);
                }
                for (port, f) in by_interface(path, frames, ports)? {
                    expected[usize::from(port)]
                        .get_or_insert_with(Vec::new)
                        .push(f.data);
                }
            }
        }
    }
    Ok(expected)
}

/// Writes what left each port to `dir/<port>.pcap` (every port, empty ones
/// too), creating `dir`.
pub fn write_outputs(dir: &Path, ports: &[String], run: &Run) -> Result<(), ModTestError> {
    std::fs::create_dir_all(dir).map_err(|source| ModTestError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    for (name, frames) in ports.iter().zip(&run.outputs) {
        capture::write(&dir.join(format!("{name}.pcap")), frames)?;
    }
    Ok(())
}

/// The worker's timer period.
pub fn worker_tick() -> Duration {
    Duration::from_millis(crate::deploy::setup::TICK_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(ts: u64, port: u16) -> Input {
        Input {
            ts: Duration::from_millis(ts),
            port,
            data: vec![port as u8],
        }
    }

    #[test]
    fn inputs_merge_by_time_keeping_each_files_order() {
        let a = vec![input(0, 0), input(5, 0), input(3, 0)];
        let b = vec![input(1, 1), input(5, 1)];
        let order: Vec<(u64, u16)> = merge(vec![a, b])
            .iter()
            .map(|i| (i.ts.as_millis() as u64, i.port))
            .collect();
        assert_eq!(order, [(0, 0), (1, 1), (5, 0), (3, 0), (5, 1)]);
    }

    #[test]
    fn capture_args_name_a_port_or_a_file() {
        assert_eq!(
            CaptureArg::parse("lan=a.pcap"),
            CaptureArg::Port("lan".into(), "a.pcap".into())
        );
        assert_eq!(
            CaptureArg::parse("./x=y.pcap"),
            CaptureArg::Bare("./x=y.pcap".into())
        );
        assert_eq!(
            CaptureArg::parse("a.pcap"),
            CaptureArg::Bare("a.pcap".into())
        );
    }

    #[test]
    fn a_bare_capture_maps_interfaces_to_ports() {
        let ports = vec!["lan".to_string(), "wan".to_string()];
        let f = |interface, name: Option<&str>| CapturedFrame {
            ts: Duration::ZERO,
            interface,
            interface_name: name.map(str::to_string),
            data: vec![],
        };
        let mapped = by_interface(
            Path::new("x"),
            vec![f(0, Some("wan")), f(1, None), f(0, None)],
            &ports,
        )
        .unwrap();
        let ports_of: Vec<u16> = mapped.iter().map(|(p, _)| *p).collect();
        assert_eq!(ports_of, [1, 1, 0]);
        let e = by_interface(Path::new("x"), vec![f(3, Some("dmz"))], &ports)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(`dmz`), which is not a port"), "{e}");
        assert!(by_interface(Path::new("x"), vec![f(2, None)], &ports).is_err());
    }
}
