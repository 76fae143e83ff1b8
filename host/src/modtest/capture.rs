//! Capture files: the frames `nfvhost test` feeds a module (pcap or pcapng),
//! the frames it writes per port (pcap, nanosecond timestamps), and the
//! expected frames it compares them with.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, PcapError, TsResolution};

/// Most frames read from all captures of one run together.
pub const MAX_FRAMES: usize = 1_000_000;

/// Errors reading or writing a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("couldn't open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is neither a pcap nor a pcapng file (it starts with {magic:02x?})")]
    NotACapture { path: PathBuf, magic: Vec<u8> },
    #[error("{path}: frame {frame}: {source}")]
    Read {
        path: PathBuf,
        frame: usize,
        source: PcapError,
    },
    #[error("{path}: {what} is link type {link:?}; only Ethernet captures can be fed to a module")]
    NotEthernet {
        path: PathBuf,
        what: String,
        link: DataLink,
    },
    #[error("{path}: frame {frame} was captured truncated ({captured} of {original} bytes); capture with a larger snap length")]
    Truncated {
        path: PathBuf,
        frame: usize,
        captured: usize,
        original: u32,
    },
    #[error("{path}: more than {MAX_FRAMES} frames; split the capture")]
    TooMany { path: PathBuf },
    #[error("{path}: frame {frame} arrives on interface {interface}{}, which is not a port of the module (its ports: {ports}); name the capture's interfaces after the ports or give `--in PORT=FILE`", name.as_deref().map(|n| format!(" (`{n}`)")).unwrap_or_default())]
    UnknownInterface {
        path: PathBuf,
        frame: usize,
        interface: u32,
        name: Option<String>,
        ports: String,
    },
    #[error("couldn't write {path}: {source}")]
    Write { path: PathBuf, source: PcapError },
}

/// One frame of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedFrame {
    /// Its timestamp (since the Unix epoch, as captured).
    pub ts: Duration,
    /// Its pcapng interface id (0 in a pcap file).
    pub interface: u32,
    /// The interface's name, when a pcapng file gives one.
    pub interface_name: Option<String>,
    pub data: Vec<u8>,
}

/// Reads every frame of a pcap or pcapng file, in file order.
pub fn read(path: &Path) -> Result<Vec<CapturedFrame>, CaptureError> {
    let open_err = |source| CaptureError::Open {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(open_err)?);
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(open_err)?;
    let file = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d] => read_pcap(path, file),
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(path, file),
        _ => Err(CaptureError::NotACapture {
            path: path.to_owned(),
            magic: magic[..n].to_vec(),
        }),
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_pcap(path: &Path, file: impl Read) -> Result<Vec<CapturedFrame>, CaptureError> {
    let read_err = |frame, source| CaptureError::Read {
        path: path.to_owned(),
        frame,
        source,
    };
    let mut reader = PcapReader::new(file).map_err(|e| read_err(0, e))?;
    let link = reader.header().datalink;
    if link != DataLink::ETHERNET {
        return Err(CaptureError::NotEthernet {
            path: path.to_owned(),
            what: "the capture".into(),
            link,
        });
    }
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let number = frames.len() + 1;
        let packet = packet.map_err(|e| read_err(number, e))?;
        check_frame(path, number, packet.data.len(), packet.orig_len)?;
        frames.push(CapturedFrame {
            ts: packet.timestamp,
            interface: 0,
            interface_name: None,
            data: packet.data.into_owned(),
        });
    }
    Ok(frames)
}

fn read_pcapng(path: &Path, file: impl Read) -> Result<Vec<CapturedFrame>, CaptureError> {
    let read_err = |frame, source| CaptureError::Read {
        path: path.to_owned(),
        frame,
        source,
    };
    let mut reader = PcapNgReader::new(file).map_err(|e| read_err(0, e))?;
    let mut frames = Vec::new();
    // (link type, name) of each interface of the current section.
    let mut interfaces: Vec<(DataLink, Option<String>)> = Vec::new();
    while let Some(block) = reader.next_block() {
        let number = frames.len() + 1;
        let packet = match block.map_err(|e| read_err(number, e))? {
            Block::SectionHeader(_) => {
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                let name = idb.options.iter().find_map(|o| match o {
                    InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                });
                interfaces.push((idb.linktype, name));
                continue;
            }
            Block::EnhancedPacket(packet) => packet,
            _ => continue,
        };
        let (link, name) = interfaces
            .get(packet.interface_id as usize)
            .ok_or_else(|| read_err(number, PcapError::InvalidInterfaceId(packet.interface_id)))?;
        if *link != DataLink::ETHERNET {
            return Err(CaptureError::NotEthernet {
                path: path.to_owned(),
                what: format!("interface {}", packet.interface_id),
                link: *link,
            });
        }
        check_frame(path, number, packet.data.len(), packet.original_len)?;
        frames.push(CapturedFrame {
            ts: packet.timestamp,
            interface: packet.interface_id,
            interface_name: name.clone(),
            data: packet.data.into_owned(),
        });
    }
    Ok(frames)
}

fn check_frame(
    path: &Path,
    number: usize,
    captured: usize,
    original: u32,
) -> Result<(), CaptureError> {
    if number > MAX_FRAMES {
        return Err(CaptureError::TooMany {
            path: path.to_owned(),
        });
    }
    if (captured as u64) < u64::from(original) {
        return Err(CaptureError::Truncated {
            path: path.to_owned(),
            frame: number,
            captured,
            original,
        });
    }
    Ok(())
}

/// Writes `frames` (timestamp, bytes) as an Ethernet pcap file with
/// nanosecond timestamps.
pub fn write(path: &Path, frames: &[(Duration, Vec<u8>)]) -> Result<(), CaptureError> {
    let err = |source| CaptureError::Write {
        path: path.to_owned(),
        source,
    };
    let file = File::create(path).map_err(|e| err(PcapError::IoError(e)))?;
    let header = PcapHeader {
        ts_resolution: TsResolution::NanoSecond,
        endianness: pcap_file::Endianness::Little,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(BufWriter::new(file), header).map_err(err)?;
    for (ts, data) in frames {
        writer
            .write_packet(&PcapPacket::new(*ts, data.len() as u32, data))
            .map_err(err)?;
    }
    use std::io::Write as _;
    writer
        .into_writer()
        .flush()
        .map_err(|e| err(PcapError::IoError(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_round_trips_and_junk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.pcap");
        let frames = vec![
            (Duration::new(1, 5), vec![1u8; 60]),
            (Duration::new(2, 999_999_999), vec![2u8; 1514]),
        ];
        write(&p, &frames).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].ts, Duration::new(1, 5));
        assert_eq!(back[1].data, frames[1].1);
        assert_eq!(back[1].interface, 0);

        let junk = dir.path().join("junk.pcap");
        std::fs::write(&junk, b"hello").unwrap();
        let e = read(&junk).unwrap_err().to_string();
        assert!(e.contains("neither a pcap nor a pcapng"), "{e}");
        let empty = dir.path().join("empty.pcap");
        std::fs::write(&empty, b"").unwrap();
        assert!(read(&empty).is_err());
    }
}
