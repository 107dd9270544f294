//! What the kernel's BTF (`/sys/kernel/btf/vmlinux`) says that the programs need:
//! offsets inside kernel structs (aya-ebpf has no CO-RE relocations, so the programs
//! get these numbers as data), and the argument lists of the raw tracepoints, which
//! differ between kernel versions.

use std::path::Path;

use anyhow::{bail, Context, Result};
use btfparse::{Integer32Value, Offset, Readable, TypeInformation, TypeVariant};
use tcpfr_schema::raw::{kernel_flag, BtfOffsets, NO_OFFSET, SCRATCH_BYTES};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// What a missing `tcp_sock` field of the socket walk costs.
const LISTENERS: &str = "the listeners table will be empty";
const DROPS: &str = "the drops table will be empty";
const LIMITS: &str = "flows will not say what limited a connection (busy/rwnd/sndbuf times, delivery rate, ECN, DSACKs)";
const WALK: &str = "the socket walk cannot sample RTT (rtt_samples needs --rtt-per-ack on this kernel)";

/// What a missing field of the owner walk costs.
const CAUSE: &str = "retransmits.cause and rto_backoff will be null";
const CAUSE_PARTLY: &str = "retransmits.cause";
const OWNERS: &str = "owners of sockets older than the recording are looked up in /proc instead";

impl Kernel {
    /// Whether every field the owner walk (`iter/task_file`) reads was found.
    pub fn can_walk_owners(&self) -> bool {
        let o = &self.offsets;
        [o.task_tgid, o.file_f_inode, o.inode_i_mode, o.file_private_data, o.socket_sk, o.sk_net, o.net_inum]
            .iter()
            .all(|&off| off != NO_OFFSET)
    }

    /// Whether every `tcp_sock` field the socket walk reads was found.
    pub fn can_walk(&self) -> bool {
        let o = &self.offsets;
        sample_fields(o).iter().chain(&[o.tcp_bytes_acked, o.tcp_bytes_received]).all(|&off| off != NO_OFFSET)
    }
}

struct Bytes<'a>(&'a [u8]);

impl Readable for Bytes<'_> {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = offset as usize;
        match self.0.get(start..start.saturating_add(buffer.len())) {
            Some(src) if start < self.0.len() => {
                buffer.copy_from_slice(src);
                Ok(())
            }
            _ => Err(btfparse::Error::new(btfparse::ErrorKind::EOF, "read past the end of the BTF data")),
        }
    }
}

/// One argument of a raw tracepoint: a pointer to a named struct, or a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Ptr(String),
    Scalar,
}

pub struct Kernel {
    pub offsets: BtfOffsets,
    /// [`kernel_flag`] bits.
    pub flags: u32,
    /// Things that work less well on this kernel, for the log and `recorder_stats`.
    pub warnings: Vec<String>,
    /// `enum skb_drop_reason`'s names by value, without the `SKB_DROP_REASON_` prefix.
    pub drop_reasons: std::collections::HashMap<u32, String>,
}

struct Btf {
    ti: TypeInformation,
}

impl Btf {
    fn offset(&self, ty: &str, field: &str) -> Option<u32> {
        let id = self.ti.id_of(ty)?;
        match self.ti.offset_of(id, field).ok()?.1 {
            Offset::ByteOffset(o) => Some(o),
            Offset::BitOffsetAndSize(..) => None,
        }
    }

    /// Byte offset of a bitfield of `bits` bits that starts a byte, so that it is that
    /// byte's low bits on a little-endian machine (the programs read the byte and mask).
    fn low_bits(&self, ty: &str, field: &str, bits: u32) -> Option<u32> {
        let id = self.ti.id_of(ty)?;
        match self.ti.offset_of(id, field).ok()?.1 {
            Offset::BitOffsetAndSize(bit, size) if bit % 8 == 0 && size == bits && cfg!(target_endian = "little") => {
                Some(bit / 8)
            }
            _ => None,
        }
    }

    /// The value of `name` in `enum type_name`.
    fn enum_value(&self, type_name: &str, name: &str) -> Option<u32> {
        let TypeVariant::Enum(e) = self.ti.from_id(self.ti.id_of(type_name)?)? else { return None };
        let v = e.named_value_list().iter().find(|v| v.name == name)?;
        match v.value {
            Integer32Value::Unsigned(u) => Some(u),
            Integer32Value::Signed(i) => u32::try_from(i).ok(),
        }
    }

    /// Every (value, name) of enum `type_name`.
    fn enum_names(&self, type_name: &str) -> Vec<(u32, String)> {
        let Some(TypeVariant::Enum(e)) = self.ti.id_of(type_name).and_then(|id| self.ti.from_id(id)) else { return Vec::new() };
        e.named_value_list()
            .iter()
            .filter_map(|v| {
                let n = match v.value {
                    Integer32Value::Unsigned(u) => u,
                    Integer32Value::Signed(i) => u32::try_from(i).ok()?,
                };
                Some((n, v.name.clone()))
            })
            .collect()
    }

    /// Skips const/volatile/typedef.
    fn strip(&self, mut tid: u32) -> Option<TypeVariant> {
        loop {
            let t = self.ti.from_id(tid)?;
            tid = match &t {
                TypeVariant::Const(c) => *c.tid(),
                TypeVariant::Volatile(v) => *v.tid(),
                TypeVariant::Typedef(t) => *t.tid(),
                TypeVariant::Restrict(r) => *r.tid(),
                _ => return Some(t),
            };
        }
    }

    /// Arguments of raw tracepoint `name` (from the `btf_trace_<name>` typedef), without
    /// the leading `void *__data`.
    fn raw_tp_args(&self, name: &str) -> Option<Vec<Arg>> {
        let id = self.ti.id_of(&format!("btf_trace_{name}"))?;
        let TypeVariant::Ptr(p) = self.strip(id)? else { return None };
        let TypeVariant::FuncProto(fp) = self.strip(*p.tid())? else { return None };
        let mut out = Vec::new();
        for param in fp.parameter_list().iter().skip(1) {
            out.push(match self.strip(param.tid()) {
                Some(TypeVariant::Ptr(p)) => match self.strip(*p.tid()) {
                    Some(TypeVariant::Struct(s)) => Arg::Ptr(s.name().clone().unwrap_or_default()),
                    _ => Arg::Ptr(String::new()),
                },
                _ => Arg::Scalar,
            });
        }
        Some(out)
    }
}

fn ptr(s: &str) -> Arg {
    Arg::Ptr(s.to_string())
}

/// Checks that raw tracepoint `name` takes `required` (and maybe `optional` after
/// them); returns whether the optional arguments are there.
fn check_args(btf: &Btf, name: &str, required: &[Arg], optional: &[Arg]) -> Result<bool> {
    let Some(args) = btf.raw_tp_args(name) else {
        bail!("kernel BTF has no raw tracepoint {name} (btf_trace_{name}); this kernel is too old or lacks it");
    };
    let full: Vec<Arg> = required.iter().chain(optional).cloned().collect();
    if args == required {
        Ok(false)
    } else if !optional.is_empty() && args == full {
        Ok(true)
    } else {
        bail!("raw tracepoint {name} takes {args:?} on this kernel; tcpfr understands {required:?} optionally followed by {optional:?}")
    }
}

pub fn load(path: &Path) -> Result<Kernel> {
    let data = std::fs::read(path).with_context(|| {
        format!(
            "cannot read kernel BTF at {} (the kernel needs CONFIG_DEBUG_INFO_BTF=y; tcpfr reads struct layouts from it)",
            path.display()
        )
    })?;
    let ti = TypeInformation::new(&Bytes(&data)).map_err(|e| anyhow::anyhow!("cannot parse {}: {e:?}", path.display()))?;
    let btf = Btf { ti };
    let mut warnings = Vec::new();
    let flags = tracepoint_flags(&btf, &mut warnings)?;
    let mut offsets = offsets(&btf, &mut warnings)?;
    offsets.sk_head_len = sock_head(&btf, &offsets)?;
    (offsets.tcp_sample_at, offsets.tcp_sample_len) = sample_block(&offsets);
    let drop_reasons = btf
        .enum_names("skb_drop_reason")
        .into_iter()
        .map(|(v, n)| (v, n.strip_prefix("SKB_DROP_REASON_").unwrap_or(&n).to_string()))
        .collect();
    Ok(Kernel { offsets, flags, warnings, drop_reasons })
}

/// Checks the arguments of the tracepoints the programs attach to; returns the
/// [`kernel_flag`]s of this kernel's optional ones.
fn tracepoint_flags(btf: &Btf, warnings: &mut Vec<String>) -> Result<u32> {
    let mut flags = 0;
    if check_args(btf, "tcp_retransmit_skb", &[ptr("sock"), ptr("sk_buff")], &[Arg::Scalar])? {
        flags |= kernel_flag::RETRANSMIT_HAS_ERR;
    }
    check_args(btf, "tcp_retransmit_synack", &[ptr("sock"), ptr("request_sock")], &[])?;
    check_args(btf, "inet_sock_set_state", &[ptr("sock"), Arg::Scalar, Arg::Scalar], &[])?;
    if check_args(btf, "tcp_send_reset", &[ptr("sock"), ptr("sk_buff")], &[Arg::Scalar])? {
        flags |= kernel_flag::SEND_RESET_HAS_REASON;
    }
    check_args(btf, "tcp_receive_reset", &[ptr("sock")], &[])?;
    check_args(btf, "tcp_probe", &[ptr("sock"), ptr("sk_buff")], &[])?;
    // (skb, location, reason[, rx_sk]): the drops program reads the skb and the reason.
    let kfree_skb = check_args(btf, "kfree_skb", &[ptr("sk_buff"), Arg::Ptr(String::new()), Arg::Scalar], &[ptr("sock")]);
    match kfree_skb {
        Ok(rx_sk) => flags |= kernel_flag::KFREE_SKB_OK | if rx_sk { kernel_flag::KFREE_SKB_RX_SK } else { 0 },
        Err(e) => warnings.push(format!("{e:#}: the drops table will be empty")),
    }
    if flags & kernel_flag::RETRANSMIT_HAS_ERR == 0 {
        warnings.push("tcp_retransmit_skb has no `err` on this kernel (before 6.13): failed attempts cannot be told apart, retransmits.err will be null".to_string());
    }
    Ok(flags)
}

/// The offsets of every field a program reads; a missing optional one is a warning
/// that says what will be missing (`sk_head_len` and the sample block are set after).
fn offsets(btf: &Btf, warnings: &mut Vec<String>) -> Result<BtfOffsets> {
    let write_timer_deferred_bit = btf.enum_value("tsq_enum", "TCP_WRITE_TIMER_DEFERRED").filter(|&b| b < 64);
    if write_timer_deferred_bit.is_none() {
        warnings.push(format!("kernel BTF has no tsq_enum.TCP_WRITE_TIMER_DEFERRED: a few fast retransmits may show as tail loss probes ({CAUSE_PARTLY})"));
    }
    let icsk_ca_state = btf.low_bits("inet_connection_sock", "icsk_ca_state", 5).unwrap_or_else(|| {
        warnings.push(format!("kernel BTF has no 5-bit inet_connection_sock.icsk_ca_state starting a byte: {CAUSE}"));
        NO_OFFSET
    });
    let required = |ty: &str, field: &str| -> Result<u32> {
        btf.offset(ty, field)
            .with_context(|| format!("kernel BTF has no {ty}.{field}, which tcpfr needs to read sockets"))
    };
    let mut optional = |ty: &str, field: &str, what: &str| -> u32 {
        btf.offset(ty, field).unwrap_or_else(|| {
            warnings.push(format!("kernel BTF has no {ty}.{field}: {what}"));
            NO_OFFSET
        })
    };
    let (Some(cb), Some(gso)) = (btf.offset("sk_buff", "cb"), btf.offset("tcp_skb_cb", "tcp_gso_segs")) else {
        bail!(
            "kernel BTF lacks sk_buff.cb or tcp_skb_cb.tcp_gso_segs: without them a retransmit of a \
             TSO/GSO packet cannot be counted in segments, and counts would disagree with RetransSegs"
        );
    };
    let o = BtfOffsets {
        skb_gso_segs: cb + gso,
        skb_head: optional("sk_buff", "head", "addresses of resets sent without a socket will be empty"),
        skb_network_header: optional("sk_buff", "network_header", "addresses of resets sent without a socket will be empty"),
        skb_transport_header: optional("sk_buff", "transport_header", "addresses of resets sent without a socket will be empty"),
        sk_family: required("sock_common", "skc_family")?,
        sk_state: required("sock_common", "skc_state")?,
        sk_num: required("sock_common", "skc_num")?,
        sk_dport: required("sock_common", "skc_dport")?,
        sk_rcv_saddr: required("sock_common", "skc_rcv_saddr")?,
        sk_daddr: required("sock_common", "skc_daddr")?,
        sk_v6_rcv_saddr: optional("sock_common", "skc_v6_rcv_saddr", "no IPv6 in this kernel: IPv6 addresses will be empty"),
        sk_v6_daddr: optional("sock_common", "skc_v6_daddr", "no IPv6 in this kernel: IPv6 addresses will be empty"),
        sk_head_len: 0,
        sk_protocol: required("sock", "sk_protocol")?,
        sk_net: optional("sock", "__sk_common.skc_net.net", "netns will be null"),
        net_inum: optional("net", "ns.inum", "netns will be null"),
        sk_err: optional("sock", "sk_err", "flows.error and handshake causes will be missing"),
        tcp_mdev_us: optional("tcp_sock", "mdev_us", "rtt_samples.rttvar_us will be null"),
        tcp_total_retrans: optional(
            "tcp_sock",
            "total_retrans",
            "whether a failed retransmit was counted is guessed from its error code",
        ),
        skb_dev: optional("sk_buff", "dev", "resets sent without a socket will have no netns"),
        dev_net: optional("net_device", "nd_net.net", "resets sent without a socket will have no netns"),
        tcp_srtt_us: optional("tcp_sock", "srtt_us", WALK),
        tcp_snd_cwnd: optional("tcp_sock", "snd_cwnd", WALK),
        tcp_snd_ssthresh: optional("tcp_sock", "snd_ssthresh", WALK),
        tcp_snd_wnd: optional("tcp_sock", "snd_wnd", WALK),
        tcp_rcv_wnd: optional("tcp_sock", "rcv_wnd", WALK),
        tcp_snd_nxt: optional("tcp_sock", "snd_nxt", WALK),
        tcp_snd_una: optional("tcp_sock", "snd_una", WALK),
        tcp_bytes_acked: optional("tcp_sock", "bytes_acked", WALK),
        tcp_bytes_received: optional("tcp_sock", "bytes_received", WALK),
        task_tgid: optional("task_struct", "tgid", OWNERS),
        file_f_inode: optional("file", "f_inode", OWNERS),
        inode_i_mode: optional("inode", "i_mode", OWNERS),
        file_private_data: optional("file", "private_data", OWNERS),
        socket_sk: optional("socket", "sk", OWNERS),
        icsk_ca_state,
        icsk_pending: optional("inet_connection_sock", "icsk_pending", CAUSE),
        icsk_backoff: optional("inet_connection_sock", "icsk_backoff", CAUSE),
        icsk_timer_expires: optional("inet_connection_sock", "icsk_retransmit_timer.expires", CAUSE),
        sk_tsq_flags: match write_timer_deferred_bit {
            Some(_) => optional("sock", "sk_tsq_flags", CAUSE),
            None => NO_OFFSET,
        },
        write_timer_deferred_bit: write_timer_deferred_bit.unwrap_or(0),
        sk_ack_backlog: optional("sock", "sk_ack_backlog", LISTENERS),
        sk_max_ack_backlog: optional("sock", "sk_max_ack_backlog", LISTENERS),
        sk_drops: optional("sock", "sk_drops", LISTENERS),
        skb_protocol: optional("sk_buff", "protocol", DROPS),
        skb_iif: optional("sk_buff", "skb_iif", DROPS),
        skb_sk: optional("sk_buff", "sk", DROPS),
        // A u8 on recent kernels, a 2-bit field starting a byte on older ones: the
        // program masks the byte either way.
        tcp_chrono_type: match btf.low_bits("tcp_sock", "chrono_type", 2) {
            Some(o) => o,
            None => optional("tcp_sock", "chrono_type", LIMITS),
        },
        tcp_chrono_start: optional("tcp_sock", "chrono_start", LIMITS),
        tcp_chrono_stat: optional("tcp_sock", "chrono_stat", LIMITS),
        tcp_delivered_ce: optional("tcp_sock", "delivered_ce", LIMITS),
        tcp_dsack_dups: optional("tcp_sock", "dsack_dups", LIMITS),
        tcp_reord_seen: optional("tcp_sock", "reord_seen", LIMITS),
        tcp_rate_delivered: optional("tcp_sock", "rate_delivered", LIMITS),
        tcp_rate_interval_us: optional("tcp_sock", "rate_interval_us", LIMITS),
        tcp_mss_cache: optional("tcp_sock", "mss_cache", LIMITS),
        icsk_ca_ops: optional("inet_connection_sock", "icsk_ca_ops", LIMITS),
        ca_ops_name: optional("tcp_congestion_ops", "name", LIMITS),
        skb_tcp_seq: match btf.offset("tcp_skb_cb", "seq") {
            Some(seq) => cb + seq,
            None => NO_OFFSET,
        },
        // Set below, from the fields above.
        tcp_sample_at: 0,
        tcp_sample_len: 0,
        _pad: 0,
    };
    Ok(o)
}

/// The bytes to copy from the start of a socket to cover its `sock_common` fields,
/// after checking that request, timewait and full sockets share them.
fn sock_head(btf: &Btf, o: &BtfOffsets) -> Result<u32> {
    // struct sock begins with sock_common, so these offsets hold for both.
    if btf.offset("sock", "__sk_common") != Some(0) {
        bail!("struct sock does not begin with __sk_common on this kernel");
    }
    let head_end = [
        (o.sk_family, 2),
        (o.sk_state, 1),
        (o.sk_num, 2),
        (o.sk_dport, 2),
        (o.sk_rcv_saddr, 4),
        (o.sk_daddr, 4),
        (o.sk_v6_rcv_saddr, 16),
        (o.sk_v6_daddr, 16),
    ]
    .iter()
    .filter(|(off, _)| *off != NO_OFFSET)
    .map(|(off, size)| off + size)
    .max()
    .unwrap_or(0);
    if head_end as usize > SCRATCH_BYTES {
        bail!("sock_common fields end at byte {head_end}, beyond the {SCRATCH_BYTES} bytes the programs copy");
    }
    for (off, align, what) in [(o.sk_family, 2, "skc_family"), (o.sk_num, 2, "skc_num"), (o.sk_dport, 2, "skc_dport")] {
        if off % align != 0 {
            bail!("sock_common.{what} at {off} is not {align}-aligned");
        }
    }
    Ok(head_end)
}

/// The `tcp_sock` fields an RTT sample needs (u32 each; `mdev_us` is optional).
fn sample_fields(o: &BtfOffsets) -> [u32; 7] {
    [o.tcp_srtt_us, o.tcp_snd_cwnd, o.tcp_snd_ssthresh, o.tcp_snd_wnd, o.tcp_rcv_wnd, o.tcp_snd_nxt, o.tcp_snd_una]
}

/// The block of `tcp_sock` an RTT sample reads: (start, length), or (0, 0) if its
/// fields are missing, misaligned or spread over more than the scratch space.
fn sample_block(o: &BtfOffsets) -> (u32, u32) {
    let fields = sample_fields(o);
    let present = || fields.iter().copied().chain(std::iter::once(o.tcp_mdev_us)).filter(|&f| f != NO_OFFSET);
    let (Some(start), Some(last)) = (present().min(), present().max()) else { return (0, 0) };
    let len = last + 4 - start;
    if len as usize > SCRATCH_BYTES || present().any(|f| f % 4 != 0) {
        return (0, 0);
    }
    (start, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_offset_and_tracepoint_on_this_kernel() {
        let k = load(Path::new(VMLINUX)).expect("this kernel has BTF");
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
        let o = k.offsets;
        // cb is 40 bytes into sk_buff on every kernel since 4.x; sock_common is small.
        assert!(o.skb_gso_segs >= 40 && o.skb_gso_segs < 40 + 48, "{o:?}");
        assert!(o.sk_head_len > 0 && o.sk_head_len < 136, "{o:?}");
        assert!(o.tcp_mdev_us > 1000, "{o:?}");
        assert!(k.can_walk(), "{o:?}");
        // As `bpftool btf dump` shows tcp_sock here: snd_wnd (1436) is the first of the
        // sample's fields and rcv_wnd (1720) the last, 288 bytes in all.
        assert_eq!((o.tcp_sample_at, o.tcp_sample_len), (o.tcp_snd_wnd, o.tcp_rcv_wnd + 4 - o.tcp_snd_wnd), "{o:?}");
        assert_eq!((o.tcp_snd_wnd, o.tcp_rcv_wnd), (1436, 1720), "{o:?}");
        // As `bpftool btf dump` shows inet_connection_sock here: the ca_state bitfield's
        // byte, then icsk_retransmits, icsk_pending, icsk_backoff.
        assert!(o.icsk_ca_state > 1000 && o.icsk_ca_state != NO_OFFSET, "{o:?}");
        assert_eq!((o.icsk_pending, o.icsk_backoff), (o.icsk_ca_state + 2, o.icsk_ca_state + 3), "{o:?}");
        // `TCP_WRITE_TIMER_DEFERRED = 3` in this kernel's enum tsq_enum.
        assert_eq!(o.write_timer_deferred_bit, 3);
        assert!(o.sk_tsq_flags != NO_OFFSET && o.icsk_timer_expires != NO_OFFSET, "{o:?}");
        // As `bpftool btf dump` shows struct sock here (bits 1088, 4800, 4832).
        assert_eq!((o.sk_drops, o.sk_ack_backlog, o.sk_max_ack_backlog), (136, 600, 604), "{o:?}");
        assert_eq!(k.flags & kernel_flag::RETRANSMIT_HAS_ERR, kernel_flag::RETRANSMIT_HAS_ERR, "6.18 has err");
        assert_eq!(k.flags & kernel_flag::SEND_RESET_HAS_REASON, kernel_flag::SEND_RESET_HAS_REASON);
        assert_eq!(k.flags & kernel_flag::KFREE_SKB_OK, kernel_flag::KFREE_SKB_OK);
        assert_eq!(k.flags & kernel_flag::KFREE_SKB_RX_SK, kernel_flag::KFREE_SKB_RX_SK, "6.18 has rx_sk");
        assert_eq!(k.drop_reasons.get(&2).map(String::as_str), Some("NOT_SPECIFIED"), "value 2 here (bpftool btf dump)");
        assert!(k.drop_reasons.values().any(|n| n == "NETFILTER_DROP"));
    }
}
