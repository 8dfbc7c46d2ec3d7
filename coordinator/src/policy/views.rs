//! What the coordinator shows of its policy: the signed chain of versions, its status, the
//! `GetPolicy` view with the proposals, and what a signer catching up must be sent.

use std::collections::BTreeMap;

use quorate_core::{
    identity::IdentityPublic,
    policy::{
        diff,
        eval::distinct_valid,
        governance::{required_signatures, POLICY_APPROVAL_DOMAIN},
        AdminSignature,
    },
};
use quorate_wire::{
    admin as apb,
    convert::policy::{signed_to_proto, status},
    convert::policy_file,
    policy as ppb,
};

use super::{is_open, Catchup, Inner, PolicyDesk, DECIDED_SHOWN};

impl PolicyDesk {
    /// Versions newer than `version`, then every veto, for a signer catching up.
    pub fn catchup(&self, version: u64) -> Vec<Catchup> {
        let inner = self.lock();
        let mut out: Vec<Catchup> = inner
            .desk
            .history
            .iter()
            .filter_map(|s| policy_file::signed_from_json(s).ok())
            .filter(|s| s.doc.version > version)
            .filter(|s| {
                inner
                    .desk
                    .proposals
                    .get(&s.doc.hash_hex())
                    .is_none_or(|p| p.state != "vetoed")
            })
            .map(Catchup::Update)
            .collect();
        for (h, admin, sig) in &inner.desk.vetoes {
            if let (Some(h), Ok(admin), Ok(signature)) = (
                hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok()),
                IdentityPublic::from_hex(admin),
                hex::decode(sig),
            ) {
                out.push(Catchup::Veto(h, AdminSignature { admin, signature }));
            }
        }
        out
    }

    /// `key`'s proposal as admins see it, with its changes against `base`.
    pub(super) fn view(
        inner: &Inner,
        key: &str,
        base: &quorate_core::policy::PolicyDoc,
    ) -> apb::Proposal {
        let Some(p) = inner.desk.proposals.get(key) else {
            return apb::Proposal::default();
        };
        let Ok(signed) = policy_file::signed_from_json(&p.signed) else {
            // Decided and pruned: what it was, without its document.
            return apb::Proposal {
                hash: key.to_string(),
                version: p.version,
                approvals: p.approvals,
                required: p.required,
                state: p.state.clone(),
                effective_at_ms: p.effective_at_ms,
                ..Default::default()
            };
        };
        let admins = base.admin_keys();
        apb::Proposal {
            hash: key.to_string(),
            version: signed.doc.version,
            approvals: distinct_valid(
                &admins,
                POLICY_APPROVAL_DOMAIN,
                &[&signed.doc.hash()],
                &signed.signatures,
            ) as u32,
            required: required_signatures(base, &signed.doc) as u32,
            changes: diff(base, &signed.doc)
                .into_iter()
                .map(|c| apb::Change {
                    effect: format!("{:?}", c.effect).to_lowercase(),
                    what: c.what,
                })
                .collect(),
            policy: Some(signed_to_proto(&signed)),
            state: p.state.clone(),
            effective_at_ms: p.effective_at_ms,
        }
    }

    /// Signed versions from `from` on (applied or time-locked, oldest first), at most `limit`
    /// of them and no more document bytes than `max_bytes` past the first.
    pub fn chain(&self, from: u64, limit: usize, max_bytes: usize) -> apb::PolicyChain {
        let inner = self.lock();
        let mut out = apb::PolicyChain::default();
        let mut bytes = 0usize;
        let mut full = false;
        for s in inner
            .desk
            .history
            .iter()
            .filter_map(|s| policy_file::signed_from_json(s).ok())
        {
            out.head_version = out.head_version.max(s.doc.version);
            if full || s.doc.version < from || out.versions.len() >= limit {
                continue;
            }
            let p = signed_to_proto(&s);
            bytes += p.document.len();
            // The page stays consecutive: once one version does not fit, none after it goes.
            full = !out.versions.is_empty() && bytes > max_bytes;
            if !full {
                out.versions.push(p);
            }
        }
        out
    }

    /// The coordinator's own policy status (version 0 without a policy).
    pub fn status(&self, now: u64) -> ppb::PolicyStatus {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        status(inner.state.as_ref())
    }

    /// The policy view for `GetPolicy`.
    pub fn get(&self, now: u64) -> apb::PolicyView {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(state) = inner.state.as_ref() else {
            return apb::PolicyView::default();
        };
        // Proposals are shown against the version they were made on.
        let history: BTreeMap<u64, quorate_core::policy::PolicyDoc> = inner
            .desk
            .history
            .iter()
            .filter_map(|s| policy_file::signed_from_json(s).ok())
            .map(|s| (s.doc.version, s.doc))
            .collect();
        let active = state.active().clone();
        let mut decided: Vec<(u64, &String)> = inner
            .desk
            .proposals
            .iter()
            .filter(|(_, p)| !is_open(&p.state))
            .map(|(k, p)| (p.seq, k))
            .collect();
        decided.sort();
        let shown: std::collections::BTreeSet<&String> = decided
            .iter()
            .rev()
            .take(DECIDED_SHOWN)
            .map(|(_, k)| *k)
            .collect();
        let proposals = inner
            .desk
            .proposals
            .iter()
            .filter(|(k, p)| is_open(&p.state) || shown.contains(k))
            .map(|(k, p)| {
                let base = history
                    .get(&p.version().saturating_sub(1))
                    .unwrap_or(&active);
                Self::view(&inner, k, base)
            })
            .collect();
        apb::PolicyView {
            status: Some(status(Some(state))),
            current: Some(signed_to_proto(&state.current)),
            proposals,
            signers: vec![],
        }
    }
}
