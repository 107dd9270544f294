//! Progress on long work (reading big captures, bundling, queries): bars on stderr,
//! only when a person is watching.
//!
//! A bar needs stderr *and* stdout on a terminal (`tcpfr pcap big.pcap | less` stays
//! clean), no `CI` in the environment, a terminal that can redraw (`TERM` not `dumb`),
//! and a table output format (machine formats get no decoration even on a terminal).
//! Bars appear only once the work has taken [`delay`] (400 ms), so quick commands print
//! nothing, and they are cleared when the work ends.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Work that ends sooner than this shows no bar: 400 ms, or `TCPFR_PROGRESS_DELAY_MS`
/// (the tests set 0 to see bars on small inputs).
pub fn delay() -> Duration {
    static D: OnceLock<Duration> = OnceLock::new();
    *D.get_or_init(|| {
        let ms = std::env::var("TCPFR_PROGRESS_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
        Duration::from_millis(ms)
    })
}

/// Whether a run draws bars: decided once per run (by its output format) and passed
/// down (`Env`). Whether a person is watching at all is the process's terminal's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub shown: bool,
}

impl Progress {
    /// Bars for output read by people (`table`), when a terminal is watching.
    pub fn for_format(human_output: bool) -> Progress {
        Progress { shown: human_output && watched() }
    }
}

/// Whether a person is watching: stderr and stdout on a terminal that can redraw, not CI.
fn watched() -> bool {
    static TTY: OnceLock<bool> = OnceLock::new();
    *TTY.get_or_init(|| {
        std::io::stderr().is_terminal()
            && std::io::stdout().is_terminal()
            && std::env::var_os("CI").is_none()
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
    })
}

/// Bars of parallel work (several captures scanned at once) share one screen area.
fn multi() -> &'static MultiProgress {
    static M: OnceLock<MultiProgress> = OnceLock::new();
    M.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// What the bar counts.
#[derive(Clone, Copy)]
pub enum Unit {
    Bytes,
}

/// One piece of work with a known size. Cheap to update: callers may report every
/// few thousand items; nothing is drawn before [`delay`] or when bars are off.
pub struct Bar {
    inner: Option<Inner>,
}

struct Inner {
    started: Instant,
    len: u64,
    unit: Unit,
    msg: String,
    bar: Option<ProgressBar>,
}

impl Bar {
    /// `len` 0 means unknown (a pipe): a spinner with the count so far.
    pub fn new(progress: Progress, len: u64, unit: Unit, msg: impl Into<String>) -> Bar {
        if !progress.shown {
            return Bar { inner: None };
        }
        Bar { inner: Some(Inner { started: Instant::now(), len, unit, msg: msg.into(), bar: None }) }
    }

    /// Sets how far the work is.
    pub fn set(&mut self, pos: u64) {
        let Some(i) = self.inner.as_mut() else { return };
        if i.bar.is_none() {
            if i.started.elapsed() < delay() {
                return;
            }
            i.bar = Some(i.show());
        }
        if let Some(b) = &i.bar {
            b.set_position(pos);
        }
    }

    /// Clears the bar (also done on drop).
    pub fn finish(&mut self) {
        if let Some(b) = self.inner.as_mut().and_then(|i| i.bar.take()) {
            b.finish_and_clear();
            multi().remove(&b);
        }
    }
}

impl Inner {
    fn show(&self) -> ProgressBar {
        let (size, count) = match self.unit {
            Unit::Bytes => ("{bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)", "{bytes} ({bytes_per_sec})"),
        };
        let (bar, template) = if self.len > 0 {
            (ProgressBar::new(self.len), format!("{{msg}} [{{wide_bar}}] {size}"))
        } else {
            (ProgressBar::new_spinner(), format!("{{spinner}} {{msg}} {count}"))
        };
        let style = ProgressStyle::with_template(&template).expect("valid template").progress_chars("=> ");
        let bar = multi().add(bar.with_style(style).with_message(self.msg.clone()));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A spinner while a query runs (its size is not known in advance), with the rows
/// received so far; shown after [`delay`] like the bars.
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub fn start(progress: Progress, label: &str) -> Spinner {
        if !progress.shown {
            return Spinner { bar: None };
        }
        let bar = ProgressBar::new_spinner().with_message(label.to_string());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"));
        let bar = multi().add(bar);
        // Steady ticks (the first drawing) start after the delay, so quick queries print nothing.
        let b = bar.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay());
            if !b.is_finished() {
                b.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Spinner { bar: Some(bar) }
    }

    pub fn rows(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.set_length(n as u64);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
            multi().remove(b);
        }
    }
}
