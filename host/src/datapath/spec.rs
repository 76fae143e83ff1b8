//! What the supervisor tells a worker, as JSON: its module, namespace,
//! cgroup, ports and limits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a port reaches the wire.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PortBinding {
    /// An interface of that name in the worker's namespace (a veth end).
    Interface { ifname: String },
    /// A persistent TAP device in another namespace, opened by name there.
    Tap { netns: String, ifname: String },
    /// An in-memory link to port `port` of VNF `vnf`, run by the same
    /// worker (a fused group).
    Memory { vnf: String, port: String },
}

/// A port of the VNF.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerPort {
    pub name: String,
    pub binding: PortBinding,
    /// The link's MTU: ordinary frames longer than this plus their Ethernet
    /// header are refused (`too_long`) instead of handed to the kernel.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
}

fn default_mtu() -> u32 {
    1500
}

/// Everything a worker needs, written by the supervisor as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub chain: String,
    pub vnf: String,
    /// The fused group whose worker runs this VNF with the others of the
    /// group (one spec each, one process); `None`: a worker of its own.
    #[serde(default)]
    pub group: Option<String>,
    pub netns: String,
    pub cgroup: Option<crate::sys::cgroup::Cgroup>,
    pub module: PathBuf,
    pub cache_dir: Option<PathBuf>,
    /// The init document handed to `nfv_init` (JSON text).
    pub init_document: String,
    pub ports: Vec<WorkerPort>,
    pub stats_path: PathBuf,
    /// Where the module's declared metric names are written.
    pub metrics_path: PathBuf,
    pub memory_bytes: usize,
    pub batch_size: usize,
    pub tick_ms: u64,
    /// How the worker waits for frames.
    #[serde(default)]
    pub poll: crate::chain::PollMode,
    /// Carry virtio-net headers (checksum and segmentation offload).
    #[serde(default)]
    pub offload: bool,
    /// How ports on kernel interfaces move frames.
    #[serde(default)]
    pub io: crate::chain::PortIo,
    /// How TAP ports move frames.
    #[serde(default)]
    pub tap_io: crate::chain::TapIo,
    /// CPUs to pin the worker to (empty: any).
    #[serde(default)]
    pub cpus: Vec<usize>,
    /// The most verbose module log level written (a `LogLevel` number).
    #[serde(default = "default_log_level")]
    pub log_level: u8,
}

fn default_log_level() -> u8 {
    crate::chain::DEFAULT_LOG_LEVEL as u8
}

impl WorkerSpec {
    /// The module log level, [`crate::chain::DEFAULT_LOG_LEVEL`]
    /// if the number is not a level.
    pub fn module_log_level(&self) -> nfvhost_abi::LogLevel {
        nfvhost_abi::LogLevel::from_u8(self.log_level).unwrap_or(crate::chain::DEFAULT_LOG_LEVEL)
    }
}

/// Slot size when offloads are carried: a whole 64 KB super-frame plus its
/// Ethernet header, rounded up.
pub const SUPER_FRAME_SLOT: usize = 65_536 + 1024;

/// The limits a worker runs its instance with; validation (`nfvhost
/// validate`, `deploy`, `replace`) runs `nfv_init` with the same, so a
/// module that passes there also fits its batch region (including 64 KiB
/// offload slots) in the worker.
pub fn instance_limits(
    memory_bytes: usize,
    batch_size: usize,
    offload: bool,
) -> crate::engine::InstanceLimits {
    let default = crate::engine::InstanceLimits::default();
    crate::engine::InstanceLimits {
        memory_bytes,
        batch_size,
        slot_size: if offload {
            SUPER_FRAME_SLOT
        } else {
            default.slot_size
        },
        ..default
    }
}
