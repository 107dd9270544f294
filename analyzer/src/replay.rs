//! `tcpfr replay`: every event table merged into one time-ordered stream, one line per
//! event in the style of tcpretrans, paced at recorded speed × factor (or as fast as
//! possible), or as NDJSON for other tools.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimestampNanosecondType};
use futures::StreamExt;

use crate::dataset::Dataset;
use crate::env::Env;
use crate::services::ServiceMap;
use crate::window::Window;

pub struct Options {
    /// None: as fast as possible.
    pub speed: Option<f64>,
    pub filter: Option<String>,
    pub ndjson: bool,
}

impl Options {
    pub fn parse(speed: Option<&str>, fast: bool, filter: Option<String>, format: &str) -> Result<Options> {
        let ndjson = match format {
            "text" => false,
            "ndjson" => true,
            other => bail!("--format {other}: replay writes text or ndjson"),
        };
        let speed = if fast {
            None
        } else if let Some(s) = speed {
            let v: f64 = s.trim_end_matches(['x', 'X']).parse().with_context(|| format!("--speed {s:?}: use e.g. 10x or 0.5x"))?;
            if !(v > 0.0 && v.is_finite()) {
                bail!("--speed must be positive");
            }
            Some(v)
        } else if std::io::stdout().is_terminal() && !ndjson {
            Some(1.0)
        } else {
            None
        };
        Ok(Options { speed, filter, ndjson })
    }
}

/// One row per event of every kind, same columns.
pub const EVENTS_SQL: &str = "
SELECT time, host, 'retransmit_' || kind AS kind, pid, comm, laddr, lport, raddr, rport, state,
       CAST(segments AS VARCHAR) || ' seg' || CASE WHEN counted THEN '' ELSE ' (not counted)' END
         || CASE WHEN err IS NOT NULL AND err <> 0 THEN ' err ' || CAST(err AS VARCHAR) ELSE '' END AS detail,
       service
FROM retransmits
UNION ALL
SELECT time, host, 'state', pid, comm, laddr, lport, raddr, rport, new_state,
       old_state || ' -> ' || new_state || coalesce(' ' || error, '') AS detail, service
FROM state_changes
UNION ALL
SELECT time, host, 'reset_' || direction, pid, comm, laddr, lport, raddr, rport, coalesce(state, '-'),
       coalesce(reason, ''), service
FROM resets
UNION ALL
SELECT time, host, 'flow_closed', pid, comm, laddr, lport, raddr, rport, last_state,
       coalesce(handshake, '?') || ' ' || coalesce(CAST(retrans_segs AS VARCHAR), CAST(retrans_segs_seen AS VARCHAR)) || ' retrans/'
         || coalesce(CAST(segs_out AS VARCHAR), '?') || ' segs' || coalesce(' ' || error, ''), service
FROM flows
";

pub async fn run(env: &Env, ds: &Dataset, window: &Window, services: &ServiceMap, opts: Options) -> Result<()> {
    let ctx = crate::session::context(env, ds, window, services).await?;
    let filter = opts.filter.as_deref().map(|f| format!(" WHERE {f}")).unwrap_or_default();
    let sql = format!("SELECT * FROM ({EVENTS_SQL}) AS e{filter} ORDER BY time");
    let df = ctx.sql_with_options(&sql, crate::exec::read_only()).await.map_err(|e| crate::exec::explain(e, &ctx))?;
    let mut stream = df.execute_stream().await.map_err(|e| crate::exec::explain(e, &ctx))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !opts.ndjson {
        writeln!(out, "{:<15} {:<12} {:>7} {:<15} {:<47} {:<11} {:<22} DETAIL", "TIME(UTC)", "HOST", "PID", "COMM", "LADDR:LPORT > RADDR:RPORT", "STATE", "KIND")?;
    }
    let mut clock: Option<(i64, Instant)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| crate::exec::explain(e, &ctx))?;
        if opts.ndjson {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            w.write(&batch)?;
            w.finish()?;
            continue;
        }
        print_batch(&batch, &mut out, opts.speed, &mut clock)?;
    }
    out.flush()?;
    Ok(())
}

fn print_batch(b: &RecordBatch, out: &mut impl Write, speed: Option<f64>, clock: &mut Option<(i64, Instant)>) -> Result<()> {
    let times = b.column_by_name("time").expect("time").as_primitive::<TimestampNanosecondType>();
    let s = |name: &str| -> Vec<String> {
        let a = datafusion::arrow::compute::cast(b.column_by_name(name).expect("column"), &DataType::Utf8).expect("to text");
        let a = a.as_string::<i32>();
        // Recorded strings (comm, host, notes in `detail`) may hold terminal escapes.
        (0..a.len()).map(|i| if a.is_null(i) { "-".to_string() } else { crate::print::for_terminal(a.value(i)).into_owned() }).collect()
    };
    let (host, kind, pid, comm, laddr, lport, raddr, rport, state, detail) =
        (s("host"), s("kind"), s("pid"), s("comm"), s("laddr"), s("lport"), s("raddr"), s("rport"), s("state"), s("detail"));
    for i in 0..b.num_rows() {
        let t = times.value(i);
        if let Some(factor) = speed {
            let (t0, w0) = *clock.get_or_insert((t, Instant::now()));
            let due = w0 + Duration::from_nanos((((t - t0).max(0)) as f64 / factor) as u64);
            let now = Instant::now();
            if due > now {
                out.flush()?;
                std::thread::sleep(due - now);
            }
        }
        let ts = chrono::DateTime::from_timestamp_nanos(t).format("%H:%M:%S%.6f");
        let ends = format!("{}:{} > {}:{}", laddr[i], lport[i], raddr[i], rport[i]);
        writeln!(out, "{ts:<15} {:<12} {:>7} {:<15} {ends:<47} {:<11} {:<22} {}", host[i], pid[i], comm[i], state[i], kind[i], detail[i])?;
    }
    Ok(())
}
