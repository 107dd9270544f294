//! Running SQL: read-only for anything the user types, a spinner on a terminal for
//! queries that take a moment, and errors that say what to do.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{anyhow, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::context::{SQLOptions, SessionContext};
use futures::StreamExt;

/// What users may run: queries only. DDL (CREATE/DROP), DML (INSERT, COPY … TO) and
/// statements (SET, …) are refused, so nothing typed can write or delete files.
pub fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// Runs one statement and collects its result.
pub async fn run(ctx: &SessionContext, sql: &str, label: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let spinner = Spinner::start(label);
    let result = async {
        let df = ctx.sql_with_options(sql, read_only()).await?;
        let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        while let Some(b) = stream.next().await {
            let b = b?;
            rows += b.num_rows();
            spinner.rows(rows);
            batches.push(b);
        }
        Ok::<_, datafusion::error::DataFusionError>((schema, batches))
    }
    .await;
    spinner.finish();
    result.map_err(|e| explain(e, ctx))
}

/// Adds what to do to DataFusion's errors.
pub fn explain(e: datafusion::error::DataFusionError, ctx: &SessionContext) -> anyhow::Error {
    let msg = e.to_string();
    if msg.contains("not found") && msg.to_lowercase().contains("table") {
        let mut tables = ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names())
            .unwrap_or_default();
        tables.sort();
        return anyhow!("{msg}\nTables: {} (raw files: files.<table>)", tables.join(", "));
    }
    if msg.contains("not allowed") || msg.contains("not supported") {
        return anyhow!("{msg}\ntcpfr runs queries only (SELECT, WITH, EXPLAIN, SHOW): recordings are never modified. To save results use --format csv|json|parquet -o FILE");
    }
    anyhow!("{msg}")
}

/// A spinner on stderr while a query runs, only on a terminal and only after a moment.
struct Spinner {
    bar: Option<indicatif::ProgressBar>,
}

impl Spinner {
    fn start(label: &str) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner { bar: None };
        }
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"));
        bar.set_message(label.to_string());
        // Steady ticks start after a short delay so quick queries print nothing.
        let b = bar.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            if !b.is_finished() {
                b.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Spinner { bar: Some(bar) }
    }

    fn rows(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.set_length(n as u64);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
