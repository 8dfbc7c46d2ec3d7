//! Refilling each signer's pool of pre-generated commitments (one-round signing).

use std::time::Duration;

use frost_core::round1::SigningCommitments;
use quorate_core::{
    link::{Answer, PresignRequest, Request},
    message::Scheme,
};
use tracing::warn;

use super::Coordinator;

/// After a failed refill, how long a signer is not asked again.
const PRESIGN_BACKOFF: Duration = Duration::from_secs(2);

impl Coordinator {
    /// Asks a signer for a batch of pre-generated commitments if its pool runs low (one
    /// request in flight per signer). In the background; a failure only means fresh rounds.
    pub(super) fn refill(&self, signer: u16) {
        let batch = self.signing.presign_batch as usize;
        if batch == 0 {
            return;
        }
        let Some(conn) = self.registry.begin_refill(signer, batch.div_ceil(2)) else {
            return;
        };
        let registry = self.registry.clone();
        let timeout = self.signing.signer_timeout;
        tokio::spawn(async move {
            let sessions: Vec<[u8; 16]> = (0..batch).map(|_| rand::random()).collect();
            let request = Request::Presign(PresignRequest {
                session_ids: sessions.clone(),
                scheme: Scheme::Secp256k1,
            });
            let asked = registry.mono_ms();
            let got = match registry.call_on(signer, Some(conn), request, timeout).await {
                Ok(Answer::Presign {
                    commitments,
                    ttl_ms,
                }) if commitments.len() == batch => {
                    // Counted from before the request, and with a margin, so the coordinator
                    // stops using a nonce before the signer forgets it.
                    let ttl = ttl_ms.min(3_600_000);
                    let usable_until = asked + ttl - (ttl / 4).min(5_000);
                    let parsed: Result<Vec<_>, _> = sessions
                        .iter()
                        .zip(&commitments)
                        .map(|(session, c)| {
                            SigningCommitments::deserialize(c).map(|commitments| {
                                crate::registry::Presigned {
                                    session: *session,
                                    commitments,
                                    usable_until,
                                }
                            })
                        })
                        .collect();
                    parsed.unwrap_or_else(|e| {
                        warn!(signer, error = %e, "pre-generated commitments do not decode");
                        Vec::new()
                    })
                }
                Ok(Answer::Refused { refusal: r, .. }) => {
                    warn!(signer, rule = %r.rule, reason = %r.reason, "signer refused to pre-generate commitments");
                    Vec::new()
                }
                Ok(_) => {
                    warn!(signer, "unexpected answer to a presign request");
                    Vec::new()
                }
                Err(e) => {
                    warn!(signer, error = %e, "presign request failed");
                    Vec::new()
                }
            };
            registry.end_refill(signer, conn, got, PRESIGN_BACKOFF);
        });
    }
}
