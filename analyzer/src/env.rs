//! What one run of `tcpfr` carries from its global flags to the code that needs them:
//! made once in `dispatch`, passed down, and attached to every session it makes (so
//! code that only has a `SessionContext`, such as a capture read inside a query, finds
//! it there). Nothing of it is process-wide.

use std::sync::Arc;

use datafusion::execution::context::SessionContext;

use crate::progress::Progress;
use crate::store::Reads;

#[derive(Clone, Default)]
pub struct Env {
    /// `--cluster`: the Ballista scheduler questions run on.
    pub cluster: Option<String>,
    /// Whether progress bars may be drawn (not for machine-readable output).
    pub progress: Progress,
    /// Stores read over the network, for `-v`.
    pub reads: Arc<Reads>,
}

impl Env {
    /// The environment a session was made with ([`crate::session::context`]); the
    /// default (no cluster, no bars) for other sessions.
    pub fn of(ctx: &SessionContext) -> Env {
        ctx.state().config().get_extension::<Env>().map(|e| e.as_ref().clone()).unwrap_or_default()
    }
}
