//! Zero-copy packet views and small owned representations of the headers a
//! network function reads and writes.
//!
//! # Views and the checked-once pattern
//!
//! Every header has a *view*, a thin wrapper `XxxPacket<T: AsRef<[u8]>>` over
//! any buffer: a `&[u8]` borrowed from a received frame, a `&mut [u8]` into
//! which a reply is written, or an owned array. The view copies nothing;
//! every getter reads the bytes at a named offset, every setter writes them.
//! Getters need `T: AsRef<[u8]>`; setters and `payload_mut` also need
//! `T: AsMut<[u8]>`.
//!
//! A view is created in one of two ways:
//!
//! * [`new_checked`](UdpPacket::new_checked) is for untrusted bytes. It checks
//!   the buffer length and every length field that an accessor depends on
//!   (IPv4 IHL and total length, the UDP length, the TCP data offset, ...)
//!   **once**, and returns a [`WireError`] that says what was needed and what
//!   there was. After it succeeds, no getter, setter or `payload()` call can
//!   panic — as long as the length fields themselves are not changed through
//!   a setter.
//! * [`new_unchecked`](UdpPacket::new_unchecked) skips the checks. Use it on a
//!   buffer you are about to fill (typically followed by `Repr::emit`), where
//!   you already know the buffer is large enough. Accessors on an unchecked
//!   view of a too-short buffer panic.
//!
//! Layers nest: the payload of one view is the buffer of the next.
//!
//! ```
//! use vnf_sdk::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket, WireError};
//!
//! fn udp_dst_port(frame: &[u8]) -> Result<Option<u16>, WireError> {
//!     let eth = EthernetFrame::new_checked(frame)?;
//!     if eth.ethertype() != EtherType::Ipv4 {
//!         return Ok(None);
//!     }
//!     let ip = Ipv4Packet::new_checked(eth.payload())?;
//!     if ip.protocol() != IpProtocol::Udp {
//!         return Ok(None);
//!     }
//!     let udp = UdpPacket::new_checked(ip.payload())?;
//!     Ok(Some(udp.dst_port()))
//! }
//! # assert!(udp_dst_port(&[0; 10]).is_err());
//! ```
//!
//! # Representations
//!
//! Each view has a small owned `Repr` (`EthernetRepr`, `ArpRepr`, `Ipv4Repr`,
//! `Ipv6Repr`, `Icmpv4Repr`, `UdpRepr`) holding the header's meaningful fields.
//! `Repr::parse(&view)` validates the semantics (for example, an IPv4 header
//! checksum), and `repr.emit(&mut view)` writes a header; `header_len()` and
//! `buffer_len()` say how many bytes that needs. `emit` panics if the buffer
//! is shorter than `buffer_len()`, so size the buffer first.
//!
//! # Checksums
//!
//! [`checksum`] holds the RFC 1071 Internet checksum, the IPv4 and IPv6
//! pseudo-header sums and RFC 1624 incremental updates for NAT and routing.
//! The views have `verify_checksum`/`fill_checksum`; UDP and TCP take the
//! source and destination addresses of the enclosing IP header (IPv4 or IPv6).

use core::fmt;

mod arp;
pub mod checksum;
mod ethernet;
mod icmpv4;
mod ipv4;
mod ipv6;
mod tcp;
mod udp;
pub mod vlan;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::PseudoHeader;
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{
    error_quote, Icmpv4DstUnreachable, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded,
};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::{UdpPacket, UdpRepr};
pub use vlan::VlanTag;

pub use core::net::{Ipv4Addr, Ipv6Addr};

/// Defines a `u8`/`u16` enum with named values and an `Unknown(raw)` variant,
/// with lossless `From` conversions in both directions.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $(
                $(#[$variant_attr:meta])*
                $variant:ident = $value:expr
            ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy)]
        pub enum $name {
            $(
                $(#[$variant_attr])*
                $variant
            ),*,
            /// A value without a name here; carries the raw value.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),*,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),*,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use enum_with_unknown;

enum_with_unknown! {
    /// The protocol carried in an IPv4 `protocol` or IPv6 `next header` field.
    pub enum IpProtocol(u8) {
        /// ICMP for IPv4.
        Icmp = 1,
        /// TCP.
        Tcp = 6,
        /// UDP.
        Udp = 17,
        /// ICMP for IPv6.
        Icmpv6 = 58,
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Icmpv6 => f.write_str("ICMPv6"),
            IpProtocol::Unknown(n) => write!(f, "protocol {n}"),
        }
    }
}

/// The protocol layer a [`WireError`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// An Ethernet II frame.
    Ethernet,
    /// An ARP packet.
    Arp,
    /// An IPv4 header.
    Ipv4,
    /// An IPv6 fixed header.
    Ipv6,
    /// An ICMPv4 message.
    Icmpv4,
    /// A UDP datagram.
    Udp,
    /// A TCP segment.
    Tcp,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "Ethernet",
            Layer::Arp => "ARP",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Icmpv4 => "ICMPv4",
            Layer::Udp => "UDP",
            Layer::Tcp => "TCP",
        })
    }
}

/// Why bytes could not be read as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the header (or than a length field in it)
    /// requires.
    Truncated {
        /// The layer being read.
        layer: Layer,
        /// Bytes required.
        required: usize,
        /// Bytes there were.
        len: usize,
    },
    /// The version field holds something other than this layer's version.
    BadVersion {
        /// The layer being read.
        layer: Layer,
        /// The version found.
        found: u8,
    },
    /// A header-length field (IPv4 IHL, TCP data offset) is shorter than the
    /// fixed header.
    BadHeaderLength {
        /// The layer being read.
        layer: Layer,
        /// The header length in bytes the field says.
        header_len: usize,
        /// The smallest valid header length in bytes.
        min: usize,
    },
    /// A total-length field (IPv4 total length, UDP length) is shorter than
    /// the header it includes.
    BadLength {
        /// The layer being read.
        layer: Layer,
        /// The length in bytes the field says.
        length: usize,
        /// The smallest valid length in bytes.
        min: usize,
    },
    /// The checksum does not match the contents.
    BadChecksum {
        /// The layer being read.
        layer: Layer,
    },
    /// A well-formed header that this code does not handle (for example ARP
    /// for a hardware type other than Ethernet, or a fragmented datagram).
    Unsupported {
        /// The layer being read.
        layer: Layer,
        /// What is not supported.
        what: &'static str,
    },
}

impl WireError {
    /// The layer the error refers to.
    pub fn layer(&self) -> Layer {
        match *self {
            WireError::Truncated { layer, .. }
            | WireError::BadVersion { layer, .. }
            | WireError::BadHeaderLength { layer, .. }
            | WireError::BadLength { layer, .. }
            | WireError::BadChecksum { layer }
            | WireError::Unsupported { layer, .. } => layer,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::Truncated {
                layer,
                required,
                len,
            } => write!(
                f,
                "{layer} truncated: {required} bytes required, but only {len} present"
            ),
            WireError::BadVersion { layer, found } => {
                write!(f, "{layer} header has version {found}")
            }
            WireError::BadHeaderLength {
                layer,
                header_len,
                min,
            } => write!(
                f,
                "{layer} header length field says {header_len} bytes, but the header needs at least {min}"
            ),
            WireError::BadLength { layer, length, min } => write!(
                f,
                "{layer} length field says {length} bytes, but at least {min} are required"
            ),
            WireError::BadChecksum { layer } => write!(f, "{layer} checksum mismatch"),
            WireError::Unsupported { layer, what } => write!(f, "{layer}: unsupported {what}"),
        }
    }
}

impl core::error::Error for WireError {}

/// Returns `Truncated` unless `len >= required`.
pub(crate) fn check_len(layer: Layer, required: usize, len: usize) -> Result<(), WireError> {
    if len < required {
        Err(WireError::Truncated {
            layer,
            required,
            len,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::string::ToString;

    #[test]
    fn error_messages_say_required_and_len() {
        let e = WireError::Truncated {
            layer: Layer::Udp,
            required: 8,
            len: 5,
        };
        assert_eq!(
            e.to_string(),
            "UDP truncated: 8 bytes required, but only 5 present"
        );
        assert_eq!(e.layer(), Layer::Udp);
        let e = WireError::BadHeaderLength {
            layer: Layer::Ipv4,
            header_len: 16,
            min: 20,
        };
        assert_eq!(
            e.to_string(),
            "IPv4 header length field says 16 bytes, but the header needs at least 20"
        );
    }

    #[test]
    fn ip_protocol_round_trips() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(raw)), raw);
        }
        assert_eq!(IpProtocol::from(17), IpProtocol::Udp);
        assert_eq!(IpProtocol::from(99), IpProtocol::Unknown(99));
    }
}
