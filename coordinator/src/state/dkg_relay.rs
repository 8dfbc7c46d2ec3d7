//! Relaying a DKG: starting it, running its rounds among the signers (signed commitments,
//! sealed shares, derived shares, confirmation) and installing the group's public key package.
//! A share refresh runs the same rounds ([`Coordinator::refresh_shares`]).

use std::{sync::Arc, time::Duration};

use frost_core::keys::PublicKeyPackage;
use quorate_core::{
    audit::{self, Event},
    dkg::{relay, SignedResult, SignedRound1},
    fingerprint::group_key_fingerprint,
    link::{
        Answer, DkgConfirmRequest, DkgRound1Request, DkgRound2Request, DkgRound3Request,
        RefreshTerms, Request,
    },
    message::Scheme,
    refusal::{Refusal, Rule},
};
use quorate_wire::admin as apb;
use rand::RngCore;
use tracing::{info, warn};

use super::{Coordinator, Ed, GroupSuite, Secp};

impl Coordinator {
    /// Starts a DKG for the `scheme` group with every signer of the manifest. All must be
    /// connected.
    pub fn start_dkg(self: &Arc<Self>, scheme: Scheme) -> Result<apb::DkgStatus, Refusal> {
        if !self.group_keys().of(scheme).is_empty() {
            return Err(Refusal::permanent(
                Rule::DkgKeyExists,
                format!("this cluster already has a {scheme} group key"),
            ));
        }
        let connected = self.registry.connected();
        let n = self.manifest.signers.len();
        if connected.len() < n {
            let missing: Vec<&str> = self
                .manifest
                .signers
                .iter()
                .filter(|s| !connected.iter().any(|c| c.identifier == s.identifier))
                .map(|s| s.name.as_str())
                .collect();
            return Err(Refusal::temporary(
                Rule::DkgSignersMissing,
                format!(
                    "DKG needs all {n} signers connected; missing: {}",
                    missing.join(", ")
                ),
            ));
        }
        let ceremony = self.begin_ceremony()?;
        let mut session = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut session);
        let status = apb::DkgStatus {
            session_id: session.to_vec(),
            phase: apb::DkgPhase::Round1 as i32,
            detail: "round 1: gathering signed commitments".into(),
            scheme: scheme.as_str().into(),
            ..Default::default()
        };
        self.dkg.send_replace(status.clone());
        let me = self.clone();
        tokio::spawn(async move {
            let result = match scheme {
                Scheme::Secp256k1 => me.run_dkg::<Secp>(session.to_vec(), None).await,
                Scheme::Ed25519 => me.run_dkg::<Ed>(session.to_vec(), None).await,
            };
            let final_status = match result {
                Ok(gk) => {
                    info!(fingerprint = %group_key_fingerprint(&gk), "DKG finished");
                    me.audit(
                        Event::new(audit::kind::DKG_FINISHED)
                            .with("session", hex::encode(session))
                            .with("scheme", scheme.as_str())
                            .with("group_key", hex::encode(&gk))
                            .with("fingerprint", group_key_fingerprint(&gk)),
                    );
                    if let Err(e) = me.flush().await {
                        warn!(error = %e, "could not flush the audit log");
                    }
                    apb::DkgStatus {
                        session_id: session.to_vec(),
                        phase: apb::DkgPhase::Done as i32,
                        detail:
                            "DKG finished; every signer confirmed the same transcript and group key"
                                .into(),
                        culprits: vec![],
                        fingerprint: group_key_fingerprint(&gk),
                        group_public_key: gk,
                        scheme: scheme.as_str().into(),
                    }
                }
                Err((detail, culprits)) => {
                    warn!(%detail, ?culprits, "DKG failed");
                    let named: Vec<String> = culprits.iter().map(u16::to_string).collect();
                    me.audit(
                        Event::new(audit::kind::DKG_ABORTED)
                            .with("session", hex::encode(session))
                            .with("scheme", scheme.as_str())
                            .with("reason", &detail)
                            .with("culprits", named.join(",")),
                    );
                    apb::DkgStatus {
                        session_id: session.to_vec(),
                        phase: apb::DkgPhase::Failed as i32,
                        detail,
                        culprits: culprits.into_iter().map(u32::from).collect(),
                        scheme: scheme.as_str().into(),
                        ..Default::default()
                    }
                }
            };
            me.dkg.send_replace(final_status);
            drop(ceremony);
        });
        Ok(status)
    }

    fn dkg_phase(&self, session: &[u8], phase: apb::DkgPhase, detail: &str) {
        let scheme = self.dkg.borrow().scheme.clone();
        self.dkg.send_replace(apb::DkgStatus {
            session_id: session.to_vec(),
            phase: phase as i32,
            detail: detail.into(),
            scheme,
            ..Default::default()
        });
    }

    pub(super) async fn dkg_round(
        &self,
        ids: &[u16],
        make: impl Fn(u16) -> Request,
    ) -> Result<Vec<(u16, Answer)>, (String, Vec<u16>)> {
        // DKG rounds do heavier work than a signature; give them more time.
        let timeout = self.signing.signer_timeout.max(Duration::from_secs(30));
        let answers = futures::future::join_all(
            ids.iter()
                .map(|i| self.registry.call(*i, make(*i), timeout)),
        )
        .await;
        let mut out = Vec::with_capacity(ids.len());
        for (i, a) in ids.iter().zip(answers) {
            match a {
                Ok(Answer::Refused {
                    refusal: r,
                    culprits,
                }) => {
                    let culprits = relay::blame(*i, &r.rule, &culprits);
                    return Err((
                        format!("signer {i} aborted: {}: {}", r.rule, r.reason),
                        culprits,
                    ));
                }
                Ok(body) => out.push((*i, body)),
                Err(e) => return Err((e.to_string(), vec![*i])),
            }
        }
        Ok(out)
    }

    /// A DKG among every signer of the manifest, or with `refresh` a share refresh among the
    /// holders it names (the same rounds; see [`Coordinator::refresh_shares`]). Returns the
    /// group key.
    pub(super) async fn run_dkg<C: GroupSuite>(
        &self,
        session: Vec<u8>,
        refresh: Option<RefreshTerms>,
    ) -> Result<Vec<u8>, (String, Vec<u16>)> {
        let ids: Vec<u16> = match &refresh {
            Some(t) => t.participants.clone(),
            None => self.manifest.signers.iter().map(|s| s.identifier).collect(),
        };
        let kind = match refresh {
            Some(_) => quorate_core::dkg::Kind::Refresh,
            None => quorate_core::dkg::Kind::Dkg,
        };
        // The DKG status stream follows a DKG only.
        let dkg_phase = |phase, detail: &str| {
            if refresh.is_none() {
                self.dkg_phase(&session, phase, detail);
            }
        };
        let manifest_hash = self.manifest.hash().to_vec();
        let scheme = C::SCHEME;
        let r1 = self
            .dkg_round(&ids, |_| {
                Request::DkgRound1(DkgRound1Request {
                    session_id: session.clone(),
                    manifest_hash: manifest_hash.clone(),
                    scheme,
                    refresh: refresh.clone(),
                })
            })
            .await?;
        let mut round1 = Vec::new();
        for (i, body) in r1 {
            let Answer::DkgRound1(p) = body else {
                return Err((format!("signer {i} answered round 1 out of turn"), vec![i]));
            };
            round1.push(SignedRound1 {
                identifier: i,
                package: p.package,
                signature: p.signature,
            });
        }
        dkg_phase(apb::DkgPhase::Round2, "round 2: sealed shares");
        let r2 = self
            .dkg_round(&ids, |_| {
                Request::DkgRound2(DkgRound2Request {
                    session_id: session.clone(),
                    packages: round1.clone(),
                    scheme,
                })
            })
            .await?;
        let mut mailbox = relay::Mailbox::new();
        let mut echoes = Vec::with_capacity(ids.len());
        for (i, body) in r2 {
            let Answer::DkgRound2(p) = body else {
                return Err((format!("signer {i} answered round 2 out of turn"), vec![i]));
            };
            // Relayed as sent; each recipient checks the signatures in it.
            if let Some(e) = p.echo {
                echoes.push(e);
            }
            for s in p.packages {
                mailbox.post(i, s.sender, s.recipient, s)?;
            }
        }
        dkg_phase(apb::DkgPhase::Round3, "round 3: deriving key shares");
        let r3 = self
            .dkg_round(&ids, |i| {
                Request::DkgRound3(DkgRound3Request {
                    session_id: session.clone(),
                    packages: mailbox.for_recipient(i),
                    echoes: echoes.clone(),
                    scheme,
                    refresh: refresh.is_some(),
                })
            })
            .await?;
        let mut agreement = relay::Agreement::new();
        let mut results = Vec::with_capacity(ids.len());
        for (i, body) in r3 {
            let Answer::DkgRound3(p) = body else {
                return Err((format!("signer {i} answered round 3 out of turn"), vec![i]));
            };
            let entry = self
                .manifest
                .signer(i)
                .ok_or_else(|| (format!("signer {i} not in manifest"), vec![i]))?;
            if !quorate_core::dkg::verify_result_of_kind::<C>(
                kind,
                &entry.identity_key,
                &session,
                &p.transcript_hash,
                &p.group_public_key,
                &p.signature,
            ) {
                return Err((
                    format!("signer {i}'s DKG result is not signed by it"),
                    vec![i],
                ));
            }
            results.push(SignedResult {
                identifier: i,
                group_key: p.group_public_key.clone(),
                transcript: p.transcript_hash.clone(),
                signature: p.signature.clone(),
            });
            agreement.offer(
                i,
                (p.group_public_key, p.transcript_hash, p.public_key_package),
            )?;
        }
        let (gk, transcript, pkp_bytes) = agreement.agreed()?;
        // Confirmation: each signer keeps its share only after checking every participant's
        // signed result itself.
        dkg_phase(
            apb::DkgPhase::Round3,
            "confirming: every signer checks all results",
        );
        let confirmed = self
            .dkg_round(&ids, |_| {
                Request::DkgConfirm(DkgConfirmRequest {
                    session_id: session.clone(),
                    results: results.clone(),
                    scheme,
                })
            })
            .await?;
        if let Some(terms) = &refresh {
            return self
                .activate_refresh::<C>(&session, terms, gk, pkp_bytes, transcript, confirmed)
                .await;
        }
        for (i, body) in confirmed {
            match body {
                Answer::DkgConfirm(c) if c.group_public_key == gk => {
                    self.registry.set_group_key(i, C::SCHEME, gk.clone());
                }
                _ => return Err((format!("signer {i} did not confirm the group key"), vec![i])),
            }
        }
        let pkp = PublicKeyPackage::<C>::deserialize(&pkp_bytes)
            .map_err(|e| (format!("public key package: {e}"), vec![]))?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || C::store_public_keys(&store, &pkp_bytes))
            .await
            .map_err(|e| (e.to_string(), vec![]))?
            .map_err(|e| (e, vec![]))?;
        C::install_public_keys(self, pkp);
        Ok(gk)
    }
}
