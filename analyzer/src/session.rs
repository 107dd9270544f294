//! The SQL session over a [`Dataset`]: every table of format v1 registered across all
//! recordings, as a view that applies the time window and adds the `service` column.
//!
//! ```text
//! files.<table>   the Parquet files as they are (schema `files`)
//! <table>         SELECT *, <services map> AS service FROM files.<table> WHERE <window>
//! ```
//! Everything is plain SQL over plain tables (plus the `cidr_contains` function), so the
//! same queries run on DuckDB and on stock Ballista executors.
//!
//! Shipped recordings (`tcpfr ship`, FORMAT.md "Shipped recordings") are read from the
//! store's prefix, `<prefix>/<table>/`, as a listing table whose `host`, `date` and
//! `hour` columns come from the paths (partition columns), so filters on host and the
//! window's end prune whole directories before any file is opened. The views then name
//! the format's columns explicitly (in the format's order, `date`/`hour` left out), so
//! every question answers as over the recordings themselves. The prefix is a URL
//! (`ListingTableUrl`): an object store registered with the session reads the same way.

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::context::{SessionConfig, SessionContext};
use tcpfr_schema::{schema_of, TABLES};

use crate::dataset::Dataset;
use crate::env::Env;
use crate::services::ServiceMap;
use crate::window::Window;

/// Whether `table`'s rows are about a connection (an event table), and so get a
/// `service` column.
pub fn has_service(table: &str) -> bool {
    // The service map's rules read the peer, the process and its cgroup: a listener has
    // no peer (`laddr`, `lport` and `comm` name it), a dropped packet no process.
    use tcpfr_schema::TableId;
    TableId::from_name(table).is_some_and(|t| t.is_event() && !matches!(t, TableId::Listeners | TableId::Drops))
}

/// Columns of `sockets` that the `rtt_samples` view adds to each sample.
const SOCKET_COLUMNS: &str = "s.family, s.laddr, s.lport, s.raddr, s.rport, s.pid, s.comm, s.cgroup_id, s.cgroup, s.container_id";

/// The SQL defining the view of `table`, reading its files from `source(table)`
/// (`files.<table>` here; `read_parquet([…])` for DuckDB).
pub fn view_sql(table: &str, source: &dyn Fn(&str) -> String, window: &Window, service: &str) -> String {
    view_sql_with(table, source, window, service, false)
}

/// [`view_sql`]; `shipped`: the sources have the partition columns of the shipped layout.
fn view_sql_with(table: &str, source: &dyn Fn(&str) -> String, window: &Window, service: &str, shipped: bool) -> String {
    if shipped {
        return shipped_view_sql(table, source, window, service);
    }
    match table {
        // Samples carry only the socket id: addresses, owner and service come from the
        // socket's row (every socket is in `sockets`, whatever the window). `sockets`
        // is written first so that it is the build side of the hash join even where
        // no statistics say it is the small one (a cluster's shuffled inputs). The
        // service is named per socket, before the join, not per sample after it (the
        // map's expression is several CASEs); a sample whose socket is missing is
        // `unknown`, as the map names a connection it knows nothing of.
        "rtt_samples" => format!(
            "CREATE VIEW rtt_samples AS SELECT r.*, {SOCKET_COLUMNS}, coalesce(s.service, 'unknown') AS service \
             FROM (SELECT *, {service} AS service FROM {}) AS s \
             RIGHT JOIN {} AS r ON r.host = s.host AND r.socket_id = s.socket_id{}",
            source("sockets"),
            source("rtt_samples"),
            window.sql_filter("r.time")
        ),
        // A dimension: not cut by the window.
        "sockets" => format!("CREATE VIEW sockets AS SELECT *, {service} AS service FROM {}", source("sockets")),
        t if has_service(t) => {
            format!("CREATE VIEW {t} AS SELECT *, {service} AS service FROM {}{}", source(t), window.sql_filter("time"))
        }
        t => format!("CREATE VIEW {t} AS SELECT * FROM {}{}", source(t), window.sql_filter("time")),
    }
}

/// Views over sources in the shipped layout: the format's columns by name (the sources
/// also have `date` and `hour`, and `host` from the path), and the window's end as a
/// filter on the partitions: a file lies in the hour of its first row, so files of
/// later hours hold no row before the end. (Its start cannot prune from paths: a file
/// of an earlier hour may run into the window.)
fn shipped_view_sql(table: &str, source: &dyn Fn(&str) -> String, window: &Window, service: &str) -> String {
    let cols = |t: &str, alias: &str| -> String {
        schema_of(t).expect("known table").fields().iter().map(|f| format!("{alias}{}", f.name())).collect::<Vec<_>>().join(", ")
    };
    let filter = |time: &str, part: &str| -> String {
        let mut conds: Vec<String> = Vec::new();
        let w = window.sql_filter(time);
        if let Some(c) = w.strip_prefix(" WHERE ") {
            conds.push(c.to_string());
        }
        if let Some(to) = window.to {
            let last = chrono::DateTime::from_timestamp_nanos(to - 1);
            let (d, h) = (last.format("%Y-%m-%d"), last.format("%H"));
            conds.push(format!("({part}date < '{d}' OR ({part}date = '{d}' AND {part}hour <= '{h}'))"));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    };
    match table {
        "rtt_samples" => format!(
            "CREATE VIEW rtt_samples AS SELECT {}, {SOCKET_COLUMNS}, coalesce(s.service, 'unknown') AS service \
             FROM (SELECT {}, {service} AS service FROM {}) AS s \
             RIGHT JOIN {} AS r ON r.host = s.host AND r.socket_id = s.socket_id{}",
            cols("rtt_samples", "r."),
            cols("sockets", ""),
            source("sockets"),
            source("rtt_samples"),
            filter("r.time", "r.")
        ),
        "sockets" => format!("CREATE VIEW sockets AS SELECT {}, {service} AS service FROM {}", cols("sockets", ""), source("sockets")),
        t if has_service(t) => {
            format!("CREATE VIEW {t} AS SELECT {}, {service} AS service FROM {}{}", cols(t, ""), source(t), filter("time", ""))
        }
        t => format!("CREATE VIEW {t} AS SELECT {} FROM {}{}", cols(t, ""), source(t), filter("time", "")),
    }
}

pub async fn context(env: &Env, ds: &Dataset, window: &Window, services: &ServiceMap) -> Result<SessionContext> {
    let service = services.sql()?;
    // DataFusion's own settings can be tuned as in datafusion-cli, from `DATAFUSION_*`
    // variables (`DATAFUSION_EXECUTION_BATCH_SIZE=…` for datafusion.execution.batch_size);
    // its defaults already use every core.
    let config = SessionConfig::from_env()
        .context("a DATAFUSION_* environment variable has a value its setting cannot take")?
        .with_extension(Arc::new(ServiceSql(service.clone())))
        .with_extension(Arc::new(env.clone()))
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    // On a cluster from the start: Ballista's session keeps what is registered on it
    // (tables registered before the switch are not carried over).
    let ctx = match &env.cluster {
        Some(url) => crate::cluster::connect(ctx, url).await?,
        None => ctx,
    };
    ctx.catalog("datafusion")
        .context("default catalog")?
        .register_schema("files", Arc::new(MemorySchemaProvider::new()))?;
    for f in tcpfr_services::sql::functions() {
        ctx.register_udf(f);
    }
    for s in &ds.shipped {
        if let Some((root, store)) = &s.remote {
            ctx.register_object_store(root, store.clone());
        }
    }

    for table in TABLES {
        let schema = view_types(&schema_of(table).expect("known table"));
        let files = ds.files.get(table).map(Vec::as_slice).unwrap_or(&[]);
        let provider: Arc<dyn datafusion::catalog::TableProvider> = if !ds.shipped.is_empty() {
            shipped_table(ds, table, schema)?
        } else if files.is_empty() {
            empty_table(schema)?
        } else {
            let urls = files
                .iter()
                .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(schema);
            Arc::new(ListingTable::try_new(config)?)
        };
        ctx.register_table(format!("files.{table}"), provider)?;
    }

    for table in TABLES {
        ctx.sql(&view_sql_with(table, &|t| format!("files.{t}"), window, &service, !ds.shipped.is_empty()))
            .await
            .with_context(|| format!("defining view {table}"))?;
    }
    Ok(ctx)
}

/// `files.<table>` over the shipped layout: a listing table over `<prefix>/<table>/` of
/// every store, partitioned by host, date and hour (the file's own `host` column is left
/// out: the path's value is the same, decoded from its escapes).
fn shipped_table(ds: &Dataset, table: &str, schema: SchemaRef) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let files = ds.files.get(table).map(Vec::as_slice).unwrap_or(&[]);
    if let Some(stray) = files.iter().find(|f| !ds.shipped.iter().any(|s| s.local.as_ref().is_some_and(|p| f.starts_with(p)))) {
        anyhow::bail!(
            "{} is not in a shipped store: read shipped recordings (tcpfr ship) and other recordings separately, or ship these too",
            stray.display()
        );
    }
    let file_schema = Arc::new(Schema::new_with_metadata(
        schema.fields().iter().filter(|f| f.name() != "host").map(|f| f.as_ref().clone()).collect::<Vec<_>>(),
        schema.metadata().clone(),
    ));
    // Only local prefixes holding the table (a store need not have every table; a
    // listing of a missing prefix in an object store is just empty).
    let urls = ds
        .shipped
        .iter()
        .filter(|s| s.local.as_ref().is_none_or(|d| d.join(table).is_dir()))
        .map(|s| ListingTableUrl::parse(format!("{}/{table}/", s.base)))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let partitions = [("host", DataType::Utf8View), ("date", DataType::Utf8), ("hour", DataType::Utf8)];
    if urls.is_empty() {
        // No store has the table (shipped by an older recorder): empty, with the
        // partition columns the views filter on.
        let mut fields: Vec<Field> = file_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(partitions.iter().map(|(name, ty)| Field::new(*name, ty.clone(), false)));
        return empty_table(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())));
    }
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partitions.iter().map(|(name, ty)| (name.to_string(), ty.clone())).collect());
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(file_schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// A table without rows: a listing table of no files rather than a `MemTable`, because
/// plans sent to a Ballista cluster (`--cluster`) can carry listing tables only.
fn empty_table(schema: SchemaRef) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let mut config = ListingTableConfig::new_with_multi_paths(vec![]);
    // Set directly: the builder methods debug-assert that there are paths.
    config.options = Some(ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet"));
    config.file_schema = Some(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The services map's SQL of a session, kept with it for the canned questions'
/// `{service}` placeholder.
struct ServiceSql(String);

/// The services map's SQL expression of a session made by [`context`] (the views'
/// `service` column); `'unknown'` for other sessions.
pub fn service_sql(ctx: &SessionContext) -> String {
    ctx.state().config().get_extension::<ServiceSql>().map(|s| s.0.clone()).unwrap_or_else(|| "'unknown'".into())
}

/// The table's schema with strings as `Utf8View`: Parquet then decodes strings straight
/// into views (no copy of the bytes), and grouping or comparing short strings (addresses,
/// process and service names, ≤ 12 bytes inline) needs no memcmp.
fn view_types(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}
