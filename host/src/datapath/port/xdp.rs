//! A port on a veth end through an `AF_XDP` socket (copy mode; a veth has
//! no zero-copy): a native XDP program on the veth redirects every frame
//! into the socket's RX ring, and frames to send go on its TX ring. See
//! [`crate::datapath::sys::xdp`] for the program, the rings and why they
//! are written by hand.
//!
//! Limits, checked when the port opens (and by the chain decoder):
//! - no offload: without XDP multi-buffer a frame is one UMEM frame (one
//!   page), so 64 KB super-frames cannot cross; the port never carries a
//!   virtio-net header ([`Port::carries_offload`] is false).
//! - the link's MTU is at most [`VETH_XDP_MAX_MTU`] (the kernel refuses
//!   native XDP on a veth whose peer has a larger one).
//! - the veth has one RX queue (deploy creates them so): the socket is
//!   bound to queue 0.
//!
//! The program is attached through a `bpf_link` the port holds: it goes
//! away with the worker (any exit), or with the veth when the link is
//! deleted. A veth deleted and created again under the same name is not
//! followed (that would need `bpf(2)` and privileges the sandboxed worker
//! no longer has): the port stays down until the worker restarts.

use std::io;
use std::os::fd::BorrowedFd;

use super::{Port, RecvStats};
use crate::datapath::sys::{packet, xdp};
use crate::engine::VnetHeader;

pub use crate::datapath::sys::xdp::VETH_XDP_MAX_MTU;

/// Whether the kernel still knows the BPF program `id` (as `ip -d link
/// show` prints it: `prog/xdp id N`), attached or not. Root only; for tests
/// that check a worker leaves no program behind.
pub fn program_exists(id: u32) -> io::Result<bool> {
    xdp::program_exists(id)
}

/// Errors opening an `AF_XDP` port.
#[derive(Debug, thiserror::Error)]
pub enum XdpPortError {
    #[error("couldn't find interface {ifname}: {source}")]
    NoInterface { ifname: String, source: io::Error },
    #[error(
        "interface {ifname} has {queues} RX queues; an io: xdp port binds one AF_XDP \
         socket to queue 0 and needs exactly one (`ethtool -L {ifname} rx 1 tx 1` on both ends)"
    )]
    Queues { ifname: String, queues: u32 },
    #[error(
        "couldn't attach XDP to {ifname}: its peer's MTU is above {max}, the most native XDP \
         on a veth takes without multi-buffer ({source})"
    )]
    Mtu {
        ifname: String,
        max: u32,
        source: io::Error,
    },
    #[error("couldn't {what} for the AF_XDP port on {ifname}: {source}")]
    Socket {
        ifname: String,
        what: &'static str,
        source: io::Error,
    },
}

/// An `AF_XDP` socket on queue 0 of one veth end, with the XDP program
/// that feeds it.
pub struct XdpPort {
    name: String,
    xsk: xdp::Xsk,
}

impl XdpPort {
    /// Opens the port on `ifname` in the calling thread's namespace:
    /// socket, UMEM, rings, program, link. Needs the privileges the worker
    /// has before its sandbox.
    pub fn open(name: &str, ifname: &str) -> Result<Self, XdpPortError> {
        let (c_ifname, ifindex) =
            packet::interface(ifname).map_err(|source| XdpPortError::NoInterface {
                ifname: ifname.into(),
                source,
            })?;
        // A veth answers ETHTOOL_GCHANNELS; a device that does not has one
        // queue as far as we can tell, and the bind below says otherwise.
        if let Ok(queues) = xdp::rx_queues(&c_ifname) {
            if queues > 1 {
                return Err(XdpPortError::Queues {
                    ifname: ifname.into(),
                    queues,
                });
            }
        }
        let xsk = xdp::Xsk::open(ifindex).map_err(|(what, source)| {
            if what == xdp::ATTACH_STEP && source.raw_os_error() == Some(libc::ERANGE) {
                XdpPortError::Mtu {
                    ifname: ifname.into(),
                    max: VETH_XDP_MAX_MTU,
                    source,
                }
            } else {
                XdpPortError::Socket {
                    ifname: ifname.into(),
                    what,
                    source,
                }
            }
        })?;
        Ok(XdpPort {
            name: name.into(),
            xsk,
        })
    }
}

impl Port for XdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.xsk.fd())
    }

    // No `has_pending`: the socket polls readable while its RX ring holds a
    // frame (a batch that left some is read again on the next turn, as a
    // packet socket's is). TX frames a kick left behind because the device
    // was busy (a veth with a qdisc on a full peer ring) go at the next
    // receive or send.

    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<RecvStats> {
        let n = bufs.len().min(vnets.len());
        let frames = self.xsk.recv(&mut bufs[..n], lens);
        let mut truncated = 0;
        for i in 0..frames {
            vnets[i] = VnetHeader::NONE;
            if lens[i] > bufs[i].len() {
                lens[i] = bufs[i].len();
                truncated += 1;
            }
        }
        Ok(RecvStats { frames, truncated })
    }

    fn send_batch(&mut self, frames: &[&[u8]], _vnets: &[VnetHeader]) -> io::Result<usize> {
        self.xsk.send(frames)
    }

    /// Up while the socket is bound: a veth set down and up again keeps
    /// socket and program; a deleted one unbinds the socket for good.
    fn recheck(&mut self) -> bool {
        self.xsk.still_bound()
    }

    fn take_kernel_drops(&mut self) -> u64 {
        self.xsk.take_drops()
    }
}

/// Against the real kernel (root; as anyone else each test prints a notice
/// and passes): a veth pair between two test namespaces, removed by their
/// guards whatever happens, an `io: xdp` port on one end and a packet
/// socket on the other.
#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::datapath::port::packet_socket::PacketSocketPort;
    use crate::sys::testing::{have_root, NetNsGuard};

    /// An EtherType for local experiments: nothing else in the namespaces
    /// sends it (IPv6 router solicitations do go out on a new link).
    const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

    fn frame(seq: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0a]);
        f[12..14].copy_from_slice(&ETHERTYPE);
        f[14..16].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in f[16..].iter_mut().enumerate() {
            *b = (i as u8) ^ (seq as u8);
        }
        f
    }

    /// Receives from `port` until `want` frames of ours arrived or 5 s
    /// passed, waiting on its descriptor (so the test also checks that
    /// poll signals frames).
    fn receive(port: &mut dyn Port, want: usize) -> Vec<Vec<u8>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut storage = vec![vec![0u8; 2048]; 64];
        while got.len() < want && Instant::now() < deadline {
            let ready = {
                let fd = port.readable_fd().expect("a kernel port");
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                poll(&mut fds, PollTimeout::from(200u16)).expect("poll")
            };
            if ready == 0 {
                continue;
            }
            let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
            let mut lens = vec![0usize; bufs.len()];
            let mut vnets = vec![VnetHeader::NONE; bufs.len()];
            let stats = port
                .recv_batch(&mut bufs, &mut lens, &mut vnets)
                .expect("recv_batch");
            assert_eq!(stats.truncated, 0);
            for i in 0..stats.frames {
                let f = &bufs[i][..lens[i]];
                if f.len() >= 14 && f[12..14] == ETHERTYPE {
                    got.push(f.to_vec());
                }
            }
        }
        got
    }

    fn ip(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip link show` of `ifname` mentions an XDP program (`prog/xdp id N`).
    fn xdp_attached(ns: &str, ifname: &str) -> bool {
        ip(&["-n", ns, "-d", "link", "show", ifname]).contains("prog/xdp")
    }

    /// The id of the XDP program on `ifname`.
    fn xdp_program(ns: &str, ifname: &str) -> u32 {
        let out = ip(&["-n", ns, "-d", "link", "show", ifname]);
        let at = out.find("prog/xdp id ").expect("a program") + "prog/xdp id ".len();
        out[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn frames_cross_an_xdp_port_both_ways_and_the_program_goes_with_it() {
        if !have_root("frames_cross_an_xdp_port_both_ways_and_the_program_goes_with_it") {
            return;
        }
        let (a, b) = (
            NetNsGuard::new("nfvt-").unwrap(),
            NetNsGuard::new("nfvt-").unwrap(),
        );
        crate::sys::link::create_veth(&a, "xa", &b, "xb", Some(1500)).unwrap();
        let mut xdp = a.run(|| XdpPort::open("lan", "xa")).unwrap().unwrap();
        let mut peer = b
            .run(|| PacketSocketPort::open("peer", "xb", false))
            .unwrap()
            .unwrap();
        assert!(
            xdp_attached(a.name(), "xa"),
            "program attached in native mode"
        );
        assert!(ip(&["-n", a.name(), "-d", "link", "show", "xa"]).contains("xdp "));
        assert!(!xdp.carries_offload());

        // Out through the XDP port: more than a TX kick's default budget
        // (32) and more than one batch, smallest to largest frames.
        let sizes = [60usize, 1514, 300];
        let sent: Vec<Vec<u8>> = (0..300u16)
            .map(|i| frame(i, sizes[i as usize % 3]))
            .collect();
        let mut offset = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while offset < sent.len() && Instant::now() < deadline {
            let batch: Vec<&[u8]> = sent[offset..(offset + 64).min(sent.len())]
                .iter()
                .map(Vec::as_slice)
                .collect();
            offset += xdp
                .send_batch(&batch, &vec![VnetHeader::NONE; batch.len()])
                .unwrap();
        }
        assert_eq!(offset, sent.len(), "the XDP port took every frame");
        let got = receive(&mut peer, sent.len());
        assert_eq!(
            got.len(),
            sent.len(),
            "every frame sent through the XSK arrived"
        );
        assert_eq!(got, sent, "in order and intact");

        // In through the XDP port: the program redirects every frame of
        // the veth to the socket.
        let back: Vec<Vec<u8>> = (1000..1200u16)
            .map(|i| frame(i, sizes[i as usize % 3]))
            .collect();
        for chunk in back.chunks(32) {
            let batch: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let n = peer
                .send_batch(&batch, &vec![VnetHeader::NONE; batch.len()])
                .unwrap();
            assert_eq!(n, batch.len());
            // The receiving side's 512 RX frames would absorb all 200; a
            // pause keeps the test about correctness, not buffer sizes.
            std::thread::sleep(Duration::from_millis(2));
        }
        let got = receive(&mut xdp, back.len());
        assert_eq!(got.len(), back.len(), "every frame reached the XSK");
        assert_eq!(got, back, "in order and intact");
        assert_eq!(xdp.take_kernel_drops(), 0);
        assert!(xdp.recheck(), "bound");

        // Dropping the port (what a worker's exit does) detaches the
        // program, and the kernel frees it: the link held it.
        let id = xdp_program(a.name(), "xa");
        assert!(program_exists(id).unwrap());
        drop(xdp);
        assert!(!program_exists(id).unwrap(), "program {id} freed");
        assert!(
            !xdp_attached(a.name(), "xa"),
            "program detached with the port"
        );

        // Attached again, then the veth deleted under it (what destroy
        // does): the program goes with the link, and the port says so.
        let mut xdp = a.run(|| XdpPort::open("lan", "xa")).unwrap().unwrap();
        let id = xdp_program(a.name(), "xa");
        ip(&["-n", a.name(), "link", "del", "dev", "xa"]);
        assert!(!xdp.recheck(), "a deleted link unbinds the socket for good");
        let err = xdp
            .send_batch(&[&frame(1, 60)], &[VnetHeader::NONE])
            .unwrap_err();
        assert!(crate::datapath::health::link_gone(&err), "{err}");
        // The port still holds link and program (detached); the worker's
        // exit frees them.
        drop(xdp);
        assert!(!program_exists(id).unwrap(), "program {id} freed");
    }

    #[test]
    fn an_mtu_above_native_xdp_on_veth_and_several_queues_are_refused() {
        if !have_root("an_mtu_above_native_xdp_on_veth_and_several_queues_are_refused") {
            return;
        }
        let (a, b) = (
            NetNsGuard::new("nfvt-").unwrap(),
            NetNsGuard::new("nfvt-").unwrap(),
        );
        // The largest MTU works, one more does not, and says why.
        crate::sys::link::create_veth(&a, "ma", &b, "mb", Some(VETH_XDP_MAX_MTU)).unwrap();
        let port = a.run(|| XdpPort::open("lan", "ma")).unwrap();
        assert!(port.is_ok(), "{:?}", port.err());
        drop(port);
        ip(&["-n", a.name(), "link", "del", "dev", "ma"]);
        crate::sys::link::create_veth(&a, "ma", &b, "mb", Some(VETH_XDP_MAX_MTU + 1)).unwrap();
        let err = a.run(|| XdpPort::open("lan", "ma")).unwrap().err();
        let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(matches!(err, Some(XdpPortError::Mtu { .. })), "{message}");
        assert!(message.contains("3506"), "{message}");
        assert!(!xdp_attached(a.name(), "ma"));

        ip(&[
            "-n",
            a.name(),
            "link",
            "add",
            "qa",
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
            "type",
            "veth",
            "peer",
            "name",
            "qb",
            "netns",
            b.name(),
        ]);
        ip(&["-n", a.name(), "link", "set", "qa", "up"]);
        let err = a.run(|| XdpPort::open("lan", "qa")).unwrap().err();
        let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
        // A veth created with 2 queues uses 1 of them (veth_init_queues)
        // unless asked: then one socket on queue 0 sees every frame.
        let queues = ip(&["-n", a.name(), "-d", "link", "show", "qa"]);
        if err.is_some() {
            assert!(
                matches!(err, Some(XdpPortError::Queues { queues: 2, .. })),
                "{message} {queues}"
            );
        }
        Command::new("ip")
            .args([
                "netns",
                "exec",
                a.name(),
                "ethtool",
                "-L",
                "qa",
                "rx",
                "2",
                "tx",
                "2",
            ])
            .status()
            .expect("ethtool");
        let err = a.run(|| XdpPort::open("lan", "qa")).unwrap().err();
        let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(err, Some(XdpPortError::Queues { queues: 2, .. })),
            "two RX queues refused: {message}"
        );
        assert!(message.contains("ethtool -L qa"), "{message}");
    }
}
