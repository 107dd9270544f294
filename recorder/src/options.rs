//! Command-line options of `tcpfr-recorder` (also recorded in the manifest).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tcpfr_schema::TableId;

use crate::{filter, host_counters};

/// Names of the tables the kernel feeds: what `--streams` chooses from.
fn stream_names() -> impl Iterator<Item = &'static str> {
    TableId::ALL.into_iter().filter(|t| t.stream_bit() != 0).map(TableId::name)
}

/// One `--streams` value: a table the kernel feeds, by its table name.
fn stream_parser() -> impl clap::builder::TypedValueParser<Value = TableId> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(stream_names())
        .map(|s: String| TableId::from_name(&s).expect("the parser only accepts table names"))
}

fn ser_tables<S: serde::Serializer>(t: &[TableId], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(t.iter().map(|t| t.name()))
}

/// Record TCP trouble (retransmits, failed handshakes, resets, RTT) into Parquet.
///
/// Writes a recording directory under --out, one per run, rotated into segments by size
/// and time. Stop with Ctrl-C (SIGINT) or SIGTERM; open files are then closed and the
/// manifest completed. Read recordings with `tcpfr` (the analyzer), DuckDB or pandas.
///
/// Flight recorder: --max-disk/--max-age keep a bounded ring; SIGUSR1 or
/// `tcpfr-recorder snapshot --out DIR [--before 5m] [--after 1m] [--reason TEXT]` freezes
/// the minutes around an incident into DIR/snapshots/. After a crash, the next start
/// completes the unfinished recording.
#[derive(Debug, Parser, serde::Serialize)]
#[command(name = "tcpfr-recorder", version, about, max_term_width = 100)]
pub struct Options {
    /// Directory for recordings (created if missing); each run writes DIR/<start>-<host>/.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,

    /// Stop after this long (e.g. 30s, 10m); default: until SIGINT/SIGTERM.
    #[arg(long, value_parser = long_duration)]
    #[serde(serialize_with = "ser_opt_duration")]
    pub duration: Option<Duration>,

    /// Start a new segment when any table's file reaches this size.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub rotate_size: u64,

    /// Start a new segment this often.
    #[arg(long, default_value = "1m", value_parser = rotate_interval)]
    #[serde(serialize_with = "ser_duration")]
    pub rotate_interval: Duration,

    /// Flight-recorder ring: keep the recordings in --out within this size, deleting
    /// the oldest segments (all tables together) after each rotation.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_disk: Option<u64>,

    /// Flight-recorder ring: delete segments whose last row is older than this.
    #[arg(long, value_name = "DURATION", value_parser = long_duration)]
    #[serde(serialize_with = "ser_opt_duration")]
    pub max_age: Option<Duration>,

    /// Snapshots (SIGUSR1, `tcpfr-recorder snapshot`): how much before the trigger to keep.
    #[arg(long, default_value = "5m", value_parser = snapshot_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub snapshot_before: Duration,

    /// Snapshots: how much after the trigger to keep.
    #[arg(long, default_value = "1m", value_parser = snapshot_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub snapshot_after: Duration,

    /// Snapshot automatically on rules read from this TOML file (retransmits/s, resets/s,
    /// failed handshakes per minute, per port/CIDR/process; see the docs of `rules.rs`).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,

    /// Longest window one snapshot covers, however long the triggers ask for and
    /// however often they extend it.
    #[arg(long, default_value = "30m", value_parser = snapshot_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub snapshot_max_window: Duration,

    /// Shortest time between the starts of two snapshots (a trigger sooner is refused),
    /// so that a burst of triggers cannot push out every kept snapshot.
    #[arg(long, default_value = "1m", value_parser = snapshot_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub snapshot_min_gap: Duration,

    /// Keep at most this many snapshots (the oldest go first).
    #[arg(long, default_value_t = 20)]
    pub max_snapshots: usize,

    /// Keep snapshots within this size (the oldest go first; the snapshot being made
    /// stops taking segments at it). Default: half of --max-disk, or no limit.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_snapshot_disk: Option<u64>,

    /// Group that may read the recordings and use the control socket (files are
    /// 0640/0750 and this group's; default: root's group).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// How often RTT and congestion state are sampled: every this often the TCP
    /// sockets are walked (a BPF iterator) and each connection with bytes acknowledged
    /// or received, a retransmission or a state change since the last walk gets one
    /// rtt_samples row (and one more when it leaves ESTABLISHED); idle connections get
    /// none. Walking a network namespace (--netns) costs about 2.5 ms plus about 1 µs per
    /// socket, whatever the traffic; a namespace where no TCP segment moved since its
    /// last walk is skipped. With --rtt-per-ack: at most one sample per connection this
    /// often (0 = every ACK).
    #[arg(long, default_value = "1s", value_parser = rtt_interval)]
    #[serde(serialize_with = "ser_duration")]
    pub rtt_interval: Duration,

    /// Sample RTT from the tcp_probe tracepoint on every received segment instead
    /// of walking the sockets: samples right after ACKs, for deep dives, at a cost
    /// that grows with traffic (a program run per incoming segment, about a million
    /// runs per GB received, even when the sample is rate-limited away).
    #[arg(long)]
    pub rtt_per_ack: bool,

    /// Streams to record, by table name (default: all).
    #[arg(long, value_delimiter = ',', value_name = "STREAM", value_parser = stream_parser())]
    #[serde(serialize_with = "ser_tables")]
    pub streams: Vec<TableId>,

    /// Only connections with this local or remote port (or range 8000-8100); repeatable.
    #[arg(long = "port", value_name = "PORT[-PORT]", value_parser = filter::parse_port_range)]
    #[serde(skip)]
    pub ports: Vec<(u16, u16)>,

    /// Only connections with a local or remote address in this CIDR; repeatable.
    #[arg(long = "cidr", value_name = "CIDR", value_parser = filter::parse_cidr)]
    #[serde(skip)]
    pub cidrs: Vec<ipnet::IpNet>,

    /// Only connections owned by processes in this cgroup (v2 path) or below; repeatable.
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,

    /// How often to record host counters and recorder statistics.
    #[arg(long, default_value = "1s", value_parser = counters_interval)]
    #[serde(serialize_with = "ser_duration")]
    pub counters_interval: Duration,

    /// Network namespaces whose counters to record, and whose sockets the RTT walk
    /// visits: host (ours), auto (ours, named `ip netns` ones, and those seen in
    /// events) or all.
    #[arg(long, value_enum, default_value = "auto")]
    pub netns: host_counters::NetnsMode,

    /// Size of the kernel→recorder ring buffer (a power of two). Its memory counts twice
    /// in the recorder's RSS (the kernel maps it twice so records can wrap). Raise it if
    /// recorder_stats says events were lost or walk samples put off.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub ring_size: u64,

    /// Host name to record (default: the system's).
    #[arg(long)]
    pub host: Option<String>,

    /// zstd level of the Parquet files (1 = fastest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,

    /// Serve live metrics at http://ADDR/metrics (Prometheus text format): PORT or :PORT
    /// (on 127.0.0.1), HOST:PORT, [IPV6]:PORT. Off by default. A non-loopback address
    /// exposes service names, peer addresses and process names to anyone who can reach it.
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::http::parse_listen)]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Services map (TOML, as for `tcpfr --services`) naming the metrics' `service` label;
    /// default: well-known ports, then the process name.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,

    /// Metrics: remote addresses with series of their own (the first N seen); the rest
    /// are counted as peer="other".
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_peers: usize,

    /// Metrics: connections no services-map rule or well-known port names are labelled
    /// with their process name, for the first N process names seen; the rest are
    /// service="other" (any local user can name a process).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_services: usize,

    /// Upload every closed file into an object store, as it closes: s3://BUCKET/PREFIX
    /// (credentials, region and endpoint from AWS_* variables, web identity, ECS/EKS or
    /// instance metadata; never logged) or file:///DIR. Earlier recordings in --out are
    /// shipped too; a restart resumes. Files waiting for upload count against --max-disk.
    #[arg(long, value_name = "URL")]
    #[serde(serialize_with = "ser_opt_url")]
    pub ship: Option<String>,

    /// Longest wait between upload attempts while the store fails (doubling from 1s).
    #[arg(long, default_value = "30s", value_parser = backoff)]
    #[serde(serialize_with = "ser_duration")]
    pub ship_backoff_max: Duration,

    /// Log level (error, warn, info, debug) — also RUST_LOG.
    #[arg(long, default_value = "info")]
    #[serde(skip)]
    pub log: String,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// A URL as recorded in the manifest: any `user:password@` left out.
fn ser_opt_url<S: serde::Serializer>(u: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_str(&tcpfr_ship::redact_url(u)),
        None => s.serialize_none(),
    }
}

/// A duration within `[min, max]`, with the bounds in the message.
fn duration_in(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s, 10m or 7d: {e}"))?;
    if d < min || d > max {
        let f = |d| humantime::format_duration(d).to_string();
        return Err(format!("{s:?} is out of range: give {} to {}", f(min), f(max)));
    }
    Ok(d)
}

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

/// `--duration`, `--max-age`: up to 100 years.
fn long_duration(s: &str) -> Result<Duration, String> {
    duration_in(s, SECOND, DAY * 36_500)
}

fn rotate_interval(s: &str) -> Result<Duration, String> {
    duration_in(s, SECOND, DAY)
}

/// Snapshot windows and gaps: up to a day (the window also has --snapshot-max-window).
fn snapshot_duration(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::ZERO, DAY)
}

fn rtt_interval(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::ZERO, Duration::from_secs(3600))
}

/// Every counters interval the pipeline ticks, writes and flushes: not zero.
fn counters_interval(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_millis(10), Duration::from_secs(3600))
}

fn backoff(s: &str) -> Result<Duration, String> {
    duration_in(s, SECOND, DAY)
}

/// `64MiB`, `1G`, `4096`.
fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{s:?} is not a size like 64MiB or 1G: {e}"))
}

