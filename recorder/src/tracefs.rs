//! What tracefs says about the running kernel's TCP tracepoints: that they exist, and
//! the names of reset reasons. Nothing about them is compiled in; a missing tracepoint
//! is an error that names it. (The programs read their arguments, not the classic
//! tracepoints' formatted records, so no record layout is needed.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

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

/// What the programs need from tracefs.
#[derive(Debug, Clone)]
pub struct Tracepoints {
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
    Ok(Tracepoints {
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
    fn parses_fields_and_reset_reasons() {
        let fmt = parse_format(SEND_RESET);
        assert_eq!(fmt.fields["skaddr"], Field { offset: 16, size: 8 });
        assert_eq!(fmt.fields["saddr"], Field { offset: 32, size: 28 });
        assert!(!fmt.fields.contains_key("common_type"));
        let reasons = symbolic_names(&fmt.print_fmt, "REC->reason");
        assert_eq!(reasons[&1], "NO_SOCKET");
        assert_eq!(reasons[&11], "TCP_ABORT_ON_CLOSE");
    }

    #[test]
    fn reads_this_kernels_formats() {
        // On a kernel with tracefs (CI runs as root), every tracepoint we use must load.
        let Ok(root) = ensure_mounted() else {
            panic!("tracefs unavailable: run as root (the recorder needs it)")
        };
        let tps = load(&root).unwrap();
        let err = read_format(&root, "tcp", "no_such_tracepoint").unwrap_err().to_string();
        assert!(err.contains("tcp:no_such_tracepoint") && err.contains("not available"), "{err}");
        assert!(tps.reset_reasons.values().any(|r| r == "NO_SOCKET"));
    }
}
