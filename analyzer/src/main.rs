//! `tcpfr`: SQL and the standard incident questions over tcpfr recordings, with no
//! server to set up.
//!
//! * `dataset` finds and checks recordings; `session` registers their tables (with the
//!   time window and the `service` column from `services`) in DataFusion.
//! * `query` runs SQL (`exec`) and prints it (`print`), or opens the `shell`.
//! * `canned` holds the questions of `queries/*.sql`; `report` answers them in words;
//!   `replay` plays a recording back as an event stream.
//! * `bundle` cuts a window of recordings into one file for a bug report (optionally
//!   anonymized by `redact`) and opens such files wherever a recording is accepted.
//! * `export` writes recordings as OpenMetrics text, to backfill Prometheus with.

/// `println!` that returns the write error instead of panicking: with `tcpfr … | head`
/// the pipe closes under us, and `main` takes a broken pipe for success.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($t)*)
    }};
}

/// `print!` that returns the write error; see `outln!`.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($t)*)
    }};
}

mod bundle;
mod bundler;
mod canned;
mod cluster;
mod dataset;
mod env;
mod exec;
mod export;
mod html;
mod outfile;
mod pcap;
mod print;
mod progress;
mod redact;
mod replay;
mod report;
mod services;
mod session;
mod shell;
mod store;
mod window;
mod xref;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::dataset::Dataset;
use crate::env::Env;
use crate::print::{Format, Output};
use crate::services::ServiceMap;
use crate::window::Window;

/// Read tcpfr recordings: SQL, the standard questions after an incident, a report.
///
/// REC is a recording directory (made by tcpfr-recorder --out), a directory holding
/// recordings of many hosts, a single Parquet file of a recording, or a bundle
/// (FILE.tcpfr, made by `tcpfr bundle`).
#[derive(Debug, Parser)]
#[command(name = "tcpfr", version, max_term_width = 100, after_help = after_help())]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// After the answer, tell on stderr how much was fetched from object stores
    /// (s3://…) against what their recordings hold.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Run on a Ballista cluster: its scheduler as df://HOST:PORT (tcpfr-scheduler;
    /// builds with the `cluster` feature, cluster/README.md). Executors read the
    /// recordings themselves: give s3:// stores, or paths they see.
    #[arg(long, global = true, value_name = "URL", env = "TCPFR_CLUSTER")]
    cluster: Option<String>,
}

fn after_help() -> String {
    let mut s = String::from("Questions (tcpfr <question> REC… [--from/--to | --last] [--by …]):\n");
    for q in canned::all() {
        s.push_str(&format!("  {:<16} {}\n", q.name, q.about));
    }
    s.push_str("\nExamples:\n  tcpfr report samples/services\n  tcpfr hotspots /var/lib/tcpfr --last 30m\n  tcpfr query rec 'SELECT service, sum(segments) FROM retransmits WHERE counted GROUP BY 1'\n");
    s
}

/// Which part of the recordings.
#[derive(Debug, Args, Clone)]
struct TimeArgs {
    /// Start of the time window: 2026-11-23T14:00:00Z, "2026-11-23 14:00", 14:00 (UTC),
    /// +5m (after the data starts) or -10m (before it ends).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the time window (exclusive), same forms as --from.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only the last part of the data, e.g. 10m (counted back from the data's end).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    last: Option<Duration>,
}

impl TimeArgs {
    /// The window over data whose (first, last) time is `range`.
    fn window(&self, range: Option<(i64, i64)>) -> Result<Window> {
        Window::parse(self.from.as_deref(), self.to.as_deref(), self.last, range)
    }
}

/// Which part of the recordings, and how connections are named.
#[derive(Debug, Args, Clone)]
struct WindowArgs {
    #[command(flatten)]
    time: TimeArgs,
    /// Services map (TOML); default $TCPFR_SERVICES or ~/.config/tcpfr/services.toml.
    #[arg(long, value_name = "FILE")]
    services: Option<PathBuf>,
}

/// Which recordings, and which part of them.
#[derive(Debug, Args, Clone)]
struct DataArgs {
    #[command(flatten)]
    window: WindowArgs,
    /// A tcpdump capture (pcap or pcapng) to query next to the recording, as tables
    /// packets, pcap_flows and pcap_retransmits (repeatable).
    #[arg(long = "pcap", value_name = "FILE")]
    pcaps: Vec<PathBuf>,
}

#[derive(Debug, Args, Clone)]
struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write results to FILE instead of stdout (required for parquet).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run SQL over recordings, or open an interactive shell when no SQL is given.
    Query {
        /// Recordings, then optionally the SQL (the last argument, when it is not a path).
        #[arg(required = true, value_name = "REC… [SQL]")]
        args: Vec<String>,
        /// SQL to run (instead of a trailing argument).
        #[arg(short = 'c', long = "command", value_name = "SQL", conflicts_with = "file")]
        command: Option<String>,
        /// Read SQL from FILE (statements separated by `;`).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Print the views (time window, services map) over the exact files, as DuckDB
        /// SQL, to run the same questions in DuckDB.
        #[arg(long)]
        show_views: bool,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// A summary of what stands out, in plain words.
    Report {
        #[arg(required = true, value_name = "REC")]
        recs: Vec<PathBuf>,
        /// Write a self-contained HTML report (charts, tables; opens offline) to FILE
        /// instead of printing; with --pcap it also compares the wire with the kernel.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Play recordings back as one time-ordered event stream (like tcpretrans).
    Replay {
        #[arg(required = true, value_name = "REC")]
        recs: Vec<PathBuf>,
        /// Pace playback at recorded speed times this (e.g. 10x, 0.5x).
        #[arg(long, value_name = "FACTOR", conflicts_with = "fast")]
        speed: Option<String>,
        /// As fast as possible (the default when stdout is not a terminal).
        #[arg(long)]
        fast: bool,
        /// Only events matching this SQL condition (columns: time, kind, host, pid, comm,
        /// laddr, lport, raddr, rport, state, detail, service).
        #[arg(long, value_name = "SQL-WHERE")]
        filter: Option<String>,
        /// text (one line per event) or ndjson.
        #[arg(long, value_name = "FORMAT", default_value = "text")]
        format: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// What a tcpdump capture shows: retransmissions (as tshark labels them),
    /// handshakes, resets, per conversation.
    Pcap {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Kernel retransmits (recording) next to the wire's (capture), per flow and per
    /// event, with the clock offset between them.
    Xref {
        #[arg(required = true, value_name = "REC")]
        recs: Vec<PathBuf>,
        /// Match tolerance after the offset is applied (default: from the data, 1 ms to 100 ms).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        tolerance: Option<Duration>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Put a time window of recordings into one file (FILE.tcpfr) to attach to a bug
    /// report; every tcpfr command reads it like a recording. --redact anonymizes
    /// addresses prefix-preservingly (subnets stay subnets) with a random key that is
    /// not stored, and drops the recorder's flags and the boot id.
    Bundle {
        #[arg(required = true, value_name = "REC")]
        recs: Vec<PathBuf>,
        /// The bundle to write (refused if it exists, unless --force).
        #[arg(short = 'o', long = "output", value_name = "FILE", required = true)]
        output: PathBuf,
        #[command(flatten)]
        time: TimeArgs,
        /// Bundle the snapshot REC/snapshots/NAME instead of the ring.
        #[arg(long, value_name = "NAME")]
        snapshot: Option<String>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Anonymize addresses (prefix-preserving, IPv4 and IPv6) and drop identifying
        /// manifest fields (recorder flags, boot id).
        #[arg(long)]
        redact: bool,
        /// With --redact: leave addresses in this range (CIDR or address) as they are
        /// (repeatable). No other address is mapped into a kept range.
        #[arg(long = "keep", value_name = "CIDR", requires = "redact", value_parser = redact::parse_keep)]
        keep: Vec<ipnet::IpNet>,
        /// With --redact: replace process names, cgroup paths, container ids and
        /// network namespace names with pseudonyms (proc-1, cgroup-1, …).
        #[arg(long, requires = "redact")]
        scrub_names: bool,
        /// With --redact: replace host names with pseudonyms (host-1, …) everywhere.
        #[arg(long, requires = "redact")]
        scrub_host: bool,
    },
    /// Write recordings in another format: `export openmetrics` for Prometheus.
    Export {
        #[command(subcommand)]
        format: ExportFormat,
    },
    /// Upload recordings to an object store (s3://BUCKET/PREFIX, file:///DIR or a
    /// directory) in the partitioned layout that every tcpfr command, DuckDB and Spark
    /// read (FORMAT.md, "Shipped recordings"). Only complete files are sent; objects
    /// already there are skipped, so a re-run completes an interrupted one; each
    /// recording's manifest goes last. S3 credentials, region and AWS_ENDPOINT /
    /// AWS_ALLOW_HTTP come from the environment.
    Ship {
        /// Recordings (or directories of them), then the store URL.
        #[arg(required = true, num_args = 2.., value_name = "REC… URL")]
        args: Vec<String>,
        /// Further attempts of a file after a transient error (with exponential backoff).
        #[arg(long, value_name = "N", default_value_t = 5)]
        retries: u32,
    },
    /// Check recordings fully: manifests, sizes, checksums, Parquet footers, schemas.
    Verify {
        #[arg(required = true, value_name = "REC")]
        recs: Vec<PathBuf>,
    },
    /// Show the services map in effect: its rules, and the SQL expression that computes
    /// the `service` column (to use the same map in another SQL engine).
    Services {
        /// Services map (TOML); default $TCPFR_SERVICES or ~/.config/tcpfr/services.toml.
        #[arg(long, value_name = "FILE")]
        services: Option<PathBuf>,
        /// Print only the SQL expression.
        #[arg(long)]
        sql: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ExportFormat {
    /// The tcpfr_* metric families, as an OpenMetrics text file to backfill Prometheus with.
    ///
    /// The families `tcpfr-recorder --metrics-listen` serves live, computed from
    /// recordings at every step. Load the file with `promtool tsdb create-blocks-from
    /// openmetrics FILE DIR`. Counters count from 0 at the start of the exported window;
    /// with recordings of several hosts every series gets a `host` label.
    #[command(name = "openmetrics")]
    OpenMetrics {
        #[arg(required = true, value_name = "REC")]
        recs: Vec<PathBuf>,
        /// The file to write (refused if it exists, unless --force).
        #[arg(short = 'o', long = "output", value_name = "FILE", required = true)]
        output: PathBuf,
        /// Time between samples (whole milliseconds), e.g. 1s, 10s, 1m.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = export::parse_step)]
        step: Duration,
        #[command(flatten)]
        window: WindowArgs,
        /// Peers (remote addresses) with series of their own: the N with the most
        /// retransmits, resets and failed handshakes in the window; the rest are `other`.
        #[arg(long, value_name = "N", default_value_t = 20)]
        max_peers: usize,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Options of every canned question.
#[derive(Debug, Args)]
struct CannedArgs {
    /// Recordings: a recording directory (tcpfr-recorder --out makes one per run), a
    /// directory of recordings of any number of hosts, a Parquet file of one, a bundle
    /// (FILE.tcpfr) or a shipped store (s3://BUCKET/PREFIX, file:///DIR).
    #[arg(required = true, value_name = "REC")]
    recs: Vec<PathBuf>,
    /// Group by: service, peer, raddr, lport, process, host, flow.
    #[arg(long, value_name = "GROUP")]
    by: Option<String>,
    /// Time window size, e.g. 1s, 10s, 1m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    window: Option<Duration>,
    /// Most rows per result.
    #[arg(long)]
    limit: Option<u64>,
    /// Only the n-th result (1-based) of questions that have several.
    #[arg(long, value_name = "N")]
    part: Option<usize>,
    /// Print the SQL instead of running it (to adapt it, or run it elsewhere).
    #[arg(long)]
    show_sql: bool,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    out: OutputArgs,
}

fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for q in canned::all() {
        // The question's own `-- about:` line; set after the arguments, whose struct's
        // doc comment would otherwise be taken for every question's.
        cmd = cmd.subcommand(CannedArgs::augment_args(clap::Command::new(q.name)).about(q.about.clone()));
    }
    cmd
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tcpfr: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = Env {
        cluster: matches.try_get_one::<String>("cluster").ok().flatten().cloned(),
        progress: progress::Progress::for_format(human_output(&matches)),
        reads: Default::default(),
    };
    let result = rt.block_on(dispatch(&env, matches.clone()));
    if matches.get_flag("verbose") {
        env.reads.report();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`tcpfr … | head`) is not an error worth a message.
            if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
                return ExitCode::SUCCESS;
            }
            // Errors quote names from recordings and paths: no terminal escapes in them.
            eprintln!("tcpfr: {}", print::lines_for_terminal(&tcpfr_schema::error::chain_text(e.chain())));
            ExitCode::FAILURE
        }
    }
}

/// Whether the output is for people (the table format): machine-readable output gets
/// no progress bars, even on a terminal.
fn human_output(matches: &ArgMatches) -> bool {
    let Some((_, sub)) = matches.subcommand() else { return true };
    match sub.try_get_raw("format") {
        Ok(Some(f)) => f.into_iter().all(|v| v == "table"),
        _ => true,
    }
}

async fn dispatch(env: &Env, matches: ArgMatches) -> Result<()> {
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(q) = canned::get(name) {
            let args = CannedArgs::from_arg_matches(sub)?;
            return run_canned(env, q, args).await;
        }
    }
    match Cli::from_arg_matches(&matches)?.cmd {
        Cmd::Query { args, command, file, show_views: true, data, .. } => {
            let recs: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
            let _ = (command, file);
            let (ds, window, services) = open(env, &recs, &data).await?;
            ds.require_local("--show-views")?;
            let service = services.sql()?;
            // Complete recordings have at least one file per table.
            let source = |t: &str| {
                let f: Vec<String> = ds.files[t].iter().map(|p| format!("'{}'", p.display())).collect();
                format!("read_parquet([{}])", f.join(", "))
            };
            for t in tcpfr_schema::TABLES {
                outln!("{};", session::view_sql(t, &source, &window, &service))?;
            }
            Ok(())
        }
        Cmd::Query { args, command, file, data, out, .. } => run_query(env, args, command, file, data, out).await,
        Cmd::Report { recs, html: Some(file), data } => {
            let (ds, window, services) = open(env, &recs, &data).await?;
            let bytes = html::write(env, &ds, &window, &services, &data.pcaps, &file).await?;
            outln!("wrote {} ({} KB)", file.display(), bytes.div_ceil(1024))?;
            Ok(())
        }
        Cmd::Report { recs, data, .. } => {
            if !data.pcaps.is_empty() {
                bail!("--pcap with report needs --html FILE (the terminal report does not use captures; see tcpfr xref)");
            }
            let (ds, window, services) = open(env, &recs, &data).await?;
            report::run(env, &ds, &window, &services).await
        }
        Cmd::Replay { recs, speed, fast, filter, format, data } => {
            let (ds, window, services) = open(env, &recs, &data).await?;
            replay::run(env, &ds, &window, &services, replay::Options::parse(speed.as_deref(), fast, filter, &format)?).await
        }
        Cmd::Verify { recs } => verify(&recs),
        Cmd::Ship { args, retries } => ship(env, args, retries).await,
        Cmd::Export { format: ExportFormat::OpenMetrics { recs, output, step, window, max_peers, force } } => {
            export::openmetrics(env, export::Request {
                recs: &recs,
                output: &output,
                step,
                from: window.time.from.as_deref(),
                to: window.time.to.as_deref(),
                last: window.time.last,
                services: window.services.as_deref(),
                max_peers,
                force,
            })
            .await
        }
        Cmd::Bundle { recs, output, time, snapshot, force, redact, keep, scrub_names, scrub_host } => bundler::create(env, bundler::Request {
            recs: &recs,
            from: time.from.as_deref(),
            to: time.to.as_deref(),
            last: time.last,
            snapshot: snapshot.as_deref(),
            output: &output,
            force,
            redact: redact.then_some(redact::Options { keep, scrub_names, scrub_host }),
        })
        .await,
        Cmd::Pcap { files } => pcap::summary(&files, env.progress),
        Cmd::Xref { recs, tolerance, data, out } => {
            let out = Output { format: out.format, file: out.output };
            out.check()?;
            if out.format == Format::Parquet {
                bail!("xref prints two results; use --format csv or json to save them");
            }
            if data.pcaps.is_empty() {
                bail!("xref needs a capture: tcpfr xref REC --pcap FILE");
            }
            let (ds, window, services) = open(env, &recs, &data).await?;
            let ctx = session::context(env, &ds, &window, &services).await?;
            xref::run(&ctx, &data.pcaps, tolerance.map(|d| d.as_nanos() as i64), &out).await
        }
        Cmd::Services { services, sql } => {
            let map = ServiceMap::load(services.as_deref())?;
            if !sql {
                match &map.source {
                    Some(p) => outln!("Rules from {} (first match wins), then well-known ports, then the local process name:", p.display())?,
                    None => outln!("No services map file: well-known ports, then the local process name.")?,
                }
                for r in &map.rules {
                    outln!("  {r:?}")?;
                }
                outln!("\nSQL:")?;
            }
            outln!("{}", map.sql()?)?;
            Ok(())
        }
    }
}

/// Opens data and resolves the window and services map.
async fn open(env: &Env, recs: &[PathBuf], data: &DataArgs) -> Result<(Dataset, Window, ServiceMap)> {
    let ds = Dataset::open(env, recs).await?;
    let window = data.window.time.window(ds.time_range)?;
    let services = ServiceMap::load(data.window.services.as_deref())?;
    Ok((ds, window, services))
}

async fn run_canned(env: &Env, q: canned::Query, args: CannedArgs) -> Result<()> {
    let out = Output { format: args.out.format, file: args.out.output.clone() };
    out.check()?;
    if let (Some(by), false) = (&args.by, q.takes_by()) {
        let takes: Vec<&str> = canned::all().iter().filter(|q| q.takes_by()).map(|q| q.name).collect();
        bail!("--by {by}: {} has groupings of its own; --by works with {}", q.name, takes.join(", "));
    }
    let (ds, window, services) = open(env, &args.recs, &args.data).await?;
    let statements = q.render(&canned::Params {
        by: args.by.clone(),
        window: args.window,
        limit: args.limit,
        range_s: window.range_seconds(ds.time_range),
        service: services.sql()?,
        several_hosts: ds.hosts().len() != 1,
    })?;
    let selected: Vec<(String, String)> = match args.part {
        Some(n) if n >= 1 && n <= statements.len() => vec![statements[n - 1].clone()],
        Some(n) => bail!("--part {n}: {} has {} result(s)", q.name, statements.len()),
        None => statements,
    };
    if out.format == Format::Parquet && selected.len() > 1 {
        bail!("{} has {} results; choose one with --part N to write Parquet", q.name, selected.len());
    }
    if args.show_sql {
        for (title, sql) in &selected {
            outln!("-- {title}\n{sql};\n")?;
        }
        return Ok(());
    }
    let ctx = session::context(env, &ds, &window, &services).await?;
    pcap::register(&ctx, &args.data.pcaps)?;
    for (i, (title, sql)) in selected.iter().enumerate() {
        let (schema, batches) = exec::run(&ctx, sql, title).await.with_context(|| format!("{}: {title}", q.name))?;
        if i > 0 && out.format == Format::Table {
            outln!()?;
        }
        out.write(Some(title), &schema, &batches)?;
    }
    Ok(())
}

async fn run_query(env: &Env, args: Vec<String>, command: Option<String>, file: Option<PathBuf>, data: DataArgs, out: OutputArgs) -> Result<()> {
    let out = Output { format: out.format, file: out.output };
    out.check()?;
    // The last argument is SQL when it is not an existing path (or a store URL); with
    // --pcap, it may be the only one: a capture is queried alone.
    let mut recs: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    let mut sql = command;
    let last_is_sql = recs.last().is_some_and(|p| !p.exists() && !store::is_remote(&p.to_string_lossy()) && !p.to_string_lossy().starts_with("file:"));
    if sql.is_none() && file.is_none() && (recs.len() > 1 || !data.pcaps.is_empty()) && last_is_sql {
        sql = args.last().cloned();
        recs.pop();
    }
    if let Some(f) = &file {
        sql = Some(std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?);
    }
    let (ds, window, services) = if recs.is_empty() && !data.pcaps.is_empty() {
        (Dataset::empty(), data.window.time.window(None)?, ServiceMap::load(data.window.services.as_deref())?)
    } else {
        open(env, &recs, &data).await?
    };
    let ctx = session::context(env, &ds, &window, &services).await?;
    pcap::register(&ctx, &data.pcaps)?;
    let Some(sql) = sql else {
        return shell::run(&ctx, &ds).await;
    };
    let statements = shell::split_statements(&sql);
    if out.format == Format::Parquet && statements.len() > 1 {
        bail!("Parquet output takes one statement, got {}", statements.len());
    }
    for stmt in statements {
        let (schema, batches) = exec::run(&ctx, &stmt, "query").await?;
        out.write(None, &schema, &batches)?;
    }
    Ok(())
}

/// `tcpfr ship`: finds the recordings, then hands them to the tcpfr-ship crate.
async fn ship(env: &Env, mut args: Vec<String>, retries: u32) -> Result<()> {
    let url = args.pop().context("no store URL")?;
    let recs: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    let store = tcpfr_ship::Store::open(&url)?;
    let mut recordings = Vec::new();
    for source in tcpfr_schema::read::discover(&recs)? {
        match source {
            tcpfr_schema::read::Source::Recording(rec) => recordings.push(rec),
            tcpfr_schema::read::Source::File { path, .. } => {
                bail!("{}: a single file; ship whole recordings (the directory with manifest.json)", path.display())
            }
        }
    }
    store.check().await?;
    let bar = std::sync::Mutex::new(progress::Bar::new(env.progress, tcpfr_ship::total_bytes(&recordings), progress::Unit::Bytes, "shipping"));
    let opts = tcpfr_ship::Options { retries, ..Default::default() };
    let summary = tcpfr_ship::ship(&store, &recordings, &opts, &|done| {
        if let Ok(mut b) = bar.lock() {
            b.set(done);
        }
    })
    .await;
    bar.lock().map(|mut b| b.finish()).ok();
    outln!("shipped to {}: {}", store.url(), summary?)?;
    Ok(())
}

fn verify(recs: &[PathBuf]) -> Result<()> {
    dataset::require_exist(recs)?;
    // Directory names, the manifest's host and the problems (which quote file names)
    // are not ours: shown through for_terminal.
    let show = |p: &std::path::Path| print::for_terminal(&p.display().to_string()).into_owned();
    let mut bad = 0;
    let resolved = bundle::resolve(recs)?;
    let found = tcpfr_schema::read::discover_all(&resolved.paths)?;
    for e in &found.skipped {
        bad += 1;
        outln!("BAD {e}")?;
    }
    for source in found.sources {
        match source {
            tcpfr_schema::read::Source::Recording(rec) => {
                let problems = rec.verify(tcpfr_schema::read::Verify::Full);
                let unlisted = rec.unlisted_files();
                if problems.is_empty() {
                    outln!("ok  {} ({} files, host {})", show(&rec.dir), rec.manifest.files.len(), print::for_terminal(&rec.manifest.host))?;
                } else {
                    bad += problems.len();
                    outln!("BAD {}", show(&rec.dir))?;
                    for p in problems {
                        outln!("    {}", print::for_terminal(&p.to_string()))?;
                    }
                }
                for u in unlisted {
                    outln!("    note: {} is not in the manifest (a file being written, or left by a crash)", show(&u))?;
                }
            }
            tcpfr_schema::read::Source::File { path, table } => {
                outln!("ok  {} (table {table})", show(&path))?;
            }
        }
    }
    if bad > 0 {
        bail!("{bad} problem(s) found");
    }
    Ok(())
}
