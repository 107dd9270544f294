//! Output formats: an aligned table for people, CSV / JSON / NDJSON for pipes, Parquet
//! to a file; and [`for_terminal`], through which every recorded string goes on its
//! way to a person.
//!
//! Recordings hold strings that other users of the recorded host chose: a process
//! names itself (`comm`, and so the `service` that falls back to it), notes quote
//! error messages, manifests name the host. A process called `\x1b]0;…\x07` or
//! `\x1b[2J` would otherwise retitle or clear the terminal of whoever reads the
//! results, and one with a newline in its name would forge lines. So text meant for
//! people (the table format here, including `-o FILE`, the shell, `tcpfr report`,
//! `replay`'s text, `verify`) shows such characters as escapes (`\u{1b}`, `\n`), while
//! CSV, JSON, NDJSON and Parquet keep every byte: they are read by programs, and their
//! own quoting (CSV quotes fields with newlines, JSON escapes control characters) keeps
//! their structure intact. Error messages (which can quote a recorded value, e.g.
//! DataFusion's `Cannot cast string '…'`) keep their line breaks, as DataFusion's own
//! messages have some, and escape everything else ([`lines_for_terminal`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
    Ndjson,
    Parquet,
}

/// Where results go.
pub struct Output {
    pub format: Format,
    pub file: Option<PathBuf>,
}

impl Output {
    pub fn check(&self) -> Result<()> {
        if self.format == Format::Parquet && self.file.is_none() {
            bail!("--format parquet writes a file: add -o FILE");
        }
        Ok(())
    }

    fn sink(&self) -> Result<Box<dyn Write>> {
        Ok(match &self.file {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        })
    }

    /// Writes one result. `title` is shown above tables (and as a comment in CSV).
    pub fn write(&self, title: Option<&str>, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        match self.format {
            Format::Parquet => write_parquet(self.file.as_deref().expect("checked"), schema, batches),
            Format::Table => {
                let mut out = self.sink()?;
                if let Some(t) = title {
                    writeln!(out, "{}", for_terminal(t))?;
                }
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                if rows == 0 {
                    writeln!(out, "(no rows)")?;
                } else {
                    writeln!(out, "{}", table(schema, batches)?)?;
                    writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
                }
                Ok(out.flush()?)
            }
            Format::Csv => {
                let mut out = self.sink()?;
                if let Some(t) = title {
                    writeln!(out, "# {t}")?;
                }
                {
                    let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                    if batches.is_empty() {
                        w.write(&RecordBatch::new_empty(schema.clone()))?;
                    }
                    for b in batches {
                        w.write(b)?;
                    }
                }
                Ok(out.flush()?)
            }
            Format::Json => {
                let mut out = self.sink()?;
                let mut w = datafusion::arrow::json::ArrayWriter::new(&mut out);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
                writeln!(out)?;
                Ok(out.flush()?)
            }
            Format::Ndjson => {
                let mut out = self.sink()?;
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
                Ok(out.flush()?)
            }
        }
    }
}

fn write_parquet(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

/// An aligned text table; numbers right-aligned, timestamps without the date when all
/// rows share one day would be nice but we keep them whole: they are copied into tickets.
pub fn table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let opts = FormatOptions::default().with_null("");
    let headers: Vec<String> = schema.fields().iter().map(|f| for_terminal(f.name()).into_owned()).collect();
    let numeric: Vec<bool> = schema.fields().iter().map(|f| f.data_type().is_numeric()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            rows.push(fmts.iter().map(|f| for_terminal(&f.value(i).to_string()).into_owned()).collect());
        }
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if numeric[i] {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(&headers));
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for r in &rows {
        out.push('\n');
        out.push_str(&line(r));
    }
    Ok(out)
}

/// Characters that must not reach a terminal as they are: control characters (C0,
/// newline and tab included; DEL; C1, where U+009B is CSI to many terminals) and the
/// bidirectional overrides and isolates, which reorder what is shown (U+202A–U+202E,
/// U+2066–U+2069).
fn unsafe_for_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character a terminal would act on written as a visible escape:
/// `\n`, `\r`, `\t`, and `\u{1b}` style for the rest. Backslashes stay as they are
/// (paths, regular expressions): the escapes are for reading, not for decoding.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_for_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_for_terminal(c) => {
                let _ = write!(out, "{}", c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`for_terminal`] for a message of several lines of our own (error messages with a
/// hint on the next line): newlines stay, everything else is escaped. A recorded
/// string inside can still start a line, but cannot hide or restyle the text.
pub fn lines_for_terminal(s: &str) -> String {
    s.split('\n').map(for_terminal).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert!(matches!(for_terminal("nginx: worker ✓ C:\\x"), Cow::Borrowed(_)));
        let evil = "a\x1b]0;t\x07\x1b[2J\r\nb\tc\x7f\u{9b}31m\u{202e}d\0";
        let shown = for_terminal(evil);
        assert_eq!(shown, "a\\u{1b}]0;t\\u{7}\\u{1b}[2J\\r\\nb\\tc\\u{7f}\\u{9b}31m\\u{202e}d\\u{0}");
        assert!(shown.chars().all(|c| !unsafe_for_terminal(c)));
        assert_eq!(lines_for_terminal("bad name \x1b[2J\nhint: \x07"), "bad name \\u{1b}[2J\nhint: \\u{7}");
    }
}
