//! The validated chain: what the rest of the host builds from.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::yaml::Node;

/// A position in a chain file; both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub fn new(line: usize, col: usize) -> Span {
        Span { line, col }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A validated chain file.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainSpec {
    /// The chain's name (`[a-z0-9][a-z0-9-]*`, at most 12 characters).
    pub name: String,
    /// The file it came from (as given to [`super::load`] / [`super::parse`]).
    pub file: PathBuf,
    /// Where to serve `/metrics`; `None`: the host's default.
    pub metrics: Option<SocketAddr>,
    /// Test hosts, in file order.
    pub hosts: Vec<HostSpec>,
    /// VNFs, in file order.
    pub vnfs: Vec<VnfSpec>,
    /// Links, in file order (the `chain:` shorthand expanded left to right).
    pub links: Vec<LinkSpec>,
    /// Fused groups (`groups:`), in file order.
    pub groups: Vec<GroupSpec>,
}

impl ChainSpec {
    /// The test host called `name`.
    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The VNF called `name`.
    pub fn vnf(&self, name: &str) -> Option<&VnfSpec> {
        self.vnfs.iter().find(|v| v.name == name)
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&GroupSpec> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The VNFs of group `name`, in file order.
    pub fn members<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a VnfSpec> + 'a {
        self.vnfs
            .iter()
            .filter(move |v| v.group.as_deref() == Some(group))
    }

    /// The units that get a worker, a namespace and a cgroup each: every
    /// group with members, and every VNF outside a group, in file order
    /// (a group where its first member is).
    pub fn workers(&self) -> Vec<WorkerUnit<'_>> {
        let mut units = Vec::new();
        for v in &self.vnfs {
            match &v.group {
                None => units.push(WorkerUnit::Vnf(v)),
                Some(g) => {
                    let first = self.members(g).next().is_some_and(|m| m.name == v.name);
                    if let (true, Some(group)) = (first, self.group(g)) {
                        units.push(WorkerUnit::Group(group));
                    }
                }
            }
        }
        units
    }
}

/// What one worker runs: a VNF of its own, or a fused group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WorkerUnit<'a> {
    Vnf(&'a VnfSpec),
    Group(&'a GroupSpec),
}

impl WorkerUnit<'_> {
    /// The name its namespace and cgroup are called by.
    pub fn name(&self) -> &str {
        match self {
            WorkerUnit::Vnf(v) => &v.name,
            WorkerUnit::Group(g) => &g.name,
        }
    }
}

/// A fused group: VNFs one worker runs, in one namespace and one cgroup,
/// with in-memory links between them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    /// The group's cgroup limits; a limit not given is the sum of its
    /// members' (`wasm_memory` stays per VNF).
    pub resources: Resources,
    /// How the group's one worker waits for frames.
    pub poll: PollMode,
    /// Pin the group's worker to these CPUs.
    pub cpus: Vec<usize>,
    /// The group's key in `groups:`.
    pub span: Span,
}

/// A test host: a namespace with a kernel stack.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSpec {
    pub name: String,
    /// In file order.
    pub interfaces: Vec<HostInterface>,
    /// Default route; inside one of the interfaces' subnets.
    pub gateway: Option<Ipv4Addr>,
    pub routes: Vec<RouteSpec>,
    /// The host's key in `hosts:`.
    pub span: Span,
}

/// An interface of a test host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInterface {
    pub name: String,
    /// Static addresses (empty with `dhcp`).
    pub addresses: Vec<Ipv4Cidr>,
    /// Take an address with a DHCP client.
    pub dhcp: bool,
    pub mtu: Option<u32>,
    /// A fixed MAC address (for DHCP reservations); the kernel picks one
    /// otherwise.
    pub mac: Option<[u8; 6]>,
    /// The interface's key in `interfaces:`.
    pub span: Span,
}

/// A static route of a test host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: Ipv4Cidr,
    pub via: Ipv4Addr,
}

/// An IPv4 address with a prefix length, e.g. `10.0.1.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// `prefix_len` must be at most 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Ipv4Cidr {
        assert!(prefix_len <= 32, "prefix length {prefix_len} > 32");
        Ipv4Cidr { addr, prefix_len }
    }

    /// The netmask, e.g. 255.255.255.0 for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast address (host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a text is not `a.b.c.d/len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCidrError(pub String);

impl fmt::Display for ParseCidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseCidrError {}

impl FromStr for Ipv4Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((addr, len)) = s.split_once('/') else {
            return Err(ParseCidrError(format!(
                "`{s}` has no prefix length; write it as address/length, e.g. 10.0.1.10/24"
            )));
        };
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| ParseCidrError(format!("`{addr}` is not an IPv4 address")))?;
        let prefix_len =
            len.parse::<u8>().ok().filter(|l| *l <= 32).ok_or_else(|| {
                ParseCidrError(format!("`{len}` is not a prefix length (0 to 32)"))
            })?;
        Ok(Ipv4Cidr { addr, prefix_len })
    }
}

/// A VNF instance.
#[derive(Debug, Clone, PartialEq)]
pub struct VnfSpec {
    pub name: String,
    pub module: ModuleRef,
    /// Port names in order; the index is the port number the module sees.
    pub ports: Vec<String>,
    /// The `config:` mapping as JSON (`{}` when absent).
    pub config: serde_json::Value,
    /// The spanned YAML of `config:` (the VNF entry's node when absent), for
    /// pointing at a config problem the module or host finds later.
    pub config_tree: Node,
    pub resources: Resources,
    pub datapath: Datapath,
    /// The fused group whose worker runs it (`group:`); `None`: a worker of
    /// its own.
    pub group: Option<String>,
    /// The most verbose of the module's `log` calls that is written.
    pub log_level: nfvhost_abi::LogLevel,
    /// The VNF's key in `vnfs:`.
    pub span: Span,
}

impl VnfSpec {
    /// Span of the deepest node of `config:` that exists on `path`
    /// (`"routes.0.via"` or `"routes[0].via"`); the span of `config:` itself
    /// for an empty path or one whose first segment does not exist.
    pub fn config_span(&self, path: &str) -> Span {
        let normalized = path.replace('[', ".").replace(']', "");
        let segs = normalized.split('.').filter(|s| !s.is_empty());
        self.config_tree.descend(segs).span
    }
}

/// Which module a VNF runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// A VNF shipped with nfvhost, by name (`router`, `nat`, ...).
    Builtin(String),
    /// A `.wasm` file, resolved against the chain file's directory.
    Path(PathBuf),
}

/// Limits on a VNF's worker (cgroup) and module.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Resources {
    /// CPU cores (cgroup quota), e.g. 0.5.
    pub cpu: Option<f64>,
    /// Memory in bytes (cgroup).
    pub memory: Option<u64>,
    /// Maximum number of processes/threads (cgroup).
    pub pids: Option<u64>,
    /// Cap on the module's linear memory, in bytes.
    pub wasm_memory: Option<u64>,
}

/// How the worker moves frames (`datapath:`; every key optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datapath {
    /// Frames per call into the module (1..=256).
    pub batch: Option<usize>,
    /// How the worker waits for frames.
    pub poll: PollMode,
    /// Carry checksum and segmentation offload (virtio-net headers) through
    /// the worker, so 64 KB TCP super-frames cross the chain whole.
    pub offload: bool,
    /// Pin the worker to these CPUs.
    pub cpus: Vec<usize>,
    /// How the worker's ports on kernel interfaces (veth ends) move frames.
    pub io: PortIo,
    /// How the worker's TAP ports move frames.
    pub tap_io: TapIo,
}

impl Default for Datapath {
    fn default() -> Self {
        Datapath {
            batch: None,
            poll: PollMode::default(),
            offload: true,
            cpus: Vec::new(),
            io: PortIo::default(),
            tap_io: TapIo::default(),
        }
    }
}

/// How a worker waits for frames (`datapath: { poll: ... }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollMode {
    /// Sleep in `ppoll` until a frame, a tick or a timer: no CPU while idle,
    /// a wake-up's latency on every frame that finds the worker asleep.
    #[default]
    Sleep,
    /// After a wakeup that brought frames, keep reading without sleeping
    /// for [`PollMode::ADAPTIVE_SPIN`]; then sleep. Replies and bursts that
    /// follow traffic find the worker awake; an idle worker costs nothing.
    Adaptive,
    /// Never sleep: the lowest latency, one core at 100 % all the time
    /// (`busy_poll: true` is the older spelling).
    Busy,
}

impl PollMode {
    /// Every mode, as a chain file names it.
    pub const ALL: &'static [PollMode] = &[PollMode::Sleep, PollMode::Adaptive, PollMode::Busy];

    /// How long an adaptive worker keeps reading after the last frame.
    pub const ADAPTIVE_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

    /// The name a chain file gives this mode.
    pub fn label(self) -> &'static str {
        match self {
            PollMode::Sleep => "sleep",
            PollMode::Adaptive => "adaptive",
            PollMode::Busy => "busy",
        }
    }
}

/// How a worker's TAP ports move frames (`datapath: { tap_io: ... }`): a
/// TAP descriptor has no `recvmmsg` or `sendmmsg`, so batching goes through
/// io_uring. One system call per frame is the default: on the kernels
/// measured (`cargo bench -p nfvhost --bench tap_io`, `benches/tap_io.py`)
/// an io_uring operation costs more than the system call it saves; on a
/// host whose system calls are dearer (page-table isolation and the like)
/// the batch may win, and the benchmark tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TapIo {
    /// One `read(2)`/`readv(2)` or `write(2)`/`writev(2)` per frame.
    #[default]
    #[serde(rename = "read_write")]
    PerFrame,
    /// A batch of reads or writes per `io_uring_enter(2)`, on a ring locked
    /// to the TAP's descriptor (`datapath::sys::uring`).
    #[serde(rename = "io_uring")]
    Uring,
}

impl TapIo {
    /// Every kind, as a chain file names it.
    pub const ALL: &'static [TapIo] = &[TapIo::PerFrame, TapIo::Uring];

    /// The name a chain file (and the log) gives this kind.
    pub fn label(self) -> &'static str {
        match self {
            TapIo::PerFrame => "read_write",
            TapIo::Uring => "io_uring",
        }
    }
}

/// How a worker's port on a kernel interface (a veth end) reaches it
/// (`datapath: { io: ... }`). TAP and in-memory ports have one way each.
/// The default is [`PortIo::TpacketV2`]: through one router, in interleaved
/// runs of `benches/datapath.py` on a quiet 2-core VM, it delivered 8 %
/// more 64 B frames than `mmsg`, as much TCP or more, the same sleeping
/// RTT and half the busy-polling RTT (README, Performance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortIo {
    /// An `AF_PACKET` socket read and written with `recvmmsg`/`sendmmsg`:
    /// one system call per batch each way.
    Mmsg,
    /// The same socket with a mapped `TPACKET_V3` receive ring: frames
    /// arrive in blocks the kernel hands over when full or after 1 ms, so
    /// receiving costs no system call; frames leave through `sendmmsg`.
    Tpacket,
    /// A mapped `TPACKET_V2` receive ring: each frame is handed over as it
    /// arrives (no block timer), 2048 slots of 2 KB (4 MB per port);
    /// longer frames (super-frames) wait whole on the socket and are read
    /// with `recvmmsg` in ring order. Frames leave through `sendmmsg`.
    #[default]
    TpacketV2,
    /// An `AF_XDP` socket in copy mode fed by a native XDP program on the
    /// veth (`datapath::port::xdp`): no offload (it implies `offload:
    /// false`), MTU at most 3506, veth links only.
    Xdp,
}

impl PortIo {
    /// Every kind, as a chain file names it.
    pub const ALL: &'static [PortIo] = &[
        PortIo::Mmsg,
        PortIo::Tpacket,
        PortIo::TpacketV2,
        PortIo::Xdp,
    ];

    /// The name a chain file gives this kind.
    pub fn label(self) -> &'static str {
        match self {
            PortIo::Mmsg => "mmsg",
            PortIo::Tpacket => "tpacket",
            PortIo::TpacketV2 => "tpacket_v2",
            PortIo::Xdp => "xdp",
        }
    }
}

/// A link between two ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub a: Endpoint,
    /// The other end; for a [`LinkKind::Vxlan`] link, whose far end is on
    /// another machine, the same as `a` (the kind says where it goes).
    pub b: Endpoint,
    pub kind: LinkKind,
    pub mtu: Option<u32>,
    /// The link's entry in `links:` (or the left node's entry in `chain:`).
    pub span: Span,
}

/// One end of a link: `node:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// A host or VNF name.
    pub node: String,
    /// A host interface or VNF port name.
    pub port: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.port)
    }
}

/// How a link is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A veth pair, one end in each namespace.
    #[default]
    Veth,
    /// A TAP device in the host's namespace whose fd the VNF worker holds.
    Tap,
    /// Between two VNFs of one fused group: no kernel link, frames move in
    /// the group's worker.
    Memory,
    /// A kernel VXLAN interface in `a`'s namespace whose UDP socket lives
    /// in the underlay (the namespace nfvhost runs in): the far end is a
    /// port on another machine that names the same VNI.
    Vxlan(Vxlan),
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkKind::Veth => "veth",
            LinkKind::Tap => "tap",
            LinkKind::Memory => "memory",
            LinkKind::Vxlan(_) => "vxlan",
        })
    }
}

/// The far end of a VXLAN link: `{ remote: 192.0.2.2, vni: 100 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Vxlan {
    /// The other machine's underlay address.
    pub remote: Ipv4Addr,
    /// VXLAN network identifier, 1 to 16777215; both ends name the same.
    pub vni: u32,
    /// UDP destination port (4789 unless given).
    pub port: u16,
    /// This machine's underlay source address; the route to `remote`
    /// picks one when absent.
    pub local: Option<Ipv4Addr>,
}

impl Vxlan {
    /// The IANA VXLAN port.
    pub const DEFAULT_PORT: u16 = 4789;
    /// Largest VNI (24 bits).
    pub const MAX_VNI: u32 = 0x00ff_ffff;
    /// Bytes VXLAN over IPv4 adds to a frame on the underlay: outer
    /// Ethernet 14, IPv4 20, UDP 8, VXLAN 8. The link's MTU is the
    /// underlay's minus this.
    pub const OVERHEAD: u32 = 50;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse_display_contains() {
        let c: Ipv4Cidr = "10.0.1.10/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.1.10/24");
        assert_eq!(c.network(), Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 1, 255));
        assert!(c.contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 2, 1)));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(c.overlaps(&"10.0.0.0/16".parse().unwrap()));
        assert!(!c.overlaps(&"10.0.2.0/24".parse().unwrap()));
        assert!("10.0.1.1".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.1.1/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.1/24".parse::<Ipv4Cidr>().is_err());
    }
}
