//! Arbitrary bytes as a capture file: read every frame and decode it. Neither may
//! panic, and what the reader returns must be consistent with the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpfr_wire::capture::CaptureReader;
use tcpfr_wire::decode::decode;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_reader(Box::new(std::io::Cursor::new(data.to_vec())), "fuzz") else {
        return;
    };
    let mut last_number = 0;
    let mut last_offset = None;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                assert!(frame.number > last_number, "frame numbers go up");
                assert!(last_offset.is_none_or(|o| frame.offset > o), "offsets go up");
                assert!(frame.offset as usize + frame.data.len() <= data.len(), "frame inside the input");
                last_number = frame.number;
                last_offset = Some(frame.offset);
                if let Ok(seg) = decode(frame.linktype, frame.data, frame.orig_len) {
                    assert!(seg.header_len >= 20);
                    assert!(seg.seglen as usize <= (frame.orig_len as usize).max(frame.data.len()));
                }
            }
            Ok(None) => break,
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("fuzz"), "errors name the file: {msg}");
                break;
            }
        }
    }
    assert!(reader.bytes_read() <= data.len() as u64);
    assert!(reader.warnings().len() as u64 <= reader.warning_count());
    assert!(matches!(reader.next_frame(), Ok(None)), "an ended reader stays ended");
});
