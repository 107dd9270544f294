//! A synthetic kernel event stream with a busy host's mix, encoded exactly as the
//! eBPF programs write it: for the pipeline benchmark and for generating large
//! recordings (analyzer benchmarks) through the real enrichment and writer.
//!
//! Many long-lived connections send RTT samples (90%); retransmits of 1 to 45
//! segments, a tenth of them failed attempts (7.5%); resets (0.5%); and connections
//! ending and being replaced by new ones (2%, each a few events).

use tcpfr_schema::flows::RawFlowCounters;
use tcpfr_schema::raw::{kind, tcp_state, RawHeader, RawTask, RawTuple, AF_INET};
use tcpfr_schema::resets::RawReset;
use tcpfr_schema::retransmits::{ca_state, retransmit_kind, timer, RawRetransmit};
use tcpfr_schema::rtt_samples::RawRttSample;
use tcpfr_schema::state_changes::RawStateChange;

use crate::events::encode;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Per-connection state that makes samples look like a real connection's.
struct Conn {
    sk: u64,
    tuple: RawTuple,
    srtt: u32,
    cwnd: u32,
    retrans: u32,
}

fn tuple(i: u64) -> RawTuple {
    let mut t = RawTuple { family: AF_INET, lport: 32768 + (i % 28000) as u16, rport: [5432, 6379, 443, 8080, 9092][(i % 5) as usize], ..Default::default() };
    t.laddr[..4].copy_from_slice(&[10, 1, 0, 7]);
    t.raddr[..4].copy_from_slice(&[10, 2, (i / 250 % 250) as u8, (i % 250) as u8 + 1]);
    t
}

fn hdr(kind: u8, ts: u64, sk: u64) -> RawHeader {
    RawHeader { kind, netns: 4026531840, ts_ns: ts, sk, ..Default::default() }
}

fn task(i: u64) -> RawTask {
    let mut comm = [0u8; 16];
    let name = ["api", "worker", "nginx", "batch-job"][(i % 4) as usize].as_bytes();
    comm[..name.len()].copy_from_slice(name);
    RawTask { tgid: 1000 + (i % 4) as u32, tid: 1000, cgroup_id: 1, comm }
}

/// The event stream's state: open connections, time, randomness.
pub struct Workload {
    rng: Rng,
    conns: Vec<Conn>,
    ts: u64,
    step_ns: u64,
    next_sk: u64,
    opened: u64,
    started: bool,
    sockets: u64,
}

impl Workload {
    /// `sockets` connections open at any time; one event every `step_ns` of kernel
    /// (monotonic) time, starting at 1 s after boot.
    pub fn new(seed: u64, sockets: u64, step_ns: u64) -> Self {
        Workload {
            rng: Rng(seed | 1),
            conns: Vec::new(),
            ts: 1_000_000_000,
            step_ns,
            next_sk: 0xffff_8880_0000_0000,
            opened: 0,
            started: false,
            sockets,
        }
    }

    /// Kernel time of the last event produced.
    pub fn now_ns(&self) -> u64 {
        self.ts
    }

    fn open(&mut self, ts: u64, out: &mut Vec<Vec<u8>>) {
        self.next_sk += 0x800;
        self.opened += 1;
        let opened = self.opened;
        let rng = &mut self.rng;
        let c = Conn { sk: self.next_sk, tuple: tuple(opened), srtt: 200 + (rng.below(20_000) as u32), cwnd: 10, retrans: 0 };
        let mut born = RawStateChange { hdr: hdr(kind::STATE_CHANGE, ts, c.sk), tuple: c.tuple, task: task(opened), old_state: tcp_state::CLOSE, new_state: tcp_state::SYN_SENT, ..Default::default() };
        born.tuple.lport = 0;
        out.push(encode(&born));
        out.push(encode(&RawStateChange { hdr: hdr(kind::STATE_CHANGE, ts + 300, c.sk), tuple: c.tuple, old_state: tcp_state::SYN_SENT, new_state: tcp_state::ESTABLISHED, ..Default::default() }));
        self.conns.push(c);
    }

    /// Appends about `n` encoded events to `out`.
    pub fn fill(&mut self, out: &mut Vec<Vec<u8>>, n: usize) {
        let goal = out.len() + n;
        if !self.started {
            self.started = true;
            for _ in 0..self.sockets {
                self.open(self.ts, out);
            }
        }
        while out.len() < goal {
            self.ts += self.step_ns;
            let ts = self.ts;
            let conns = &mut self.conns;
            let rng = &mut self.rng;
            let r = rng.below(1000);
        let i = rng.below(conns.len() as u64) as usize;
        if r < 900 {
            let c = &mut conns[i];
            c.srtt = (c.srtt as i64 + rng.below(41) as i64 - 20).max(20) as u32;
            c.cwnd = (c.cwnd + 1).min(400);
            out.push(encode(&RawRttSample {
                hdr: hdr(kind::RTT_SAMPLE, ts, c.sk),
                tuple: c.tuple,
                srtt_us: c.srtt,
                rttvar_us: c.srtt / 4 + rng.below(8) as u32,
                snd_cwnd: c.cwnd,
                ssthresh: if c.retrans > 0 { c.cwnd / 2 } else { 0x7fff_ffff },
                snd_wnd: 3_145_728,
                rcv_wnd: 131_072,
                bytes_in_flight: (rng.below(64) * 1448) as u32,
                ..Default::default()
            }));
        } else if r < 975 {
            let c = &mut conns[i];
            let segs = [1, 1, 1, 2, 3, 45][rng.below(6) as usize];
            let failed = rng.below(10) == 0;
            if !failed {
                c.retrans += segs;
            }
            c.cwnd = (c.cwnd / 2).max(2);
            out.push(encode(&RawRetransmit {
                hdr: hdr(kind::RETRANSMIT, ts, c.sk),
                tuple: c.tuple,
                state: tcp_state::ESTABLISHED,
                kind: retransmit_kind::DATA,
                has_err: 1,
                err: if failed { -16 } else { 0 },
                segs,
                total_retrans: c.retrans,
                // Single segments as the retransmission timer's retries, the rest fast.
                ca_state: if segs == 1 { ca_state::LOSS } else { ca_state::RECOVERY },
                pending: if segs == 1 { timer::NONE } else { 1 },
                backoff: 0,
                timer_firing: 1,
                ..Default::default()
            }));
        } else if r < 980 {
            let c = &conns[i];
            out.push(encode(&RawReset { hdr: hdr(kind::RESET_RECEIVED, ts, c.sk), tuple: c.tuple, state: tcp_state::ESTABLISHED, reason: u32::MAX, ..Default::default() }));
        } else {
            // A connection ends (counters, then CLOSE) and another one starts.
            let c = conns.swap_remove(i);
            out.push(encode(&RawStateChange { hdr: hdr(kind::STATE_CHANGE, ts, c.sk), tuple: c.tuple, old_state: tcp_state::ESTABLISHED, new_state: tcp_state::FIN_WAIT1, ..Default::default() }));
            out.push(encode(&RawFlowCounters {
                hdr: hdr(kind::FLOW_COUNTERS, ts + 100, c.sk),
                tuple: c.tuple,
                segs_out: 1000 + c.retrans,
                segs_in: 700,
                data_segs_out: 990,
                total_retrans: c.retrans,
                srtt_us: c.srtt,
                rtt_min_us: c.srtt / 2,
                bytes_acked: 1_400_000,
                ..Default::default()
            }));
            out.push(encode(&RawStateChange { hdr: hdr(kind::STATE_CHANGE, ts + 200, c.sk), tuple: c.tuple, old_state: tcp_state::FIN_WAIT2, new_state: tcp_state::CLOSE, ..Default::default() }));
            self.open(ts + 300, out);
        }
        }
    }
}

