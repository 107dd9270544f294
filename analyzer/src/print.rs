//! Output formats: an aligned table for people, CSV / JSON / NDJSON for pipes, Parquet
//! to a file.

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
                    writeln!(out, "{t}")?;
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
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let numeric: Vec<bool> = schema.fields().iter().map(|f| f.data_type().is_numeric()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            rows.push(fmts.iter().map(|f| f.value(i).to_string()).collect());
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
