//! `tcpfr-executor`: Ballista's executor (same flags) with tcpfr's SQL functions and S3
//! stores opened from the environment. See cluster/README.md.
//!
//! Memory: Ballista bounds each task with a spilling pool (`--memory-pool-size`, or by
//! default 70% of the host's or cgroup's memory split across `--vcores`); operators
//! that exceed it spill to the work directory or fail the query with "Resources
//! exhausted", and the executor stays up.

use std::sync::Arc;

use ballista_core::object_store::{runtime_env_with_s3_support, session_config_with_s3_support};
use ballista_executor::config::Config;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use clap::Parser;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

#[tokio::main]
async fn main() -> ballista_core::error::Result<()> {
    let opt = Config::parse();
    let mut config: ExecutorProcessConfig = opt.try_into()?;
    tcpfr_cluster::init_logging(&config.special_mod_log_level);
    config.override_config_producer = Some(Arc::new(session_config_with_s3_support));
    // Spills go to the work directory, as Ballista's own runtime does: the S3 runtime
    // alone would spill to the OS temp directory, often a small tmpfs.
    let work_dir = config.work_dir.clone();
    config.override_runtime_producer = Some(Arc::new(move |session| {
        let env = runtime_env_with_s3_support(session)?;
        match &work_dir {
            Some(dir) => RuntimeEnvBuilder::from_runtime_env(&env).with_temp_file_path(dir).build_arc(),
            None => Ok(env),
        }
    }));
    config.override_function_registry = Some(Arc::new(tcpfr_cluster::executor_functions()));
    start_executor_process(Arc::new(config)).await
}
