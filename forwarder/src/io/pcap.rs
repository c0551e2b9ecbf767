//! The `pcap` backend and plain pcap reader/writer, for tests and
//! `lbfwd replay`.
//!
//! Classic libpcap files only (not pcapng), written by hand: a 24-byte
//! global header, then per packet a 16-byte record header and the captured
//! bytes. The reader accepts both byte orders and both the microsecond
//! (`0xa1b2c3d4`) and nanosecond (`0xa1b23c4d`) magics, and only
//! `LINKTYPE_ETHERNET` (1); a truncated or malformed file is reported with
//! its name and the byte offset of the bad record. The writer writes
//! little-endian microsecond files, `LINKTYPE_ETHERNET`, snaplen 65535.
//!
//! As a backend, [`PcapQueue`] receives the frames of an input file (one per
//! slot, each with [`HEADROOM`] in front) and writes every transmitted frame
//! to an output file; frames the pipeline passes to the host may go to a
//! third file.

use super::{Disposition, IoError, QueueStats, WorkerQueue};
use crate::frame::{Frame, HEADROOM};
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snap length the writer declares.
pub const SNAPLEN: u32 = 65_535;
/// Largest record the reader accepts (bigger means a corrupt file).
pub const MAX_RECORD: u32 = 262_144;

const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const MAGIC_NANO: u32 = 0xa1b2_3c4d;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Errors reading or writing a pcap file.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be opened, read or written.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a classic pcap file.
    #[error(
        "{path}: not a pcap file (magic {magic:#010x}; pcapng and other formats are not supported)"
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, read as little-endian.
        magic: u32,
    },
    /// The link type is not Ethernet.
    #[error("{path}: link type {linktype} is not supported (only LINKTYPE_ETHERNET = 1)")]
    LinkType {
        /// The file.
        path: PathBuf,
        /// The file's link type.
        linktype: u32,
    },
    /// The file ends inside a header or a packet.
    #[error("{path}: truncated {what} at byte offset {offset}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// "global header", "record header" or "packet data".
        what: &'static str,
        /// Offset of the start of the truncated part.
        offset: u64,
    },
    /// A record header is impossible.
    #[error("{path}: bad record at byte offset {offset}: {why}")]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// Offset of the record header.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A frame is too large to be written as one record.
    #[error("{path}: frame of {len} bytes is larger than the snap length {SNAPLEN}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The frame's length.
        len: usize,
    },
}

impl From<PcapError> for IoError {
    fn from(e: PcapError) -> Self {
        IoError::Backend(Box::new(e))
    }
}

/// Timestamp resolution of a pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Microseconds (magic 0xa1b2c3d4).
    Micro,
    /// Nanoseconds (magic 0xa1b23c4d).
    Nano,
}

/// One packet record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Capture time in nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// Original length on the wire (>= the captured bytes).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Reads a classic pcap file record by record, into one reused buffer.
pub struct PcapReader<R = BufReader<File>> {
    input: R,
    path: PathBuf,
    big_endian: bool,
    resolution: Resolution,
    snaplen: u32,
    offset: u64,
    buf: Vec<u8>,
}

impl PcapReader {
    /// Opens `path` and checks its global header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| PcapError::Io {
            path: path.to_path_buf(),
            what: "cannot open",
            source,
        })?;
        PcapReader::new(BufReader::with_capacity(1 << 16, file), path)
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads the global header from `input`; `path` names it in errors.
    pub fn new(mut input: R, path: impl AsRef<Path>) -> Result<Self, PcapError> {
        let path = path.as_ref().to_path_buf();
        let mut header = [0u8; GLOBAL_HEADER_LEN];
        let got = read_full(&mut input, &mut header).map_err(|source| PcapError::Io {
            path: path.clone(),
            what: "cannot read",
            source,
        })?;
        if got < 4 {
            return Err(PcapError::Truncated {
                path,
                what: "global header",
                offset: 0,
            });
        }
        let magic_le = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let magic_be = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes"));
        let (big_endian, resolution) = match (magic_le, magic_be) {
            (MAGIC_MICRO, _) => (false, Resolution::Micro),
            (MAGIC_NANO, _) => (false, Resolution::Nano),
            (_, MAGIC_MICRO) => (true, Resolution::Micro),
            (_, MAGIC_NANO) => (true, Resolution::Nano),
            _ => {
                return Err(PcapError::BadMagic {
                    path,
                    magic: magic_le,
                })
            }
        };
        if got < GLOBAL_HEADER_LEN {
            return Err(PcapError::Truncated {
                path,
                what: "global header",
                offset: 0,
            });
        }
        let word = |i: usize| {
            let b: [u8; 4] = header[i..i + 4].try_into().expect("4 bytes");
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let snaplen = word(16);
        // The upper bits of the link-type field may carry FCS information.
        let linktype = word(20) & 0x0fff_ffff;
        if linktype != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType { path, linktype });
        }
        Ok(PcapReader {
            input,
            path,
            big_endian,
            resolution,
            snaplen,
            offset: GLOBAL_HEADER_LEN as u64,
            buf: Vec::with_capacity(2048),
        })
    }

    /// The file's timestamp resolution.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// True when the file is big-endian.
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// The snap length the file declares.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The next record; `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, PcapError> {
        let start = self.offset;
        let mut header = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.input, &mut header).map_err(|source| PcapError::Io {
            path: self.path.clone(),
            what: "cannot read",
            source,
        })?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            return Err(PcapError::Truncated {
                path: self.path.clone(),
                what: "record header",
                offset: start,
            });
        }
        let word = |i: usize| {
            let b: [u8; 4] = header[i..i + 4].try_into().expect("4 bytes");
            if self.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (secs, frac, incl_len, orig_len) = (word(0), word(4), word(8), word(12));
        let frac_limit = match self.resolution {
            Resolution::Micro => 1_000_000,
            Resolution::Nano => 1_000_000_000,
        };
        if frac >= frac_limit {
            return Err(PcapError::BadRecord {
                path: self.path.clone(),
                offset: start,
                why: format!("sub-second timestamp {frac} out of range"),
            });
        }
        if incl_len > MAX_RECORD {
            return Err(PcapError::BadRecord {
                path: self.path.clone(),
                offset: start,
                why: format!("captured length {incl_len} is over {MAX_RECORD}"),
            });
        }
        self.buf.resize(incl_len as usize, 0);
        let got = read_full(&mut self.input, &mut self.buf).map_err(|source| PcapError::Io {
            path: self.path.clone(),
            what: "cannot read",
            source,
        })?;
        if got < incl_len as usize {
            return Err(PcapError::Truncated {
                path: self.path.clone(),
                what: "packet data",
                offset: start + RECORD_HEADER_LEN as u64,
            });
        }
        self.offset = start + RECORD_HEADER_LEN as u64 + u64::from(incl_len);
        let timestamp_ns = u64::from(secs) * 1_000_000_000
            + match self.resolution {
                Resolution::Micro => u64::from(frac) * 1_000,
                Resolution::Nano => u64::from(frac),
            };
        Ok(Some(Record {
            timestamp_ns,
            orig_len: orig_len.max(incl_len),
            data: &self.buf,
        }))
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes a classic pcap file: little-endian, microseconds,
/// `LINKTYPE_ETHERNET`, snaplen 65535.
pub struct PcapWriter<W: Write = BufWriter<File>> {
    output: W,
    path: PathBuf,
}

impl PcapWriter {
    /// Creates (or truncates) `path` and writes the global header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| PcapError::Io {
            path: path.to_path_buf(),
            what: "cannot create",
            source,
        })?;
        PcapWriter::new(BufWriter::with_capacity(1 << 16, file), path)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header to `output`; `path` names it in errors.
    pub fn new(mut output: W, path: impl AsRef<Path>) -> Result<Self, PcapError> {
        let path = path.as_ref().to_path_buf();
        let mut header = [0u8; GLOBAL_HEADER_LEN];
        header[0..4].copy_from_slice(&MAGIC_MICRO.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        output.write_all(&header).map_err(|source| PcapError::Io {
            path: path.clone(),
            what: "cannot write",
            source,
        })?;
        Ok(PcapWriter { output, path })
    }

    /// Appends one frame captured at `timestamp_ns` (ns since the epoch).
    pub fn write(&mut self, timestamp_ns: u64, frame: &[u8]) -> Result<(), PcapError> {
        if frame.len() > SNAPLEN as usize {
            return Err(PcapError::TooLarge {
                path: self.path.clone(),
                len: frame.len(),
            });
        }
        let mut header = [0u8; RECORD_HEADER_LEN];
        let secs = (timestamp_ns / 1_000_000_000) as u32;
        let micros = ((timestamp_ns % 1_000_000_000) / 1_000) as u32;
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&micros.to_le_bytes());
        header[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.output
            .write_all(&header)
            .and_then(|()| self.output.write_all(frame))
            .map_err(|source| PcapError::Io {
                path: self.path.clone(),
                what: "cannot write",
                source,
            })
    }

    /// Flushes buffered records to the file.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.output.flush().map_err(|source| PcapError::Io {
            path: self.path.clone(),
            what: "cannot write",
            source,
        })
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, PcapError> {
        self.flush()?;
        Ok(self.output)
    }
}

/// Reads a whole pcap file into memory: `(timestamp_ns, frame)` pairs.
pub fn read_all(path: impl AsRef<Path>) -> Result<Vec<(u64, Vec<u8>)>, PcapError> {
    let mut reader = PcapReader::open(path)?;
    let mut out = Vec::new();
    while let Some(record) = reader.next_record()? {
        out.push((record.timestamp_ns, record.data.to_vec()));
    }
    Ok(out)
}

/// Writes `frames` to a new pcap file at `path`.
pub fn write_all<'a>(
    path: impl AsRef<Path>,
    frames: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<(), PcapError> {
    let mut writer = PcapWriter::create(path)?;
    for (timestamp_ns, frame) in frames {
        writer.write(timestamp_ns, frame)?;
    }
    writer.flush()
}

/// The pcap backend: frames of an input file in, transmitted frames to an
/// output file. The input is read record by record (one record per poll
/// slot), so a file of any size streams through.
pub struct PcapQueue {
    reader: PcapReader,
    tx: PcapWriter,
    host: Option<PcapWriter>,
    /// Receive buffer: HEADROOM, then room for the largest record.
    buf: Vec<u8>,
    /// Timestamp of the frame being processed (tx frames keep it).
    current_ts: u64,
    /// Frames written to the output since the last flush.
    pending: usize,
    done: bool,
    stats: QueueStats,
}

impl PcapQueue {
    /// Reads frames from `input`, writes transmitted frames to `output` and,
    /// when given, frames passed to the host to `host_output`.
    pub fn open(
        input: impl AsRef<Path>,
        output: impl AsRef<Path>,
        host_output: Option<&Path>,
    ) -> Result<Self, IoError> {
        let reader = PcapReader::open(input)?;
        let tx = PcapWriter::create(output)?;
        let host = host_output.map(PcapWriter::create).transpose()?;
        Ok(PcapQueue {
            reader,
            tx,
            host,
            buf: vec![0u8; HEADROOM + MAX_RECORD as usize],
            current_ts: 0,
            pending: 0,
            done: false,
            stats: QueueStats::default(),
        })
    }

    /// True once every frame of the input file was received.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl WorkerQueue for PcapQueue {
    fn poll<F>(&mut self, burst: usize, mut process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let mut received = 0;
        while received < burst && !self.done {
            let Some(record) = self.reader.next_record()? else {
                self.done = true;
                break;
            };
            let len = record.data.len();
            self.current_ts = record.timestamp_ns;
            self.buf[HEADROOM..HEADROOM + len].copy_from_slice(record.data);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            received += 1;
            let mut frame = Frame::new(&mut self.buf, HEADROOM, len);
            match process(&mut frame) {
                Disposition::Tx => {
                    let data = frame.data();
                    match self.tx.write(self.current_ts, data) {
                        Ok(()) => {
                            self.stats.tx_packets += 1;
                            self.stats.tx_bytes += data.len() as u64;
                            self.pending += 1;
                        }
                        Err(PcapError::TooLarge { .. }) => self.stats.tx_dropped += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
                Disposition::Host => {
                    self.stats.host_packets += 1;
                    if let Some(host) = &mut self.host {
                        host.write(self.current_ts, frame.data())?;
                    }
                }
                Disposition::Drop => self.stats.freed += 1,
            }
        }
        Ok(received)
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        match self.tx.write(self.current_ts, frame) {
            Ok(()) => {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += frame.len() as u64;
                self.pending += 1;
                Ok(true)
            }
            Err(PcapError::TooLarge { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn tx_pending(&self) -> usize {
        self.pending
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if self.pending > 0 {
            self.tx.flush()?;
            self.pending = 0;
        }
        if let Some(host) = &mut self.host {
            host.flush()?;
        }
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lbfwd-pcap-{}-{name}", std::process::id()))
    }

    /// A pcap file by hand, in either byte order and resolution.
    fn handmade(
        big_endian: bool,
        nano: bool,
        linktype: u32,
        records: &[(u32, u32, &[u8])],
    ) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let h = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w(if nano { MAGIC_NANO } else { MAGIC_MICRO }));
        out.extend_from_slice(&h(2));
        out.extend_from_slice(&h(4));
        out.extend_from_slice(&w(0));
        out.extend_from_slice(&w(0));
        out.extend_from_slice(&w(65535));
        out.extend_from_slice(&w(linktype));
        for (secs, frac, data) in records {
            out.extend_from_slice(&w(*secs));
            out.extend_from_slice(&w(*frac));
            out.extend_from_slice(&w(data.len() as u32));
            out.extend_from_slice(&w(data.len() as u32 + 4));
            out.extend_from_slice(data);
        }
        out
    }

    fn read_bytes(bytes: Vec<u8>) -> Result<Vec<(u64, u32, Vec<u8>)>, PcapError> {
        let mut r = PcapReader::new(Cursor::new(bytes), "test.pcap")?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push((rec.timestamp_ns, rec.orig_len, rec.data.to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn reads_all_four_magic_variants() {
        for big in [false, true] {
            for nano in [false, true] {
                let bytes = handmade(big, nano, 1, &[(10, 5, b"abc"), (11, 999, b"")]);
                let recs = read_bytes(bytes).unwrap();
                let unit = if nano { 1 } else { 1_000 };
                assert_eq!(
                    recs,
                    vec![
                        (10_000_000_000 + 5 * unit, 7, b"abc".to_vec()),
                        (11_000_000_000 + 999 * unit, 4, vec![]),
                    ],
                    "big_endian={big} nano={nano}"
                );
            }
        }
    }

    #[test]
    fn round_trip_through_a_file() {
        let path = tmp("roundtrip.pcap");
        let frames: Vec<(u64, Vec<u8>)> = (0..50u8)
            .map(|i| {
                (
                    1_700_000_000_123_456_000 + u64::from(i) * 1_000,
                    vec![i; 14 + i as usize],
                )
            })
            .collect();
        write_all(&path, frames.iter().map(|(t, f)| (*t, f.as_slice()))).unwrap();
        let back = read_all(&path).unwrap();
        assert_eq!(back, frames);
        let r = PcapReader::open(&path).unwrap();
        assert_eq!(r.resolution(), Resolution::Micro);
        assert!(!r.is_big_endian());
        assert_eq!(r.snaplen(), SNAPLEN);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn truncated_and_bad_files_say_where() {
        let good = handmade(false, false, 1, &[(1, 0, b"0123456789")]);
        // Cut inside the packet data: the error names the data offset (24 + 16).
        let err = read_bytes(good[..good.len() - 3].to_vec()).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Truncated {
                    what: "packet data",
                    offset: 40,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("test.pcap"), "{err}");
        assert!(err.to_string().contains("offset 40"), "{err}");
        // Cut inside the record header.
        let err = read_bytes(good[..30].to_vec()).unwrap_err();
        assert!(matches!(
            err,
            PcapError::Truncated {
                what: "record header",
                offset: 24,
                ..
            }
        ));
        // Cut inside the global header.
        let err = read_bytes(good[..10].to_vec()).unwrap_err();
        assert!(matches!(
            err,
            PcapError::Truncated {
                what: "global header",
                ..
            }
        ));
        // Not pcap (pcapng section header block).
        let err = read_bytes(vec![0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("not a pcap file"), "{err}");
        // Wrong link type (raw IP).
        let err = read_bytes(handmade(true, false, 101, &[])).unwrap_err();
        assert!(err.to_string().contains("link type 101"), "{err}");
        // Impossible record length.
        let mut bad = handmade(false, false, 1, &[(1, 0, b"x")]);
        bad[24 + 8..24 + 12].copy_from_slice(&(MAX_RECORD + 1).to_le_bytes());
        let err = read_bytes(bad).unwrap_err();
        assert!(err.to_string().contains("byte offset 24"), "{err}");
        // Microseconds out of range.
        let err = read_bytes(handmade(false, false, 1, &[(1, 1_000_000, b"x")])).unwrap_err();
        assert!(err.to_string().contains("sub-second"), "{err}");
        // Missing file.
        let err = PcapReader::open("/nonexistent/lbfwd.pcap").err().unwrap();
        assert!(err.to_string().contains("/nonexistent/lbfwd.pcap"), "{err}");
    }

    #[test]
    fn writer_refuses_frames_over_the_snaplen() {
        let mut w = PcapWriter::new(Vec::new(), "mem.pcap").unwrap();
        let err = w.write(0, &vec![0u8; SNAPLEN as usize + 1]).unwrap_err();
        assert!(err.to_string().contains("snap length"), "{err}");
        w.write(0, &[1, 2, 3]).unwrap();
        let bytes = w.into_inner().unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 3);
    }

    #[test]
    fn backend_reads_processes_and_writes() {
        let input = tmp("in.pcap");
        let output = tmp("out.pcap");
        let host = tmp("host.pcap");
        let frames: Vec<(u64, Vec<u8>)> = (0..40u8)
            .map(|i| (u64::from(i) * 1_000, vec![i; 60]))
            .collect();
        write_all(&input, frames.iter().map(|(t, f)| (*t, f.as_slice()))).unwrap();
        let mut q = PcapQueue::open(&input, &output, Some(host.as_path())).unwrap();
        let mut total = 0;
        while !q.is_done() {
            total += q
                .poll(16, |f| {
                    assert!(f.headroom() >= HEADROOM);
                    match f.data()[0] % 3 {
                        0 => {
                            assert!(f.adjust_head(-2));
                            f.data_mut()[..2].copy_from_slice(b"EN");
                            Disposition::Tx
                        }
                        1 => Disposition::Host,
                        _ => Disposition::Drop,
                    }
                })
                .unwrap();
        }
        assert!(q.send_copy(b"extra").unwrap());
        q.flush().unwrap();
        assert_eq!(total, 40);
        let s = q.stats();
        assert_eq!(
            (s.rx_packets, s.tx_packets, s.host_packets, s.freed),
            (40, 15, 13, 13)
        );
        drop(q);
        let out = read_all(&output).unwrap();
        assert_eq!(out.len(), 15);
        assert_eq!(out[1].0, 3_000);
        assert_eq!(&out[1].1[..3], b"EN\x03");
        assert_eq!(out[14].1, b"extra");
        assert_eq!(read_all(&host).unwrap().len(), 13);
        for p in [input, output, host] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
