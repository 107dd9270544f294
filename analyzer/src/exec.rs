//! Running SQL: read-only for anything the user types, a spinner on a terminal for
//! queries that take a moment, and errors that say what to do.

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
    let spinner = crate::progress::Spinner::start(crate::env::Env::of(ctx).progress, label);
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
    if let Some(hint) = crate::cluster::explain(&msg, crate::env::Env::of(ctx).cluster.as_deref()) {
        return anyhow!("{msg}\n{hint}");
    }
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
