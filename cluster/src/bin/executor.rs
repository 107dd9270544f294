//! `tcpfr-executor`: Ballista's executor (same flags) with tcpfr's SQL functions and S3
//! stores opened from the environment. See cluster/README.md.

use std::sync::Arc;

use ballista_core::object_store::{runtime_env_with_s3_support, session_config_with_s3_support};
use ballista_executor::config::Config;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use clap::Parser;

#[tokio::main]
async fn main() -> ballista_core::error::Result<()> {
    let opt = Config::parse();
    let mut config: ExecutorProcessConfig = opt.try_into()?;
    tcpfr_cluster::init_logging(&config.special_mod_log_level);
    config.override_config_producer = Some(Arc::new(session_config_with_s3_support));
    config.override_runtime_producer = Some(Arc::new(runtime_env_with_s3_support));
    config.override_function_registry = Some(Arc::new(tcpfr_cluster::executor_functions()));
    start_executor_process(Arc::new(config)).await
}
