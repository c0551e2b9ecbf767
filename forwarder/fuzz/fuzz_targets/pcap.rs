//! Fuzz target `pcap`: the pcap reader `lbfwd replay` and the pcap backend
//! read their input with, on arbitrary files.
//!
//! Checks that nothing panics and every record is read to a clean end or a
//! located error (the file's name; an offset inside the file); that each
//! record's captured bytes are within the file and its original length is
//! at least the captured one; and that the records written back with the
//! pcap writer read back the same (timestamps to the microsecond).
#![no_main]

use lbfwd_forwarder::io::pcap::{PcapError, PcapReader, PcapWriter, SNAPLEN};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fn check_error(e: &PcapError, len: usize) {
    let shown = e.to_string();
    assert!(
        shown.starts_with("fuzz.pcap: "),
        "an error without the file: {shown}"
    );
    match e {
        PcapError::Truncated { offset, .. } | PcapError::BadRecord { offset, .. } => {
            assert!(
                *offset <= len as u64,
                "offset {offset} past the end ({len})"
            );
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut reader = match PcapReader::new(Cursor::new(data), "fuzz.pcap") {
        Ok(r) => r,
        Err(e) => return check_error(&e, data.len()),
    };
    let mut records = Vec::new();
    let mut total = 24usize;
    loop {
        match reader.next_record() {
            Ok(None) => break,
            Ok(Some(r)) => {
                total += 16 + r.data.len();
                assert!(total <= data.len(), "a record past the end of the file");
                assert!(r.orig_len as usize >= r.data.len());
                records.push((r.timestamp_ns, r.data.to_vec()));
            }
            Err(e) => {
                check_error(&e, data.len());
                break;
            }
        }
    }
    let mut writer = PcapWriter::new(Vec::new(), "out.pcap").expect("header into memory");
    let mut kept = Vec::new();
    for (ts, frame) in &records {
        // The writer keeps 32-bit seconds and snaplen-sized frames.
        if *ts / 1_000_000_000 > u64::from(u32::MAX) || frame.len() > SNAPLEN as usize {
            continue;
        }
        writer.write(*ts, frame).expect("a record into memory");
        kept.push((*ts / 1_000 * 1_000, frame.clone()));
    }
    let bytes = writer.into_inner().expect("flush into memory");
    let mut back = PcapReader::new(Cursor::new(&bytes[..]), "out.pcap").expect("own header");
    let mut read = Vec::new();
    while let Some(r) = back.next_record().expect("own records") {
        read.push((r.timestamp_ns, r.data.to_vec()));
    }
    assert!(read == kept, "written records read back differently");
});
