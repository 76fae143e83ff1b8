//! `nfvhost replace` on the supervisor's side: compile (or fetch from the
//! cache) the VNF's new module, hand it to the running worker as a sealed
//! memfd over the worker's control channel, wait for the worker's answer
//! and record it where the waiting `nfvhost replace` reads it.

use std::os::fd::{AsFd as _, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::state::{ChainState, VnfState};
use crate::datapath::worker::{ReplaceReply, ReplaceRequest, Replaced};
use crate::engine::Engine;
use crate::sys::{handover, private_file};

/// How long the supervisor waits for a worker to answer (it looks at its
/// channel once per tick), and `nfvhost replace` for the supervisor.
pub const REPLACE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the outcome of the VNF's last replace is recorded.
pub fn result_path(state: &ChainState, vnf: &str) -> PathBuf {
    state.file(&format!("{vnf}.replace.json"))
}

/// Asks the worker behind `control` to replace its module by `vnf.module`.
pub fn hand_over(engine: &Engine, control: BorrowedFd<'_>, vnf: &VnfState) -> ReplaceReply {
    let generation = vnf.generation;
    let fail = |message: String| failed(generation, message);
    let module = match engine.load(&vnf.module) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    let artifact = match module
        .module
        .serialize()
        .map_err(|e| format!("serializing {}: {e:#}", vnf.module.display()))
        .and_then(|bytes| {
            handover::sealed_memfd("nfvhost-module", &bytes).map_err(|e| e.to_string())
        }) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let request = ReplaceRequest {
        vnf: vnf.name.clone(),
        generation,
        module: vnf.module.clone(),
        digest: module.digest.clone(),
        init_document: vnf.spec.init_document.clone(),
    };
    let text = serde_json::to_vec(&request).expect("the request serializes");
    if let Err(e) = handover::send(control, &text, Some(artifact.as_fd())) {
        return fail(e.to_string());
    }
    let deadline = Instant::now() + REPLACE_TIMEOUT;
    let mut buf = vec![0u8; handover::MAX_MESSAGE];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !handover::wait_readable(control, left) {
            return fail(format!(
                "the worker did not answer within {REPLACE_TIMEOUT:?}"
            ));
        }
        match handover::recv(control, &mut buf, true) {
            Ok(None) => continue,
            Ok(Some((0, _))) => return fail("the worker exited during the replace".into()),
            Ok(Some((len, _))) => match serde_json::from_slice::<ReplaceReply>(&buf[..len]) {
                // An answer to an earlier request that timed out.
                Ok(reply) if reply.generation != generation => continue,
                Ok(reply) => return reply,
                Err(e) => return fail(format!("unreadable answer from the worker: {e}")),
            },
            Err(e) => return fail(e.to_string()),
        }
    }
}

/// The reply for a replace that failed: `message` says why.
pub fn failed(generation: u64, message: String) -> ReplaceReply {
    ReplaceReply {
        generation,
        result: Err(message),
    }
}

/// The reply for a VNF whose worker was not running: it starts on the new
/// module, with nothing to carry.
pub fn restarted(generation: u64) -> ReplaceReply {
    ReplaceReply {
        generation,
        result: Ok(Replaced {
            state_bytes: None,
            state_note: Some(
                "the VNF's worker was not running; it starts on the new module".into(),
            ),
            total_us: 0,
            paused_us: 0,
        }),
    }
}

/// Records `reply` for the waiting `nfvhost replace`.
pub fn record(state: &ChainState, vnf: &str, reply: &ReplaceReply) -> std::io::Result<()> {
    let text = serde_json::to_vec(reply).expect("the reply serializes");
    private_file::write_atomic(&result_path(state, vnf), &text, 0o600)
        .map_err(std::io::Error::other)
}

/// Waits for the outcome of the replace that gave `vnf` `generation`.
pub fn wait_for(
    state: &ChainState,
    vnf: &str,
    generation: u64,
    timeout: Duration,
) -> Option<ReplaceReply> {
    let path = result_path(state, vnf);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(reply) = private_file::open_read(&path)
            .ok()
            .and_then(|f| serde_json::from_reader::<_, ReplaceReply>(f).ok())
            .filter(|r| r.generation == generation)
        {
            return Some(reply);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
