//! Chain files: parsing and validation.
//!
//! A chain file is YAML. [`load`] / [`parse`] turn it into a [`ChainSpec`]
//! or report **every** problem found, each with `file:line:col` (1-based)
//! and what to change ([`ChainErrors`]). Nothing in here touches the system.
//! Decoding lives in `decode/`; its key table also produces the JSON Schema
//! ([`schema`], `nfvhost schema`, checked in at `docs/chain.schema.json`).
//!
//! # Format
//!
//! ```yaml
//! name: basic                  # required; [a-z0-9][a-z0-9-]*, at most 12 chars
//! metrics: 127.0.0.1:9464      # optional address:port for /metrics
//! defaults:                    # optional: resources, datapath and log_level
//!   resources: { memory: 64MiB }  #   for every VNF that does not set them,
//!   log_level: info            #   key by key (checked like a VNF's blocks)
//! hosts:                       # test hosts: namespaces with a kernel stack
//!   h1:                        # node name: [a-z0-9][a-z0-9-]*, at most 15 chars,
//!                              #   unique across hosts and vnfs
//!     interfaces:              # required, at least one
//!       eth0: { address: 10.0.1.10/24 }
//!       # per interface (all optional):
//!       #   address: 10.0.1.10/24          one address, or
//!       #   addresses: [a/len, b/len]      several, or
//!       #   dhcp: true                     run a DHCP client (no static address)
//!       #   mtu: 1500                      68..=65535
//!       #   mac: 02:00:00:00:01:50         fixed unicast MAC (for DHCP reservations)
//!     gateway: 10.0.1.1        # optional default route; inside an interface subnet
//!     routes:                  # optional; `via` inside an interface subnet
//!       - { to: 10.9.0.0/16, via: 10.0.1.1 }
//! vnfs:
//!   r1:
//!     module: router           # a shipped VNF ([a-z0-9_-]+) or a path ending in
//!                              #   .wasm, relative to the chain file's directory
//!     ports: [lan, wan]        # required; index = port number the module sees
//!     resources:               # optional, each key optional
//!       cpu: 0.5               #   cores, > 0 and <= 1024
//!       memory: 64MiB          #   bytes or with unit; at least 4MiB; default:
//!                              #   wasm_memory + 256MiB (where the memory controller exists)
//!       pids: 32               #   >= 1
//!       wasm_memory: 16MiB     #   cap on linear memory; 64KiB..=4GiB
//!     datapath:                # optional, how the worker moves frames
//!       batch: 64              #   frames per call into the module, 1..=256
//!       poll: sleep            #   sleep (default) | adaptive: spin 200 µs after traffic, then
//!                              #   sleep | busy: never sleep, a core at 100 % (old: busy_poll: true)
//!       offload: true          #   carry checksum/segmentation offload (64 KB TCP super-frames)
//!       io: tpacket_v2         #   how veth ports move frames: tpacket_v2 (TPACKET_V2
//!                              #   receive ring, the default), mmsg (recvmmsg/sendmmsg),
//!                              #   tpacket (TPACKET_V3 receive ring, 1 ms block timer), or
//!                              #   xdp (AF_XDP, copy mode; implies offload: false,
//!                              #   refuses offload: true, veth MTU at most 3506)
//!       tap_io: read_write     #   how TAP ports move frames: read_write (a system call
//!                              #   per frame) or io_uring (a batch per call)
//!       cpus: [1]              #   pin the worker to these CPUs
//!     log_level: info          # optional: error, warn, info (default), debug or
//!                              #   trace; the module's log lines kept
//!     config:                  # optional mapping, passed to the module as JSON
//!       interfaces: { lan: 10.0.1.1/24, wan: 10.0.2.1/24 }
//! links:
//!   - [h1:eth0, r1:lan]                        # short form: a veth pair
//!   - { a: r1:wan, b: h2:eth0, mtu: 1500 }     # long form; kind: veth | tap
//!   - a: r2:wan                                # impair: an impair VNF `impair-N` on
//!     b: r3:wan                                #   the N-th link, keys as in
//!     impair: { delay: 20ms, loss: 1%, rate: 50mbit }  # vnfs/impair/README.md
//! ```
//!
//! Instead of `links:` a straight line can be written `chain: [h1, r1, h2]`:
//! the ends are test hosts with exactly one interface, every entry in
//! between a VNF with exactly two ports (the first faces left, the second
//! right). It expands to the links `h1:eth0—r1:lan`, `r1:wan—h2:eth0`.
//! Giving both `chain:` and `links:` is an error.
//!
//! Names of interfaces and ports are 1 to 15 letters, digits, `_`, `.` or
//! `-`, not starting with `-` and not `.` or `..` (see [`names`]). Every host interface and every VNF
//! port must be on exactly one link. A `kind: tap` link joins a VNF port to a
//! host interface (the TAP device lives in the host's namespace and the VNF
//! worker holds its file descriptor).
//!
//! Sizes (`memory`, `wasm_memory`) are bytes or a number with a unit:
//! `K`/`Ki`/`KiB`, `M`/`Mi`/`MiB`, `G`/`Gi`/`GiB`, `T`/`Ti`/`TiB` are powers
//! of 1024, `kB`/`MB`/`GB`/`TB` powers of 1000 (units case-insensitive), see
//! [`parse_size`].
//!
//! `config:` is converted to JSON: integers and floats become numbers,
//! strings stay strings (quote `"10"` to pass a string), booleans, null,
//! lists and mappings (whose keys must be strings) map directly. Use
//! [`VnfSpec::config_span`] to point at a config value in an error message.
//!
//! Other checks: unknown keys (with a suggestion), duplicate keys, wrong
//! types, missing required keys, bad names, unknown link ends (with a
//! suggestion), bad addresses, a gateway outside the host's subnets,
//! overlapping subnets on one host, `dhcp` together with an address, ranges
//! of `cpu`/`memory`/`pids`/`mtu`.

pub mod crd;
mod decode;
mod error;
pub mod graph;
mod impair;
mod loops;
pub mod names;
mod spec;
mod yaml;

use std::path::Path;

pub use decode::{
    parse_size, schema, DEFAULT_LOG_LEVEL, MAX_CHAIN_NAME, MAX_CPU, MAX_IFNAME, MAX_NODE_NAME,
    MAX_WASM_MEMORY, MIN_MEMORY, MIN_WASM_MEMORY,
};
pub use error::{ChainError, ChainErrors};
pub use names::NameKind;
pub use spec::{
    ChainSpec, Datapath, Endpoint, GroupSpec, HostInterface, HostSpec, Ipv4Cidr, LinkKind,
    LinkSpec, ModuleRef, ParseCidrError, PollMode, PortIo, Resources, RouteSpec, Span, TapIo,
    VnfSpec, Vxlan, WorkerUnit,
};
pub use yaml::{Node, NodeValue};

/// The JSON Schema of chain files, as checked in at
/// `docs/chain.schema.json` (without the final newline).
pub fn schema_text() -> String {
    serde_json::to_string_pretty(&schema()).unwrap_or_default()
}

/// Reads and validates the chain file at `path`. Module paths are resolved
/// against `path`'s directory.
pub fn load(path: &Path) -> Result<ChainSpec, ChainErrors> {
    let file = path.display().to_string();
    match read_bounded(path) {
        Ok(text) => parse(&file, &text),
        Err(message) => Err(ChainErrors(vec![ChainError {
            file,
            line: 0,
            col: 0,
            message,
            hint: None,
        }])),
    }
}

/// Largest chain file read.
pub const MAX_CHAIN_FILE: u64 = 1 << 20;

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read the chain file: {e}"))?;
    let mut text = String::new();
    f.take(MAX_CHAIN_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the chain file: {e}"))?;
    if text.len() as u64 > MAX_CHAIN_FILE {
        return Err(format!(
            "the chain file is larger than {} KiB; chain files are refused above that",
            MAX_CHAIN_FILE >> 10
        ));
    }
    Ok(text)
}

/// Validates chain-file `text`; `file` is its name in messages, in
/// [`ChainSpec::file`], and the base for relative module paths.
pub fn parse(file: &str, text: &str) -> Result<ChainSpec, ChainErrors> {
    let (root, errors) = yaml::load(text);
    decode::validate(file, root.as_ref(), errors)
}

#[cfg(test)]
mod tests;
