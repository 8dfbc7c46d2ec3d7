//! Admins' proposals at the coordinator: proposing, approving and vetoing a new version, and
//! filing one that has its quorum into the coordinator's own state.

use quorate_core::{
    policy::{
        eval::distinct_valid,
        governance::{required_signatures, POLICY_APPROVAL_DOMAIN, POLICY_VETO_DOMAIN},
        AdminSignature, Offered, SignedPolicy,
    },
    refusal::{Refusal, Rule},
};
use quorate_wire::{admin as apb, convert::policy_file};

use super::{bad, parse_signed, verify_one, Inner, PolicyDesk, ProposalRec};

impl PolicyDesk {
    /// A new proposal with at least one valid admin approval. Returns the proposal and,
    /// if it is complete, the version to send to the signers.
    pub fn propose(
        &self,
        signed: SignedPolicy,
        now: u64,
    ) -> Result<(apb::Proposal, Option<SignedPolicy>), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "no policy installed",
            ));
        };
        let cur = s.active();
        let doc = &signed.doc;
        if doc.version != cur.version + 1 || doc.prev_hash != cur.hash_hex() {
            return Err(bad(
                Rule::PolicyUpdateVersion,
                format!(
                    "a proposal must be version {} with prev_hash {} (the version in force); it is version {}",
                    cur.version + 1,
                    cur.hash_hex(),
                    doc.version
                ),
            ));
        }
        let hash = doc.hash();
        let admins = cur.admin_keys();
        if distinct_valid(
            &admins,
            POLICY_APPROVAL_DOMAIN,
            &[&hash],
            &signed.signatures,
        ) == 0
        {
            return Err(bad(
                Rule::PolicyUpdateSignatures,
                "a proposal needs the proposer's valid admin signature",
            ));
        }
        let key = hex::encode(hash);
        if inner.desk.vetoes.iter().any(|(h, _, _)| *h == key) {
            return Err(bad(
                Rule::PolicyUpdateVetoed,
                format!("proposal {key} was vetoed; propose a different document"),
            ));
        }
        if let Some(p) = inner.desk.proposals.get(&key) {
            if p.state != "collecting" {
                return Err(bad(
                    Rule::PolicyUpdateVetoed,
                    format!("proposal {key} is already {}", p.state),
                ));
            }
        }
        let mut sigs = inner
            .desk
            .proposals
            .get(&key)
            .and_then(|p| policy_file::signed_from_json(&p.signed).ok())
            .map(|p| p.signatures)
            .unwrap_or_default();
        for sig in signed.signatures {
            if !sigs.iter().any(|s| s.admin == sig.admin) {
                sigs.push(sig);
            }
        }
        let merged = SignedPolicy {
            doc: signed.doc,
            signatures: sigs,
        };
        self.file(&mut inner, merged, now)
    }

    /// Adds an approval to a collecting proposal.
    pub fn approve(
        &self,
        hash_hex: &str,
        sig: AdminSignature,
        now: u64,
    ) -> Result<(apb::Proposal, Option<SignedPolicy>), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(p) = inner.desk.proposals.get(hash_hex).cloned() else {
            return Err(bad(
                Rule::PolicyUpdateInvalid,
                format!("no proposal has hash {hash_hex}"),
            ));
        };
        if p.state != "collecting" {
            return Err(bad(
                Rule::PolicyUpdateVetoed,
                format!("proposal {hash_hex} is already {}", p.state),
            ));
        }
        let mut signed = parse_signed(&p.signed)
            .map_err(|e| Refusal::temporary(Rule::PolicyUpdateInvalid, e.to_string()))?;
        let admins = inner
            .state
            .as_ref()
            .map(|s| s.active().admin_keys())
            .unwrap_or_default();
        verify_one(&admins, POLICY_APPROVAL_DOMAIN, &signed.doc.hash(), &sig)?;
        if !signed.signatures.iter().any(|s| s.admin == sig.admin) {
            signed.signatures.push(sig);
        }
        self.file(&mut inner, signed, now)
    }

    /// Records `signed` as a proposal and, once it has enough approvals, offers it to the
    /// coordinator's own state.
    pub(super) fn file(
        &self,
        inner: &mut Inner,
        signed: SignedPolicy,
        now: u64,
    ) -> Result<(apb::Proposal, Option<SignedPolicy>), Refusal> {
        let key = signed.doc.hash_hex();
        let Some(state) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "no policy installed",
            ));
        };
        let cur = state.active().clone();
        let need = required_signatures(&cur, &signed.doc);
        let have = distinct_valid(
            &cur.admin_keys(),
            POLICY_APPROVAL_DOMAIN,
            &[&signed.doc.hash()],
            &signed.signatures,
        );
        let (seq, proposer) = match inner.desk.proposals.get(&key) {
            Some(p) => (p.seq, p.proposer.clone()),
            None => {
                inner.desk.next_seq += 1;
                let proposer = signed
                    .signatures
                    .iter()
                    .find(|s| {
                        distinct_valid(
                            &cur.admin_keys(),
                            POLICY_APPROVAL_DOMAIN,
                            &[&signed.doc.hash()],
                            std::slice::from_ref(s),
                        ) == 1
                    })
                    .map(|s| s.admin.to_string())
                    .unwrap_or_default();
                (inner.desk.next_seq, proposer)
            }
        };
        let mut rec = ProposalRec {
            signed: policy_file::signed_to_json(&signed),
            state: "collecting".into(),
            effective_at_ms: 0,
            seq,
            proposer,
            version: signed.doc.version,
            approvals: have as u32,
            required: need as u32,
        };
        let mut send = None;
        if have >= need {
            let mut next = state.clone();
            match next.offer(signed.clone(), now)? {
                Offered::Applied | Offered::Known => rec.state = "applied".into(),
                Offered::Pending { effective_at_ms } => {
                    rec.state = "timelocked".into();
                    rec.effective_at_ms = effective_at_ms;
                }
            }
            // Anything else pending or collecting is superseded.
            let mut gone = Vec::new();
            for (h, p) in inner.desk.proposals.iter_mut() {
                if *h != key && matches!(p.state.as_str(), "collecting" | "timelocked") {
                    p.state = "superseded".into();
                    gone.push(p.signed.clone());
                }
            }
            inner.desk.history.retain(|h| !gone.contains(h));
            inner.desk.history.push(rec.signed.clone());
            inner.state = Some(next);
            send = Some(signed);
        }
        inner.desk.proposals.insert(key.clone(), rec);
        let active = inner.state.as_ref().map_or(0, |s| s.active().version);
        inner.desk.prune(active);
        self.save(inner)
            .map_err(|e| Refusal::temporary(Rule::Storage, e.to_string()))?;
        Ok((Self::view(inner, &key, &cur), send))
    }

    /// Any single admin vetoes a collecting or time-locked proposal.
    pub fn veto(
        &self,
        hash_hex: &str,
        sig: AdminSignature,
        now: u64,
    ) -> Result<(apb::Proposal, bool), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let hash: [u8; 32] = hex::decode(hash_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(Rule::PolicyVetoInvalid, "hash must be 64 hex digits"))?;
        let Some(state) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "no policy installed",
            ));
        };
        let cur = state.active().clone();
        let admins = cur.admin_keys();
        verify_one(&admins, POLICY_VETO_DOMAIN, &hash, &sig)
            .map_err(|r| bad(Rule::PolicyVetoInvalid, r.reason))?;
        let Some(p) = inner.desk.proposals.get(hash_hex).cloned() else {
            return Err(bad(
                Rule::PolicyVetoInvalid,
                format!("no proposal has hash {hash_hex}"),
            ));
        };
        if !matches!(p.state.as_str(), "collecting" | "timelocked") {
            return Err(bad(
                Rule::PolicyVetoInvalid,
                format!(
                    "proposal {hash_hex} is {}; only a pending proposal can be vetoed",
                    p.state
                ),
            ));
        }
        let was_timelocked = p.state == "timelocked";
        if was_timelocked {
            let mut next = state.clone();
            next.veto(&hash, &sig, now)?;
            inner.state = Some(next);
            inner.desk.history.retain(|h| h != &p.signed);
        }
        // Carried to signers that catch up (a signer then refuses the document if it ever
        // arrives), and refused here if filed again, while the version in force lasts.
        inner.desk.vetoes.push((
            hash_hex.to_string(),
            sig.admin.to_string(),
            hex::encode(&sig.signature),
        ));
        if let Some(p) = inner.desk.proposals.get_mut(hash_hex) {
            p.state = "vetoed".into();
        }
        let active = inner.state.as_ref().map_or(0, |s| s.active().version);
        inner.desk.prune(active);
        self.save(&inner)
            .map_err(|e| Refusal::temporary(Rule::Storage, e.to_string()))?;
        Ok((Self::view(&inner, hash_hex, &cur), was_timelocked))
    }
}
