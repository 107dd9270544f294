//! `tcpfr-scheduler`: Ballista's scheduler (same flags) with tcpfr's SQL functions and
//! S3 stores opened from the environment. See cluster/README.md.

use std::sync::Arc;

use ballista_core::error::BallistaError;
use ballista_core::object_store::session_config_with_s3_support;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{Config, SchedulerConfig};
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;

fn main() -> ballista_core::error::Result<()> {
    // Ballista's own scheduler plans deep query trees on a big stack; so does this one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .map_err(|e| BallistaError::General(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(run())
}

async fn run() -> ballista_core::error::Result<()> {
    let opt = Config::parse();
    tcpfr_cluster::init_logging(&opt.log_level_setting);
    let addr = format!("{}:{}", opt.bind_host, opt.bind_port)
        .parse()
        .map_err(|e: std::net::AddrParseError| BallistaError::Configuration(format!("--bind-host/--bind-port: {e}")))?;
    let config: SchedulerConfig = opt.try_into()?;
    let config = config
        .with_override_config_producer(Arc::new(session_config_with_s3_support))
        .with_override_session_builder(Arc::new(tcpfr_cluster::scheduler_session));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    log::info!("tcpfr-scheduler listening on {addr}");
    start_server(cluster, addr, Arc::new(config)).await
}
