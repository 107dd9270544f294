//! Shared test data: rows of every table with awkward values (nulls, IPv6, unicode,
//! extremes), generated from a seed so failures reproduce.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use tcpfr_schema::flows::Flow;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::resets::Reset;
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::rtt_samples::RttSample;
use tcpfr_schema::sockets::Socket;
use tcpfr_schema::state_changes::StateChange;
use tcpfr_schema::write::{RecordingInfo, RecordingWriter};
use tcpfr_schema::{Str, UtcNanos};

pub const SEC: i64 = 1_000_000_000;
/// 2026-11-23T10:00:00Z
pub const T0: i64 = 1_795_428_000 * SEC;

pub fn info(start_ns: i64) -> RecordingInfo {
    RecordingInfo {
        recording_id: "0196a000-0000-7000-8000-000000000001".into(),
        host: "web1".into(),
        kernel: Some("6.18.44".into()),
        boot_id: Some("b190c70b-719d-4884-b634-a9a10b1d9009".into()),
        clock: ClockInfo { mono_to_utc_offset_ns: 1_795_000_000 * SEC, max_drift_ns: 0 },
        recorder: RecorderInfo { version: "test".into(), config: serde_json::json!({}) },
        start_ns,
    }
}

/// SplitMix64: small, seedable, good enough for test data.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

pub fn s(x: &str) -> Str {
    Arc::from(x)
}

const ADDRS: &[&str] = &["10.0.0.1", "10.0.0.34", "192.168.1.7", "fd00::1", "2001:db8::dead:beef", "0.0.0.0"];
const COMMS: &[&str] = &["api", "nginx", "postgres", "curl", "weird näme ✓"];
const STATES: &[&str] = &["ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "CLOSE_WAIT", "LAST_ACK"];

pub fn retransmit(t: i64, socket: i64) -> Retransmit {
    Retransmit {
        host: s("web1"),
        time: UtcNanos(t),
        socket_id: Some(socket),
        netns: Some(4026531840),
        family: s("ipv4"),
        laddr: s("10.0.0.1"),
        lport: 43210,
        raddr: s("10.0.0.34"),
        rport: 5432,
        kind: s("data"),
        state: s("ESTABLISHED"),
        segments: 1,
        seq: Some(1_000),
        err: Some(0),
        counted: true,
        cause: Some(s("fast")),
        rto_backoff: None,
        pid: Some(2167),
        comm: Some(s("api")),
        cgroup_id: Some(1234),
        cgroup: Some(s("/system.slice/api.service")),
        container_id: None,
    }
}

pub fn rtt(t: i64, socket: i64, srtt: u32) -> RttSample {
    RttSample {
        host: s("web1"),
        time: UtcNanos(t),
        socket_id: socket,
        srtt_us: srtt,
        rttvar_us: Some(srtt / 4),
        cwnd: 10,
        ssthresh: None,
        snd_wnd: 65535,
        rcv_wnd: 65535,
        bytes_in_flight: 1448,
    }
}

/// Rows of every table.
#[derive(Default, Clone)]
pub struct Dataset {
    pub retransmits: Vec<Retransmit>,
    pub state_changes: Vec<StateChange>,
    pub resets: Vec<Reset>,
    pub rtt_samples: Vec<RttSample>,
    pub flows: Vec<Flow>,
    pub sockets: Vec<Socket>,
    pub host_counters: Vec<HostCounters>,
    pub recorder_stats: Vec<RecorderStats>,
}

impl Dataset {
    /// About `n` rows per event table over 60 s after T0, in slightly shuffled order.
    pub fn generate(n: usize, seed: u64) -> Self {
        let mut r = Rng::new(seed);
        let mut d = Dataset::default();
        let t = |r: &mut Rng| UtcNanos(T0 + r.below(60 * SEC as u64) as i64);
        let opt_s = |r: &mut Rng, xs: &[&str]| if r.chance(20) { None } else { Some(s(r.pick(xs))) };
        for i in 0..n {
            let fam = if r.chance(30) { "ipv6" } else { "ipv4" };
            d.retransmits.push(Retransmit {
                host: s("web1"),
                time: t(&mut r),
                socket_id: if r.chance(10) { None } else { Some(r.below(1 << 40) as i64) },
                netns: if r.chance(5) { None } else { Some(4026531840 + r.below(4) as u32) },
                family: s(fam),
                laddr: s(r.pick(ADDRS)),
                lport: r.below(65536) as u16,
                raddr: s(r.pick(ADDRS)),
                rport: r.below(65536) as u16,
                kind: s(r.pick(&["data", "syn", "synack"])),
                state: s(r.pick(STATES)),
                segments: 1 + r.below(44) as i32,
                seq: if r.chance(10) { None } else { Some(r.below(1 << 32) as u32) },
                err: match r.below(10) { 0 => None, 1 => Some(-16), _ => Some(0) },
                counted: r.chance(90),
                cause: if r.chance(20) { None } else { Some(s(r.pick(&["timeout", "fast", "probe", "other"]))) },
                rto_backoff: if r.chance(70) { None } else { Some(r.below(16) as i32) },
                pid: if r.chance(15) { None } else { Some(r.below(4_000_000) as i32) },
                comm: opt_s(&mut r, COMMS),
                cgroup_id: if r.chance(15) { None } else { Some(r.below(1 << 33) as i64) },
                cgroup: opt_s(&mut r, &["/", "/system.slice/api.service", "/kubepods/pod1/cri-containerd-abc"]),
                container_id: opt_s(&mut r, &["abc123"]),
            });
            d.state_changes.push(StateChange {
                host: s("web1"),
                time: t(&mut r),
                socket_id: i as i64,
                netns: Some(4026531840),
                family: s(fam),
                laddr: s(r.pick(ADDRS)),
                lport: r.below(65536) as u16,
                raddr: s(r.pick(ADDRS)),
                rport: r.below(65536) as u16,
                old_state: s(r.pick(STATES)),
                new_state: s(r.pick(STATES)),
                error: opt_s(&mut r, &["ETIMEDOUT", "ECONNREFUSED"]),
                pid: Some(i as i32),
                comm: opt_s(&mut r, COMMS),
                cgroup_id: None,
                cgroup: None,
                container_id: None,
            });
            d.resets.push(Reset {
                host: s("web1"),
                time: t(&mut r),
                socket_id: if r.chance(30) { None } else { Some(i as i64) },
                netns: None,
                family: s(fam),
                laddr: s(r.pick(ADDRS)),
                lport: 80,
                raddr: s(r.pick(ADDRS)),
                rport: u16::MAX,
                direction: s(r.pick(&["sent", "received"])),
                state: opt_s(&mut r, STATES),
                reason: opt_s(&mut r, &["NO_SOCKET", "TCP_ABORT_ON_CLOSE"]),
                pid: None,
                comm: None,
                cgroup_id: None,
                cgroup: None,
                container_id: None,
            });
            d.rtt_samples.push(RttSample {
                host: s("web1"),
                time: t(&mut r),
                socket_id: r.below(100) as i64,
                srtt_us: r.below(1_000_000) as u32,
                rttvar_us: if r.chance(5) { None } else { Some(r.below(100_000) as u32) },
                cwnd: r.below(1000) as u32,
                ssthresh: if r.chance(30) { None } else { Some(r.below(1000) as u32) },
                snd_wnd: u32::MAX,
                rcv_wnd: r.below(1 << 20) as u32,
                bytes_in_flight: r.below(1 << 20) as u32,
            });
            d.sockets.push(Socket {
                host: s("web1"),
                time: t(&mut r),
                socket_id: i as i64,
                origin: s(r.pick(&["connect", "accept", "listen", "existing"])),
                netns: if r.chance(5) { None } else { Some(4026531840) },
                family: s(fam),
                laddr: s(r.pick(ADDRS)),
                lport: r.below(65536) as u16,
                raddr: s(r.pick(ADDRS)),
                rport: r.below(65536) as u16,
                pid: if r.chance(15) { None } else { Some(r.below(4_000_000) as i32) },
                comm: opt_s(&mut r, COMMS),
                cgroup_id: None,
                cgroup: opt_s(&mut r, &["/", "/system.slice/db.service"]),
                container_id: None,
            });
            let open = if r.chance(20) { None } else { Some(t(&mut r)) };
            let close = if r.chance(20) { None } else { Some(t(&mut r)) };
            d.flows.push(Flow {
                host: s("web1"),
                time: close.unwrap_or(UtcNanos(T0 + 60 * SEC)),
                socket_id: i as i64,
                netns: Some(1),
                family: s(fam),
                laddr: s(r.pick(ADDRS)),
                lport: r.below(65536) as u16,
                raddr: s(r.pick(ADDRS)),
                rport: r.below(65536) as u16,
                role: opt_s(&mut r, &["client", "server"]),
                open_time: open,
                close_time: close,
                duration_ns: open.zip(close).map(|(o, c)| c.0 - o.0),
                handshake: opt_s(&mut r, &["completed", "timeout", "refused"]),
                handshake_ns: if r.chance(50) { None } else { Some(r.below(10_000_000_000) as i64) },
                syn_retransmits: r.below(7) as i32,
                last_state: s(r.pick(STATES)),
                error: opt_s(&mut r, &["ETIMEDOUT"]),
                counters: s(r.pick(&["complete", "open_at_end", "opened_before_recording"])),
                segs_out: Some(r.next() as i64),
                segs_in: Some(r.below(1 << 32) as i64),
                data_segs_out: None,
                data_segs_in: Some(0),
                retrans_segs: Some(i64::MAX),
                retrans_segs_seen: r.below(100) as i64,
                bytes_acked: Some(i64::MIN),
                bytes_received: None,
                srtt_us: Some(u32::MAX),
                min_rtt_us: None,
                busy_ns: if r.chance(30) { None } else { Some(r.below(1 << 40) as i64) },
                rwnd_limited_ns: Some(0),
                sndbuf_limited_ns: Some(i64::MAX),
                delivery_rate_bps: None,
                congestion_control: opt_s(&mut r, &["cubic", "bbr"]),
                mss: Some(1448),
                dsack_dups: Some(r.below(10) as i64),
                reord_seen: None,
                delivered_ce: Some(0),
                pid: Some(-1),
                comm: opt_s(&mut r, COMMS),
                cgroup_id: Some(0),
                cgroup: opt_s(&mut r, &["/"]),
                container_id: None,
            });
        }
        for sec in 0..60 {
            for ns in [4026531840u32, 4026532100] {
                d.host_counters.push(HostCounters {
                    host: s("web1"),
                    time: UtcNanos(T0 + sec * SEC),
                    interval_ns: SEC,
                    netns: ns,
                    netns_name: if ns == 4026531840 { Some(s("host")) } else { None },
                    active_opens: r.below(100) as i64,
                    passive_opens: r.below(100) as i64,
                    attempt_fails: r.below(5) as i64,
                    estab_resets: r.below(5) as i64,
                    curr_estab: r.below(1000) as i64,
                    in_segs: r.below(100_000) as i64,
                    out_segs: r.below(100_000) as i64,
                    retrans_segs: r.below(1000) as i64,
                    in_errs: 0,
                    out_rsts: r.below(10) as i64,
                    syn_retrans: r.below(10) as i64,
                    timeouts: r.below(10) as i64,
                    loss_probes: r.below(10) as i64,
                    lost_retransmit: 0,
                    fast_retrans: r.below(100) as i64,
                    slow_start_retrans: 0,
                    retrans_fail: 0,
                    spurious_rtos: 0,
                    abort_on_timeout: 0,
                    aborts_other: 0,
                    listen_overflows: 0,
                    listen_drops: 0,
                });
            }
            d.recorder_stats.push(RecorderStats {
                host: s("web1"),
                time: UtcNanos(T0 + sec * SEC),
                interval_ns: SEC,
                stream: s("retransmits"),
                events_seen: r.below(1000) as i64,
                events_lost: 0,
                events_filtered: 0,
                rows_written: 1,
                rows_dropped: 0,
                gap_start: if sec == 7 { Some(UtcNanos(T0)) } else { None },
                gap_end: if sec == 7 { Some(UtcNanos(T0 + 7 * SEC)) } else { None },
                note: if sec == 7 { Some(s("gap: test")) } else { None },
                shipped_files: (sec == 7).then_some(3),
                shipped_bytes: (sec == 7).then_some(4096),
                unshipped_files: (sec == 7).then_some(0),
                unshipped_bytes: None,
                ship_errors: (sec == 7).then_some(1),
                ship_lost_files: None,
                ship_lost_bytes: None,
            });
        }
        d
    }

    /// Pushes everything and flushes in one-second steps, as the recorder does.
    pub fn push_all(&self, w: &mut RecordingWriter) {
        for r in &self.retransmits {
            w.retransmits.push(r.clone());
        }
        for r in &self.state_changes {
            w.state_changes.push(r.clone());
        }
        for r in &self.resets {
            w.resets.push(r.clone());
        }
        for r in &self.rtt_samples {
            w.rtt_samples.push(r.clone());
        }
        for r in &self.flows {
            w.flows.push(r.clone());
        }
        for r in &self.sockets {
            w.sockets.push(r.clone());
        }
        for r in &self.host_counters {
            w.host_counters.push(r.clone());
        }
        for r in &self.recorder_stats {
            w.recorder_stats.push(r.clone());
        }
        for sec in 1..=61 {
            w.flush(T0 + sec * SEC, T0 + sec * SEC).unwrap();
        }
    }
}

/// SHA-256 by the coreutils tool, independent of our own hashing.
pub fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum runs");
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// Writes a small complete recording and returns its directory.
pub fn write_recording(dir: &Path, host: &str, rows: usize) -> std::path::PathBuf {
    let rec_dir = dir.join(format!("host={host}"));
    let mut i = info(T0);
    i.host = host.into();
    let mut w = RecordingWriter::create(&rec_dir, i, Default::default()).unwrap();
    for k in 0..rows {
        let mut r = retransmit(T0 + k as i64 * 1000, k as i64);
        r.host = s(host);
        w.retransmits.push(r);
    }
    w.finish(T0 + 2 * SEC).unwrap();
    rec_dir
}
