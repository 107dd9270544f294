//! tcpfr on Apache DataFusion Ballista: what the scheduler and executors need beyond
//! stock Ballista 55 to run tcpfr's questions (`tcpfr … --cluster df://HOST:PORT`).
//!
//! The analyzer keeps everything a plan carries plain (FORMAT.md's tables as listing
//! tables, the views and the services map as SQL), so Ballista's own codecs carry it.
//! Three things are not stock:
//! * the services map's SQL functions ([`tcpfr_services::sql`], `cidr_contains` for IPv6
//!   networks): plans name them, so the scheduler (logical plans) and the executors
//!   (physical plans) must know them;
//! * DataFusion's array functions on the executors, which stock Ballista 55.0.0
//!   executors do not register (see [`executor_functions`]);
//! * shipped recordings in S3: the store is opened from the environment (`AWS_*`, as
//!   `tcpfr-recorder --ship` and `tcpfr` open it), with Ballista's S3 registry.
//!
//! The binaries are Ballista's own (same flags, `--help`), with these registered.

use std::sync::Arc;

use ballista_core::extension::ballista_scalar_functions;
use ballista_core::object_store::session_state_with_s3_support;
use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;

/// The scheduler's sessions: Ballista's S3-aware session with tcpfr's functions.
pub fn scheduler_session(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let state = session_state_with_s3_support(config)?;
    let mut functions = state.scalar_functions().values().cloned().collect::<Vec<_>>();
    functions.extend(tcpfr_services::sql::functions().into_iter().map(Arc::new));
    Ok(SessionStateBuilder::new_from_existing(state).with_scalar_functions(functions).build())
}

/// The executors' functions: Ballista's defaults, DataFusion's array functions (the
/// default registry of Ballista 55.0.0 lacks them, so a plan with `array_agg` +
/// `array_to_string`, as the questions' process lists, fails to decode on a stock
/// executor) and tcpfr's.
pub fn executor_functions() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    let ours = tcpfr_services::sql::functions().into_iter().map(Arc::new);
    for f in ballista_scalar_functions().into_iter().chain(ours) {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// Logs to stdout at `level` unless `RUST_LOG` says otherwise (Ballista logs through
/// the `log` crate; tracing-subscriber takes those records too).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_ansi(false).with_env_filter(filter).init();
}
