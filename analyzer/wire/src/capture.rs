//! Frames out of pcap and pcapng files, streamed with constant memory.
//!
//! [`CaptureReader`] parses every record in place: a [`Frame`] borrows the reader's
//! bytes, so reading allocates nothing per frame. Every input (files, pipes, stdin) is
//! read through one reusable buffer that starts small, doubles with the amount read up
//! to 1 MiB, and only grows past that for a single record that is larger (up to
//! [`MAX_RECORD`]). The absolute byte offset of every record is known, and every error
//! names it.
//!
//! Files are read with read(), not memory-mapped. A mapping of a file that another
//! process truncates while we read it (logrotate's copytruncate, a second `tcpdump -w`
//! onto the same path) kills the reader with SIGBUS at the first page past the new end,
//! and `tcpfr` is run as root on captures it does not control. Handling that signal
//! instead (a process-wide handler that maps zeros over the faulting page of a mapping
//! it knows) would keep the mapping but puts unsafe, async-signal code in every process
//! that links this crate, and a frame already handed out could still turn to zeros
//! while its caller decodes it. A copy cannot change under its reader, and costs
//! little when the buffer is small enough to stay in the CPU's cache (hence 1 MiB):
//! about a sixth of a bare walk over the frames of a capture in the page cache, a few
//! per cent once they are decoded and analysed.
//!
//! A regular file is read up to its size at open (a capture still being written ends
//! with its last whole record). If it ends sooner, or is smaller than that after any
//! read, another process truncated it under us: that is [`CaptureError::Truncated`],
//! after only frames read whole before (a new capture written over the same path could
//! have put other bytes where we read). A file overwritten in place but never shorter
//! than at open is read as it then is: nothing tells it from a file written that way.
//!
//! Formats:
//! - pcap in both byte orders, µs and ns resolution (magics `a1b2c3d4`, `a1b23c4d`).
//!   Record headers are parsed with `pcap_file::pcap::PcapParser::next_raw_packet`; we do
//!   not use its validated `PcapPacket`, which rejects records that tshark reads
//!   (caplen > snaplen, orig_len > snaplen): those become warnings here.
//! - pcapng: several sections (each with its own byte order), several interfaces with
//!   different link types, `if_tsresol` (10^-n and 2^-n) and `if_tsoffset`; Enhanced,
//!   Simple and obsolete Packet blocks; every other block type is skipped. Blocks are
//!   framed with `pcap_file::pcapng::RawBlock::from_slice` (which finds each section's
//!   byte order and checks the trailing length), and the few fields we need are read
//!   from the block bodies directly, because pcap-file 2.0's typed blocks ignore
//!   `if_tsresol`, read the obsolete Packet block's timestamp in the wrong word order,
//!   reject valid IDBs (any `if_tzone` option, non-UTF-8 strings), and allocate per
//!   block.
//!
//! Frame numbers count records the way Wireshark numbers frames, which includes some
//! blocks that are not packets (systemd Journal Export, custom and sysdig event blocks:
//! tshark shows them as frames; we skip them but count them). Simple Packet blocks carry no timestamp (tshark prints none): they get the
//! previous frame's time.
//!
//! A file that ends inside a record (tcpdump killed mid-write) ends normally with a
//! warning; a record that cannot be right (bad block length, a length beyond
//! [`MAX_RECORD`], a packet referring to an undefined interface, …) is a
//! [`CaptureError`] naming the byte offset. No input makes the reader panic.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::RawBlock;
use pcap_file::{PcapError, TsResolution};

use crate::segment::Frame;

/// The largest single record (pcap record or pcapng block) we accept, in bytes.
pub const MAX_RECORD: usize = 256 * 1024 * 1024;
/// Warnings kept as text; more are only counted.
pub const MAX_WARNINGS: usize = 100;

const BUF_MIN: usize = 64 * 1024;
/// Small enough that the bytes just read are still in the CPU's cache when parsed.
const BUF_DEFAULT: usize = 1024 * 1024;

const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
/// Blocks that are not packets but that tshark 4.0 shows as frames (and so numbers):
/// systemd Journal Export, custom blocks (both kinds), sysdig event blocks.
const NUMBERED_NON_PACKETS: [u32; 6] = [0x0000_0009, 0x0000_0BAD, 0x4000_0BAD, 0x0000_0204, 0x0000_0216, 0x0000_0221];

const WHAT_TO_DO: &str = "give a file written by tcpdump -w, dumpcap or Wireshark";

/// Why a capture cannot be read (further). Every message names the file, the byte
/// offset where that applies, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open capture file {file}: {source} (check the path and its permissions)")]
    Open {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "error reading capture file {file} at byte {offset}: {source} (check the disk, or whatever feeds the pipe)"
    )]
    Read {
        file: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("capture file {file} is empty (0 bytes, nothing at byte 0): no capture was written; check that tcpdump -w ran and captured packets")]
    Empty { file: String },
    #[error("{file} is not a pcap or pcapng file (starts with {start} at byte 0): {hint}")]
    NotCapture { file: String, start: String, hint: &'static str },
    #[error("capture file {file} ends at byte {offset}, inside its {what}: the file was cut short before any frame; {WHAT_TO_DO}")]
    TruncatedHeader { file: String, offset: u64, what: &'static str },
    #[error("capture file {file} is corrupt at byte {offset}: {detail}; the frames before it were read, the rest cannot be (repair the file, e.g. with pcapfix, or capture again)")]
    Corrupt { file: String, offset: u64, detail: String },
    #[error("capture file {file} at byte {offset}: {detail}; {WHAT_TO_DO}")]
    Unsupported { file: String, offset: u64, detail: String },
    #[error("capture file {file} was truncated while it was being read: it had {size_at_open} bytes when opened and has {size_now} now, and could be read only up to byte {offset} (read a copy of the file, or wait until whatever writes it, e.g. tcpdump or logrotate's copytruncate, is done)")]
    Truncated { file: String, offset: u64, size_at_open: u64, size_now: u64 },
}

impl CaptureError {
    /// The byte offset the error is about, where there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Open { .. } | CaptureError::NotCapture { .. } => None,
            CaptureError::Empty { .. } => Some(0),
            CaptureError::Read { offset, .. }
            | CaptureError::TruncatedHeader { offset, .. }
            | CaptureError::Corrupt { offset, .. }
            | CaptureError::Unsupported { offset, .. }
            | CaptureError::Truncated { offset, .. } => Some(*offset),
        }
    }
}

/// How raw timestamps of an interface become ns.
#[derive(Debug, Clone, Copy)]
enum TsScale {
    /// ns per unit (resolution 10^-n, n ≤ 9).
    Mul(u64),
    /// Units per second (finer than ns, or a power of 2): truncated to ns as Wireshark does.
    Div(u128),
}

impl TsScale {
    /// ns since the epoch for `raw` units plus `offset_s` seconds, saturated to i64.
    #[inline]
    fn to_ns(self, raw: u64, offset_s: i64) -> i64 {
        let ns: i128 = match self {
            TsScale::Mul(m) => i128::from(raw) * i128::from(m),
            TsScale::Div(units) => {
                let raw = u128::from(raw);
                let secs = raw / units;
                let frac = (raw % units) * 1_000_000_000 / units;
                (secs * 1_000_000_000 + frac) as i128
            }
        };
        let ns = ns + i128::from(offset_s) * 1_000_000_000;
        ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    scale: TsScale,
    offset_s: i64,
}

#[derive(Debug)]
struct PcapState {
    parser: PcapParser,
    be: bool,
    frac_ns: i64,
    linktype: u32,
    snaplen: u32,
}

#[derive(Debug)]
struct NgState {
    /// Byte order of the current section.
    be: bool,
    /// A section header has been read.
    started: bool,
    /// The current section's interfaces. Frames carry their number within the section,
    /// as tshark 4.0's `frame.interface_id` does.
    interfaces: Vec<Interface>,
    last_ts: i64,
}

#[derive(Debug)]
enum Format {
    Pcap(PcapState),
    PcapNg(NgState),
}

/// Non-fatal problems, the first [`MAX_WARNINGS`] as text.
#[derive(Debug, Default)]
struct Warnings {
    kept: Vec<String>,
    count: u64,
}

impl Warnings {
    #[inline]
    fn push(&mut self, msg: impl FnOnce() -> String) {
        self.count += 1;
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(msg());
        }
    }
}

/// What the parser found at the start of the buffered bytes. Offsets are relative to
/// that start; nothing borrows the buffer.
enum Step {
    Frame {
        rec_len: usize,
        data_at: usize,
        data_len: usize,
        ts_ns: i64,
        linktype: u32,
        interface: u32,
        orig_len: u32,
    },
    /// A record that is not a frame; `numbered` if Wireshark gives it a frame number.
    Skip {
        rec_len: usize,
        numbered: bool,
    },
    /// This many bytes (from the record's start) are needed.
    Need(usize),
    Corrupt(String),
    Unsupported(String),
}

/// Reads frames from a pcap or pcapng file. See the [module docs](self).
pub struct CaptureReader {
    name: String,
    src: Box<dyn Read + Send>,
    /// The regular file `src` reads, to see whether it shrank (a handle of its own).
    file: Option<File>,
    buf: Vec<u8>,
    /// Parsed up to here.
    start: usize,
    /// Filled up to here.
    end: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    eof: bool,
    done: bool,
    /// A regular file's size at open.
    len: Option<u64>,
    format: Format,
    frames: u64,
    warnings: Warnings,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("name", &self.name)
            .field("format", &self.format())
            .field("bytes_read", &self.bytes_read())
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Opens a capture file.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| CaptureError::Open { file: name.clone(), source })?;
        let meta = file.metadata().map_err(|source| CaptureError::Open { file: name.clone(), source })?;
        if meta.is_dir() {
            return Err(CaptureError::Open {
                file: name,
                source: io::Error::new(io::ErrorKind::InvalidInput, "it is a directory, not a capture file"),
            });
        }
        if !meta.is_file() {
            return Self::with_source(Box::new(file), None, None, &name);
        }
        let len = meta.len();
        let probe = file.try_clone().ok();
        Self::with_source(Box::new(file.take(len)), probe, Some(len), &name)
    }

    /// Reads a capture from any byte stream (a pipe, stdin, memory). `name` is used in
    /// messages.
    pub fn from_reader(src: Box<dyn Read + Send>, name: &str) -> Result<CaptureReader, CaptureError> {
        Self::with_source(src, None, None, name)
    }

    /// `file` and `len`: the regular file `src` reads and its size at open.
    fn with_source(
        src: Box<dyn Read + Send>,
        file: Option<File>,
        len: Option<u64>,
        name: &str,
    ) -> Result<CaptureReader, CaptureError> {
        let mut r = CaptureReader {
            name: name.to_string(),
            src,
            file,
            buf: Vec::new(),
            start: 0,
            end: 0,
            buf_offset: 0,
            eof: false,
            done: false,
            len,
            format: Format::PcapNg(NgState { be: false, started: false, interfaces: Vec::new(), last_ts: 0 }),
            frames: 0,
            warnings: Warnings::default(),
        };
        r.fill(PCAP_HEADER_LEN)?;
        let head = &r.buf[..r.end];
        if head.is_empty() {
            return Err(CaptureError::Empty { file: r.name });
        }
        let magic = head.get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
        match magic {
            Some(
                [0xA1, 0xB2, 0xC3, 0xD4]
                | [0xD4, 0xC3, 0xB2, 0xA1]
                | [0xA1, 0xB2, 0x3C, 0x4D]
                | [0x4D, 0x3C, 0xB2, 0xA1],
            ) => {
                if head.len() < PCAP_HEADER_LEN {
                    return Err(CaptureError::TruncatedHeader {
                        file: r.name,
                        offset: head.len() as u64,
                        what: "pcap file header (24 bytes)",
                    });
                }
                let parser = match PcapParser::new(head) {
                    Ok((_, p)) => p,
                    Err(e) => {
                        return Err(CaptureError::Corrupt {
                            file: r.name,
                            offset: 0,
                            detail: format!("bad pcap file header: {e}"),
                        })
                    }
                };
                let header = parser.header();
                let be = head[0] == 0xA1;
                let rd = |at: usize| read_u32(head, at, be).unwrap_or(0);
                let snaplen = rd(16);
                // The upper bits carry FCS information (libpcap's LT_LINKTYPE).
                let linktype = rd(20) & 0xFFFF;
                let frac_ns = match header.ts_resolution {
                    TsResolution::MicroSecond => 1000,
                    TsResolution::NanoSecond => 1,
                };
                r.format = Format::Pcap(PcapState { parser, be, frac_ns, linktype, snaplen });
                r.start = PCAP_HEADER_LEN;
            }
            Some([0x0A, 0x0D, 0x0D, 0x0A]) => r.first_section_header()?,
            _ => {
                let start = head.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
                return Err(CaptureError::NotCapture { file: r.name, start, hint: not_capture_hint(head) });
            }
        }
        Ok(r)
    }

    /// Reads a pcapng file's first section header, so that a file that only starts like
    /// one fails here rather than at the first frame.
    fn first_section_header(&mut self) -> Result<(), CaptureError> {
        loop {
            let Format::PcapNg(st) = &mut self.format else { return Ok(()) };
            let avail = &self.buf[self.start..self.end];
            match ng_step(st, avail, 0, 1, &mut self.warnings) {
                Step::Skip { rec_len, .. } => {
                    self.start += rec_len;
                    return Ok(());
                }
                Step::Need(need) if need <= MAX_RECORD => {
                    let before = self.end - self.start;
                    self.fill(need)?;
                    if self.end - self.start == before {
                        return Err(CaptureError::TruncatedHeader {
                            file: self.name.clone(),
                            offset: self.buf_offset + self.end as u64,
                            what: "pcapng section header block",
                        });
                    }
                }
                Step::Need(need) => {
                    return Err(self.corrupt(
                        0,
                        format!(
                            "the section header block claims {need} bytes, more than the {} MiB we accept",
                            MAX_RECORD >> 20
                        ),
                    ))
                }
                Step::Corrupt(detail) => return Err(self.corrupt(0, detail)),
                Step::Unsupported(detail) => {
                    return Err(CaptureError::Unsupported { file: self.name.clone(), offset: 0, detail })
                }
                Step::Frame { .. } => {
                    return Err(self.corrupt(0, "the file does not start with a section header block".into()))
                }
            }
        }
    }

    /// The next frame, or `None` at the end. The frame borrows the reader's buffer.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let avail = &self.buf[self.start..self.end];
            let rec_offset = self.buf_offset + self.start as u64;
            let step = match &mut self.format {
                Format::Pcap(st) => pcap_step(st, avail, rec_offset, self.frames + 1, &mut self.warnings),
                Format::PcapNg(st) => ng_step(st, avail, rec_offset, self.frames + 1, &mut self.warnings),
            };
            match step {
                Step::Frame { rec_len, data_at, data_len, ts_ns, linktype, interface, orig_len } => {
                    let data_start = self.start + data_at;
                    self.start += rec_len;
                    self.frames += 1;
                    let bytes = &self.buf[..self.end];
                    prefetch(bytes, self.start);
                    let data = bytes.get(data_start..data_start + data_len).unwrap_or(&[]);
                    return Ok(Some(Frame {
                        number: self.frames,
                        ts_ns,
                        linktype,
                        interface,
                        orig_len,
                        data,
                        offset: rec_offset,
                    }));
                }
                Step::Skip { rec_len, numbered } => {
                    self.start += rec_len;
                    if numbered {
                        self.frames += 1;
                    }
                }
                Step::Need(need) => {
                    if need > MAX_RECORD {
                        self.done = true;
                        return Err(self.corrupt(
                            rec_offset,
                            format!("a record claims {need} bytes, more than the {} MiB we accept", MAX_RECORD >> 20),
                        ));
                    }
                    let before = self.end - self.start;
                    self.fill(need)?;
                    if self.end - self.start == before && self.eof {
                        self.done = true;
                        if self.start == self.end {
                            return Ok(None);
                        }
                        self.end_inside_record(rec_offset);
                        return Ok(None);
                    }
                }
                Step::Corrupt(detail) => {
                    self.done = true;
                    return Err(self.corrupt(rec_offset, detail));
                }
                Step::Unsupported(detail) => {
                    self.done = true;
                    return Err(CaptureError::Unsupported { file: self.name.clone(), offset: rec_offset, detail });
                }
            }
        }
    }

    /// Bytes of the file parsed so far (for progress bars; equals [`len`](Self::len) at
    /// the end of a complete file).
    pub fn bytes_read(&self) -> u64 {
        self.buf_offset + self.start as u64
    }

    /// The file's size, if known (a regular file opened with [`open`](Self::open)).
    // A size for progress bars, not a collection's length: no `is_empty`.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Non-fatal problems, the first [`MAX_WARNINGS`].
    pub fn warnings(&self) -> &[String] {
        &self.warnings.kept
    }

    /// How many warnings there were in all (including those not kept as text).
    pub fn warning_count(&self) -> u64 {
        self.warnings.count
    }

    /// `"pcap"` or `"pcapng"`.
    pub fn format(&self) -> &'static str {
        match self.format {
            Format::Pcap(_) => "pcap",
            Format::PcapNg(_) => "pcapng",
        }
    }

    /// The file's name as used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// After a read of a regular file from byte `at` (`eof`: it returned nothing): an
    /// error if the file is smaller now than at open, or ended before that size. The
    /// bytes just read may then be another file's (a new capture written over the same
    /// path), so nothing from `at` on is used; one fstat per read (≤ 1 MiB) costs nothing.
    fn check_not_shrunk(&mut self, at: u64, eof: bool) -> Result<(), CaptureError> {
        let Some(size_at_open) = self.len else { return Ok(()) };
        let size_now = self.file.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.len());
        if size_now.is_some_and(|now| now < size_at_open) || (eof && at < size_at_open) {
            self.done = true;
            let size_now = size_now.unwrap_or(at);
            return Err(CaptureError::Truncated { file: self.name.clone(), offset: at, size_at_open, size_now });
        }
        Ok(())
    }

    fn corrupt(&self, offset: u64, detail: String) -> CaptureError {
        CaptureError::Corrupt { file: self.name.clone(), offset, detail }
    }

    /// The input ended inside the record at `offset`.
    fn end_inside_record(&mut self, offset: u64) {
        self.warnings.push(|| {
            format!(
                "capture ends inside a record at byte {offset}: the file was cut short (e.g. tcpdump killed); frames before it were read"
            )
        });
    }

    /// Makes at least `need` bytes available from `start` on, unless the input ends
    /// first. Moves the unparsed tail to the front and grows the buffer as needed.
    fn fill(&mut self, need: usize) -> Result<(), CaptureError> {
        if self.end - self.start >= need || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.buf_offset += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        // Grow with the amount read so far, so that small inputs stay small.
        let seen = self.buf_offset.saturating_add(self.end as u64);
        let by_volume = usize::try_from(seen.saturating_mul(2)).unwrap_or(BUF_DEFAULT).clamp(BUF_MIN, BUF_DEFAULT);
        if self.buf.len() < by_volume {
            self.buf.resize(by_volume, 0);
        }
        while self.end < need {
            // A record larger than the buffer: grow by doubling as its bytes arrive, so a
            // length field that lies costs no more memory than the data that is there.
            if self.end == self.buf.len() {
                let grown = self.buf.len().saturating_mul(2).min(need).max(self.buf.len() + 1);
                self.buf.resize(grown, 0);
            }
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.check_not_shrunk(self.buf_offset + self.end as u64, n == 0)?;
                    if n == 0 {
                        self.eof = true;
                        break;
                    }
                    self.end += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    self.done = true;
                    return Err(CaptureError::Read {
                        file: self.name.clone(),
                        offset: self.buf_offset + self.end as u64,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Asks the CPU to start loading `b[at..]` (the next record's header): the reader
/// walks the file one record at a time, a pattern the hardware prefetcher does not
/// follow across pages, and each record header would otherwise be a cache miss.
#[inline]
fn prefetch(b: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = b.get(at..) {
        // SAFETY: prefetching is a hint; the address is inside the slice.
        #[allow(unused_unsafe)]
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.as_ptr() as *const i8);
            if p.len() > 64 {
                _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().add(64) as *const i8);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (b, at);
}

fn not_capture_hint(head: &[u8]) -> &'static str {
    match head {
        [0x1F, 0x8B, ..] => "it looks gzip-compressed: decompress it first (gunzip), then give the .pcap/.pcapng file",
        [0x28, 0xB5, 0x2F, 0xFD, ..] => "it looks zstd-compressed: decompress it first (unzstd), then give the .pcap/.pcapng file",
        [0x04, 0x22, 0x4D, 0x18, ..] => "it looks lz4-compressed: decompress it first (unlz4), then give the .pcap/.pcapng file",
        [0xA1, 0xB2, 0xCD, 0x34, ..] | [0x34, 0xCD, 0xB2, 0xA1, ..] => {
            "it is a \"modified\" pcap (Kuznetsov's patched libpcap), which we do not read: convert it with editcap -F pcap"
        }
        _ if head.len() < 4 => "it is too short to be a capture; give a file written by tcpdump -w, dumpcap or Wireshark",
        _ if head.iter().all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7F).contains(&b)) => {
            "it looks like text (a tcpdump/tshark printout?); give the binary file written by tcpdump -w, dumpcap or Wireshark"
        }
        _ => "give a file written by tcpdump -w, dumpcap or Wireshark",
    }
}

#[inline]
fn read_u16(b: &[u8], at: usize, be: bool) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    let a = [s[0], s[1]];
    Some(if be { u16::from_be_bytes(a) } else { u16::from_le_bytes(a) })
}

#[inline]
fn read_u32(b: &[u8], at: usize, be: bool) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let a = [s[0], s[1], s[2], s[3]];
    Some(if be { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
}

#[inline]
fn read_u64(b: &[u8], at: usize, be: bool) -> Option<u64> {
    let hi = read_u32(b, at, be)?;
    let lo = read_u32(b, at + 4, be)?;
    Some(if be { (u64::from(hi) << 32) | u64::from(lo) } else { (u64::from(lo) << 32) | u64::from(hi) })
}

/// pcap: one record at the start of `avail`.
#[inline]
fn pcap_step(st: &PcapState, avail: &[u8], offset: u64, number: u64, warnings: &mut Warnings) -> Step {
    let rec = match st.parser.next_raw_packet(avail) {
        Ok((_, rec)) => rec,
        Err(PcapError::IncompleteBuffer) => {
            return match read_u32(avail, 8, st.be) {
                Some(incl) => Step::Need(PCAP_RECORD_HEADER_LEN.saturating_add(incl as usize)),
                None => Step::Need(PCAP_RECORD_HEADER_LEN),
            }
        }
        Err(e) => return Step::Corrupt(format!("bad pcap record header: {e}")),
    };
    let incl = rec.incl_len;
    if incl > rec.orig_len || (st.snaplen != 0 && incl > st.snaplen) {
        let (orig, snap) = (rec.orig_len, st.snaplen);
        warnings.push(|| {
            format!("record at byte {offset} (frame {number}): captured length {incl} is larger than its original length {orig} or the file's snaplen {snap}; read as is")
        });
    }
    let ts_ns = i64::from(rec.ts_sec) * 1_000_000_000 + i64::from(rec.ts_frac) * st.frac_ns;
    Step::Frame {
        rec_len: PCAP_RECORD_HEADER_LEN + incl as usize,
        data_at: PCAP_RECORD_HEADER_LEN,
        data_len: incl as usize,
        ts_ns,
        linktype: st.linktype,
        interface: 0,
        orig_len: rec.orig_len,
    }
}

/// pcapng: one block at the start of `avail`.
fn ng_step(st: &mut NgState, avail: &[u8], offset: u64, number: u64, warnings: &mut Warnings) -> Step {
    if avail.len() < 12 {
        return Step::Need(12);
    }
    let btype = read_u32(avail, 0, st.be).unwrap_or(0);
    let blen_be = if btype == SHB {
        // A section header's byte order is that of its byte-order magic.
        match avail.get(8..12) {
            Some([0x1A, 0x2B, 0x3C, 0x4D]) => true,
            Some([0x4D, 0x3C, 0x2B, 0x1A]) => false,
            _ => {
                let m = avail.get(8..12).unwrap_or(&[]);
                return Step::Corrupt(format!(
                    "section header block with an invalid byte-order magic {m:02x?} (expected 1a2b3c4d in either byte order)"
                ));
            }
        }
    } else {
        if !st.started {
            return Step::Corrupt("the file does not start with a section header block".into());
        }
        st.be
    };
    let blen = read_u32(avail, 4, blen_be).unwrap_or(0) as usize;
    if blen < 12 {
        return Step::Corrupt(format!("block of type 0x{btype:08x} has length {blen}, less than the minimum of 12"));
    }
    if !blen.is_multiple_of(4) {
        return Step::Corrupt(format!("block of type 0x{btype:08x} has length {blen}, not a multiple of 4"));
    }
    if blen > MAX_RECORD {
        return Step::Need(blen);
    }
    if avail.len() < blen {
        return Step::Need(blen);
    }
    let block = &avail[..blen];
    let parsed = if blen_be {
        RawBlock::from_slice::<byteorder_slice::BigEndian>(block)
    } else {
        RawBlock::from_slice::<byteorder_slice::LittleEndian>(block)
    };
    let raw = match parsed {
        Ok((_, raw)) => raw,
        Err(e) => return Step::Corrupt(format!("bad block of type 0x{btype:08x}, length {blen}: {e}")),
    };
    let body: &[u8] = &raw.body;
    match btype {
        SHB => {
            if body.len() < 16 {
                return Step::Corrupt(format!(
                    "section header block of {blen} bytes is shorter than the minimum of 28"
                ));
            }
            let major = read_u16(body, 4, blen_be).unwrap_or(0);
            if major != 1 {
                let minor = read_u16(body, 6, blen_be).unwrap_or(0);
                return Step::Unsupported(format!("pcapng version {major}.{minor} is not supported (only 1.x)"));
            }
            st.be = blen_be;
            st.started = true;
            st.interfaces.clear();
            Step::Skip { rec_len: blen, numbered: false }
        }
        IDB => match parse_idb(body, st.be) {
            Ok((iface, warning)) => {
                if let Some(w) = warning {
                    warnings.push(|| format!("interface description block at byte {offset}: {w}"));
                }
                st.interfaces.push(iface);
                Step::Skip { rec_len: blen, numbered: false }
            }
            Err(detail) => Step::Corrupt(format!("interface description block: {detail}")),
        },
        EPB | PB => {
            let be = st.be;
            let (iface_id, what) = if btype == EPB {
                (read_u32(body, 0, be), "enhanced packet block")
            } else {
                (read_u16(body, 0, be).map(u32::from), "packet block")
            };
            let (Some(iface_id), Some(hi), Some(lo), Some(caplen), Some(orig_len)) = (
                iface_id,
                read_u32(body, 4, be),
                read_u32(body, 8, be),
                read_u32(body, 12, be),
                read_u32(body, 16, be),
            ) else {
                return Step::Corrupt(format!("{what} of {blen} bytes is shorter than the minimum of 32"));
            };
            let room = body.len() - 20;
            if caplen as usize > room {
                return Step::Corrupt(format!("{what} claims {caplen} captured bytes but has room for only {room}"));
            }
            let Some(iface) = st.interfaces.get(iface_id as usize) else {
                return Step::Corrupt(format!(
                    "{what} refers to interface {iface_id}, but its section describes only {} interface(s)",
                    st.interfaces.len()
                ));
            };
            if caplen > orig_len || (iface.snaplen != 0 && caplen > iface.snaplen) {
                let snap = iface.snaplen;
                warnings.push(|| {
                    format!("{what} at byte {offset} (frame {number}): captured length {caplen} is larger than its original length {orig_len} or the interface's snaplen {snap}; read as is")
                });
            }
            let ts_ns = iface.scale.to_ns((u64::from(hi) << 32) | u64::from(lo), iface.offset_s);
            st.last_ts = ts_ns;
            Step::Frame {
                rec_len: blen,
                data_at: 8 + 20,
                data_len: caplen as usize,
                ts_ns,
                linktype: iface.linktype,
                interface: iface_id,
                orig_len,
            }
        }
        SPB => {
            let Some(orig_len) = read_u32(body, 0, st.be) else {
                return Step::Corrupt(format!("simple packet block of {blen} bytes is shorter than the minimum of 16"));
            };
            let Some(iface) = st.interfaces.first() else {
                return Step::Corrupt("simple packet block in a section that describes no interface".into());
            };
            let mut caplen = (orig_len as usize).min(body.len() - 4);
            if iface.snaplen != 0 {
                caplen = caplen.min(iface.snaplen as usize);
            }
            Step::Frame {
                rec_len: blen,
                data_at: 8 + 4,
                data_len: caplen,
                ts_ns: st.last_ts,
                linktype: iface.linktype,
                interface: 0,
                orig_len,
            }
        }
        _ => Step::Skip { rec_len: blen, numbered: NUMBERED_NON_PACKETS.contains(&btype) },
    }
}

/// An interface description block's body → the interface, and maybe a warning.
fn parse_idb(body: &[u8], be: bool) -> Result<(Interface, Option<String>), String> {
    let (Some(linktype), Some(snaplen)) = (read_u16(body, 0, be), read_u32(body, 4, be)) else {
        return Err(format!("body of {} bytes is shorter than the minimum of 8", body.len()));
    };
    let mut iface = Interface { linktype: u32::from(linktype), snaplen, scale: TsScale::Mul(1000), offset_s: 0 };
    let mut warning = None;
    let mut at = 8;
    while at < body.len() {
        let (Some(code), Some(len)) = (read_u16(body, at, be), read_u16(body, at + 2, be)) else {
            warning = Some(format!("options end inside an option header at body byte {at}; ignored the rest"));
            break;
        };
        if code == 0 {
            break;
        }
        let len = usize::from(len);
        let Some(val) = body.get(at + 4..at + 4 + len) else {
            warning = Some(format!("option {code} of {len} bytes runs past the block; ignored the rest"));
            break;
        };
        match (code, val) {
            (9, [v, ..]) => {
                let exp = u32::from(v & 0x7F);
                let units = if v & 0x80 != 0 { 2u128.checked_pow(exp) } else { 10u128.checked_pow(exp) };
                iface.scale = match units {
                    Some(_) if v & 0x80 == 0 && exp <= 9 => TsScale::Mul(10u64.pow(9 - exp)),
                    Some(u) => TsScale::Div(u),
                    None => return Err(format!("if_tsresol 0x{v:02x} is finer than we can represent")),
                };
            }
            (14, [_, _, _, _, _, _, _, _]) => {
                iface.offset_s = read_u64(val, 0, be).unwrap_or(0) as i64;
            }
            _ => {}
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    Ok((iface, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_scales() {
        assert_eq!(TsScale::Mul(1000).to_ns(1_700_000_000_123_456, 0), 1_700_000_000_123_456_000);
        assert_eq!(TsScale::Mul(1).to_ns(5, 2), 2_000_000_005);
        // 2^-20: 12345/2^20 s = 0.011773109… s, truncated.
        assert_eq!(TsScale::Div(1 << 20).to_ns((1_700_000_000u64 << 20) + 12345, 100), 1_700_000_100_011_773_109);
        assert_eq!(TsScale::Div(10u128.pow(12)).to_ns(1_999, 0), 1);
        assert_eq!(TsScale::Mul(1000).to_ns(u64::MAX, 0), i64::MAX);
        assert_eq!(TsScale::Mul(1).to_ns(0, i64::MIN), i64::MIN);
    }
}
