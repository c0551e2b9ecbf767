//! The datagrams appliances exchange: a batch of exception records, with an
//! HMAC-SHA256 over the whole when a key is configured.
//!
//! ```text
//! 0..4   magic "LBXS"
//! 4      version (1)
//! 5      flags: bit 0 = a 32-byte HMAC-SHA256 tag follows the records;
//!        bit 1 = hello: the sender (re)started, send it every exception now
//! 6..8   record count (big endian)
//! 8..    records, 58 bytes each:
//!          source address 16, destination address 16 (IPv4-mapped for IPv4),
//!          network (VNI) 4, source port 2, destination port 2 (big endian),
//!          protocol 1, reserved 1 (0),
//!          target underlay 16 (IPv4-mapped for IPv4)
//! end    tag (flags bit 0): HMAC-SHA256(key, every byte before it)
//! ```

use super::Exception;
use crate::flow::FlowKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"LBXS";
/// The format version.
pub const VERSION: u8 = 1;
/// Header bytes.
pub const HEADER: usize = 8;
/// Bytes of one record.
pub const RECORD: usize = 58;
/// Bytes of the tag.
pub const TAG: usize = 32;
/// Records per datagram (keeps a tagged datagram under 1400 bytes, below
/// any underlay MTU).
pub const RECORDS_PER_DATAGRAM: usize = 23;
/// Largest datagram.
pub const MAX_DATAGRAM: usize = HEADER + RECORDS_PER_DATAGRAM * RECORD + TAG;

const FLAG_TAGGED: u8 = 1;
const FLAG_HELLO: u8 = 2;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not an exception datagram (magic, version or length wrong).
    #[error("not an lbfwd exception datagram of version {VERSION}")]
    Malformed,
    /// A key is configured but the datagram carries no tag, or a wrong one.
    #[error("missing or wrong HMAC tag")]
    BadTag,
    /// No key is configured but the datagram is tagged.
    #[error("tagged datagram, but no [sync] key is configured")]
    UnexpectedTag,
}

/// Writes one datagram of `records` (at most [`RECORDS_PER_DATAGRAM`]) into
/// `out`; returns its length.
pub fn encode(records: &[Exception], key: Option<&[u8]>, out: &mut [u8; MAX_DATAGRAM]) -> usize {
    encode_flagged(records, key, 0, out)
}

/// Writes a hello (no records): the sender just started and asks its peers
/// for every exception they have at once.
pub fn encode_hello(key: Option<&[u8]>, out: &mut [u8; MAX_DATAGRAM]) -> usize {
    encode_flagged(&[], key, FLAG_HELLO, out)
}

/// Whether a datagram that [`decode`] accepted is a hello.
pub fn is_hello(data: &[u8]) -> bool {
    data.get(5).is_some_and(|f| f & FLAG_HELLO != 0)
}

fn encode_flagged(
    records: &[Exception],
    key: Option<&[u8]>,
    flags: u8,
    out: &mut [u8; MAX_DATAGRAM],
) -> usize {
    let records = &records[..records.len().min(RECORDS_PER_DATAGRAM)];
    out[..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[5] = flags | if key.is_some() { FLAG_TAGGED } else { 0 };
    out[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    let mut at = HEADER;
    for e in records {
        let r = &mut out[at..at + RECORD];
        r[0..16].copy_from_slice(&e.flow.src);
        r[16..32].copy_from_slice(&e.flow.dst);
        r[32..36].copy_from_slice(&e.flow.network.to_be_bytes());
        r[36..38].copy_from_slice(&e.flow.src_port.to_be_bytes());
        r[38..40].copy_from_slice(&e.flow.dst_port.to_be_bytes());
        r[40] = e.flow.proto;
        r[41] = 0;
        r[42..58].copy_from_slice(&e.target);
        at += RECORD;
    }
    if let Some(key) = key {
        let tag = tag(key, &out[..at]);
        out[at..at + TAG].copy_from_slice(&tag);
        at += TAG;
    }
    at
}

fn tag(key: &[u8], data: &[u8]) -> [u8; TAG] {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Reads a datagram, checking its tag against `key`; hands every record to
/// `each`. Nothing is handed over unless the whole datagram is valid.
pub fn decode(
    data: &[u8],
    key: Option<&[u8]>,
    each: &mut dyn FnMut(Exception),
) -> Result<usize, WireError> {
    if data.len() < HEADER || data[..4] != MAGIC || data[4] != VERSION {
        return Err(WireError::Malformed);
    }
    let tagged = data[5] & FLAG_TAGGED != 0;
    if data[5] & !(FLAG_TAGGED | FLAG_HELLO) != 0 {
        return Err(WireError::Malformed);
    }
    let count = usize::from(u16::from_be_bytes([data[6], data[7]]));
    let body = HEADER + count * RECORD;
    let expected = body + if tagged { TAG } else { 0 };
    if data.len() != expected {
        return Err(WireError::Malformed);
    }
    match (key, tagged) {
        (Some(key), true) => {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
            mac.update(&data[..body]);
            // Constant-time comparison.
            mac.verify_slice(&data[body..])
                .map_err(|_| WireError::BadTag)?;
        }
        (Some(_), false) => return Err(WireError::BadTag),
        (None, true) => return Err(WireError::UnexpectedTag),
        (None, false) => {}
    }
    for r in data[HEADER..body].chunks_exact(RECORD) {
        let b16 = |at: usize| -> [u8; 16] { r[at..at + 16].try_into().unwrap_or_default() };
        each(Exception {
            flow: FlowKey::new(
                b16(0),
                b16(16),
                r[40],
                u16::from_be_bytes([r[36], r[37]]),
                u16::from_be_bytes([r[38], r[39]]),
                u32::from_be_bytes([r[32], r[33], r[34], r[35]]),
            ),
            target: b16(42),
        });
    }
    Ok(count)
}
