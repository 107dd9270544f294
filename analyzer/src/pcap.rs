//! tcpdump captures as SQL tables (`packets`, `pcap_flows`, `pcap_retransmits`) and
//! the `tcpfr pcap` summary.
//!
//! The tables are streams, not copies: each scan reads the capture again from disk
//! (tcpfr-wire does that at well over 100 MB/s), so a multi-gigabyte capture never sits in
//! memory and a query that does not touch a table costs nothing. Columns follow the
//! recording's conventions: `time` as UTC ns timestamps, textual addresses, `family`
//! `ipv4`/`ipv6`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use tcpfr_wire::analysis::{label, Analyzer, FlowSummary, Labels};
use tcpfr_wire::capture::CaptureReader;
use tcpfr_wire::decode::decode;
use tcpfr_wire::segment::flags as tf;
use tcpfr_wire::{Frame, Skip, TcpSegment};

use crate::progress;

/// Rows per batch of a streamed table.
const BATCH: usize = 32 * 1024;

/// What one pass over a capture saw besides TCP segments.
#[derive(Debug, Default, Clone)]
pub struct ScanStats {
    pub frames: u64,
    pub tcp: u64,
    pub skipped: std::collections::BTreeMap<Skip, u64>,
    pub warnings: Vec<String>,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
}

/// Reads `path` once, analysing every TCP segment; `each` sees every segment with its
/// labels. Returns the conversations and what was skipped.
pub fn scan(path: &Path, progress: progress::Progress, mut each: impl FnMut(&Frame, &TcpSegment, Labels)) -> Result<(Vec<FlowSummary>, ScanStats)> {
    let mut reader = CaptureReader::open(path)?;
    let mut an = Analyzer::new();
    let mut st = ScanStats::default();
    let mut bar = progress::Bar::new(progress, reader.len().unwrap_or(0), progress::Unit::Bytes, format!("reading {}", path.display()));
    loop {
        if st.frames % 16_384 == 0 {
            bar.set(reader.bytes_read());
        }
        let Some(frame) = reader.next_frame()? else { break };
        st.frames += 1;
        st.first_ns.get_or_insert(frame.ts_ns);
        st.last_ns = Some(frame.ts_ns);
        match decode(frame.linktype, frame.data, frame.orig_len) {
            Ok(seg) => {
                st.tcp += 1;
                let l = an.segment(frame.ts_ns, &seg);
                each(&frame, &seg, l);
            }
            Err(skip) => *st.skipped.entry(skip).or_insert(0) += 1,
        }
    }
    bar.finish();
    st.warnings = reader.warnings().to_vec();
    Ok((an.finish(), st))
}

/// Textual address; IPv4-mapped IPv6 as IPv4, as the recorder writes them.
pub fn addr(a: IpAddr) -> (String, &'static str) {
    match a {
        IpAddr::V4(v4) => (v4.to_string(), "ipv4"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (v4.to_string(), "ipv4"),
            None => (v6.to_string(), "ipv6"),
        },
    }
}

pub fn flag_names(flags: u16) -> String {
    let mut v = Vec::new();
    for (bit, name) in [(tf::SYN, "SYN"), (tf::ACK, "ACK"), (tf::FIN, "FIN"), (tf::RST, "RST"), (tf::PSH, "PSH"), (tf::URG, "URG"), (tf::ECE, "ECE"), (tf::CWR, "CWR")] {
        if flags & bit != 0 {
            v.push(name);
        }
    }
    v.join(",")
}

/// `data`, `syn`, `synack`, `fin` or `rst`: what a retransmitted segment carried.
pub fn segment_kind(flags: u16) -> &'static str {
    if flags & tf::SYN != 0 {
        if flags & tf::ACK != 0 { "synack" } else { "syn" }
    } else if flags & tf::RST != 0 {
        "rst"
    } else if flags & tf::FIN != 0 {
        "fin"
    } else {
        "data"
    }
}

/// tshark's name for a retransmission label: `fast_retransmission`,
/// `spurious_retransmission` or `retransmission`.
pub fn retransmission_label(bits: u32) -> &'static str {
    if bits & label::FAST_RETRANSMISSION != 0 {
        "fast_retransmission"
    } else if bits & label::SPURIOUS_RETRANSMISSION != 0 {
        "spurious_retransmission"
    } else {
        "retransmission"
    }
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// Columns every frame table starts with.
fn frame_fields() -> Vec<Field> {
    vec![
        f("file", DataType::Utf8, false),
        f("frame", DataType::UInt64, false),
        f("time", utc(), false),
        f("stream", DataType::UInt32, false),
        f("family", DataType::Utf8, false),
        f("saddr", DataType::Utf8, false),
        f("sport", DataType::UInt16, false),
        f("daddr", DataType::Utf8, false),
        f("dport", DataType::UInt16, false),
        f("seq", DataType::UInt32, false),
    ]
}

pub fn packets_schema() -> SchemaRef {
    let mut v = frame_fields();
    v.extend([
        f("ack", DataType::UInt32, false),
        f("flags", DataType::Utf8, false),
        f("window", DataType::UInt16, false),
        f("len", DataType::UInt32, false),
        f("retransmission", DataType::Boolean, false),
        f("labels", DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(v))
}

pub fn retransmits_schema() -> SchemaRef {
    let mut v = frame_fields();
    v.extend([f("len", DataType::UInt32, false), f("kind", DataType::Utf8, false), f("label", DataType::Utf8, false)]);
    Arc::new(Schema::new(v))
}

pub fn flows_schema() -> SchemaRef {
    let mut v = vec![
        f("file", DataType::Utf8, false),
        f("stream", DataType::UInt32, false),
        f("family", DataType::Utf8, false),
        f("client_addr", DataType::Utf8, false),
        f("client_port", DataType::UInt16, false),
        f("server_addr", DataType::Utf8, false),
        f("server_port", DataType::UInt16, false),
        f("roles", DataType::Utf8, false),
        f("first_time", utc(), false),
        f("last_time", utc(), false),
        f("duration_ns", DataType::Int64, false),
    ];
    for c in ["packets", "bytes", "retransmissions", "resets"] {
        v.push(f(&format!("{c}_c2s"), DataType::UInt64, false));
        v.push(f(&format!("{c}_s2c"), DataType::UInt64, false));
    }
    for c in ["fast_retransmissions", "spurious_retransmissions", "out_of_order", "lost_segments", "duplicate_acks", "syn_retransmissions", "synack_retransmissions"] {
        v.push(f(c, DataType::UInt64, false));
    }
    v.extend([
        f("handshake", DataType::Utf8, false),
        f("handshake_ns", DataType::Int64, true),
        f("irtt_ns", DataType::Int64, true),
    ]);
    Arc::new(Schema::new(v))
}

/// Builders for the shared frame columns.
struct FrameCols {
    file: StringBuilder,
    frame: UInt64Builder,
    time: TimestampNanosecondBuilder,
    stream: UInt32Builder,
    family: StringBuilder,
    saddr: StringBuilder,
    sport: UInt16Builder,
    daddr: StringBuilder,
    dport: UInt16Builder,
    seq: UInt32Builder,
}

impl FrameCols {
    fn new() -> Self {
        FrameCols {
            file: StringBuilder::new(),
            frame: UInt64Builder::new(),
            time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            stream: UInt32Builder::new(),
            family: StringBuilder::new(),
            saddr: StringBuilder::new(),
            sport: UInt16Builder::new(),
            daddr: StringBuilder::new(),
            dport: UInt16Builder::new(),
            seq: UInt32Builder::new(),
        }
    }
    fn push(&mut self, file: &str, fr: &Frame, s: &TcpSegment, l: Labels) {
        let (sa, fam) = addr(s.src);
        self.file.append_value(file);
        self.frame.append_value(fr.number);
        self.time.append_value(fr.ts_ns);
        self.stream.append_value(l.stream);
        self.family.append_value(fam);
        self.saddr.append_value(sa);
        self.sport.append_value(s.sport);
        self.daddr.append_value(addr(s.dst).0);
        self.dport.append_value(s.dport);
        self.seq.append_value(s.seq);
    }
    fn len(&self) -> usize {
        self.frame.len()
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.file.finish()),
            Arc::new(self.frame.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.stream.finish()),
            Arc::new(self.family.finish()),
            Arc::new(self.saddr.finish()),
            Arc::new(self.sport.finish()),
            Arc::new(self.daddr.finish()),
            Arc::new(self.dport.finish()),
            Arc::new(self.seq.finish()),
        ]
    }
}

fn flows_batch(file: &str, flows: &[FlowSummary]) -> Result<RecordBatch> {
    let schema = flows_schema();
    let mut s = StringBuilder::new();
    let mut stream = UInt32Builder::new();
    let (mut fam, mut ca, mut sa, mut roles, mut hs) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    let (mut cp, mut sp) = (UInt16Builder::new(), UInt16Builder::new());
    let mut first = TimestampNanosecondBuilder::new().with_timezone("UTC");
    let mut last = TimestampNanosecondBuilder::new().with_timezone("UTC");
    let (mut dur, mut hns, mut irtt) = (Int64Builder::new(), Int64Builder::new(), Int64Builder::new());
    let mut pairs: Vec<(UInt64Builder, UInt64Builder)> = (0..4).map(|_| (UInt64Builder::new(), UInt64Builder::new())).collect();
    let mut totals: Vec<UInt64Builder> = (0..7).map(|_| UInt64Builder::new()).collect();
    for fl in flows {
        s.append_value(file);
        stream.append_value(fl.stream);
        let (a, family) = addr(fl.a.0);
        fam.append_value(family);
        ca.append_value(a);
        cp.append_value(fl.a.1);
        sa.append_value(addr(fl.b.0).0);
        sp.append_value(fl.b.1);
        roles.append_value(if fl.a_is_client { "handshake" } else { "first_packet" });
        first.append_value(fl.first_ns);
        last.append_value(fl.last_ns);
        dur.append_value(fl.last_ns - fl.first_ns);
        for (i, v) in [fl.packets, fl.bytes, fl.retransmissions, fl.resets].iter().enumerate() {
            pairs[i].0.append_value(v[0]);
            pairs[i].1.append_value(v[1]);
        }
        let sum = |x: [u64; 2]| x[0] + x[1];
        for (i, v) in [
            sum(fl.fast_retransmissions),
            sum(fl.spurious_retransmissions),
            sum(fl.out_of_order),
            sum(fl.lost_segments),
            sum(fl.duplicate_acks),
            fl.syn_retransmissions,
            fl.synack_retransmissions,
        ]
        .into_iter()
        .enumerate()
        {
            totals[i].append_value(v);
        }
        hs.append_value(fl.handshake.name());
        hns.append_option(fl.handshake_ns);
        irtt.append_option(fl.irtt_ns);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(s.finish()),
        Arc::new(stream.finish()),
        Arc::new(fam.finish()),
        Arc::new(ca.finish()),
        Arc::new(cp.finish()),
        Arc::new(sa.finish()),
        Arc::new(sp.finish()),
        Arc::new(roles.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
        Arc::new(dur.finish()),
    ];
    for (a, b) in &mut pairs {
        cols.push(Arc::new(a.finish()));
        cols.push(Arc::new(b.finish()));
    }
    for t in &mut totals {
        cols.push(Arc::new(t.finish()));
    }
    cols.extend([Arc::new(hs.finish()) as ArrayRef, Arc::new(hns.finish()), Arc::new(irtt.finish())]);
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Packets,
    Retransmits,
    Flows,
}

/// One capture file as one partition of one of the three tables.
#[derive(Debug)]
struct CaptureStream {
    path: PathBuf,
    kind: Kind,
    schema: SchemaRef,
    progress: progress::Progress,
}

impl PartitionStream for CaptureStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 4);
        let tx = builder.tx();
        let (path, kind, schema, progress) = (self.path.clone(), self.kind, self.schema.clone(), self.progress);
        builder.spawn_blocking(move || {
            let send = |b: Result<RecordBatch>| -> bool {
                tx.blocking_send(b.map_err(|e| datafusion::error::DataFusionError::External(e.into()))).is_ok()
            };
            let file = path.display().to_string();
            let result = match kind {
                Kind::Flows => scan(&path, progress, |_, _, _| {}).and_then(|(flows, _)| flows_batch(&file, &flows)).map(|b| {
                    send(Ok(b));
                }),
                Kind::Packets | Kind::Retransmits => {
                    let mut cols = FrameCols::new();
                    let (mut ack, mut window, mut len) = (UInt32Builder::new(), UInt16Builder::new(), UInt32Builder::new());
                    let (mut flags, mut labels, mut kinds) = (StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
                    let mut rt = BooleanBuilder::new();
                    let mut open = true;
                    let flush = |cols: &mut FrameCols,
                                     ack: &mut UInt32Builder,
                                     window: &mut UInt16Builder,
                                     len: &mut UInt32Builder,
                                     flags: &mut StringBuilder,
                                     labels: &mut StringBuilder,
                                     kinds: &mut StringBuilder,
                                     rt: &mut BooleanBuilder| {
                        let mut c = cols.finish();
                        match kind {
                            Kind::Packets => c.extend([
                                Arc::new(ack.finish()) as ArrayRef,
                                Arc::new(flags.finish()),
                                Arc::new(window.finish()),
                                Arc::new(len.finish()),
                                Arc::new(rt.finish()),
                                Arc::new(labels.finish()),
                            ]),
                            _ => c.extend([Arc::new(len.finish()) as ArrayRef, Arc::new(kinds.finish()), Arc::new(labels.finish())]),
                        }
                        RecordBatch::try_new(schema.clone(), c).map_err(anyhow::Error::from)
                    };
                    let r = scan(&path, progress, |fr, s, l| {
                        if !open {
                            return;
                        }
                        match kind {
                            Kind::Packets => {
                                cols.push(&file, fr, s, l);
                                ack.append_value(s.ack);
                                flags.append_value(flag_names(s.flags));
                                window.append_value(s.window);
                                len.append_value(s.seglen);
                                rt.append_value(l.is_retransmission());
                                if l.bits == 0 {
                                    labels.append_null();
                                } else {
                                    let names: Vec<&str> = label::NAMES.iter().filter(|(b, _)| l.bits & b != 0).map(|(_, n)| *n).collect();
                                    labels.append_value(names.join(","));
                                }
                            }
                            _ => {
                                if !l.is_retransmission() {
                                    return;
                                }
                                cols.push(&file, fr, s, l);
                                len.append_value(s.seglen);
                                kinds.append_value(segment_kind(s.flags));
                                labels.append_value(retransmission_label(l.bits));
                            }
                        }
                        if cols.len() >= BATCH {
                            open = send(flush(&mut cols, &mut ack, &mut window, &mut len, &mut flags, &mut labels, &mut kinds, &mut rt));
                        }
                    });
                    r.map(|_| {
                        if open && cols.len() > 0 {
                            send(flush(&mut cols, &mut ack, &mut window, &mut len, &mut flags, &mut labels, &mut kinds, &mut rt));
                        }
                    })
                }
            };
            if let Err(e) = result {
                send(Err(e.context(format!("reading capture {}", path.display()))));
            }
            Ok(())
        });
        builder.build()
    }
}

/// Registers `packets`, `pcap_flows` and `pcap_retransmits` over `pcaps` (each file one
/// partition). Checks now that every file opens, so a bad path fails before any query.
pub fn register(ctx: &SessionContext, pcaps: &[PathBuf]) -> Result<()> {
    if pcaps.is_empty() {
        return Ok(());
    }
    let env = crate::env::Env::of(ctx);
    if let Some(url) = &env.cluster {
        bail!("--pcap with --cluster {url}: captures are read by this process, not by the cluster's executors; leave out --cluster");
    }
    for p in pcaps {
        CaptureReader::open(p).with_context(|| format!("--pcap {}", p.display()))?;
    }
    for (name, kind, schema) in [
        ("packets", Kind::Packets, packets_schema()),
        ("pcap_retransmits", Kind::Retransmits, retransmits_schema()),
        ("pcap_flows", Kind::Flows, flows_schema()),
    ] {
        let parts: Vec<Arc<dyn PartitionStream>> = pcaps
            .iter()
            .map(|p| Arc::new(CaptureStream { path: p.clone(), kind, schema: schema.clone(), progress: env.progress }) as Arc<dyn PartitionStream>)
            .collect();
        ctx.register_table(name, Arc::new(StreamingTable::try_new(schema, parts)?))?;
    }
    Ok(())
}

/// `tcpfr pcap FILE…`: what the wire shows, in the terms tshark uses.
pub fn summary(files: &[PathBuf], progress: progress::Progress) -> Result<()> {
    for path in files {
        let started = std::time::Instant::now();
        let mut rt = [0u64; 3];
        let mut ooo = 0u64;
        let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
        let (flows, st) = scan(path, progress, |_, s, l| {
            if l.is_retransmission() {
                let i = if l.bits & label::FAST_RETRANSMISSION != 0 {
                    1
                } else if l.bits & label::SPURIOUS_RETRANSMISSION != 0 {
                    2
                } else {
                    0
                };
                rt[i] += 1;
                *kinds.entry(segment_kind(s.flags)).or_insert(0) += 1;
            }
            ooo += (l.bits & label::OUT_OF_ORDER != 0) as u64;
        })
        .with_context(|| format!("reading capture {}", path.display()))?;
        outln!("{}", path.display())?;
        let span = match (st.first_ns, st.last_ns) {
            (Some(a), Some(b)) => format!(
                "{} → {} ({:.3} s)",
                chrono::DateTime::from_timestamp_nanos(a).format("%Y-%m-%d %H:%M:%S%.3f UTC"),
                chrono::DateTime::from_timestamp_nanos(b).format("%H:%M:%S%.3f"),
                (b - a) as f64 / 1e9
            ),
            _ => "empty".into(),
        };
        outln!("  time          {span}")?;
        outln!("  frames        {} ({} TCP segments)", st.frames, st.tcp)?;
        if !st.skipped.is_empty() {
            let s: Vec<String> = st.skipped.iter().map(|(k, v)| format!("{v} {}", k.name())).collect();
            outln!("  skipped       {}", s.join(", "))?;
        }
        outln!("  conversations {}", flows.len())?;
        let total: u64 = rt.iter().sum();
        let k: Vec<String> = kinds.iter().map(|(k, v)| format!("{v} {k}")).collect();
        outln!(
            "  retransmissions {total} (tcp.analysis.retransmission: {} plain, {} fast, {} spurious; by segment: {})",
            rt[0],
            rt[1],
            rt[2],
            if k.is_empty() { "-".into() } else { k.join(", ") }
        )?;
        outln!("  out-of-order  {ooo} (tshark calls a gap filled within the handshake RTT out-of-order, not a retransmission)")?;
        let mut hs = std::collections::BTreeMap::<&str, u64>::new();
        for fl in &flows {
            *hs.entry(fl.handshake.name()).or_insert(0) += 1;
        }
        let h: Vec<String> = hs.iter().map(|(k, v)| format!("{v} {k}")).collect();
        outln!("  handshakes    {}", h.join(", "))?;
        let resets: u64 = flows.iter().map(|f| f.resets[0] + f.resets[1]).sum();
        outln!("  resets        {resets} RST segments in {} conversations", flows.iter().filter(|f| f.resets != [0, 0]).count())?;
        let mut top: Vec<&FlowSummary> = flows.iter().filter(|f| f.retransmissions != [0, 0] || f.syn_retransmissions > 0).collect();
        top.sort_by_key(|f| std::cmp::Reverse(f.retransmissions[0] + f.retransmissions[1]));
        if !top.is_empty() {
            outln!("  most retransmissions:")?;
            for fl in top.iter().take(10) {
                outln!(
                    "    {:>6} {}:{} → {}:{} ({} from the {}, {} back; handshake {})",
                    fl.retransmissions[0] + fl.retransmissions[1],
                    addr(fl.a.0).0,
                    fl.a.1,
                    addr(fl.b.0).0,
                    fl.b.1,
                    fl.retransmissions[0],
                    if fl.a_is_client { "client" } else { "first sender" },
                    fl.retransmissions[1],
                    fl.handshake.name()
                )?;
            }
        }
        for w in &st.warnings {
            outln!("  warning: {w}")?;
        }
        eprintln!("  ({:.2} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}
