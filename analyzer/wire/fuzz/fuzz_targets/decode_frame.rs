//! One frame straight into `decode`: the first byte picks the link type, the next two
//! adjust the wire length, the rest is the captured frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpfr_wire::decode::decode;

const LINKTYPES: [u32; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147];

fuzz_target!(|data: &[u8]| {
    let [sel, a, b, frame @ ..] = data else { return };
    let linktype = LINKTYPES[usize::from(*sel) % LINKTYPES.len()];
    let extra = u32::from(u16::from_be_bytes([*a, *b]));
    // The wire length: as captured, longer (a snaplen cut), or shorter (a broken file).
    let orig_len = match sel >> 6 {
        0 => frame.len() as u32,
        1 => frame.len() as u32 + extra,
        2 => extra,
        _ => u32::MAX - extra,
    };
    if let Ok(seg) = decode(linktype, frame, orig_len) {
        assert!(seg.header_len >= 20 && seg.header_len <= 60);
        assert!(seg.seglen as usize <= (orig_len as usize).max(frame.len()));
        assert_eq!(seg.flags & !0x0FFF, 0);
    }
});
