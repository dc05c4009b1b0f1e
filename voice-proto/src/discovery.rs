//! IP discovery over UDP (docs/protocol.md §6): the 74-byte request we send to learn our external
//! address, and the response. Timeouts and retries belong to the engine.
//!
//! ```text
//! | type u16 | length u16 = 70 | ssrc u32 | address: 64 bytes ASCII, NUL-padded | port u16 |
//! ```

use core::fmt::{self, Write as _};
use std::net::IpAddr;

/// Total length of a discovery request or response.
pub const DISCOVERY_PACKET_LEN: usize = 74;

/// `type` of a request.
const TYPE_REQUEST: u16 = 1;
/// `type` of a response.
const TYPE_RESPONSE: u16 = 2;
/// `length` field: bytes after the type and length fields.
const LENGTH_FIELD: u16 = 70;
/// Where the address field starts within the packet.
const ADDRESS_START: usize = 8;
/// Length of the NUL-padded address field; the port follows it.
const ADDRESS_LEN: usize = 64;
/// Longest error text we keep from a bad address.
const MAX_ERROR_TEXT: usize = 64;

/// The request for `ssrc`: `00 01 00 46`, SSRC BE, 64 zero bytes, `00 00` (docs/protocol.md C13).
pub fn discovery_request(ssrc: u32) -> [u8; DISCOVERY_PACKET_LEN] {
    build(TYPE_REQUEST, ssrc, None)
}

/// Server side (used by the loopback test server): a response carrying the observed address.
pub fn discovery_response(ssrc: u32, ip: IpAddr, port: u16) -> [u8; DISCOVERY_PACKET_LEN] {
    build(TYPE_RESPONSE, ssrc, Some((ip, port)))
}

fn build(kind: u16, ssrc: u32, observed: Option<(IpAddr, u16)>) -> [u8; DISCOVERY_PACKET_LEN] {
    let mut out = [0u8; DISCOVERY_PACKET_LEN];
    let [k0, k1, l0, l1, s0, s1, s2, s3, address @ .., p0, p1] = &mut out;
    [*k0, *k1] = kind.to_be_bytes();
    [*l0, *l1] = LENGTH_FIELD.to_be_bytes();
    [*s0, *s1, *s2, *s3] = ssrc.to_be_bytes();
    if let Some((ip, port)) = observed {
        [*p0, *p1] = port.to_be_bytes();
        // Keep the last byte as the NUL terminator. The longest IP text is 45 bytes, so the
        // writer never runs out of room.
        if let Some((_, text)) = address.split_last_mut() {
            let _ = write!(
                FieldWriter {
                    field: text,
                    len: 0
                },
                "{ip}"
            );
        }
    }
    out
}

/// `fmt::Write` into a fixed slice, without allocating.
struct FieldWriter<'a> {
    field: &'a mut [u8],
    len: usize,
}

impl fmt::Write for FieldWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.field.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Our external address as the voice server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredAddress {
    /// The SSRC the server echoed.
    pub ssrc: u32,
    /// External IP (Select Protocol `address`).
    pub ip: IpAddr,
    /// External UDP port (Select Protocol `port`).
    pub port: u16,
}

/// Parses a discovery response strictly: 74 bytes, type 2, length field 70, an IP address
/// (v4, or v6 text) up to the first NUL with only NULs after it, port u16 BE at offset 72.
pub fn parse_discovery_response(packet: &[u8]) -> Result<DiscoveredAddress, DiscoveryError> {
    let fields = Fields::parse(packet, TYPE_RESPONSE)?;
    let text_len = fields
        .address
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(fields.address.len());
    let (text, padding) = fields.address.split_at(text_len);
    if let Some(index) = padding.iter().position(|&byte| byte != 0) {
        return Err(DiscoveryError::GarbageAfterAddress {
            offset: ADDRESS_START + text_len + index,
        });
    }
    let ip = core::str::from_utf8(text)
        .ok()
        .filter(|text| text.is_ascii())
        .and_then(|text| text.parse::<IpAddr>().ok())
        .ok_or_else(|| DiscoveryError::BadAddress {
            text: String::from_utf8_lossy(text)
                .chars()
                .take(MAX_ERROR_TEXT)
                .collect(),
        })?;
    Ok(DiscoveredAddress {
        ssrc: fields.ssrc,
        ip,
        port: fields.port,
    })
}

/// Server side, strict: 74 bytes, type 1, length field 70. Returns the SSRC. The address and
/// port fields are not checked (clients send zeros, but nothing depends on it).
pub fn parse_discovery_request(packet: &[u8]) -> Result<u32, DiscoveryError> {
    Fields::parse(packet, TYPE_REQUEST).map(|fields| fields.ssrc)
}

/// The fixed fields of either direction, after the common checks.
struct Fields<'a> {
    ssrc: u32,
    address: &'a [u8; ADDRESS_LEN],
    port: u16,
}

impl<'a> Fields<'a> {
    fn parse(packet: &'a [u8], expected_type: u16) -> Result<Self, DiscoveryError> {
        let packet: &[u8; DISCOVERY_PACKET_LEN] =
            packet.try_into().map_err(|_| DiscoveryError::WrongLength {
                actual: packet.len(),
            })?;
        let [k0, k1, l0, l1, s0, s1, s2, s3, address @ .., p0, p1] = packet;
        let actual_type = u16::from_be_bytes([*k0, *k1]);
        if actual_type != expected_type {
            return Err(DiscoveryError::WrongType {
                expected: expected_type,
                actual: actual_type,
            });
        }
        let length = u16::from_be_bytes([*l0, *l1]);
        if length != LENGTH_FIELD {
            return Err(DiscoveryError::WrongLengthField { actual: length });
        }
        Ok(Self {
            ssrc: u32::from_be_bytes([*s0, *s1, *s2, *s3]),
            address,
            port: u16::from_be_bytes([*p0, *p1]),
        })
    }
}

/// Why a discovery packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Not 74 bytes long.
    #[error("discovery packet must be {DISCOVERY_PACKET_LEN} bytes, got {actual}")]
    WrongLength {
        /// Bytes received.
        actual: usize,
    },
    /// Request where a response was expected, or the other way round, or junk.
    #[error("discovery packet type must be {expected}, got {actual}")]
    WrongType {
        /// 1 (request) or 2 (response).
        expected: u16,
        /// The type field received.
        actual: u16,
    },
    /// The length field was not 70.
    #[error("discovery length field must be {LENGTH_FIELD}, got {actual}")]
    WrongLengthField {
        /// The length field received.
        actual: u16,
    },
    /// The address field did not hold an IP address in ASCII.
    #[error("discovery address must be an IP address in ASCII, got {text:?}")]
    BadAddress {
        /// The text up to the first NUL (lossy UTF-8, at most 64 characters).
        text: String,
    },
    /// A non-NUL byte after the NUL that ends the address.
    #[error(
        "discovery address must be followed only by NUL bytes, found a non-NUL at offset {offset}"
    )]
    GarbageAfterAddress {
        /// Offset of the first offending byte within the packet.
        offset: usize,
    },
}
