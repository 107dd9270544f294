//! `--cluster df://HOST:PORT`: the same questions on a Ballista cluster (tcpfr-cluster's
//! `tcpfr-scheduler` and `tcpfr-executor`, cluster/README.md). The session is built as
//! for local execution (tables, views, services map), then handed to Ballista: plans go
//! to the scheduler, executors read the recordings themselves (an `s3://` store with
//! their own `AWS_*` environment, or paths they can see) and send back only the answer.
//!
//! Client support is the `cluster` feature (off by default: it builds Ballista's client
//! and all of DataFusion's default features).

use anyhow::Result;
use datafusion::execution::context::SessionContext;

/// `ctx` turned into a session whose queries run on the cluster at `url`.
#[cfg(feature = "cluster")]
pub async fn connect(ctx: SessionContext, url: &str) -> Result<SessionContext> {
    use anyhow::Context;
    use ballista::prelude::SessionContextExt;
    if !url::Url::parse(url).is_ok_and(|u| u.host_str().is_some()) {
        anyhow::bail!("--cluster {url}: give the scheduler as df://HOST:PORT (its --bind-port, 50050 by default)");
    }
    let ctx = SessionContext::remote_with_state(url, ctx.state())
        .await
        .with_context(|| format!("--cluster {url}: cannot set up a session for the scheduler"))?;
    for (key, value) in SETTINGS {
        ctx.sql(&format!("SET {key} = {value}")).await.with_context(|| format!("--cluster: setting {key}"))?;
    }
    Ok(ctx)
}

/// Session settings for the cluster's planner. Ballista 55's adaptive planner loses
/// the order of a result sorted before a final merge (a `… ORDER BY` after a join comes
/// back as sorted runs, one per partition); the static planner keeps it. Ballista's own
/// choice of sort-merge joins is kept: they spill, and a hash join may pick the large
/// side (`rtt_samples`) to build its table from and run out of memory.
#[cfg(feature = "cluster")]
const SETTINGS: [(&str, &str); 1] = [("ballista.planner.adaptive.enabled", "false")];

#[cfg(not(feature = "cluster"))]
pub async fn connect(_ctx: SessionContext, url: &str) -> Result<SessionContext> {
    anyhow::bail!(
        "--cluster {url}: this tcpfr was built without cluster support; rebuild it with: cargo build --release -p tcpfr --features cluster"
    )
}

/// Adds what to do when the scheduler at `url` cannot be reached, or an executor's
/// memory pool was too small for the question.
pub fn explain(msg: &str, url: Option<&str>) -> Option<String> {
    let url = url?;
    if msg.contains("Resources exhausted") || msg.contains("ResourcesExhausted") {
        return Some(format!(
            "an executor of {url} ran out of its memory pool for this question (it spilled what it could): \
             start the executors with a larger --memory-pool-size, or fewer --vcores each (cluster/README.md, \"Memory\")"
        ));
    }
    let unreachable = ["transport error", "Connection refused", "tcp connect error", "dns error"];
    unreachable
        .iter()
        .any(|s| msg.contains(s))
        .then(|| format!("cannot reach the Ballista scheduler at {url}: is tcpfr-scheduler running there, with executors? (cluster/README.md)"))
}
