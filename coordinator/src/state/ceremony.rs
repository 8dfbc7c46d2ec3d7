//! What the key ceremonies (DKG, repair, refresh) share at the coordinator: one at a time, run
//! to its end even if the admin who asked hangs up, and a failure recorded and reported the
//! same way.

use std::sync::Arc;

use quorate_core::{
    audit::Event,
    refusal::{Refusal, Rule},
};
use tracing::warn;

use super::Coordinator;

/// The one key ceremony running; dropping it (however the ceremony ends) lets the next start.
pub(crate) struct Ceremony(Arc<Coordinator>);

impl Drop for Ceremony {
    fn drop(&mut self) {
        *self.0.dkg_running.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }
}

impl Coordinator {
    /// Starts a key ceremony, or refuses while another runs.
    pub(crate) fn begin_ceremony(self: &Arc<Self>) -> Result<Ceremony, Refusal> {
        let mut running = self.dkg_running.lock().unwrap_or_else(|p| p.into_inner());
        if *running {
            return Err(Refusal::temporary(
                Rule::DkgRunning,
                "a DKG, repair or refresh is already running",
            ));
        }
        *running = true;
        Ok(Ceremony(self.clone()))
    }

    /// Records a failed ceremony (`event` with its reason and culprits) and makes the refusal
    /// an admin sees: the reason, who is to blame, and what was `kept`.
    pub(crate) fn ceremony_failed(
        &self,
        event: Event,
        rule: Rule,
        (detail, culprits): (String, Vec<u16>),
        kept: &str,
    ) -> Refusal {
        warn!(%detail, ?culprits, kind = %event.kind, "key ceremony failed");
        let named: Vec<String> = culprits.iter().map(u16::to_string).collect();
        self.audit(
            event
                .with("reason", &detail)
                .with("culprits", named.join(",")),
        );
        let blame = if culprits.is_empty() {
            String::new()
        } else {
            format!(" (culprits: {})", named.join(", "))
        };
        Refusal::permanent(rule, format!("{detail}{blame}; {kept}"))
    }
}

/// Runs a ceremony on its own task, so that it finishes (and its guard is released) even if
/// the admin's call is cancelled half-way.
pub(crate) async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::spawn(f)
        .await
        .map_err(|e| Refusal::permanent(Rule::Internal, format!("ceremony task: {e}")))
}
