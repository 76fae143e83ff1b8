//! `AF_XDP` on a veth end: the XDP program that steers every received
//! frame to the socket, its `XSKMAP`, the `bpf_link` that attaches it, the
//! UMEM and the four rings, all by hand with `bpf(2)`, `socket(2)`,
//! `setsockopt(2)` and `mmap(2)`.
//!
//! Why by hand: the crates that wrap XSK rings (`xsk-rs`, `libxdp-sys`)
//! build libbpf/libxdp from C with their own toolchain needs, and the BPF
//! loaders (`aya`) are large for what is needed here: one six-instruction
//! program and one map, no ELF, no BTF. What is written below is the
//! kernel's UAPI (`<linux/bpf.h>`, `<linux/if_xdp.h>`) and nothing else.
//!
//! Everything privileged happens in [`Xsk::open`] (called from
//! `datapath::setup::open_ports`, before the sandbox): creating the map,
//! loading the program, creating the link, registering the UMEM, mapping
//! the rings, binding. Afterwards the worker only touches the mapped
//! rings and calls `sendto` (TX kick), `getsockopt` (statistics) and
//! `ppoll`, all already on its seccomp allow-list.
//!
//! Copy mode (`XDP_COPY`): a veth has no zero-copy support. The kernel
//! copies a received frame from its skb into a UMEM frame the fill ring
//! offered; a frame put on the TX ring is copied into a new skb on the
//! `sendto` kick and transmitted through the veth.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::check;

const AF_XDP: libc::c_int = 44;
const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_RX_RING: libc::c_int = 2;
const XDP_TX_RING: libc::c_int = 3;
const XDP_UMEM_REG: libc::c_int = 4;
const XDP_UMEM_FILL_RING: libc::c_int = 5;
const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
const XDP_STATISTICS: libc::c_int = 7;
/// How many TX descriptors one `sendto` kick turns into skbs in copy mode
/// (6.17 and later; the default is 32). Older kernels refuse the option and
/// keep 32: the loop in [`Xsk::kick_tx`] then simply kicks more often.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
const XDP_PGOFF_RX_RING: libc::off_t = 0;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;
/// `sockaddr_xdp.sxdp_flags`: force copy mode.
const XDP_COPY: u16 = 1 << 1;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type`: BPF_XDP.
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver (veth has it), not the
/// generic skb hook.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// Bytes of one UMEM frame: a page, so any frame native XDP on a veth
/// accepts (at most [`VETH_XDP_MAX_MTU`] + 14) fits with the kernel's 256
/// bytes of XDP headroom.
pub const FRAME_SIZE: usize = 4096;
/// Frames the kernel may fill (RX ring): about what an `AF_PACKET`
/// socket's buffer holds, so a burst is absorbed as well.
pub const RX_FRAMES: u32 = 512;
/// The fill ring has room for twice the RX frames: the kernel publishes how
/// far it consumed the fill ring only when it has used up what it saw the
/// last time it looked (up to every RX frame), so the entries between its
/// published index and ours can be up to twice the frames; with this size,
/// every frame read can go back at once.
const FILL_ENTRIES: u32 = 2 * RX_FRAMES;
/// Frames for transmission (TX ring, completion ring).
pub const TX_FRAMES: u32 = 512;
/// The largest MTU a veth takes native XDP with, for a program without
/// fragment support, on 4 KiB pages: `SKB_WITH_OVERHEAD(PAGE_SIZE -
/// VETH_XDP_HEADROOM) - ETH_HLEN` = 4096 - 256 - 320 - 14 (`veth_xdp_set`
/// refuses larger with ERANGE "Peer MTU is too large to set XDP").
pub const VETH_XDP_MAX_MTU: u32 = 3506;

/// The step of [`Xsk::open`] that failed.
pub type Step = &'static str;

/// The step that fails with ERANGE when the veth's peer has an MTU above
/// [`VETH_XDP_MAX_MTU`].
pub const ATTACH_STEP: Step = "attach the XDP program";

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The XDP program, for the map `map_fd`:
///
/// ```text
/// r2 = *(u32 *)(r1 + 16)        ; ctx->rx_queue_index: the key
/// r1 = map_fd ll                ; the XSKMAP (BPF_PSEUDO_MAP_FD), 2 slots
/// r3 = XDP_PASS                 ; flags: the action if no socket is at the key
/// call bpf_redirect_map         ; XDP_REDIRECT to the socket of this queue
/// exit                          ; return what the helper returned
/// ```
///
/// XDP_PASS as the fallback: a frame that arrives on a queue with no socket
/// bound goes to the namespace's kernel stack, exactly as every frame does
/// when no program is attached (and as every frame also did next to the
/// `AF_PACKET` port); nothing vanishes that would not without XDP. With
/// one RX queue (checked at open) and the socket in the map before the
/// program is attached, the fallback is never taken while the worker runs.
fn program(map_fd: i32) -> [BpfInsn; 6] {
    const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
    const BPF_LD_IMM_DW: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
    const BPF_MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    const BPF_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
    const BPF_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
    const BPF_PSEUDO_MAP_FD: u8 = 1;
    [
        insn(BPF_LDX_MEM_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        insn(BPF_LD_IMM_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(BPF_MOV64_K, 3, 0, 0, XDP_PASS),
        insn(BPF_CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(BPF_EXIT, 0, 0, 0, 0),
    ]
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, exclusively borrowed bpf_attr prefix of
    // size_of::<T>() bytes (the kernel zero-extends a shorter attr); the
    // pointers inside it are set by the callers to live buffers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: BPF_MAP_CREATE, BPF_PROG_LOAD and BPF_LINK_CREATE return a
    // new descriptor (O_CLOEXEC) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (cell, byte) in out.iter_mut().zip(name.bytes().take(15)) {
        *cell = byte;
    }
    out
}

/// `union bpf_attr` for BPF_MAP_CREATE, up to map_name.
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for BPF_MAP_UPDATE_ELEM.
#[repr(C)]
struct MapUpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to expected_attach_type.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_LINK_CREATE (the XDP form).
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: object_name("nfvhost_xsks"),
    };
    bpf_fd(BPF_MAP_CREATE, &mut attr)
}

fn map_update(map: BorrowedFd<'_>, key: u32, value: u32) -> io::Result<()> {
    let mut attr = MapUpdateAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: (&key as *const u32) as u64,
        value: (&value as *const u32) as u64,
        flags: 0, // BPF_ANY
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Loads the program; on failure, the verifier's log is in the error.
fn load_program(map: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let insns = program(map.as_raw_fd());
    // Only helpers that are not GPL-only are called.
    let license = c"Apache-2.0";
    let load = |log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            kern_version: 0,
            prog_flags: 0,
            prog_name: object_name("nfvhost_xsk"),
            prog_ifindex: 0,
            expected_attach_type: BPF_XDP,
        };
        bpf_fd(BPF_PROG_LOAD, &mut attr)
    };
    load(&mut []).or_else(|first| {
        let mut log = vec![0u8; 16 << 10];
        match load(&mut log) {
            Ok(fd) => Ok(fd),
            Err(_) => {
                let text = CStr::from_bytes_until_nul(&log)
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Err(io::Error::new(
                    first.kind(),
                    format!("{first}; verifier: {}", text.trim()),
                ))
            }
        }
    })
}

/// Attaches `prog` to interface `ifindex` (of the calling thread's
/// namespace) in native mode through a `bpf_link`: the program stays
/// attached exactly as long as the link's descriptor is open (or until the
/// interface is deleted), so a worker that exits, however it exits, leaves
/// nothing attached.
fn attach(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: XDP_FLAGS_DRV_MODE,
    };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// Whether the kernel still has a BPF program with this id (any program,
/// attached or not; needs CAP_SYS_ADMIN).
pub fn program_exists(id: u32) -> io::Result<bool> {
    /// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
    #[repr(C)]
    struct GetById {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut attr = GetById {
        id,
        next_id: 0,
        open_flags: 0,
    };
    match bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(_fd) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// How many RX queues interface `ifname` of the calling thread's
/// namespace uses (`ethtool -l`: a veth's real_num_rx_queues).
pub fn rx_queues(ifname: &CStr) -> io::Result<u32> {
    // SAFETY: plain socket(2); checked, then owned.
    let raw =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: raw is a new descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.to_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    for (cell, byte) in req.ifr_name.iter_mut().zip(name) {
        *cell = *byte as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut channels as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL reads the name and the command, and writes the
    // live ethtool_channels the request points at.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) })?;
    Ok(channels.rx_count + channels.combined_count)
}

/// `struct xdp_umem_reg` (with `tx_metadata_len`, 6.8; older kernels take
/// the shorter form, but this one's tail is zero, which they accept too).
#[repr(C)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct RingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Default)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fr: RingOffset,
    cr: RingOffset,
}

/// `struct xdp_desc`: a frame of the RX or TX ring.
#[repr(C)]
#[derive(Clone, Copy)]
struct XdpDesc {
    addr: u64,
    len: u32,
    options: u32,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

/// `struct xdp_statistics`.
#[repr(C)]
#[derive(Default)]
struct XdpStatistics {
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

/// An anonymous or socket mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: Option<BorrowedFd<'_>>, offset: libc::off_t) -> io::Result<Self> {
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping of len bytes (of the socket's ring at
        // `offset`, or anonymous); the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; no pointer into it
        // outlives the owner.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// One single-producer single-consumer ring shared with the kernel, of
/// `T` (`u64` frame addresses for fill/completion, [`XdpDesc`] for RX/TX).
/// We are the producer of fill and TX, the consumer of RX and completion.
struct Ring<T> {
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    descs: *mut T,
    mask: u32,
    size: u32,
    /// Our own index (the producer's for fill/TX, the consumer's for
    /// RX/completion), published with a release store.
    local: u32,
}

impl<T: Copy> Ring<T> {
    fn map(fd: BorrowedFd<'_>, off: RingOffset, size: u32, pgoff: libc::off_t) -> io::Result<Self> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        let map = Mapping::new(len, Some(fd), pgoff)?;
        // SAFETY: the kernel's offsets are inside the mapping it sized.
        let at = |o: u64| unsafe { map.ptr.add(o as usize) };
        let (producer, consumer, descs) = (
            at(off.producer).cast::<AtomicU32>(),
            at(off.consumer).cast::<AtomicU32>(),
            at(off.desc).cast::<T>(),
        );
        Ok(Ring {
            _map: map,
            producer,
            consumer,
            descs,
            mask: size - 1,
            size,
            local: 0,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, 4-byte aligned (the
        // kernel's layout), shared with the kernel and only accessed
        // atomically.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn read(&self, index: u32) -> T {
        // SAFETY: index & mask is inside the ring's `size` entries; the
        // entry was published by the kernel (acquire on its producer
        // index) and is not written again until we release it.
        unsafe { self.descs.add((index & self.mask) as usize).read_volatile() }
    }

    fn write(&mut self, index: u32, value: T) {
        // SAFETY: as for `read`: an entry the kernel has released (acquire
        // on its consumer index) and does not read until we publish it.
        unsafe {
            self.descs
                .add((index & self.mask) as usize)
                .write_volatile(value)
        }
    }

    /// Entries waiting for us, as the consumer.
    fn available(&self) -> u32 {
        self.producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.local)
    }

    fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.consumer().store(self.local, Ordering::Release);
    }

    /// Free entries, as the producer.
    fn free(&self) -> u32 {
        self.size.wrapping_sub(
            self.local
                .wrapping_sub(self.consumer().load(Ordering::Acquire)),
        )
    }

    fn publish(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.producer().store(self.local, Ordering::Release);
    }

    /// Entries we produced that the kernel has not consumed yet.
    fn outstanding(&self) -> u32 {
        self.local
            .wrapping_sub(self.consumer().load(Ordering::Acquire))
    }
}

/// An `AF_XDP` socket bound to queue 0 of a veth in copy mode, with its
/// UMEM, rings, and the program and link that steer frames to it.
pub struct Xsk {
    // Field order is drop order: detach the program first.
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
    rx: Ring<XdpDesc>,
    fill: Ring<u64>,
    tx: Ring<XdpDesc>,
    comp: Ring<u64>,
    fd: OwnedFd,
    umem: Mapping,
    /// UMEM addresses of TX frames that are ours to fill.
    tx_free: Vec<u64>,
    /// RX frames read, to go back on the fill ring once it has room (the
    /// kernel publishes how far it consumed the fill ring lazily).
    fill_backlog: Vec<u64>,
    /// Drop counts already reported.
    reported_drops: u64,
}

// SAFETY: the raw pointers are into mappings this value owns; it is used
// by one thread at a time (`&mut self` for every ring access).
unsafe impl Send for Xsk {}

fn set_opt<T>(fd: &OwnedFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value is a live T of the stated size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn get_opt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, value: &mut T) -> io::Result<()> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: value is a live, exclusively borrowed T of `len` bytes.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (value as *mut T).cast(),
            &mut len,
        )
    })
    .map(drop)
}

impl Xsk {
    /// Opens the socket on queue 0 of interface `ifindex` (in the calling
    /// thread's namespace), which must have one RX queue, and attaches the
    /// program that redirects to it. Needs CAP_NET_ADMIN, CAP_BPF (or
    /// CAP_SYS_ADMIN), and CAP_IPC_LOCK or room under RLIMIT_MEMLOCK for
    /// the UMEM. On failure, says which step failed.
    pub fn open(ifindex: u32) -> Result<Xsk, (Step, io::Error)> {
        // SAFETY: plain socket(2); checked, then owned.
        let raw = check(unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })
            .map_err(|e| ("create the AF_XDP socket", e))?;
        // SAFETY: raw is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let frames = (RX_FRAMES + TX_FRAMES) as usize;
        let umem = Mapping::new(frames * FRAME_SIZE, None, 0).map_err(|e| ("map the UMEM", e))?;
        let reg = UmemReg {
            addr: umem.ptr as u64,
            len: umem.len as u64,
            chunk_size: FRAME_SIZE as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        set_opt(&fd, XDP_UMEM_REG, &reg).map_err(|e| ("register the UMEM", e))?;
        let size = |n: u32| n as libc::c_int;
        set_opt(&fd, XDP_UMEM_FILL_RING, &size(FILL_ENTRIES))
            .map_err(|e| ("size the fill ring", e))?;
        set_opt(&fd, XDP_UMEM_COMPLETION_RING, &size(TX_FRAMES))
            .map_err(|e| ("size the completion ring", e))?;
        set_opt(&fd, XDP_RX_RING, &size(RX_FRAMES)).map_err(|e| ("size the RX ring", e))?;
        set_opt(&fd, XDP_TX_RING, &size(TX_FRAMES)).map_err(|e| ("size the TX ring", e))?;
        // A whole TX ring per kick where the kernel allows it.
        let _ = set_opt(&fd, XDP_MAX_TX_SKB_BUDGET, &size(TX_FRAMES));
        // The skbs made from TX frames are charged to the socket until the
        // far end consumes them: with room for every TX frame, a kick is
        // never refused for want of send buffer (as root; else the default).
        let bytes = (TX_FRAMES as usize * 2 * FRAME_SIZE) as libc::c_int;
        // SAFETY: the option value is a live c_int of the stated size.
        let _ = check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                (&bytes as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        });
        let mut off = MmapOffsets::default();
        get_opt(fd.as_fd(), XDP_MMAP_OFFSETS, &mut off)
            .map_err(|e| ("read the ring offsets", e))?;
        let rx = Ring::map(fd.as_fd(), off.rx, RX_FRAMES, XDP_PGOFF_RX_RING)
            .map_err(|e| ("map the RX ring", e))?;
        let tx = Ring::map(fd.as_fd(), off.tx, TX_FRAMES, XDP_PGOFF_TX_RING)
            .map_err(|e| ("map the TX ring", e))?;
        let mut fill = Ring::map(fd.as_fd(), off.fr, FILL_ENTRIES, XDP_UMEM_PGOFF_FILL_RING)
            .map_err(|e| ("map the fill ring", e))?;
        let comp = Ring::map(
            fd.as_fd(),
            off.cr,
            TX_FRAMES,
            XDP_UMEM_PGOFF_COMPLETION_RING,
        )
        .map_err(|e| ("map the completion ring", e))?;
        // Frames [0, RX_FRAMES) go to the kernel for reception; the rest
        // are ours for transmission.
        for i in 0..RX_FRAMES {
            let index = fill.local.wrapping_add(i);
            fill.write(index, u64::from(i) * FRAME_SIZE as u64);
        }
        fill.publish(RX_FRAMES);
        let tx_free = (RX_FRAMES..RX_FRAMES + TX_FRAMES)
            .rev()
            .map(|i| u64::from(i) * FRAME_SIZE as u64)
            .collect();

        let addr = SockaddrXdp {
            family: AF_XDP as u16,
            flags: XDP_COPY,
            ifindex,
            queue_id: 0,
            shared_umem_fd: 0,
        };
        // A socket closed a moment ago (a worker that just exited, before
        // the supervisor restarted it) releases the queue in deferred
        // work: EBUSY until then.
        let mut tries = 0;
        loop {
            // SAFETY: addr is a live sockaddr_xdp and the length matches it.
            let bound = check(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const SockaddrXdp).cast(),
                    size_of::<SockaddrXdp>() as libc::socklen_t,
                )
            });
            match bound {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => {
                    other.map_err(|e| ("bind the AF_XDP socket to queue 0", e))?;
                    break;
                }
            }
        }

        // The socket is in the map before the program can see a frame.
        let map = create_xskmap(1).map_err(|e| ("create the XSKMAP", e))?;
        map_update(map.as_fd(), 0, fd.as_raw_fd() as u32)
            .map_err(|e| ("put the socket in the XSKMAP", e))?;
        let prog = load_program(map.as_fd()).map_err(|e| ("load the XDP program", e))?;
        let link = attach(prog.as_fd(), ifindex).map_err(|e| (ATTACH_STEP, e))?;
        Ok(Xsk {
            _link: link,
            _prog: prog,
            _map: map,
            rx,
            fill,
            tx,
            comp,
            fd,
            umem,
            tx_free,
            fill_backlog: Vec::with_capacity(RX_FRAMES as usize),
            reported_drops: 0,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn frame(&self, addr: u64, len: usize) -> &[u8] {
        let start = (addr as usize).min(self.umem.len);
        let len = len.min(self.umem.len - start);
        // SAFETY: [start, start + len) is inside the UMEM mapping (clamped
        // above); the kernel wrote this frame before publishing its
        // descriptor and does not touch it until it is back on the fill
        // ring.
        unsafe { std::slice::from_raw_parts(self.umem.ptr.add(start), len) }
    }

    fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let start = (addr as usize).min(self.umem.len);
        let len = FRAME_SIZE.min(self.umem.len - start);
        // SAFETY: inside the mapping (clamped); a TX frame on our free
        // list, which the kernel does not read until it is on the TX ring.
        unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.add(start), len) }
    }

    /// Takes up to `bufs.len()` frames off the RX ring, frame `i` copied
    /// into `bufs[i]` (cut to its length) with its full length in
    /// `lens[i]`, and gives their UMEM frames back on the fill ring.
    /// Returns how many.
    pub fn recv(&mut self, bufs: &mut [&mut [u8]], lens: &mut [usize]) -> usize {
        let n = (self.rx.available() as usize)
            .min(bufs.len())
            .min(lens.len());
        let start = self.rx.local;
        for (i, (buf, len)) in bufs.iter_mut().zip(lens.iter_mut()).take(n).enumerate() {
            let desc = self.rx.read(start.wrapping_add(i as u32));
            let frame = self.frame(desc.addr, desc.len as usize);
            let copy = frame.len().min(buf.len());
            buf[..copy].copy_from_slice(&frame[..copy]);
            *len = desc.len as usize;
            // Aligned mode: the frame starts at its address rounded down
            // (the kernel puts the data after its XDP headroom).
            self.fill_backlog.push(desc.addr & !(FRAME_SIZE as u64 - 1));
        }
        self.rx.release(n as u32);
        self.refill();
        if self.tx_pending() {
            // Left over from a kick the device refused: try again.
            let _ = self.kick_tx();
        }
        n
    }

    /// Gives read RX frames back to the kernel, as many as the fill ring
    /// has room for.
    fn refill(&mut self) {
        let n = (self.fill.free() as usize).min(self.fill_backlog.len());
        let start = self.fill.local;
        for i in 0..n {
            let addr = self.fill_backlog.pop().expect("counted");
            self.fill.write(start.wrapping_add(i as u32), addr);
        }
        self.fill.publish(n as u32);
    }

    /// TX frames on the ring that the kernel has not taken yet (a kick
    /// found the device busy).
    pub fn tx_pending(&self) -> bool {
        self.tx.outstanding() > 0
    }

    /// Reclaims the TX frames the kernel has finished with.
    fn reap(&mut self) {
        let n = self.comp.available();
        let start = self.comp.local;
        for i in 0..n {
            let addr = self.comp.read(start.wrapping_add(i));
            self.tx_free.push(addr & !(FRAME_SIZE as u64 - 1));
        }
        self.comp.release(n);
    }

    /// Copies frames onto the TX ring in order, as many as free UMEM
    /// frames and ring entries allow (longer than a UMEM frame: `EMSGSIZE`
    /// if first, else the batch stops before it), and kicks the kernel to
    /// send them. Returns how many were queued.
    pub fn send(&mut self, frames: &[&[u8]]) -> io::Result<usize> {
        self.reap();
        let room = (self.tx.free() as usize).min(self.tx_free.len());
        let mut queued = 0;
        for frame in frames.iter().take(room) {
            if frame.len() > FRAME_SIZE {
                if queued == 0 {
                    return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
                }
                break;
            }
            let addr = self.tx_free.pop().expect("room counted free frames");
            self.frame_mut(addr)[..frame.len()].copy_from_slice(frame);
            let at = self.tx.local.wrapping_add(queued as u32);
            self.tx.write(
                at,
                XdpDesc {
                    addr,
                    len: frame.len() as u32,
                    options: 0,
                },
            );
            queued += 1;
        }
        self.tx.publish(queued as u32);
        self.kick_tx()?;
        self.reap();
        Ok(queued)
    }

    /// In copy mode the kernel transmits TX descriptors only inside
    /// `sendto`, a budget at a time (EAGAIN: more are left, or the device
    /// is busy): kick until the ring is empty or a kick made no progress.
    fn kick_tx(&mut self) -> io::Result<()> {
        while self.tx.outstanding() > 0 {
            let before = self.tx.outstanding();
            // SAFETY: a zero-length sendto with no address; the kernel
            // only reads the TX ring.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc >= 0 {
                continue;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => {
                    // A full completion ring stops transmission: make room.
                    self.reap();
                    if self.tx.outstanding() >= before {
                        return Ok(());
                    }
                }
                Some(libc::EINTR) => {}
                _ => return Err(err),
            }
        }
        Ok(())
    }

    /// Frames the kernel dropped for this socket (RX ring full, no fill
    /// frame, or too long) since the last call.
    pub fn take_drops(&mut self) -> u64 {
        let mut stats = XdpStatistics::default();
        if get_opt(self.fd.as_fd(), XDP_STATISTICS, &mut stats).is_err() {
            return 0;
        }
        let total = stats.rx_dropped + stats.rx_ring_full;
        let new = total.saturating_sub(self.reported_drops);
        self.reported_drops = total;
        new
    }

    /// Whether the socket is still bound to its interface: a zero-length
    /// send with an empty TX ring does nothing on a bound socket and fails
    /// with `ENXIO` on one whose interface was deleted.
    pub fn still_bound(&self) -> bool {
        // SAFETY: as in `kick_tx`.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        rc >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENXIO)
    }
}
