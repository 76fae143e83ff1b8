//! The nfvhost module ABI, version 3, as constants and layouts.
//!
//! This crate is compiled by both the host and `vnf-sdk`, so the two sides
//! cannot drift. The prose description lives in `docs/ABI.md`; every item
//! here is referenced from there.
#![no_std]
#![deny(unsafe_code)]

/// The ABI version this crate describes. A module reports the version it was
/// built for from its [`EXPORT_ABI_VERSION`] export; the host refuses any
/// other value.
pub const ABI_VERSION: u32 = 3;

/// The wasm import module name under which the host provides its functions.
pub const IMPORT_MODULE: &str = "nfv";

// --- Exports a module must provide -------------------------------------------

/// `memory`: the module's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// `fn nfv_abi_version() -> i32`
pub const EXPORT_ABI_VERSION: &str = "nfv_abi_version";
/// `fn nfv_alloc(len: i32) -> i32`: reserve `len` bytes for the host; returns
/// the offset, or 0 when the module has no room.
pub const EXPORT_ALLOC: &str = "nfv_alloc";
/// `fn nfv_init(init_ptr: i32, init_len: i32) -> i32`: the init document
/// (see [`CONFIG_ENCODING`]) is at `init_ptr`; returns [`STATUS_OK`] or
/// [`STATUS_BAD_CONFIG`] after calling `config_error`.
pub const EXPORT_INIT: &str = "nfv_init";
/// `fn nfv_process(batch_ptr: i32, count: i32) -> i32`
pub const EXPORT_PROCESS: &str = "nfv_process";
/// `fn nfv_tick(now_ns: i64)`
pub const EXPORT_TICK: &str = "nfv_tick";

/// `fn nfv_timer(now_ns: i64)`, optional: the one-shot timer the module set
/// with [`IMPORT_TIMER_AT`] has expired. A module that never sets a timer
/// need not export it.
pub const EXPORT_TIMER: &str = "nfv_timer";

/// `fn nfv_reconfigure(doc_ptr: i32, doc_len: i32) -> i32`, optional: a new
/// init document (same encoding as for `nfv_init`) while running; returns
/// [`STATUS_OK`], or [`STATUS_BAD_CONFIG`] after calling `config_error`,
/// in which case the module keeps its old configuration.
pub const EXPORT_RECONFIGURE: &str = "nfv_reconfigure";

/// Every export the host requires, with its signature as text for messages.
pub const REQUIRED_EXPORTS: &[(&str, &str)] = &[
    (EXPORT_MEMORY, "memory"),
    (EXPORT_ABI_VERSION, "func() -> i32"),
    (EXPORT_ALLOC, "func(i32) -> i32"),
    (EXPORT_INIT, "func(i32, i32) -> i32"),
    (EXPORT_PROCESS, "func(i32, i32) -> i32"),
    (EXPORT_TICK, "func(i64)"),
];

// --- Optional exports: state handover (ABI 3, feature `state`) ---------------

/// The optional features of this ABI version a host understands. A feature
/// adds optional exports only: a module without them behaves as before, so
/// adding one does not change [`ABI_VERSION`].
pub const ABI_FEATURES: &[&str] = &[FEATURE_STATE];
/// Feature `state`: [`EXPORT_STATE_SAVE`] and [`EXPORT_STATE_LOAD`] carry a
/// module's state (connections, bindings, leases, neighbours) from the
/// running instance to its replacement.
pub const FEATURE_STATE: &str = "state";

/// `fn nfv_state_save(out_ptr: i32) -> i32` (optional): the host reserved
/// 8 bytes at `out_ptr` (with `nfv_alloc`); the module writes the offset and
/// length of its state blob there (two little-endian `u32`s) and returns the
/// blob's format version (>= 0), or [`STATUS_NO_STATE`] when it has nothing
/// to carry. The blob stays valid until the module's next call.
pub const EXPORT_STATE_SAVE: &str = "nfv_state_save";
/// `fn nfv_state_load(version: i32, ptr: i32, len: i32) -> i32` (optional):
/// the host reserved `len` bytes at `ptr` (with `nfv_alloc`, after
/// `nfv_init`) holding a blob another instance saved with format `version`;
/// the module now owns that region. Returns [`STATUS_OK`], or
/// [`STATUS_STATE_REFUSED`] after calling `config_error` with path `state`
/// and the reason (a version it does not understand, a blob it cannot read).
pub const EXPORT_STATE_LOAD: &str = "nfv_state_load";

/// The optional exports, with their signatures: checked when present.
pub const OPTIONAL_EXPORTS: &[(&str, &str)] = &[
    (EXPORT_STATE_SAVE, "func(i32) -> i32"),
    (EXPORT_STATE_LOAD, "func(i32, i32, i32) -> i32"),
    (EXPORT_TIMER, "func(i64)"),
    (EXPORT_RECONFIGURE, "func(i32, i32) -> i32"),
];

/// Largest state blob the host carries from one instance to the next (it
/// is copied through both instances' linear memory).
pub const MAX_STATE_LEN: usize = 16 << 20;

// --- Imports the host provides (module "nfv") ---------------------------------

/// `fn log(level: i32, ptr: i32, len: i32)`
pub const IMPORT_LOG: &str = "log";
/// `fn now_ns() -> i64`: monotonic nanoseconds.
pub const IMPORT_NOW_NS: &str = "now_ns";
/// `fn emit(port: i32, ptr: i32, len: i32) -> i32`: queue a new frame for
/// transmission; returns [`STATUS_OK`] or a negative status.
pub const IMPORT_EMIT: &str = "emit";
/// `fn counter_define(kind, name_ptr, name_len, help_ptr, help_len, cell_ptr) -> i32`:
/// declare a metric of [`MetricKind`] `kind` whose current value is the
/// little-endian `u64` at `cell_ptr` in linear memory (8-byte aligned). The
/// host reads the cell; the module updates it without a host call. Names are
/// `[a-z][a-z0-9_]*`; the host exports them as
/// `nfvhost_vnf_<name>` with the VNF's labels. Only valid during `nfv_init`.
pub const IMPORT_COUNTER_DEFINE: &str = "counter_define";
/// `fn config_error(path_ptr, path_len, msg_ptr, msg_len)`: explain why
/// `nfv_init` refused its configuration; `path` is a dotted key path
/// such as `routes.0.via`.
pub const IMPORT_CONFIG_ERROR: &str = "config_error";

/// `fn timer_at(at_ns: i64)`: call `nfv_timer` once the monotonic clock of
/// `now_ns` reaches `at_ns` (microsecond resolution; a time already past
/// fires at the next opportunity). One timer per instance: a new call
/// replaces the pending one; a negative `at_ns` cancels it. Independent of
/// `nfv_tick`.
pub const IMPORT_TIMER_AT: &str = "timer_at";

/// Every import the host provides, with its signature as text for messages.
pub const PROVIDED_IMPORTS: &[(&str, &str)] = &[
    (IMPORT_LOG, "func(i32, i32, i32)"),
    (IMPORT_NOW_NS, "func() -> i64"),
    (IMPORT_EMIT, "func(i32, i32, i32) -> i32"),
    (
        IMPORT_COUNTER_DEFINE,
        "func(i32, i32, i32, i32, i32, i32) -> i32",
    ),
    (IMPORT_CONFIG_ERROR, "func(i32, i32, i32, i32)"),
    (IMPORT_TIMER_AT, "func(i64)"),
];

// --- Status codes ------------------------------------------------------------

pub const STATUS_OK: i32 = 0;
/// An argument pointed outside linear memory or was otherwise invalid.
pub const STATUS_BAD_ARGUMENT: i32 = -1;
/// The named port does not exist.
pub const STATUS_NO_SUCH_PORT: i32 = -2;
/// The host's emit queue for this call is full; the frame was not sent.
pub const STATUS_QUEUE_FULL: i32 = -3;
/// The frame is larger than the host accepts.
pub const STATUS_TOO_LARGE: i32 = -4;
/// The call is not allowed at this point (e.g. `counter_define` after init).
pub const STATUS_WRONG_PHASE: i32 = -5;
/// `nfv_init` return value: the configuration was refused.
pub const STATUS_BAD_CONFIG: i32 = -10;
/// `nfv_state_load` return value: the module refused the saved state.
pub const STATUS_STATE_REFUSED: i32 = -11;
/// `nfv_state_save` return value: the module has no state to carry.
pub const STATUS_NO_STATE: i32 = -12;

// --- Limits -------------------------------------------------------------------

/// Most frames in one `nfv_process` call.
pub const MAX_BATCH: usize = 256;
/// Most frames a module may emit during one call.
pub const MAX_EMIT_PER_CALL: usize = 256;
/// Most counters a module may declare.
pub const MAX_COUNTERS: usize = 64;
/// Longest frame accepted by `emit`.
pub const MAX_EMIT_LEN: usize = 65_535;
/// Most ports a module may have.
pub const MAX_PORTS: usize = 16;

// --- The batch descriptor ----------------------------------------------------

/// One frame of a batch, as laid out in linear memory (little-endian, 24
/// bytes, 4-byte aligned). The host fills `offset`, `len`, `capacity` and
/// `in_port`; the module may rewrite the frame's bytes in place, change `len`
/// (up to `capacity`), and must write `verdict`.
///
/// `capacity` rather than a fixed MTU leaves room for segmentation-offload
/// super-frames; `flags` and `gso_size` say what offload state the host
/// received the frame with (see [`FLAG_CSUM_PARTIAL`], [`FLAG_GSO_TCPV4`]).
/// The module must not change `flags`, `gso_size`, or the header lengths of
/// a frame that carries offload state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameDesc {
    /// Offset of the first byte of the frame in linear memory.
    pub offset: u32,
    /// Length of the frame in bytes.
    pub len: u32,
    /// Bytes available at `offset`.
    pub capacity: u32,
    /// Port the frame arrived on.
    pub in_port: u16,
    /// Offload flags set by the host: [`FLAG_CSUM_PARTIAL`] and at most one
    /// of [`FLAG_GSO_TCPV4`], [`FLAG_GSO_TCPV6`], [`FLAG_GSO_UDP_L4`]; other
    /// bits are zero. The module must not change them.
    pub flags: u16,
    /// The module's verdict, see [`Verdict::encode`].
    pub verdict: u32,
    /// With one of the `FLAG_GSO_*` flags: L4 payload bytes per segment of
    /// the super-frame. Zero otherwise. The module must not change it.
    pub gso_size: u32,
}

/// Size of [`FrameDesc`] in linear memory.
pub const FRAME_DESC_SIZE: usize = 24;
const _: () = assert!(core::mem::size_of::<FrameDesc>() == FRAME_DESC_SIZE);

/// [`FrameDesc::flags`] bit: the frame's TCP or UDP checksum is partial
/// (virtio-net `VIRTIO_NET_HDR_F_NEEDS_CSUM`, Linux `CHECKSUM_PARTIAL`). The
/// checksum field holds the folded, *not* complemented, one's-complement sum
/// of the pseudo-header (addresses, protocol, L4 length); whoever transmits
/// the frame completes it. A module that rewrites a field covered by the
/// pseudo-header or the L4 header must update the checksum field with the
/// partial rule (`P' = P - old + new`), not RFC 1624, and must not verify
/// the L4 checksum of such a frame.
pub const FLAG_CSUM_PARTIAL: u16 = 1 << 0;

/// [`FrameDesc::flags`] bit: the frame is a TCP/IPv4 segmentation-offload
/// super-frame (virtio-net `VIRTIO_NET_HDR_GSO_TCPV4`). The IPv4 total
/// length and the TCP payload cover many segments; [`FrameDesc::gso_size`]
/// is the TCP payload bytes per segment. Always set together with
/// [`FLAG_CSUM_PARTIAL`]. MTU checks apply to one segment (IPv4 header +
/// TCP header + `gso_size`). The IPv4 header checksum is complete and must
/// stay valid.
pub const FLAG_GSO_TCPV4: u16 = 1 << 1;

/// [`FrameDesc::flags`] bit: the frame is a TCP/IPv6 segmentation-offload
/// super-frame (virtio-net `VIRTIO_NET_HDR_GSO_TCPV6`): as
/// [`FLAG_GSO_TCPV4`], with an IPv6 header (no header checksum; the payload
/// length covers every segment). MTU checks apply to one segment (IPv6
/// header + extension headers + TCP header + `gso_size`).
pub const FLAG_GSO_TCPV6: u16 = 1 << 2;

/// [`FrameDesc::flags`] bit: the frame is a UDP segmentation-offload
/// super-frame (virtio-net `VIRTIO_NET_HDR_GSO_UDP_L4`, Linux `UDP_SEGMENT`)
/// over IPv4 or IPv6: the UDP payload is many datagrams of `gso_size` bytes
/// each (the last may be shorter), every one of which leaves with a copy of
/// the IP and UDP headers. Always set together with [`FLAG_CSUM_PARTIAL`].
/// MTU checks apply to one datagram (IP header + 8 + `gso_size`).
pub const FLAG_GSO_UDP_L4: u16 = 1 << 3;

/// Every `FLAG_GSO_*` bit: a frame with any of them is a super-frame.
pub const FLAGS_GSO: u16 = FLAG_GSO_TCPV4 | FLAG_GSO_TCPV6 | FLAG_GSO_UDP_L4;

/// Every flag bit defined in this ABI version.
pub const FLAGS_KNOWN: u16 = FLAG_CSUM_PARTIAL | FLAGS_GSO;

/// Byte offsets of the fields of [`FrameDesc`].
pub mod desc_field {
    pub const OFFSET: usize = 0;
    pub const LEN: usize = 4;
    pub const CAPACITY: usize = 8;
    pub const IN_PORT: usize = 12;
    pub const FLAGS: usize = 14;
    pub const VERDICT: usize = 16;
    pub const GSO_SIZE: usize = 20;
}

impl FrameDesc {
    /// Reads a descriptor from its 24-byte little-endian form.
    pub fn from_bytes(b: &[u8; FRAME_DESC_SIZE]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        FrameDesc {
            offset: u32_at(desc_field::OFFSET),
            len: u32_at(desc_field::LEN),
            capacity: u32_at(desc_field::CAPACITY),
            in_port: u16_at(desc_field::IN_PORT),
            flags: u16_at(desc_field::FLAGS),
            verdict: u32_at(desc_field::VERDICT),
            gso_size: u32_at(desc_field::GSO_SIZE),
        }
    }

    /// Writes the descriptor in its 24-byte little-endian form.
    pub fn to_bytes(&self) -> [u8; FRAME_DESC_SIZE] {
        let mut b = [0u8; FRAME_DESC_SIZE];
        b[desc_field::OFFSET..][..4].copy_from_slice(&self.offset.to_le_bytes());
        b[desc_field::LEN..][..4].copy_from_slice(&self.len.to_le_bytes());
        b[desc_field::CAPACITY..][..4].copy_from_slice(&self.capacity.to_le_bytes());
        b[desc_field::IN_PORT..][..2].copy_from_slice(&self.in_port.to_le_bytes());
        b[desc_field::FLAGS..][..2].copy_from_slice(&self.flags.to_le_bytes());
        b[desc_field::VERDICT..][..4].copy_from_slice(&self.verdict.to_le_bytes());
        b[desc_field::GSO_SIZE..][..4].copy_from_slice(&self.gso_size.to_le_bytes());
        b
    }
}

// --- Verdicts ----------------------------------------------------------------

/// What happens to a frame after the module has seen it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (possibly rewritten) frame out of this port.
    Forward(u16),
    /// Drop the frame and count it under this reason.
    Drop(DropReason),
    /// The module took the frame (e.g. an ARP request it answered).
    Consume,
}

/// Verdict kinds, the top byte of an encoded verdict.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictKind {
    /// No verdict written; the host drops the frame as [`DropReason::NoVerdict`].
    Unset = 0,
    Forward = 1,
    Drop = 2,
    Consume = 3,
}

impl Verdict {
    /// Encodes as `kind << 24 | argument`.
    pub const fn encode(self) -> u32 {
        match self {
            Verdict::Forward(port) => (VerdictKind::Forward as u32) << 24 | port as u32,
            Verdict::Drop(reason) => (VerdictKind::Drop as u32) << 24 | reason as u32,
            Verdict::Consume => (VerdictKind::Consume as u32) << 24,
        }
    }

    /// Decodes a verdict written by a module. Anything malformed decodes to
    /// a drop with a reason that says what was wrong, so a buggy module can
    /// never make the host misbehave.
    pub const fn decode(raw: u32, port_count: u16) -> Verdict {
        let arg = raw & 0x00ff_ffff;
        match (raw >> 24) as u8 {
            1 if arg < port_count as u32 => Verdict::Forward(arg as u16),
            1 => Verdict::Drop(DropReason::BadVerdict),
            2 => match DropReason::from_u8(arg as u8) {
                // A module may not claim a host-only reason (trap, timeout,
                // ...): those counters must mean what the host saw.
                Some(r) if arg <= 0xff && !r.host_only() => Verdict::Drop(r),
                _ => Verdict::Drop(DropReason::BadVerdict),
            },
            3 if arg == 0 => Verdict::Consume,
            0 => Verdict::Drop(DropReason::NoVerdict),
            _ => Verdict::Drop(DropReason::BadVerdict),
        }
    }
}

macro_rules! closed_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:literal => $label:literal,)* }) => {
        $(#[$m])*
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vm])* $var = $val,)* }

        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The value with this number, if any.
            pub const fn from_u8(v: u8) -> Option<Self> {
                match v { $($val => Some($name::$var),)* _ => None }
            }

            /// The stable lower-case label used in metrics and logs.
            pub const fn label(self) -> &'static str {
                match self { $($name::$var => $label,)* }
            }
        }
    };
}

closed_enum! {
    /// Why a frame was dropped. A closed set: metrics label `reason` takes
    /// exactly these labels. Reasons below 64 may be chosen by a module;
    /// 64 and above are set by the host only.
    DropReason {
        /// The module's policy said so (firewall rule, filter).
        Policy = 1 => "policy",
        /// The frame could not be parsed.
        Malformed = 2 => "malformed",
        /// No route to the destination.
        NoRoute = 3 => "no_route",
        /// TTL or hop limit ran out.
        TtlExceeded = 4 => "ttl_exceeded",
        /// Waiting for address resolution and the queue was full, or it failed.
        NoNeighbor = 5 => "no_neighbor",
        /// The frame is not addressed to this function and not forwarded.
        NotForUs = 6 => "not_for_us",
        /// A protocol the function does not handle.
        Unsupported = 7 => "unsupported",
        /// A table (connections, bindings, leases) is full.
        TableFull = 8 => "table_full",
        /// Rate or size limit.
        Limit = 9 => "limit",
        /// Larger than the egress MTU.
        TooBig = 10 => "too_big",
        /// Any other reason the module gives.
        Other = 11 => "other",
        /// Host: the module trapped while handling the batch holding this frame.
        Trap = 64 => "trap",
        /// Host: the module wrote no verdict.
        NoVerdict = 65 => "no_verdict",
        /// Host: the module wrote a verdict the host could not decode.
        BadVerdict = 66 => "bad_verdict",
        /// Host: the egress port refused the frame (queue full, link down).
        TxError = 67 => "tx_error",
        /// Host: the module's call exceeded its time budget.
        Timeout = 68 => "timeout",
        /// Host: the egress port is down (its link was deleted or set down).
        PortDown = 69 => "port_down",
    }
}

impl DropReason {
    /// Reasons from this number up are set by the host only.
    pub const FIRST_HOST_ONLY: u8 = 64;

    /// Whether only the host may give this reason; a module that returns
    /// one gets [`DropReason::BadVerdict`] instead.
    pub const fn host_only(self) -> bool {
        self as u8 >= Self::FIRST_HOST_ONLY
    }
}

closed_enum! {
    /// What a module-declared metric is.
    MetricKind {
        /// Only goes up (exported with a `_total` suffix).
        Counter = 0 => "counter",
        /// Goes up and down (table sizes, leases in use).
        Gauge = 1 => "gauge",
    }
}

closed_enum! {
    /// Log levels for the `log` import.
    LogLevel {
        Error = 1 => "error",
        Warn = 2 => "warn",
        Info = 3 => "info",
        Debug = 4 => "debug",
        Trace = 5 => "trace",
    }
}

// --- Configuration encoding ---------------------------------------------------

/// The init document handed to `nfv_init` is UTF-8 JSON text:
/// `{"abi": 3, "vnf": "<name>", "ports": [{"name": "lan", "mtu": 1500,
/// "mac": "02:..."}, ...], "config": {...}}`, where `ports` describes the
/// ports in index order (name, the link's MTU, and the MAC address of the
/// port's interface or `null` when it has none of its own) and `config` is
/// the `config:` section of the chain file entry (`{}` when absent).
pub const CONFIG_ENCODING: &str = "application/json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip() {
        for v in [
            Verdict::Forward(0),
            Verdict::Forward(3),
            Verdict::Consume,
            Verdict::Drop(DropReason::Policy),
            Verdict::Drop(DropReason::Other),
        ] {
            assert_eq!(Verdict::decode(v.encode(), 4), v);
        }
    }

    #[test]
    fn malformed_verdicts_decode_to_drops() {
        assert_eq!(Verdict::decode(0, 2), Verdict::Drop(DropReason::NoVerdict));
        assert_eq!(
            Verdict::decode(Verdict::Forward(2).encode(), 2),
            Verdict::Drop(DropReason::BadVerdict)
        );
        assert_eq!(
            Verdict::decode(2 << 24 | 200, 2),
            Verdict::Drop(DropReason::BadVerdict)
        );
        assert_eq!(
            Verdict::decode(3 << 24 | 1, 2),
            Verdict::Drop(DropReason::BadVerdict)
        );
        assert_eq!(
            Verdict::decode(9 << 24, 2),
            Verdict::Drop(DropReason::BadVerdict)
        );
        // Host-only reasons are refused when a module returns them.
        for reason in DropReason::ALL.iter().filter(|r| r.host_only()) {
            assert_eq!(
                Verdict::decode(Verdict::Drop(*reason).encode(), 2),
                Verdict::Drop(DropReason::BadVerdict),
                "{reason:?}"
            );
        }
        assert!(DropReason::Trap.host_only() && DropReason::Timeout.host_only());
        assert!(!DropReason::Other.host_only());
    }

    #[test]
    fn verdict_encoding_is_stable() {
        // Golden values: these are the ABI, changing them needs a new version.
        assert_eq!(Verdict::Forward(1).encode(), 0x0100_0001);
        assert_eq!(Verdict::Drop(DropReason::NoRoute).encode(), 0x0200_0003);
        assert_eq!(Verdict::Consume.encode(), 0x0300_0000);
    }

    #[test]
    fn desc_round_trips_through_bytes() {
        let d = FrameDesc {
            offset: 0x1000,
            len: 60,
            capacity: 2048,
            in_port: 1,
            flags: 0,
            verdict: 0x0100_0000,
            gso_size: 0,
        };
        let b = d.to_bytes();
        assert_eq!(&b[..4], &[0x00, 0x10, 0, 0]);
        assert_eq!(b[12], 1);
        assert_eq!(FrameDesc::from_bytes(&b), d);
    }

    #[test]
    fn offload_fields_are_stable() {
        // Golden values: these are the ABI, changing them needs a new version.
        assert_eq!(ABI_VERSION, 3);
        assert_eq!(FLAG_CSUM_PARTIAL, 0x0001);
        assert_eq!(FLAG_GSO_TCPV4, 0x0002);
        assert_eq!(FLAG_GSO_TCPV6, 0x0004);
        assert_eq!(FLAG_GSO_UDP_L4, 0x0008);
        assert_eq!(FLAGS_KNOWN, 0x000f);
        assert_eq!(desc_field::FLAGS, 14);
        assert_eq!(desc_field::GSO_SIZE, 20);
        let d = FrameDesc {
            offset: 0x2000,
            len: 30_054,
            capacity: 65_536,
            in_port: 0,
            flags: FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4,
            verdict: 0,
            gso_size: 1448,
        };
        let b = d.to_bytes();
        assert_eq!(&b[14..16], &[0x03, 0x00]);
        assert_eq!(&b[20..24], &[0xa8, 0x05, 0, 0]);
        assert_eq!(FrameDesc::from_bytes(&b), d);
    }

    #[test]
    fn state_feature_is_stable() {
        // Golden values: these are the ABI, changing them needs a new version.
        assert_eq!(STATUS_STATE_REFUSED, -11);
        assert_eq!(STATUS_NO_STATE, -12);
        assert_eq!(MAX_STATE_LEN, 16 * 1024 * 1024);
        assert_eq!(ABI_FEATURES, &["state"]);
        assert_eq!(OPTIONAL_EXPORTS[0], ("nfv_state_save", "func(i32) -> i32"));
        assert_eq!(
            OPTIONAL_EXPORTS[1],
            ("nfv_state_load", "func(i32, i32, i32) -> i32")
        );
    }

    #[test]
    fn drop_reason_labels_are_unique() {
        for (i, a) in DropReason::ALL.iter().enumerate() {
            for b in &DropReason::ALL[i + 1..] {
                assert_ne!(a.label(), b.label());
            }
            assert_eq!(DropReason::from_u8(*a as u8), Some(*a));
        }
    }
}
