//! `nfvhost replace` inside the worker: the new module's instance is made
//! next to the running one (same ports, same clock), takes over its state
//! (`nfv_state_save` → `nfv_state_load`), and replaces it between two
//! batches. If anything fails the running instance stays, untouched but for
//! the state it saved, and the supervisor is told why.
//!
//! Frames that arrive meanwhile wait in the ports' socket buffers: the loop
//! does not receive while it replaces.

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use nfvhost_abi::LogLevel;
use serde::{Deserialize, Serialize};

use super::Worker;
use crate::engine::StateError;
use crate::logging::host_log;
use crate::sys::handover;

/// What the supervisor sends (with the compiled module as a sealed memfd).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplaceRequest {
    /// The VNF whose module is replaced: one of the worker's (a fused
    /// group's worker runs several).
    #[serde(default)]
    pub vnf: String,
    /// The VNF's generation in the state file once replaced.
    pub generation: u64,
    /// The module's path, for messages.
    pub module: PathBuf,
    /// sha256 of the module's `.wasm` bytes.
    pub digest: String,
    /// The init document for the new instance.
    pub init_document: String,
}

/// What the worker answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplaceReply {
    pub generation: u64,
    pub result: Result<Replaced, String>,
}

/// A replacement that took place.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Replaced {
    /// Bytes of state carried over and their format version; `None` when
    /// nothing was carried (see `state_note`).
    pub state_bytes: Option<(u32, usize)>,
    /// Why no state was carried, when none was.
    pub state_note: Option<String>,
    /// From the request to the switch, and the part during which the
    /// running instance was stopped (state save, load, switch).
    pub total_us: u64,
    pub paused_us: u64,
}

/// Answers a pending request on `control`, if any, for the member of
/// `members` it names (a worker runs one VNF, or a fused group's members).
/// Forgets the channel once the supervisor closed it or it failed.
pub(in crate::datapath) fn serve_control(
    control: &mut Option<OwnedFd>,
    members: &mut [Worker<'_>],
) {
    let Some(fd) = control.as_ref() else {
        return;
    };
    let who = members
        .first()
        .map_or_else(String::new, |m| m.instantiator.vnf.clone());
    let mut buf = vec![0u8; handover::MAX_MESSAGE];
    let (len, artifact) = match handover::recv(fd.as_fd(), &mut buf, true) {
        Ok(None) => return,
        Ok(Some((0, _))) => {
            // The supervisor closed its end: no more requests.
            *control = None;
            return;
        }
        Ok(Some(got)) => got,
        Err(e) => {
            host_log(&who, LogLevel::Error, &e.to_string());
            *control = None;
            return;
        }
    };
    if let Some(request) = super::capture::CaptureMessage::parse(&buf[..len]) {
        // No answer on the channel: `nfvhost capture` sees the pcap header
        // arrive on its pipe, or the pipe close when the capture is refused.
        start_capture(members, &request, artifact);
        return;
    }
    let reply = match serde_json::from_slice::<ReplaceRequest>(&buf[..len]) {
        Err(e) => ReplaceReply {
            generation: 0,
            result: Err(format!("unreadable replace request: {e}")),
        },
        Ok(request) => {
            let single = members.len() == 1 && request.vnf.is_empty();
            let member = members
                .iter_mut()
                .find(|m| single || m.instantiator.vnf == request.vnf);
            ReplaceReply {
                generation: request.generation,
                result: match (artifact, member) {
                    (None, _) => Err("the replace request came without the module".into()),
                    (Some(_), None) => Err(format!(
                        "this worker does not run a VNF called `{}`",
                        request.vnf
                    )),
                    (Some(file), Some(m)) => m.replace_module(&request, file),
                },
            }
        }
    };
    let text = serde_json::to_vec(&reply).expect("the reply serializes");
    if let Err(e) = handover::send(fd.as_fd(), &text, None) {
        host_log(&who, LogLevel::Error, &e.to_string());
    }
}

/// Starts `request`'s capture in the member it names, writing to `pipe`;
/// refuses (logs, and closes the pipe) when there is no such VNF or port.
fn start_capture(
    members: &mut [Worker<'_>],
    request: &super::capture::CaptureRequest,
    pipe: Option<std::fs::File>,
) {
    let single = members.len() == 1 && request.vnf.is_empty();
    let Some(member) = members
        .iter_mut()
        .find(|m| single || m.instantiator.vnf == request.vnf)
    else {
        let who = members
            .first()
            .map_or_else(String::new, |m| m.instantiator.vnf.clone());
        host_log(
            &who,
            LogLevel::Warn,
            &format!(
                "capture refused: this worker does not run a VNF called `{}`",
                request.vnf
            ),
        );
        return;
    };
    let Some(pipe) = pipe else {
        host_log(
            member.vnf(),
            LogLevel::Warn,
            "capture refused: the request came without its pipe",
        );
        return;
    };
    let Some(port) = member.port_index(&request.port) else {
        host_log(
            member.vnf(),
            LogLevel::Warn,
            &format!("capture refused: no port called `{}`", request.port),
        );
        return;
    };
    let mut capture = super::capture::PortCapture::new(
        port,
        pipe,
        request.count,
        request.duration_ms.map(std::time::Duration::from_millis),
    );
    // The header goes out now: it tells `nfvhost capture` it started.
    capture.flush();
    host_log(
        member.vnf(),
        LogLevel::Info,
        &format!(
            "capturing port {}{}{}",
            request.port,
            request
                .count
                .map(|c| format!(", {c} frames"))
                .unwrap_or_default(),
            request
                .duration_ms
                .map(|d| format!(", for {d} ms"))
                .unwrap_or_default()
        ),
    );
    member.start_capture(capture);
}

impl Worker<'_> {
    /// Loads the module, starts it next to the running instance, moves the
    /// state over and switches; on failure keeps the running instance.
    fn replace_module(
        &mut self,
        request: &ReplaceRequest,
        artifact: std::fs::File,
    ) -> Result<Replaced, String> {
        let started = Instant::now();
        let vnf = self.instantiator.vnf.clone();
        let module = self
            .instantiator
            .engine
            .load_artifact(&request.module, request.digest.clone(), artifact)
            .map_err(|e| e.to_string())?;
        let mut next = self
            .instantiator
            .create(
                &module,
                &request.init_document,
                self.ports.len() as u16,
                self.instance.clock_origin(),
            )
            .map_err(|e| format!("the new module failed to start: {e}"))?;
        if next.batch_size() != self.instance.batch_size() {
            return Err("the new instance has another batch size".into());
        }
        // From here on the running instance does not see frames until the
        // switch (or the rollback).
        let paused = Instant::now();
        let (state_bytes, state_note) = match self.instance.save_state() {
            Err(e) => return Err(format!("the running module could not save its state: {e}")),
            Ok(None) if !self.instance.carries_state() => (
                None,
                Some("the running module does not export nfv_state_save/nfv_state_load".into()),
            ),
            Ok(None) => (
                None,
                Some("the running module had no state to carry".into()),
            ),
            Ok(Some((version, blob))) => match next.load_state(version, &blob) {
                Ok(()) => (Some((version, blob.len())), None),
                Err(StateError::NotSupported) => (
                    None,
                    Some("the new module does not export nfv_state_load".into()),
                ),
                Err(e) => return Err(e.to_string()),
            },
        };
        self.instance = next;
        let paused_us = paused.elapsed().as_micros() as u64;
        self.stats.instance_generation.fetch_add(1, Relaxed);
        self.instantiator.module = module;
        self.instantiator.init_document = request.init_document.clone();
        // Declared metrics are the new module's; cells it no longer has
        // read 0 until the exporter reads the new names.
        for cell in &self.stats.module_metrics {
            cell.store(0, Relaxed);
        }
        if let Err(e) = self.instantiator.publish_metric_names(&self.instance) {
            host_log(&vnf, LogLevel::Warn, &e.to_string());
        }
        self.publish_gauges();
        let carried = match (&state_bytes, &state_note) {
            (Some((version, len)), _) => format!("{len} bytes of state carried (format {version})"),
            (None, Some(note)) => format!("state not carried: {note}"),
            (None, None) => "state not carried".into(),
        };
        host_log(
            &vnf,
            LogLevel::Info,
            &format!(
                "replaced by {} (generation {}); {carried}; paused {paused_us} us",
                request.module.display(),
                request.generation
            ),
        );
        Ok(Replaced {
            state_bytes,
            state_note,
            total_us: started.elapsed().as_micros() as u64,
            paused_us,
        })
    }
}
