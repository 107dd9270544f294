//! Per-conversation TCP sequence analysis with tshark 4.0's meaning.
//!
//! People compare our wire counts with what Wireshark shows them, so the labels
//! (`tcp.analysis.retransmission`, `fast_retransmission`, `spurious_retransmission`,
//! `out_of_order`, `lost_segment`, `duplicate_ack`, …) follow
//! `tcp_analyze_sequence_number()` of Wireshark 4.0 (`epan/dissectors/packet-tcp.c`)
//! step by step, quirks included — 32-bit modular sequence comparisons, 0 meaning
//! "unset", unsigned time differences, the "-1" stored in the dup-ACK counter, the
//! 10000-segment cap on the unacked list. Counts are checked against the installed
//! tshark in the tests. Where later Wireshark releases changed the rules we keep 4.0's
//! (Debian 12 ships 4.0).
//!
//! Deliberate differences, all in the decoder's input rather than the rules here: IP
//! fragments are skipped rather than reassembled, and TCP inside ICMP errors is not
//! analysed (tshark does not analyse it either).
//!
//! Besides the labels, each conversation gets a summary: who opened it, how its
//! handshake ended (completed, refused by RST, no answer to SYNs), resets, and
//! retransmissions by kind.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ahash::AHashMap;

use crate::segment::{flags as f, TcpSegment};

/// Label bits (see [`Labels::bits`]); one frame can carry several.
pub mod label {
    /// `tcp.analysis.retransmission` without fast/spurious (tshark's plain
    /// "[TCP Retransmission]").
    pub const RETRANSMISSION: u32 = 1 << 0;
    /// `tcp.analysis.fast_retransmission`.
    pub const FAST_RETRANSMISSION: u32 = 1 << 1;
    /// `tcp.analysis.spurious_retransmission`.
    pub const SPURIOUS_RETRANSMISSION: u32 = 1 << 2;
    pub const OUT_OF_ORDER: u32 = 1 << 3;
    /// "Previous segment not captured".
    pub const LOST_SEGMENT: u32 = 1 << 4;
    /// "ACKed unseen segment".
    pub const ACK_LOST_SEGMENT: u32 = 1 << 5;
    pub const KEEP_ALIVE: u32 = 1 << 6;
    pub const KEEP_ALIVE_ACK: u32 = 1 << 7;
    pub const WINDOW_UPDATE: u32 = 1 << 8;
    pub const WINDOW_FULL: u32 = 1 << 9;
    pub const DUPLICATE_ACK: u32 = 1 << 10;
    pub const ZERO_WINDOW: u32 = 1 << 11;
    pub const ZERO_WINDOW_PROBE: u32 = 1 << 12;
    pub const ZERO_WINDOW_PROBE_ACK: u32 = 1 << 13;
    pub const REUSED_PORTS: u32 = 1 << 14;

    /// What tshark's `tcp.analysis.retransmission` filter matches: it adds the
    /// generic retransmission item to fast and spurious ones too.
    pub const ANY_RETRANSMISSION: u32 = RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION;

    /// (bit, tshark field name) for every label.
    pub const NAMES: [(u32, &str); 15] = [
        (RETRANSMISSION, "retransmission"),
        (FAST_RETRANSMISSION, "fast_retransmission"),
        (SPURIOUS_RETRANSMISSION, "spurious_retransmission"),
        (OUT_OF_ORDER, "out_of_order"),
        (LOST_SEGMENT, "lost_segment"),
        (ACK_LOST_SEGMENT, "ack_lost_segment"),
        (KEEP_ALIVE, "keep_alive"),
        (KEEP_ALIVE_ACK, "keep_alive_ack"),
        (WINDOW_UPDATE, "window_update"),
        (WINDOW_FULL, "window_full"),
        (DUPLICATE_ACK, "duplicate_ack"),
        (ZERO_WINDOW, "zero_window"),
        (ZERO_WINDOW_PROBE, "zero_window_probe"),
        (ZERO_WINDOW_PROBE_ACK, "zero_window_probe_ack"),
        (REUSED_PORTS, "reused_ports"),
    ];
}

/// Wireshark's cap on remembered unacked segments per direction
/// (`TCP_MAX_UNACKED_SEGMENTS`); it changes labels in one-way captures.
const MAX_UNACKED: u32 = 10_000;
/// Fast retransmission: within this long after the other side's last packet.
const FAST_RT_WINDOW_NS: u64 = 20_000_000;
/// Out-of-order vs retransmission boundary when the handshake RTT is unknown.
const DEFAULT_OOO_NS: u64 = 3_000_000;

#[inline]
fn gt(x: u32, y: u32) -> bool {
    (y.wrapping_sub(x) as i32) < 0
}
#[inline]
fn lt(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) < 0
}
#[inline]
fn le(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) <= 0
}

/// The `nextseq` values of segments not yet acknowledged; only their number matters
/// (against [`MAX_UNACKED`]), so equal values are counted, and pruning by an ACK
/// removes the cyclic range of values at or before it.
#[derive(Default)]
struct Unacked {
    values: BTreeMap<u32, u32>,
    len: u32,
}

impl Unacked {
    fn push(&mut self, v: u32) {
        *self.values.entry(v).or_insert(0) += 1;
        self.len += 1;
    }

    /// Removes every value `n` with `ack` not before `n` (modular): `(ack - n) as i32 >= 0`,
    /// i.e. `n` in the cyclic range `(ack - 2^31, ack]`.
    fn prune(&mut self, ack: u32) {
        if self.len == 0 {
            return;
        }
        let lo = ack.wrapping_sub(1 << 31).wrapping_add(1);
        if lo <= ack {
            self.remove_range(lo, ack);
        } else {
            self.remove_range(0, ack);
            self.remove_range(lo, u32::MAX);
        }
    }

    fn remove_range(&mut self, lo: u32, hi: u32) {
        loop {
            let Some((&k, &c)) = self.values.range(lo..=hi).next() else { return };
            self.values.remove(&k);
            self.len -= c;
        }
    }
}

/// Per-direction state (`tcp_flow_t` and its `tcp_analyze_seq_flow_info_t`).
struct Dir {
    base_set: bool,
    base_seq: u32,
    window: u32,
    win_scale: i8,
    is_first_ack: bool,
    lastsegmentflags: u32,
    lastack: u32,
    lastacktime: i64,
    dupacknum: u32,
    nextseq: u32,
    nextseqtime: i64,
    maxseqtobeacked: u32,
    unacked: Unacked,
}

impl Default for Dir {
    fn default() -> Self {
        Dir {
            base_set: false,
            base_seq: 0,
            window: u32::MAX,
            win_scale: -1,
            is_first_ack: false,
            lastsegmentflags: 0,
            lastack: 0,
            lastacktime: 0,
            dupacknum: 0,
            nextseq: 0,
            nextseqtime: 0,
            maxseqtobeacked: 0,
            unacked: Unacked::default(),
        }
    }
}

/// How a conversation's handshake ended, as far as the capture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// SYN, SYN-ACK and the opener's ACK were all seen.
    Completed,
    /// SYN answered by SYN-ACK, but the final ACK was not captured.
    SynAckSeen,
    /// The SYN was answered by a RST ("connection refused").
    Refused,
    /// Only SYNs, no answer (a black hole, a dropped SYN, or the capture ended).
    NoAnswer,
    /// The capture started after the handshake.
    NotCaptured,
}

impl Handshake {
    pub fn name(self) -> &'static str {
        match self {
            Handshake::Completed => "completed",
            Handshake::SynAckSeen => "syn_ack_seen",
            Handshake::Refused => "refused",
            Handshake::NoAnswer => "no_answer",
            Handshake::NotCaptured => "not_captured",
        }
    }
}

/// Summary of one conversation (tshark's `tcp.stream`).
#[derive(Debug, Clone)]
pub struct FlowSummary {
    /// Conversation index in order of first packet, as tshark's `tcp.stream`.
    pub stream: u32,
    /// Side A: the sender of the first SYN when one was captured (the client),
    /// otherwise the sender of the first packet.
    pub a: (IpAddr, u16),
    pub b: (IpAddr, u16),
    /// Whether `a` is known to be the client (a SYN without ACK was seen from it).
    pub a_is_client: bool,
    pub first_ns: i64,
    pub last_ns: i64,
    /// Packets and TCP payload bytes sent by A / by B.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// Frames with `tcp.analysis.retransmission` (plain + fast + spurious) from A / B.
    pub retransmissions: [u64; 2],
    pub fast_retransmissions: [u64; 2],
    pub spurious_retransmissions: [u64; 2],
    pub out_of_order: [u64; 2],
    pub lost_segments: [u64; 2],
    pub duplicate_acks: [u64; 2],
    /// SYN (from A) and SYN-ACK (from B) retransmissions.
    pub syn_retransmissions: u64,
    pub synack_retransmissions: u64,
    pub handshake: Handshake,
    /// First SYN to the handshake's end (ACK of the SYN-ACK, or the RST), if seen.
    pub handshake_ns: Option<i64>,
    /// Wireshark's initial RTT (last SYN to first ACK), if seen.
    pub irtt_ns: Option<i64>,
    /// RST packets sent by A / by B.
    pub resets: [u64; 2],
    pub fins: [u64; 2],
}

/// Labels of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Labels {
    /// [`label`] bits.
    pub bits: u32,
    /// The conversation (`tcp.stream`).
    pub stream: u32,
    /// 0 when sent by the conversation's side A, 1 by side B.
    pub dir: u8,
}

impl Labels {
    /// Matches tshark's `tcp.analysis.retransmission` filter.
    pub fn is_retransmission(&self) -> bool {
        self.bits & label::ANY_RETRANSMISSION != 0
    }
}

struct Conv {
    dirs: [Dir; 2],
    ts_mru_syn: i64,
    ts_first_rtt: i64,
    summary: FlowSummary,
    first_syn_ns: Option<i64>,
    synack_seen: bool,
    client_isn: Option<u32>,
}

impl Conv {
    fn new(stream: u32, a: (IpAddr, u16), b: (IpAddr, u16), ts: i64) -> Conv {
        Conv {
            dirs: [Dir::default(), Dir::default()],
            ts_mru_syn: 0,
            ts_first_rtt: 0,
            first_syn_ns: None,
            synack_seen: false,
            client_isn: None,
            summary: FlowSummary {
                stream,
                a,
                b,
                a_is_client: false,
                first_ns: ts,
                last_ns: ts,
                packets: [0; 2],
                bytes: [0; 2],
                retransmissions: [0; 2],
                fast_retransmissions: [0; 2],
                spurious_retransmissions: [0; 2],
                out_of_order: [0; 2],
                lost_segments: [0; 2],
                duplicate_acks: [0; 2],
                syn_retransmissions: 0,
                synack_retransmissions: 0,
                handshake: Handshake::NotCaptured,
                handshake_ns: None,
                irtt_ns: None,
                resets: [0; 2],
                fins: [0; 2],
            },
        }
    }
}

/// Unordered endpoint pair: the conversation key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
}

/// The analysis over a whole capture: feed every TCP segment in capture order.
#[derive(Default)]
pub struct Analyzer {
    index: AHashMap<Key, usize>,
    convs: Vec<Conv>,
    /// Conversations replaced by a new one on the same ports (port reuse).
    finished: Vec<FlowSummary>,
    next_stream: u32,
}

impl Analyzer {
    pub fn new() -> Analyzer {
        Analyzer::default()
    }

    /// Number of conversations so far.
    pub fn streams(&self) -> u32 {
        self.next_stream
    }

    /// Analyses one segment (frames must come in capture order) and returns its labels.
    pub fn segment(&mut self, ts_ns: i64, s: &TcpSegment) -> Labels {
        let src = (s.src, s.sport);
        let dst = (s.dst, s.dport);
        let key = if src <= dst { Key { lo: src, hi: dst } } else { Key { lo: dst, hi: src } };
        let idx = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.convs.len();
                self.convs.push(Conv::new(self.next_stream, src, dst, ts_ns));
                self.next_stream += 1;
                self.index.insert(key, i);
                i
            }
        };
        let mut bits = 0;
        let syn_only = s.flags & (f::SYN | f::ACK) == f::SYN;
        // Port reuse (dissect_tcp, before the analysis).
        {
            let c = &mut self.convs[idx];
            let d = if c.summary.a == src { 0 } else { 1 };
            if syn_only && c.dirs[d].base_set {
                if s.seq != c.dirs[d].base_seq {
                    let fresh = Conv::new(self.next_stream, src, dst, ts_ns);
                    self.next_stream += 1;
                    let old = std::mem::replace(c, fresh);
                    self.finished.push(old.summary);
                    bits |= label::REUSED_PORTS;
                } else {
                    c.dirs[d].nextseq = c.dirs[d].maxseqtobeacked;
                }
            }
            if s.flags & (f::SYN | f::ACK) == (f::SYN | f::ACK) && c.dirs[d].base_set && s.seq != c.dirs[d].base_seq {
                c.dirs[d].base_seq = s.seq;
                bits |= label::REUSED_PORTS;
            }
        }
        let c = &mut self.convs[idx];
        let d = if c.summary.a == src { 0 } else { 1 };
        bits |= analyze(c, d, ts_ns, s);
        after_analysis(c, d, ts_ns, s);
        summarize(c, d, ts_ns, s, bits);
        let dir = if c.summary.a == src { 0 } else { 1 };
        Labels { bits, stream: c.summary.stream, dir }
    }

    /// Summaries of all conversations, in `tcp.stream` order.
    pub fn finish(self) -> Vec<FlowSummary> {
        let mut all = self.finished;
        all.extend(self.convs.into_iter().map(|c| c.summary));
        all.sort_by_key(|s| s.stream);
        all
    }
}

/// `tcp_analyze_sequence_number()`: the labels of one segment, and the state update.
fn analyze(c: &mut Conv, d: usize, now: i64, s: &TcpSegment) -> u32 {
    let (seq, ack, flags, window, seglen) = (s.seq, s.ack, s.flags, s.window as u32, s.seglen);
    let ts_first_rtt = c.ts_first_rtt;
    let [d0, d1] = &mut c.dirs;
    let (fw, rv) = if d == 0 { (d0, d1) } else { (d1, d0) };
    if !fw.base_set {
        fw.base_seq = if flags & f::SYN != 0 { seq } else { seq.wrapping_sub(1) };
        fw.base_set = true;
    }
    if !rv.base_set && flags & f::ACK != 0 {
        rv.base_seq = ack.wrapping_sub(1);
        rv.base_set = true;
    }
    let no_sfr = flags & (f::SYN | f::FIN | f::RST) == 0;
    let mut p = 0u32;

    'fwd: {
        // 1 zero window probe
        if seglen == 1 && seq == fw.nextseq && rv.window == 0 {
            p |= label::ZERO_WINDOW_PROBE;
            break 'fwd;
        }
        // 2 zero window
        if window == 0 && no_sfr {
            p |= label::ZERO_WINDOW;
        }
        // 3 previous segment not captured
        if fw.nextseq != 0 && gt(seq, fw.nextseq) && flags & f::RST == 0 {
            p |= label::LOST_SEGMENT;
        }
        // 4 keep-alive
        if (seglen == 0 || seglen == 1) && seq == fw.nextseq.wrapping_sub(1) && no_sfr {
            p |= label::KEEP_ALIVE;
        }
        // 5 window update
        if seglen == 0 && window != 0 && window != fw.window && seq == fw.nextseq && ack == fw.lastack && no_sfr {
            p |= label::WINDOW_UPDATE;
        }
        // 6 window full
        if seglen > 0 && rv.win_scale != -1 && no_sfr {
            let sh = if rv.is_first_ack || rv.win_scale == -2 { 0 } else { rv.win_scale as u32 };
            if seq.wrapping_add(seglen) == rv.lastack.wrapping_add(rv.window.wrapping_shl(sh)) {
                p |= label::WINDOW_FULL;
            }
        }
        let same = seglen == 0 && seq == fw.nextseq && ack == fw.lastack && no_sfr;
        // 7 keep-alive ACK
        if same && window != 0 && window == fw.window && rv.lastsegmentflags & label::KEEP_ALIVE != 0 {
            p |= label::KEEP_ALIVE_ACK;
            break 'fwd;
        }
        // 8 zero window probe ACK
        if same && window == 0 && fw.window == 0 && rv.lastsegmentflags & label::ZERO_WINDOW_PROBE != 0 {
            p |= label::ZERO_WINDOW_PROBE_ACK;
            break 'fwd;
        }
        // 9 duplicate ACK
        if same && window != 0 && window == fw.window {
            fw.dupacknum = if fw.dupacknum == u32::MAX { 1 } else { fw.dupacknum.wrapping_add(1) };
            p |= label::DUPLICATE_ACK;
        }
    }
    // finished_fwd
    if ack != fw.lastack {
        fw.dupacknum = 0;
    }
    // 10 ACKed unseen segment
    if rv.maxseqtobeacked != 0 && gt(ack, rv.maxseqtobeacked) && flags & f::ACK != 0 {
        if lt(rv.maxseqtobeacked, rv.nextseq) {
            rv.maxseqtobeacked = rv.nextseq;
            p |= label::ACK_LOST_SEGMENT;
        } else {
            if rv.dupacknum == 0 {
                p |= label::ACK_LOST_SEGMENT;
            }
            rv.dupacknum = u32::MAX;
        }
    }
    // 11 retransmission / fast / spurious / out of order
    let syn_fin = flags & (f::SYN | f::FIN) != 0;
    if (seglen > 0 || syn_fin) && p & label::KEEP_ALIVE == 0 {
        let mut sna = fw.nextseq != 0 && lt(seq, fw.nextseq);
        if seglen > 1 && fw.nextseq.wrapping_sub(1) == seq {
            sna = false;
        }
        if seglen > 0 && rv.lastack != 0 && le(seq.wrapping_add(seglen), rv.lastack) {
            p |= label::SPURIOUS_RETRANSMISSION;
        } else if sna
            && rv.dupacknum >= 2
            && rv.lastack == seq
            && (now.wrapping_sub(rv.lastacktime) as u64) < FAST_RT_WINDOW_NS
        {
            p |= label::FAST_RETRANSMISSION;
        } else if sna
            && (now.wrapping_sub(fw.nextseqtime) as u64)
                < if ts_first_rtt == 0 { DEFAULT_OOO_NS } else { ts_first_rtt as u64 }
            && fw.nextseq != seq.wrapping_add(seglen).wrapping_add(syn_fin as u32)
        {
            p |= label::OUT_OF_ORDER;
        } else if sna {
            p |= label::RETRANSMISSION;
        }
    }
    // State update.
    let mut nextseq = seq.wrapping_add(seglen);
    if (seglen > 0 || syn_fin) && fw.unacked.len < MAX_UNACKED {
        if syn_fin {
            nextseq = nextseq.wrapping_add(1);
        }
        fw.unacked.push(nextseq);
    }
    let zwp = p & label::ZERO_WINDOW_PROBE != 0;
    if (gt(nextseq, fw.nextseq) || fw.nextseq == 0) && !zwp {
        fw.nextseq = nextseq;
        fw.nextseqtime = now;
    }
    if (seq == fw.maxseqtobeacked || fw.maxseqtobeacked == 0) && !zwp {
        fw.maxseqtobeacked = fw.nextseq;
    }
    fw.window = window;
    fw.lastack = ack;
    fw.lastacktime = now;
    fw.lastsegmentflags = p;
    rv.unacked.prune(ack);
    p
}

/// What `dissect_tcp` does after the analysis: handshake RTT, first-ACK and
/// window-scale bookkeeping that later segments depend on.
fn after_analysis(c: &mut Conv, d: usize, now: i64, s: &TcpSegment) {
    let flags = s.flags;
    if flags & f::SYN != 0 {
        if flags & f::ACK == 0 {
            c.ts_mru_syn = now;
        }
        c.dirs[d].is_first_ack = true;
    }
    if flags & (f::SYN | f::ACK) == f::ACK {
        if c.ts_mru_syn != 0 && c.ts_first_rtt == 0 {
            c.ts_first_rtt = now.wrapping_sub(c.ts_mru_syn);
        }
        c.dirs[d].is_first_ack = false;
    }
    if let Some(ws) = s.options.wscale {
        c.dirs[d].win_scale = ws.min(14) as i8;
    }
    if flags & f::SYN != 0 {
        if c.dirs[d].win_scale == -1 {
            c.dirs[d].win_scale = -2;
            c.dirs[1 - d].win_scale = -2;
        } else if flags & f::ACK != 0 && c.dirs[1 - d].win_scale == -2 {
            c.dirs[d].win_scale = -2;
        }
    }
}

fn summarize(c: &mut Conv, d: usize, now: i64, s: &TcpSegment, bits: u32) {
    let syn = s.flags & f::SYN != 0;
    let ack = s.flags & f::ACK != 0;
    let sum = &mut c.summary;
    sum.last_ns = sum.last_ns.max(now);
    sum.packets[d] += 1;
    sum.bytes[d] += s.seglen as u64;
    let rt = bits & label::ANY_RETRANSMISSION != 0;
    sum.retransmissions[d] += rt as u64;
    sum.fast_retransmissions[d] += (bits & label::FAST_RETRANSMISSION != 0) as u64;
    sum.spurious_retransmissions[d] += (bits & label::SPURIOUS_RETRANSMISSION != 0) as u64;
    sum.out_of_order[d] += (bits & label::OUT_OF_ORDER != 0) as u64;
    sum.lost_segments[d] += (bits & label::LOST_SEGMENT != 0) as u64;
    sum.duplicate_acks[d] += (bits & label::DUPLICATE_ACK != 0) as u64;
    sum.resets[d] += (s.flags & f::RST != 0) as u64;
    sum.fins[d] += (s.flags & f::FIN != 0) as u64;
    if c.ts_first_rtt != 0 {
        sum.irtt_ns = Some(c.ts_first_rtt);
    }
    if syn && !ack {
        if c.first_syn_ns.is_none() {
            // The opener becomes side A, whoever sent the first captured packet.
            if d == 1 {
                let n = &mut c.summary;
                std::mem::swap(&mut n.a, &mut n.b);
                for arr in [
                    &mut n.packets,
                    &mut n.bytes,
                    &mut n.retransmissions,
                    &mut n.fast_retransmissions,
                    &mut n.spurious_retransmissions,
                    &mut n.out_of_order,
                    &mut n.lost_segments,
                    &mut n.duplicate_acks,
                    &mut n.resets,
                    &mut n.fins,
                ] {
                    arr.swap(0, 1);
                }
                c.dirs.swap(0, 1);
            }
            c.summary.a_is_client = true;
            c.first_syn_ns = Some(now);
            c.client_isn = Some(s.seq);
            if c.summary.handshake == Handshake::NotCaptured {
                c.summary.handshake = Handshake::NoAnswer;
            }
        } else if rt {
            c.summary.syn_retransmissions += 1;
        }
        return;
    }
    let Some(t0) = c.first_syn_ns else { return };
    let client = c.summary.a;
    let from_client = (s.src, s.sport) == client;
    let sum = &mut c.summary;
    if syn && ack && !from_client {
        if c.synack_seen && rt {
            sum.synack_retransmissions += 1;
        }
        c.synack_seen = true;
        if sum.handshake == Handshake::NoAnswer {
            sum.handshake = Handshake::SynAckSeen;
        }
    } else if s.flags & f::RST != 0 && !from_client && !c.synack_seen && sum.handshake == Handshake::NoAnswer {
        sum.handshake = Handshake::Refused;
        sum.handshake_ns = Some(now - t0);
    } else if from_client && ack && !syn && sum.handshake == Handshake::SynAckSeen {
        sum.handshake = Handshake::Completed;
        sum.handshake_ns = Some(now - t0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modular_comparisons() {
        assert!(gt(1, 0));
        assert!(gt(0, u32::MAX));
        assert!(lt(u32::MAX, 0));
        assert!(le(5, 5));
        assert!(!gt(5, 5));
    }

    #[test]
    fn unacked_prunes_the_cyclic_range() {
        let mut u = Unacked::default();
        for v in [10, 20, 20, 30, u32::MAX - 5] {
            u.push(v);
        }
        u.prune(20);
        // 10, 20, 20 and MAX-5 (just before 0, so before 20) are acked; 30 is not.
        assert_eq!(u.len, 1);
        u.prune(u32::MAX);
        // 30 is "after" MAX? (MAX - 30) as i32 < 0 → 30 is after MAX: kept.
        assert_eq!(u.len, 1);
        u.prune(31);
        assert_eq!(u.len, 0);
    }
}
