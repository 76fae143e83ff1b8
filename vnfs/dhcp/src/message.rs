//! BOOTP/DHCP messages (RFC 2131 section 2, RFC 2132): a zero-copy view with
//! an options iterator that never panics on hostile input, and a builder.

use std::net::Ipv4Addr;
use std::vec::Vec;

use vnf_sdk::wire::EthernetAddress;

/// UDP port of the server.
pub const SERVER_PORT: u16 = 67;
/// UDP port of the client.
pub const CLIENT_PORT: u16 = 68;
/// `op` of a client message.
pub const BOOTREQUEST: u8 = 1;
/// `op` of a server message.
pub const BOOTREPLY: u8 = 2;
/// `htype` of Ethernet.
pub const HTYPE_ETHERNET: u8 = 1;
/// The magic cookie in front of the options (RFC 2131 section 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The broadcast bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// Length of the fixed header, up to the magic cookie.
pub const FIXED_LEN: usize = 236;
/// Offset of the options (after the cookie).
pub const OPTIONS_OFFSET: usize = FIXED_LEN + 4;
/// Smallest message a BOOTP relay or client must accept (RFC 1542 2.1);
/// replies are padded to it.
pub const MIN_MESSAGE_LEN: usize = 300;

mod field {
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: usize = 4;
    pub const SECS: usize = 8;
    pub const FLAGS: usize = 10;
    pub const CIADDR: usize = 12;
    pub const YIADDR: usize = 16;
    pub const SIADDR: usize = 20;
    pub const GIADDR: usize = 24;
    pub const CHADDR: usize = 28;
    pub const COOKIE: usize = 236;
}

/// Option codes used here (RFC 2132).
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const BROADCAST: u8 = 28;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    /// Any other value (lease query and friends).
    Other(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Other(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        match t {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Other(v) => v,
        }
    }
}

/// Why bytes are not an acceptable DHCP client message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed header plus magic cookie.
    Truncated,
    /// The magic cookie is wrong.
    BadCookie,
    /// An option's length runs past the end of the options.
    OptionOverrun {
        /// The option's code.
        code: u8,
    },
    /// `op` is not BOOTREQUEST.
    NotRequest,
    /// `htype`/`hlen` are not Ethernet's.
    NotEthernet,
    /// Option 53 is missing or not one byte long.
    NoMessageType,
    /// A known option has a length it cannot have.
    BadOptionLength {
        /// The option's code.
        code: u8,
    },
}

/// A view of a BOOTP/DHCP message (the UDP payload).
#[derive(Debug, Clone, Copy)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    /// Wraps `buffer` after checking it holds the fixed header and the magic
    /// cookie. Accessors cannot panic afterwards.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < OPTIONS_OFFSET {
            return Err(Error::Truncated);
        }
        if b[field::COOKIE..OPTIONS_OFFSET] != MAGIC_COOKIE {
            return Err(Error::BadCookie);
        }
        Ok(DhcpPacket { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn addr(&self, at: usize) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }

    /// `op`: 1 request, 2 reply.
    pub fn op(&self) -> u8 {
        self.b()[field::OP]
    }
    /// Hardware address type.
    pub fn htype(&self) -> u8 {
        self.b()[field::HTYPE]
    }
    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.b()[field::HLEN]
    }
    /// Relay hops.
    pub fn hops(&self) -> u8 {
        self.b()[field::HOPS]
    }
    /// Transaction id.
    pub fn xid(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        let b = self.b();
        u16::from_be_bytes([b[field::SECS], b[field::SECS + 1]])
    }
    /// Flags (bit 15: broadcast).
    pub fn flags(&self) -> u16 {
        let b = self.b();
        u16::from_be_bytes([b[field::FLAGS], b[field::FLAGS + 1]])
    }
    /// Client address (when the client has one).
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.addr(field::CIADDR)
    }
    /// "Your" address.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.addr(field::YIADDR)
    }
    /// Next server address.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.addr(field::SIADDR)
    }
    /// Relay agent address.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.addr(field::GIADDR)
    }
    /// The first six bytes of the client hardware address.
    pub fn chaddr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.b()[field::CHADDR..field::CHADDR + 6])
    }
    /// The raw options area (after the cookie).
    pub fn options_bytes(&self) -> &[u8] {
        &self.b()[OPTIONS_OFFSET..]
    }
    /// Iterates the options.
    pub fn options(&self) -> Options<'_> {
        Options::new(self.options_bytes())
    }
}

/// One option: its code and its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    /// The code.
    pub code: u8,
    /// The data (without code and length).
    pub data: &'a [u8],
}

/// Iterator over options. Pad options are skipped; it stops at End. An
/// option whose length runs past the end yields one `Err` and then stops.
/// Options ending without End are accepted.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Iterates the options in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<DhcpOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, after) = self.rest.split_first()?;
            match code {
                opt::PAD => self.rest = after,
                opt::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let Some((&len, data)) = after.split_first() else {
                        self.rest = &[];
                        return Some(Err(Error::OptionOverrun { code }));
                    };
                    let len = usize::from(len);
                    if data.len() < len {
                        self.rest = &[];
                        return Some(Err(Error::OptionOverrun { code }));
                    }
                    let (data, rest) = data.split_at(len);
                    self.rest = rest;
                    return Some(Ok(DhcpOption { code, data }));
                }
            }
        }
    }
}

fn addr_option(code: u8, data: &[u8]) -> Result<Ipv4Addr, Error> {
    <[u8; 4]>::try_from(data)
        .map(Ipv4Addr::from)
        .map_err(|_| Error::BadOptionLength { code })
}

/// A validated client message with the options the server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub message_type: MessageType,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub hops: u8,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: EthernetAddress,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// Parameter request list (option 55), in the client's order.
    pub parameters: Vec<u8>,
    /// Client identifier (option 61), echoed back (RFC 6842).
    pub client_id: Option<Vec<u8>>,
}

impl Request {
    /// Checks a message from a client and reads what the server needs.
    pub fn parse(bytes: &[u8]) -> Result<Request, Error> {
        let packet = DhcpPacket::new_checked(bytes)?;
        if packet.op() != BOOTREQUEST {
            return Err(Error::NotRequest);
        }
        if packet.htype() != HTYPE_ETHERNET || packet.hlen() != 6 {
            return Err(Error::NotEthernet);
        }
        let mut message_type = None;
        let mut requested_ip = None;
        let mut server_id = None;
        let mut parameters = Vec::new();
        let mut client_id = None;
        for option in packet.options() {
            let DhcpOption { code, data } = option?;
            match code {
                opt::MESSAGE_TYPE => match data {
                    [t] => message_type = Some(MessageType::from(*t)),
                    _ => return Err(Error::BadOptionLength { code }),
                },
                opt::REQUESTED_IP => requested_ip = Some(addr_option(code, data)?),
                opt::SERVER_ID => server_id = Some(addr_option(code, data)?),
                opt::PARAMETER_LIST => parameters.extend_from_slice(data),
                opt::CLIENT_ID if !data.is_empty() => client_id = Some(data.to_vec()),
                _ => {}
            }
        }
        Ok(Request {
            message_type: message_type.ok_or(Error::NoMessageType)?,
            xid: packet.xid(),
            secs: packet.secs(),
            flags: packet.flags(),
            hops: packet.hops(),
            ciaddr: packet.ciaddr(),
            giaddr: packet.giaddr(),
            chaddr: packet.chaddr(),
            requested_ip,
            server_id,
            parameters,
            client_id,
        })
    }

    /// Whether the client asked for a broadcast reply.
    pub fn broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }
}

/// Builds a BOOTREPLY message.
#[derive(Debug)]
pub struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    /// A reply to `req` of type `message_type`, with `yiaddr` and the fixed
    /// fields copied as RFC 2131 table 3 says (xid, flags, giaddr, chaddr).
    pub fn reply(
        req: &Request,
        message_type: MessageType,
        ciaddr: Ipv4Addr,
        yiaddr: Ipv4Addr,
    ) -> Builder {
        let mut buf = vec![0u8; OPTIONS_OFFSET];
        buf[field::OP] = BOOTREPLY;
        buf[field::HTYPE] = HTYPE_ETHERNET;
        buf[field::HLEN] = 6;
        buf[field::HOPS] = 0;
        buf[field::XID..field::XID + 4].copy_from_slice(&req.xid.to_be_bytes());
        buf[field::FLAGS..field::FLAGS + 2].copy_from_slice(&req.flags.to_be_bytes());
        buf[field::CIADDR..field::CIADDR + 4].copy_from_slice(&ciaddr.octets());
        buf[field::YIADDR..field::YIADDR + 4].copy_from_slice(&yiaddr.octets());
        buf[field::GIADDR..field::GIADDR + 4].copy_from_slice(&req.giaddr.octets());
        buf[field::CHADDR..field::CHADDR + 6].copy_from_slice(req.chaddr.as_bytes());
        buf[field::COOKIE..OPTIONS_OFFSET].copy_from_slice(&MAGIC_COOKIE);
        let mut b = Builder { buf };
        b.option(opt::MESSAGE_TYPE, &[u8::from(message_type)]);
        b
    }

    /// Appends an option; data longer than 255 bytes is split into several
    /// instances of the option (RFC 3396).
    pub fn option(&mut self, code: u8, data: &[u8]) -> &mut Self {
        if data.is_empty() {
            self.buf.extend_from_slice(&[code, 0]);
        }
        for chunk in data.chunks(255) {
            self.buf.push(code);
            self.buf.push(chunk.len() as u8);
            self.buf.extend_from_slice(chunk);
        }
        self
    }

    /// Appends an option holding addresses.
    pub fn addrs(&mut self, code: u8, addrs: &[Ipv4Addr]) -> &mut Self {
        let data: Vec<u8> = addrs.iter().flat_map(|a| a.octets()).collect();
        self.option(code, &data)
    }

    /// Appends an option holding a 32-bit number.
    pub fn u32(&mut self, code: u8, value: u32) -> &mut Self {
        self.option(code, &value.to_be_bytes())
    }

    /// Ends the options and pads to [`MIN_MESSAGE_LEN`].
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(opt::END);
        if self.buf.len() < MIN_MESSAGE_LEN {
            self.buf.resize(MIN_MESSAGE_LEN, opt::PAD);
        }
        self.buf
    }
}
