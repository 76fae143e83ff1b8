//! VnetHeader state on transmit. A frame keeps the offload state it arrived with
//! (a partial TCP/UDP checksum, a segmentation super-frame) while the module
//! handles it; when it leaves, either the egress port carries that state in a
//! virtio-net header, whose layout fields are derived here again from the
//! frame the module returned (so they match it even if the module changed
//! it), or the port cannot carry it and the host finishes the job in
//! software: completes the checksum and cuts a super-frame into segments,
//! as the kernel's `skb_checksum_help` and GSO would.
//!
//! Hand-written rather than taken from a crate: the only crates that segment
//! (smoltcp, etherparse) build packets from parsed representations, while this
//! must copy raw headers byte for byte (options included) and fix only the
//! fields GSO fixes.

use crate::engine::{GsoType, VnetHeader};

/// Why a frame's offload state cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The frame is not TCP or UDP over IPv4/IPv6 behind Ethernet.
    #[error("offloaded frame is not TCP or UDP over IP")]
    NotL4,
    /// The super-frame's kind does not match its headers, or its segment
    /// size is zero or makes too many segments.
    #[error("super-frame does not match its headers or segment size")]
    BadGso,
}

const ETH_LEN: usize = 14;
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The tags a frame may carry in front of its IP header: an 802.1ad or
/// 802.1Q outer tag and an 802.1Q inner one (QinQ), as the kernel's
/// `skb_network_protocol` walks them when it segments.
pub const MAX_TAGS: usize = 2;
/// One VLAN tag (TPID and TCI).
pub const TAG_LEN: usize = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// More segments than a 64 KiB super-frame at the smallest sane segment size
/// means a bogus `gso_size`.
const MAX_SEGMENTS: usize = 1024;

/// Where the headers of a TCP/UDP-over-IP frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Start of the IP header.
    pub l3: usize,
    pub ipv6: bool,
    /// Start of the TCP/UDP header (IPv6: right after the fixed header;
    /// extension headers are not followed).
    pub l4: usize,
    pub tcp: bool,
    /// TCP/UDP header length.
    pub l4_header: usize,
    /// End of the IP packet (Ethernet padding after it is not part of it).
    pub end: usize,
}

impl Layout {
    /// Parses Ethernet (with up to [`MAX_TAGS`] 802.1Q/802.1ad tags), IPv4
    /// or IPv6, and a TCP or UDP header. `None` if the frame is anything
    /// else, an IPv4 fragment, or shorter than its headers say.
    pub fn parse(frame: &[u8]) -> Option<Layout> {
        let be16 = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
        };
        // The EtherType after the tags says what the L3 header is.
        let l3 = ETH_LEN + tags(frame) * TAG_LEN;
        let ethertype = be16(l3 - 2)?;
        let (ipv6, proto, l4, end) = match ethertype {
            ETHERTYPE_IPV4 => {
                let vihl = *frame.get(l3)?;
                let ihl = usize::from(vihl & 0x0f) * 4;
                if vihl >> 4 != 4 || ihl < 20 {
                    return None;
                }
                // More fragments, or a fragment offset: not a whole packet.
                if be16(l3 + 6)? & 0x3fff != 0 {
                    return None;
                }
                (
                    false,
                    *frame.get(l3 + 9)?,
                    l3 + ihl,
                    l3 + usize::from(be16(l3 + 2)?),
                )
            }
            ETHERTYPE_IPV6 => {
                if *frame.get(l3)? >> 4 != 6 {
                    return None;
                }
                let payload = usize::from(be16(l3 + 4)?);
                (true, *frame.get(l3 + 6)?, l3 + 40, l3 + 40 + payload)
            }
            _ => return None,
        };
        let (tcp, l4_header) = match proto {
            PROTO_TCP => (true, usize::from(*frame.get(l4 + 12)? >> 4) * 4),
            PROTO_UDP => (false, 8),
            _ => return None,
        };
        if end > frame.len() || l4 + l4_header > end || (tcp && l4_header < 20) {
            return None;
        }
        Some(Layout {
            l3,
            ipv6,
            l4,
            tcp,
            l4_header,
            end,
        })
    }

    /// Offset of the L4 checksum field from the start of the L4 header.
    pub fn csum_offset(&self) -> usize {
        if self.tcp {
            16
        } else {
            6
        }
    }

    /// Whether a super-frame of `gso` fits these headers.
    fn matches(&self, gso: GsoType) -> bool {
        match gso {
            GsoType::None => true,
            GsoType::TcpV4 => self.tcp && !self.ipv6,
            GsoType::TcpV6 => self.tcp && self.ipv6,
            GsoType::UdpL4 => !self.tcp,
            GsoType::Other => false,
        }
    }
}

/// How many VLAN tags (802.1Q or 802.1ad TPIDs, at most [`MAX_TAGS`]) follow
/// the MAC addresses of `frame`.
pub fn tags(frame: &[u8]) -> usize {
    (0..MAX_TAGS)
        .take_while(|i| {
            let at = 12 + i * TAG_LEN;
            matches!(
                frame
                    .get(at..at + 2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]])),
                Some(ETHERTYPE_VLAN | ETHERTYPE_QINQ)
            )
        })
        .count()
}

/// The virtio-net header to send `frame` with through a port that carries
/// offloads: `offload` with its layout fields (header length, checksum start
/// and offset) taken from the frame as it is now.
pub fn transmit_header(offload: VnetHeader, frame: &[u8]) -> Result<VnetHeader, OffloadError> {
    let mut h = offload.for_transmit();
    if !h.needs_csum() && h.gso_type() == GsoType::None {
        return Ok(h);
    }
    let l = Layout::parse(frame).ok_or(OffloadError::NotL4)?;
    if !l.matches(h.gso_type()) || (h.gso_type() != GsoType::None && h.gso_size() == 0) {
        return Err(OffloadError::BadGso);
    }
    h.set_layout(l.l4 + l.l4_header, l.l4, l.csum_offset());
    Ok(h)
}

/// Frames made in software, back to back in one reused buffer.
#[derive(Debug, Default)]
pub struct Segments {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Segments {
    /// Forgets every frame (keeps the memory).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// How many frames there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Frame `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    fn push(&mut self, bytes: &[u8]) -> usize {
        self.buf.extend_from_slice(bytes);
        self.ends.push(self.buf.len());
        self.ends.len() - 1
    }

    fn last_mut(&mut self) -> &mut [u8] {
        let start = self.ends.len().checked_sub(2).map_or(0, |i| self.ends[i]);
        &mut self.buf[start..]
    }
}

/// Appends to `out` the ordinary frames `frame` stands for when it leaves
/// through a port without offloads: itself with its checksum completed, or
/// each segment of a super-frame with lengths, sequence numbers, IPv4 ids,
/// flags and checksums as the kernel's GSO makes them. Returns the index
/// range of the frames added.
pub fn make_plain(
    frame: &[u8],
    offload: VnetHeader,
    out: &mut Segments,
) -> Result<std::ops::Range<usize>, OffloadError> {
    let first = out.len();
    let gso = offload.gso_type();
    if !offload.needs_csum() && gso == GsoType::None {
        out.push(frame);
        return Ok(first..out.len());
    }
    let l = Layout::parse(frame).ok_or(OffloadError::NotL4)?;
    if !l.matches(gso) {
        return Err(OffloadError::BadGso);
    }
    if gso == GsoType::None {
        out.push(frame);
        fill_l4_checksum(out.last_mut(), &l);
        return Ok(first..out.len());
    }
    let mss = offload.gso_size() as usize;
    let headers = l.l4 + l.l4_header;
    let payload = &frame[headers..l.end];
    if mss == 0 || payload.len().div_ceil(mss) > MAX_SEGMENTS {
        return Err(OffloadError::BadGso);
    }
    let seq0 = u32::from_be_bytes(frame[l.l4 + 4..l.l4 + 8].try_into().expect("4 bytes"));
    let id0 = u16::from_be_bytes([frame[l.l3 + 4], frame[l.l3 + 5]]);
    let count = payload.len().div_ceil(mss).max(1);
    for (i, chunk) in payload
        .chunks(mss)
        .chain(std::iter::once(&[][..]).take(usize::from(payload.is_empty())))
        .enumerate()
    {
        let index = out.push(&frame[..headers]);
        debug_assert_eq!(index, first + i);
        out.buf.extend_from_slice(chunk);
        *out.ends.last_mut().expect("just pushed") = out.buf.len();
        let seg = out.last_mut();
        let l4_len = l.l4_header + chunk.len();
        let ip_len = l.l4 - l.l3 + l4_len;
        if l.ipv6 {
            put16(seg, l.l3 + 4, (ip_len - 40) as u16);
        } else {
            put16(seg, l.l3 + 2, ip_len as u16);
            put16(seg, l.l3 + 4, id0.wrapping_add(i as u16));
            fill_ipv4_checksum(seg, &l);
        }
        if l.tcp {
            let seq = seq0.wrapping_add((i * mss) as u32);
            seg[l.l4 + 4..l.l4 + 8].copy_from_slice(&seq.to_be_bytes());
            let mut flags = seg[l.l4 + 13];
            if i + 1 < count {
                flags &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                flags &= !TCP_CWR;
            }
            seg[l.l4 + 13] = flags;
        } else {
            put16(seg, l.l4 + 4, l4_len as u16);
        }
        let seg_layout = Layout {
            end: l.l3 + ip_len,
            ..l
        };
        fill_l4_checksum(seg, &seg_layout);
    }
    Ok(first..out.len())
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// One's-complement sum of `data` (big-endian 16-bit words, odd byte padded)
/// added to `acc`, not folded.
fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn fill_ipv4_checksum(frame: &mut [u8], l: &Layout) {
    frame[l.l3 + 10..l.l3 + 12].fill(0);
    let c = !fold(sum(0, &frame[l.l3..l.l4]));
    put16(frame, l.l3 + 10, c);
}

/// Computes the TCP/UDP checksum from scratch (pseudo-header and segment),
/// ignoring whatever the field held.
pub fn fill_l4_checksum(frame: &mut [u8], l: &Layout) {
    let field = l.l4 + l.csum_offset();
    frame[field..field + 2].fill(0);
    let l4_len = l.end - l.l4;
    let mut acc = if l.ipv6 {
        sum(0, &frame[l.l3 + 8..l.l3 + 40])
    } else {
        sum(0, &frame[l.l3 + 12..l.l3 + 20])
    };
    acc += u64::from(if l.tcp { PROTO_TCP } else { PROTO_UDP });
    acc += l4_len as u64;
    let mut c = !fold(sum(acc, &frame[l.l4..l.end]));
    if !l.tcp && c == 0 {
        // UDP: a computed zero is sent as all ones (zero means "none").
        c = 0xffff;
    }
    put16(frame, field, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use vnf_sdk::wire::{Ipv4Packet, TcpPacket, UdpPacket};

    const SRC4: [u8; 4] = [10, 0, 1, 10];
    const DST4: [u8; 4] = [10, 0, 2, 10];

    fn ipv4_tcp(payload: usize, id: u16, seq: u32, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 32 + payload];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + 32 + payload) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = PROTO_TCP;
        ip[12..16].copy_from_slice(&SRC4);
        ip[16..20].copy_from_slice(&DST4);
        let tcp = &mut f[34..66];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = 8 << 4; // 32 bytes: 12 bytes of options (timestamps)
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&502u16.to_be_bytes());
        tcp[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        for (i, b) in f[66..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let l = Layout::parse(&f).unwrap();
        fill_ipv4_checksum(&mut f, &l);
        // As Linux leaves CHECKSUM_PARTIAL: the pseudo-header sum, not
        // complemented, in the field.
        let partial =
            fold(sum(0, &SRC4) + sum(0, &DST4) + u64::from(PROTO_TCP) + (32 + payload) as u64);
        put16(&mut f, 34 + 16, partial);
        f
    }

    fn header(flags: u8, gso: u8, gso_size: u16) -> VnetHeader {
        let mut h = [0u8; 10];
        h[0] = flags;
        h[1] = gso;
        h[4..6].copy_from_slice(&gso_size.to_ne_bytes());
        VnetHeader(h)
    }

    fn ipv4(seg: &[u8]) -> Ipv4Packet<&[u8]> {
        Ipv4Packet::new_checked(&seg[14..]).unwrap()
    }

    #[test]
    fn completes_a_partial_tcp_checksum() {
        let f = ipv4_tcp(100, 1, 1000, 0x18);
        let mut out = Segments::default();
        let r = make_plain(&f, header(1, 0, 0), &mut out).unwrap();
        assert_eq!(r, 0..1);
        let seg = out.get(0);
        assert_eq!(seg.len(), f.len());
        let ip = ipv4(seg);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(&seg[..50], &f[..50], "nothing but the checksum changes");
        assert_eq!(&seg[52..], &f[52..]);
        // A plain frame is copied untouched.
        out.clear();
        make_plain(&f, VnetHeader::NONE, &mut out).unwrap();
        assert_eq!(out.get(0), &f[..]);
    }

    #[test]
    fn segments_a_tcpv4_super_frame_like_the_kernel() {
        // 3 full segments of 1000 and one of 500; FIN|PSH|CWR on the super-frame.
        let f = ipv4_tcp(3500, 0xfffe, 0xffff_fc00, 0x80 | 0x10 | 0x08 | 0x01);
        let mut out = Segments::default();
        let r = make_plain(&f, header(1, 1, 1000), &mut out).unwrap();
        assert_eq!(r, 0..4);
        let lens: Vec<usize> = (0..4).map(|i| out.get(i).len()).collect();
        assert_eq!(lens, [1066, 1066, 1066, 566]);
        for i in 0..4 {
            let seg = out.get(i);
            let ip = ipv4(seg);
            assert!(ip.verify_checksum(), "segment {i}: IPv4 checksum");
            assert_eq!(usize::from(ip.total_len()), seg.len() - 14);
            assert_eq!(
                ip.ident(),
                0xfffeu16.wrapping_add(i as u16),
                "segment {i}: id"
            );
            assert!(ip.dont_frag());
            assert_eq!(ip.src_addr(), Ipv4Addr::from(SRC4));
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(
                tcp.verify_checksum(ip.src_addr(), ip.dst_addr()),
                "segment {i}: TCP checksum"
            );
            assert_eq!(
                tcp.seq_number(),
                0xffff_fc00u32.wrapping_add(1000 * i as u32)
            );
            let flags = seg[34 + 13];
            let want = match i {
                0 => 0x80 | 0x10,
                3 => 0x10 | 0x08 | 0x01,
                _ => 0x10,
            };
            assert_eq!(flags, want, "segment {i}: flags");
            assert_eq!(&seg[54..66], &f[54..66], "options copied");
            assert_eq!(
                &seg[66..],
                &f[66 + 1000 * i..66 + 1000 * i + seg.len() - 66]
            );
        }
    }

    /// `frame` with `tpids` tags (TCI = 100 + i) after its MAC addresses.
    fn tagged(frame: &[u8], tpids: &[u16]) -> Vec<u8> {
        let mut f = frame[..12].to_vec();
        for (i, tpid) in tpids.iter().enumerate() {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(100 + i as u16).to_be_bytes());
        }
        f.extend_from_slice(&frame[12..]);
        f
    }

    #[test]
    fn segments_802_1ad_and_double_tagged_super_frames_past_their_tags() {
        let plain = ipv4_tcp(2500, 7, 1000, 0x18);
        for tpids in [
            &[ETHERTYPE_VLAN][..],
            &[ETHERTYPE_QINQ],
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
            &[ETHERTYPE_VLAN, ETHERTYPE_VLAN],
        ] {
            let f = tagged(&plain, tpids);
            let shift = tpids.len() * TAG_LEN;
            let l = Layout::parse(&f).unwrap_or_else(|| panic!("{tpids:x?} parses"));
            assert_eq!((l.l3, l.l4), (14 + shift, 34 + shift), "{tpids:x?}");
            let h = transmit_header(header(1, 1, 1000), &f).unwrap();
            let csum_start = u16::from_ne_bytes([h.0[6], h.0[7]]);
            assert_eq!(csum_start, (34 + shift) as u16, "{tpids:x?}");
            let mut out = Segments::default();
            assert_eq!(make_plain(&f, header(1, 1, 1000), &mut out).unwrap(), 0..3);
            for i in 0..3 {
                let seg = out.get(i);
                assert_eq!(&seg[..12 + shift], &f[..12 + shift], "tags kept");
                let ip = Ipv4Packet::new_checked(&seg[14 + shift..]).unwrap();
                assert!(ip.verify_checksum());
                assert_eq!(usize::from(ip.total_len()), seg.len() - 14 - shift);
                let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
                assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
                assert_eq!(tcp.seq_number(), 1000 + 1000 * i as u32);
            }
        }
        // Three tags are more than QinQ: not walked, so not L4.
        let f = tagged(&plain, &[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_VLAN]);
        assert_eq!(Layout::parse(&f), None);
    }

    fn ipv6_udp(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8 + payload];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let ip = &mut f[14..54];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        ip[6] = PROTO_UDP;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        ip[24..40].copy_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        let udp = &mut f[54..62];
        udp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        udp[2..4].copy_from_slice(&5001u16.to_be_bytes());
        udp[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        for (i, b) in f[62..].iter_mut().enumerate() {
            *b = (i * 7 % 256) as u8;
        }
        f
    }

    fn udp6_ok(seg: &[u8]) -> bool {
        let mut copy = seg.to_vec();
        let given = u16::from_be_bytes([seg[60], seg[61]]);
        let l = Layout::parse(&copy).unwrap();
        fill_l4_checksum(&mut copy, &l);
        given != 0
            && given == u16::from_be_bytes([copy[60], copy[61]])
            && fold(sum(0, &seg[22..54]) + 17 + (seg.len() - 54) as u64 + sum(0, &seg[54..]))
                == 0xffff
    }

    #[test]
    fn segments_a_udp_l4_super_frame_over_ipv6() {
        let f = ipv6_udp(3000);
        let mut out = Segments::default();
        make_plain(&f, header(1, 5, 1400), &mut out).unwrap();
        assert_eq!(out.len(), 3);
        for (i, want) in [1400usize, 1400, 200].into_iter().enumerate() {
            let seg = out.get(i);
            assert_eq!(seg.len(), 62 + want);
            assert_eq!(
                usize::from(u16::from_be_bytes([seg[18], seg[19]])),
                8 + want
            );
            assert_eq!(
                usize::from(u16::from_be_bytes([seg[58], seg[59]])),
                8 + want
            );
            assert!(udp6_ok(seg), "segment {i}: UDP checksum");
            assert_eq!(&seg[62..], &f[62 + 1400 * i..62 + 1400 * i + want]);
        }
    }

    #[test]
    fn segments_a_udp_l4_super_frame_over_ipv4() {
        let mut f = ipv4_tcp(0, 9, 0, 0);
        // Rewrite as UDP: 8-byte header, 2500 bytes of payload.
        f.truncate(34);
        f[23] = PROTO_UDP;
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 0, 0, 0]);
        f.extend((0..2500).map(|i| i as u8));
        put16(&mut f, 16, (20 + 8 + 2500) as u16);
        put16(&mut f, 38, 8 + 2500);
        let mut out = Segments::default();
        make_plain(&f, header(1, 5, 1472), &mut out).unwrap();
        assert_eq!(out.len(), 2);
        for i in 0..2 {
            let ip = ipv4(out.get(i));
            assert!(ip.verify_checksum());
            assert_eq!(ip.ident(), 9 + i as u16);
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        }
        assert_eq!(out.get(0).len(), 14 + 20 + 8 + 1472);
        assert_eq!(out.get(1).len(), 14 + 20 + 8 + 1028);
    }

    #[test]
    fn segments_a_tcpv6_super_frame() {
        let mut f = ipv6_udp(0);
        f.truncate(54);
        f[20] = PROTO_TCP;
        let mut tcp = [0u8; 20];
        tcp[4..8].copy_from_slice(&100u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f.extend_from_slice(&tcp);
        f.extend((0..2000).map(|i| (i / 3) as u8));
        put16(&mut f, 18, 2020);
        let mut out = Segments::default();
        make_plain(&f, header(1, 4, 1440), &mut out).unwrap();
        assert_eq!(out.len(), 2);
        let seq = |s: &[u8]| u32::from_be_bytes(s[58..62].try_into().unwrap());
        assert_eq!(seq(out.get(0)), 100);
        assert_eq!(seq(out.get(1)), 1540);
        assert_eq!(out.get(0)[67], 0x10, "PSH only on the last");
        assert_eq!(out.get(1)[67], 0x18);
        for i in 0..2 {
            let s = out.get(i);
            let total = sum(0, &s[22..54]) + 6 + (s.len() - 54) as u64 + sum(0, &s[54..]);
            assert_eq!(fold(total), 0xffff, "segment {i}: TCP checksum");
            assert_eq!(
                usize::from(u16::from_be_bytes([s[18], s[19]])),
                s.len() - 54
            );
        }
    }

    #[test]
    fn refuses_offload_state_the_frame_does_not_match() {
        let f = ipv4_tcp(3000, 1, 1, 0x10);
        let mut out = Segments::default();
        // A TCPv6 super-frame that is IPv4, a UDP one that is TCP.
        assert_eq!(
            make_plain(&f, header(1, 4, 1000), &mut out),
            Err(OffloadError::BadGso)
        );
        assert_eq!(
            make_plain(&f, header(1, 5, 1000), &mut out),
            Err(OffloadError::BadGso)
        );
        assert_eq!(
            make_plain(&f, header(1, 1, 0), &mut out),
            Err(OffloadError::BadGso)
        );
        assert_eq!(
            make_plain(&f[..20], header(1, 0, 0), &mut out),
            Err(OffloadError::NotL4)
        );
        assert_eq!(
            transmit_header(header(1, 4, 1000), &f),
            Err(OffloadError::BadGso)
        );
        assert!(out.is_empty(), "nothing half-made is left behind");
    }

    #[test]
    fn rederives_the_header_from_the_frame() {
        let f = ipv4_tcp(3000, 1, 1, 0x10);
        // A header whose layout fields are stale (as if the module had
        // changed the frame): they are recomputed; DATA_VALID is dropped.
        let mut stale = header(3, 1, 1448);
        stale.set_layout(10, 20, 4);
        let h = transmit_header(stale, &f).unwrap();
        assert_eq!(h, {
            let mut want = header(1, 1, 1448);
            want.set_layout(66, 34, 16);
            want
        });
        assert_eq!(transmit_header(VnetHeader::NONE, &f), Ok(VnetHeader::NONE));
    }
}
