//! Offsets inside kernel structs, from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`). aya-ebpf has no CO-RE relocations, so the programs get
//! these numbers as data instead.

use std::path::Path;

use anyhow::{bail, Context, Result};
use btfparse::{Offset, Readable, TypeInformation};
use tcpfr_schema::raw::{BtfOffsets, NO_OFFSET};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

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

/// The kernel struct offsets the programs need. Fails when one without which the data
/// would be wrong is missing; returns warnings for optional ones.
pub fn load(path: &Path) -> Result<(BtfOffsets, Vec<String>)> {
    let data = std::fs::read(path).with_context(|| {
        format!(
            "cannot read kernel BTF at {} (the kernel needs CONFIG_DEBUG_INFO_BTF=y; tcpfr reads struct layouts from it)",
            path.display()
        )
    })?;
    let ti = TypeInformation::new(&Bytes(&data)).map_err(|e| anyhow::anyhow!("cannot parse {}: {e:?}", path.display()))?;
    let off = |ty: &str, field: &str| -> Option<u32> {
        let id = ti.id_of(ty)?;
        match ti.offset_of(id, field).ok()?.1 {
            Offset::ByteOffset(o) => Some(o),
            Offset::BitOffsetAndSize(..) => None,
        }
    };
    let mut warnings = Vec::new();
    let mut optional = |ty: &str, field: &str, what: &str| -> u32 {
        off(ty, field).unwrap_or_else(|| {
            warnings.push(format!("kernel BTF has no {ty}.{field}: {what}"));
            NO_OFFSET
        })
    };
    let (Some(cb), Some(gso)) = (off("sk_buff", "cb"), off("tcp_skb_cb", "tcp_gso_segs")) else {
        bail!(
            "kernel BTF lacks sk_buff.cb or tcp_skb_cb.tcp_gso_segs: without them a retransmit of a \
             TSO/GSO packet cannot be counted in segments, and counts would disagree with RetransSegs"
        );
    };
    let offsets = BtfOffsets {
        skb_gso_segs: cb + gso,
        sk_net: optional("sock", "__sk_common.skc_net.net", "netns will be null"),
        net_inum: optional("net", "ns.inum", "netns will be null"),
        sk_err: optional("sock", "sk_err", "flows.error and handshake causes will be missing"),
        sk_state: optional("sock", "__sk_common.skc_state", "state of received resets will be null"),
        tcp_mdev_us: optional("tcp_sock", "mdev_us", "rtt_samples.rttvar_us will be null"),
    };
    Ok((offsets, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_offset_on_this_kernel() {
        let (o, warnings) = load(Path::new(VMLINUX)).expect("this kernel has BTF");
        assert!(warnings.is_empty(), "{warnings:?}");
        // Sanity: cb is 40 bytes into sk_buff on every kernel since 4.x; the socket's
        // common part starts the struct.
        assert!(o.skb_gso_segs >= 40 && o.skb_gso_segs < 40 + 48, "{o:?}");
        assert!(o.sk_net < 200 && o.sk_state < 40, "{o:?}");
        assert!(o.tcp_mdev_us > 1000, "{o:?}");
    }
}
