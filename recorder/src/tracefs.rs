//! What tracefs says about the running kernel's TCP tracepoints: that they exist, the
//! record layout of `tcp:tcp_probe` (the one classic tracepoint we attach), and the
//! names of reset reasons. Nothing about them is compiled in; a missing tracepoint or
//! field is an error that names it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tcpfr_schema::raw::{addr_layout, tp_field as f, AddrOffsets, TpOffsets, NO_FIELD, TP_RECORD_MAX};

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub offset: u16,
    pub size: u16,
}

/// A parsed `format` file.
#[derive(Debug, Clone, Default)]
pub struct Format {
    pub name: String,
    pub fields: HashMap<String, Field>,
    pub print_fmt: String,
}

/// Where tracefs is, mounting it at /sys/kernel/tracing if nothing is mounted.
pub fn ensure_mounted() -> Result<PathBuf> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(p).join("events").is_dir() {
            return Ok(PathBuf::from(p));
        }
    }
    let target = Path::new("/sys/kernel/tracing");
    // SAFETY: constant C strings; mount(2) reads nothing else.
    let rc = crate::privileges::with_sys_admin(|| unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    });
    if rc != 0 || !target.join("events").is_dir() {
        bail!(
            "tracefs is not mounted and mounting it at {} failed ({}); mount it with \
             `mount -t tracefs nodev /sys/kernel/tracing`",
            target.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(target.to_path_buf())
}

/// Reads `events/<group>/<name>/format`.
pub fn read_format(root: &Path, group: &str, name: &str) -> Result<Format> {
    let path = root.join("events").join(group).join(name).join("format");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("tracepoint {group}:{name} is not available on this kernel ({} unreadable)", path.display())
    })?;
    let mut fmt = parse_format(&text);
    fmt.name = format!("{group}:{name}");
    Ok(fmt)
}

/// Parses the text of a `format` file.
pub fn parse_format(text: &str) -> Format {
    let mut fmt = Format::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("print fmt:") {
            fmt.print_fmt = rest.trim().to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix("field:") else { continue };
        // "field:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;"
        let mut decl = "";
        let mut offset = None;
        let mut size = None;
        for part in rest.split(';') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.trim().parse::<u16>().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.trim().parse::<u16>().ok();
            } else if decl.is_empty() && !part.is_empty() && !part.contains(':') {
                decl = part;
            }
        }
        let (Some(offset), Some(size)) = (offset, size) else { continue };
        let name = decl
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or("")
            .split('[')
            .next()
            .unwrap_or("");
        if name.starts_with("common_") || name.is_empty() {
            continue;
        }
        fmt.fields.insert(name.to_string(), Field { offset, size });
    }
    fmt
}

impl Format {
    /// A scalar field (read with an aligned load).
    fn field(&self, name: &str, sizes: &[u16]) -> Result<&Field> {
        self.field_aligned(name, sizes, true)
    }

    /// A byte array (addresses; read byte by byte, any alignment).
    fn bytes(&self, name: &str, sizes: &[u16]) -> Result<&Field> {
        self.field_aligned(name, sizes, false)
    }

    fn field_aligned(&self, name: &str, sizes: &[u16], aligned: bool) -> Result<&Field> {
        let Some(field) = self.fields.get(name) else {
            bail!(
                "tracepoint {} has no field `{name}` on this kernel (fields: {}); tcpfr cannot record it",
                self.name,
                self.field_names()
            );
        };
        if !sizes.contains(&field.size) {
            bail!("tracepoint {}: field `{name}` has size {}, expected one of {sizes:?}", self.name, field.size);
        }
        // The programs read scalars with aligned loads.
        let align = field.size.min(8);
        if aligned && field.offset % align != 0 {
            bail!("tracepoint {}: field `{name}` at offset {} is not {align}-aligned", self.name, field.offset);
        }
        if field.offset as usize + field.size as usize > TP_RECORD_MAX {
            bail!("tracepoint {}: field `{name}` lies beyond {TP_RECORD_MAX} bytes", self.name);
        }
        Ok(field)
    }

    fn field_names(&self) -> String {
        let mut names: Vec<&str> = self.fields.keys().map(|s| s.as_str()).collect();
        names.sort();
        names.join(", ")
    }
}

/// Builds the offsets of one tracepoint from the fields the program uses.
struct Builder<'a> {
    fmt: &'a Format,
    tp: TpOffsets,
}

impl<'a> Builder<'a> {
    fn new(fmt: &'a Format) -> Self {
        Builder { fmt, tp: TpOffsets::EMPTY }
    }

    fn grow(&mut self, field: &Field) {
        self.tp.size = self.tp.size.max(field.offset + field.size);
    }

    fn need(mut self, slot: usize, name: &str, sizes: &[u16]) -> Result<Self> {
        let field = self.fmt.field(name, sizes)?.clone();
        self.tp.fields[slot] = field.offset;
        self.grow(&field);
        Ok(self)
    }

    fn addrs(mut self) -> Result<Self> {
        let fmt = self.fmt;
        let a = if fmt.fields.get("saddr").is_some_and(|f| f.size == 28) {
            let s = fmt.bytes("saddr", &[28])?.clone();
            let d = fmt.bytes("daddr", &[28])?.clone();
            // The family (u16) and port (u16) inside the sockaddrs are read as scalars.
            if s.offset % 2 != 0 || d.offset % 2 != 0 {
                bail!("tracepoint {}: saddr/daddr are not 2-aligned", fmt.name);
            }
            self.grow(&s);
            self.grow(&d);
            AddrOffsets {
                layout: addr_layout::SOCKADDR,
                family: NO_FIELD,
                sport: NO_FIELD,
                dport: NO_FIELD,
                saddr: s.offset,
                daddr: d.offset,
                saddr_v6: NO_FIELD,
                daddr_v6: NO_FIELD,
            }
        } else {
            let mut get = |name: &str, size: u16| -> Result<u16> {
                let field = if size == 2 { fmt.field(name, &[2])? } else { fmt.bytes(name, &[size])? }.clone();
                self.grow(&field);
                Ok(field.offset)
            };
            AddrOffsets {
                layout: addr_layout::SPLIT,
                family: get("family", 2)?,
                sport: get("sport", 2)?,
                dport: get("dport", 2)?,
                saddr: get("saddr", 4)?,
                daddr: get("daddr", 4)?,
                saddr_v6: get("saddr_v6", 16)?,
                daddr_v6: get("daddr_v6", 16)?,
            }
        };
        self.tp.addr = a;
        Ok(self)
    }

    fn done(self) -> TpOffsets {
        self.tp
    }
}

/// What the programs need from tracefs.
#[derive(Debug, Clone)]
pub struct Tracepoints {
    /// Record layout of `tcp:tcp_probe`.
    pub probe: TpOffsets,
    /// `enum sk_rst_reason` value → name, from tcp_send_reset's print format.
    pub reset_reasons: HashMap<u32, String>,
}

pub fn load(root: &Path) -> Result<Tracepoints> {
    let mut reset_fmt = Format::default();
    for (group, name) in crate::programs::tracepoints() {
        let fmt = read_format(root, group, name)?;
        if name == "tcp_send_reset" {
            reset_fmt = fmt;
        }
    }
    let pr = read_format(root, "tcp", "tcp_probe")?;
    let probe = Builder::new(&pr)
        .need(f::SKADDR, "skaddr", &[8])?
        .need(f::SND_NXT, "snd_nxt", &[4])?
        .need(f::SND_UNA, "snd_una", &[4])?
        .need(f::SND_CWND, "snd_cwnd", &[4])?
        .need(f::SSTHRESH, "ssthresh", &[4])?
        .need(f::SND_WND, "snd_wnd", &[4])?
        .need(f::SRTT, "srtt", &[4])?
        .need(f::RCV_WND, "rcv_wnd", &[4])?
        .addrs()?
        .done();
    Ok(Tracepoints {
        probe,
        reset_reasons: symbolic_names(&reset_fmt.print_fmt, "REC->reason"),
    })
}

/// Value → name pairs of `__print_symbolic(<arg>, { 0, "NAME" }, …)` in a print format.
pub fn symbolic_names(print_fmt: &str, arg: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    let Some(start) = print_fmt.find(&format!("__print_symbolic({arg},")) else { return out };
    let rest = &print_fmt[start..];
    let end = rest.find(")").unwrap_or(rest.len());
    for pair in rest[..end].split('{').skip(1) {
        let pair = pair.split('}').next().unwrap_or("");
        let mut it = pair.splitn(2, ',');
        let (Some(v), Some(name)) = (it.next(), it.next()) else { continue };
        if let Ok(v) = v.trim().parse::<u32>() {
            out.insert(v, name.trim().trim_matches('"').to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND_RESET: &str = r#"name: tcp_send_reset
ID: 1234
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:const void * skbaddr;	offset:8;	size:8;	signed:0;
	field:const void * skaddr;	offset:16;	size:8;	signed:0;
	field:int state;	offset:24;	size:4;	signed:1;
	field:enum sk_rst_reason reason;	offset:28;	size:4;	signed:0;
	field:__u8 saddr[28];	offset:32;	size:28;	signed:0;
	field:__u8 daddr[28];	offset:60;	size:28;	signed:0;

print fmt: "skbaddr=%p state=%s reason=%s", REC->skbaddr, REC->state ? __print_symbolic(REC->state, { TCP_ESTABLISHED, "TCP_ESTABLISHED" }) : "UNKNOWN", __print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, { 1, "NO_SOCKET" }, { 11, "TCP_ABORT_ON_CLOSE" })
"#;

    #[test]
    fn parses_fields_and_sockaddr_layout() {
        let fmt = parse_format(SEND_RESET);
        assert_eq!(fmt.fields["skaddr"], Field { offset: 16, size: 8 });
        assert_eq!(fmt.fields["saddr"], Field { offset: 32, size: 28 });
        assert!(!fmt.fields.contains_key("common_type"));
        let tp = Builder::new(&fmt)
            .need(f::SKADDR, "skaddr", &[8])
            .unwrap()
            .need(f::SND_NXT, "reason", &[4])
            .unwrap()
            .addrs()
            .unwrap()
            .done();
        assert_eq!(tp.addr.layout, addr_layout::SOCKADDR);
        assert_eq!((tp.addr.saddr, tp.addr.daddr), (32, 60));
        assert_eq!(tp.fields[f::SND_NXT], 28);
        assert_eq!(tp.fields[f::SND_UNA], NO_FIELD, "unused slots stay empty");
        assert_eq!(tp.size, 88);
        let reasons = symbolic_names(&fmt.print_fmt, "REC->reason");
        assert_eq!(reasons[&1], "NO_SOCKET");
        assert_eq!(reasons[&11], "TCP_ABORT_ON_CLOSE");
    }

    #[test]
    fn missing_field_is_named() {
        let mut fmt = parse_format(SEND_RESET);
        fmt.name = "tcp:tcp_send_reset".into();
        let err = Builder::new(&fmt).need(f::SRTT, "oldstate", &[4]).err().unwrap().to_string();
        assert!(err.contains("tcp:tcp_send_reset") && err.contains("`oldstate`"), "{err}");
    }

    #[test]
    fn reads_this_kernels_formats() {
        // On a kernel with tracefs (CI runs as root), every tracepoint we use must load.
        let Ok(root) = ensure_mounted() else {
            panic!("tracefs unavailable: run as root (the recorder needs it)")
        };
        let tps = load(&root).unwrap();
        assert!(tps.probe.size > 0);
        assert_eq!(tps.probe.addr.layout, addr_layout::SOCKADDR);
        assert!(tps.reset_reasons.values().any(|r| r == "NO_SOCKET"));
    }
}
