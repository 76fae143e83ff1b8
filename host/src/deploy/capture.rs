//! `nfvhost capture CHAIN:VNF:PORT`: mirror one port of a running VNF into
//! a pcap file, in-memory links of fused groups included.
//!
//! How the frames get out of a sandboxed worker that may open nothing:
//!
//! 1. `nfvhost capture` makes a pipe, leaves a *ticket* in the chain's
//!    state directory (root-only) naming the VNF, the port, its own
//!    process (pid and start time) and the pipe's write end, and signals
//!    the supervisor ([`super::supervisor::RELOAD_SIGNAL`], as `replace`).
//! 2. The supervisor takes a duplicate of the write end out of the waiting
//!    command with `pidfd_getfd(2)` ([`take_pipe`]), removes the ticket
//!    (the command then closes its own copy), and sends the request with
//!    the descriptor over the worker's control channel (SCM_RIGHTS, as
//!    `replace` sends its memfd).
//! 3. The worker writes pcap records to the pipe until the count, the
//!    duration, or the command closing its end; then closes it. The command
//!    copies whole records from the pipe into the file it created.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::state::{ChainState, ProcRef};
use crate::chain::names::{self, NameKind};
use crate::datapath::worker::CaptureRequest;

/// `CHAIN:VNF:PORT`, checked against the name rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub chain: String,
    pub vnf: String,
    pub port: String,
}

/// Parses `CHAIN:VNF:PORT`; the error says what is wrong.
pub fn parse_target(arg: &str) -> Result<Target, String> {
    let parts: Vec<&str> = arg.split(':').collect();
    let [chain, vnf, port] = parts[..] else {
        return Err(format!(
            "`{}` is not CHAIN:VNF:PORT (e.g. edgef:fw:inside)",
            arg.escape_default()
        ));
    };
    for (kind, what, name) in [
        (NameKind::Chain, "chain name", chain),
        (NameKind::Node, "VNF name", vnf),
        (NameKind::Interface, "port name", port),
    ] {
        names::check_arg(kind, what, name).map_err(|e| e.to_string())?;
    }
    Ok(Target {
        chain: chain.into(),
        vnf: vnf.into(),
        port: port.into(),
    })
}

/// What `nfvhost capture` leaves for the supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub request: CaptureRequest,
    /// The waiting command, and its pipe's write end (a descriptor number
    /// in that process).
    pub client: ProcRef,
    pub fd: i32,
}

/// Where the ticket of the command with pid `pid` is left.
pub fn ticket_path(state: &ChainState, pid: i32) -> PathBuf {
    state.file(&format!("capture-{pid}.json"))
}

/// The tickets waiting in the chain's state directory.
pub fn tickets(state: &ChainState) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(ChainState::dir(&state.chain)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("capture-") && n.ends_with(".json"))
        })
        .collect()
}

/// Reads a ticket.
pub fn read_ticket(path: &std::path::Path) -> Result<Ticket, String> {
    let file = crate::sys::private_file::open_read(path).map_err(|e| e.to_string())?;
    serde_json::from_reader(file).map_err(|e| format!("{}: {e}", path.display()))
}

/// A duplicate of the ticket's pipe, taken from the waiting command: only
/// from that exact process (pid and start time), and only a pipe.
pub fn take_pipe(ticket: &Ticket) -> Result<OwnedFd, String> {
    let pidfd = ticket
        .client
        .pidfd()
        .ok_or("the `nfvhost capture` that asked is gone")?;
    let fd = pidfd
        .get_fd(ticket.fd)
        .map_err(|e| format!("couldn't take the capture pipe: {e}"))?;
    let stat = nix::sys::stat::fstat(&fd).map_err(|e| e.to_string())?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err("the capture descriptor is not a pipe".into());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_target("edgef:fw:inside").unwrap(),
            Target {
                chain: "edgef".into(),
                vnf: "fw".into(),
                port: "inside".into()
            }
        );
        assert_eq!(parse_target("basic:r1:eth0.10").unwrap().port, "eth0.10");
        for bad in ["edgef:fw", "edgef:fw:inside:x", "", "edgef"] {
            let e = parse_target(bad).unwrap_err();
            assert!(e.contains("CHAIN:VNF:PORT"), "{bad}: {e}");
        }
        let e = parse_target("Edgef:fw:inside").unwrap_err();
        assert!(e.contains("chain name"), "{e}");
        let e = parse_target("edgef:../x:inside").unwrap_err();
        assert!(e.contains("VNF name"), "{e}");
        let e = parse_target("edgef:fw:in/side").unwrap_err();
        assert!(e.contains("port name"), "{e}");
        let e = parse_target("edgef::inside").unwrap_err();
        assert!(e.contains("VNF name"), "{e}");
    }

    #[test]
    fn tickets_round_trip_and_only_a_pipe_of_a_live_process_is_taken() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        use std::os::fd::AsRawFd as _;
        let ticket = Ticket {
            request: CaptureRequest {
                vnf: "fw".into(),
                port: "inside".into(),
                count: Some(4),
                duration_ms: Some(1500),
            },
            client: ProcRef::of(std::process::id() as i32).unwrap(),
            fd: w.as_raw_fd(),
        };
        let text = serde_json::to_string(&ticket).unwrap();
        assert_eq!(serde_json::from_str::<Ticket>(&text).unwrap(), ticket);
        assert!(take_pipe(&ticket).is_ok());
        let file = tempfile::tempfile().unwrap();
        let not_a_pipe = Ticket {
            fd: file.as_raw_fd(),
            ..ticket.clone()
        };
        assert!(take_pipe(&not_a_pipe).unwrap_err().contains("not a pipe"));
        let stale = Ticket {
            client: ProcRef {
                start_time: ticket.client.start_time + 1,
                ..ticket.client
            },
            ..ticket
        };
        assert!(take_pipe(&stale).unwrap_err().contains("gone"));
    }
}
