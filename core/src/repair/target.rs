//! Round 3 of a repair, at the target: check every contribution against the helpers' offers,
//! rebuild the share, and keep it only if the group's public key package vouches for it.

use std::collections::BTreeMap;

use frost_core::{
    keys::{
        repairable::{self, Sigma},
        KeyPackage, PublicKeyPackage,
    },
    Ciphersuite, Group,
};

use super::{
    check_offers, echo_digest, element_from, expected_verifying_share, fail, frost_id,
    offer_signed, with_new_holder, Contribution, Offer, RepairError, RepairSetup,
};
use crate::{
    dkg::{domain, scalar},
    identity::{IdentityPublic, IdentitySecret},
    seal::{self, SealContext},
};

const RESULT_DOMAIN: &str = "quorate/repair-result/v1";

/// The repaired (or new) share, and what the target signs to say it holds it.
pub struct RepairOutput<C: Ciphersuite> {
    /// The share (secret).
    pub key_package: KeyPackage<C>,
    /// The group's public key package, with the target in it.
    pub public_key_package: PublicKeyPackage<C>,
    /// Serialized group key.
    pub group_key: Vec<u8>,
    /// Key epoch of the share.
    pub epoch: u32,
    /// The target's identity signature over (session, epoch, group key, its verifying share).
    pub signature: Vec<u8>,
}

impl<C: Ciphersuite> std::fmt::Debug for RepairOutput<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepairOutput")
            .field("key_package", &"<redacted>")
            .field("group_key", &hex::encode(&self.group_key))
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// Round 3, at the target: check every contribution and rebuild the share; keep it only if it
/// matches the verifying share the group holds for the target.
pub fn target_finish<C: Ciphersuite>(
    setup: &RepairSetup,
    identity: &IdentitySecret,
    offers: &[Offer],
    contributions: &[Contribution],
) -> Result<RepairOutput<C>, RepairError> {
    setup.check()?;
    if setup.key(setup.target)? != &identity.public() {
        return Err(fail(
            "our identity key is not the one the manifest lists for the target",
            vec![],
        ));
    }
    let (ours, pkp) = check_offers::<C>(setup, offers)?;
    let epoch = ours.values().next().map_or(0, |o| o.epoch);
    let expected = expected_verifying_share(&pkp, &setup.helpers, setup.target)?;
    let mut sigmas: BTreeMap<u16, Sigma<C>> = BTreeMap::new();
    for c in contributions {
        if !setup.helpers.contains(&c.from) || sigmas.contains_key(&c.from) {
            return Err(fail(
                format!("unexpected or duplicate contribution from {}", c.from),
                vec![],
            ));
        }
        if c.sigma.sender != c.from || c.sigma.recipient != setup.target {
            return Err(fail(
                format!("the contribution of {} is misaddressed", c.from),
                vec![],
            ));
        }
        let mut theirs: BTreeMap<u16, Offer> = BTreeMap::new();
        for o in &c.offers {
            // A repeated entry is refused before anything else, blaming nobody: the echo's
            // digest is over distinct offers, so a relay could add one without breaking the
            // seal, and must not thereby get an honest helper named.
            if theirs.insert(o.from, o.clone()).is_some() {
                return Err(fail(
                    format!("the echo relayed for helper {} repeats an offer", c.from),
                    vec![],
                ));
            }
        }
        let echo = echo_digest::<C>(setup, &theirs);
        let ctx = SealContext {
            session_id: &setup.session_id,
            transcript: &echo,
            sender: c.from,
            recipient: setup.target,
        };
        // Opening first: a σ whose seal does not carry c.from's signature over this echo was
        // altered in transit and proves nothing against c.from.
        let plain =
            seal::open(identity, setup.key(c.from)?, &ctx, &c.sigma).map_err(|e| match e {
                seal::OpenError::DoesNotOpen { sender } => fail(e.to_string(), vec![sender]),
                _ => fail(e.to_string(), vec![]),
            })?;
        // c.from vouched for its echo; compare it with the offers we accepted.
        if theirs.len() != c.offers.len() || theirs.len() != ours.len() {
            return Err(fail(
                format!("helper {} vouched for a malformed set of offers", c.from),
                vec![c.from],
            ));
        }
        for (i, mine) in &ours {
            match theirs.get(i) {
                Some(o) if o == mine => {}
                Some(o) if offer_signed::<C>(setup, o) => {
                    return Err(fail(
                        format!("helper {i} signed two different offers (equivocation)"),
                        vec![*i],
                    ))
                }
                _ => {
                    return Err(fail(
                        format!(
                            "helper {} vouched for an offer of {i} that {i} never signed",
                            c.from
                        ),
                        vec![c.from],
                    ))
                }
            }
        }
        let value = scalar::<C>(&plain).ok_or_else(|| {
            fail(
                format!("the σ of helper {} does not decode", c.from),
                vec![c.from],
            )
        })?;
        let mut committed = <C::Group>::identity();
        for o in ours.values() {
            committed = committed
                + o.commitments
                    .get(&c.from)
                    .and_then(|d| element_from::<C>(d))
                    .ok_or_else(|| fail("checked offer lost a commitment", vec![]))?;
        }
        if <C::Group>::generator() * value != committed {
            return Err(fail(
                format!(
                    "helper {} sent a σ that is not the sum of the deltas committed to it",
                    c.from
                ),
                vec![c.from],
            ));
        }
        let sigma =
            Sigma::<C>::deserialize(&plain).map_err(|e| fail(format!("σ: {e}"), vec![c.from]))?;
        sigmas.insert(c.from, sigma);
    }
    if sigmas.len() != setup.helpers.len() {
        return Err(fail(
            format!(
                "{} of {} helpers' contributions arrived",
                sigmas.len(),
                setup.helpers.len()
            ),
            vec![],
        ));
    }
    let list: Vec<Sigma<C>> = sigmas.into_values().collect();
    let key_package = repairable::repair_share_part3(&list, frost_id::<C>(setup.target)?, &pkp)
        .map_err(|e| fail(format!("repair round 3: {e}"), vec![]))?;
    // The library's last step returns whatever the sigmas add up to; we keep only the share
    // the group's public key package says the target holds.
    if *key_package.verifying_share() != expected {
        return Err(fail(
            "the rebuilt share does not match the group's verifying share for it",
            vec![],
        ));
    }
    let public_key_package = with_new_holder(&pkp, &setup.helpers, setup.target)?;
    let group_key = pkp
        .verifying_key()
        .serialize()
        .map_err(|e| fail(format!("group key: {e}"), vec![]))?;
    let vshare = expected
        .serialize()
        .map_err(|e| fail(format!("verifying share: {e}"), vec![]))?;
    let signature = identity.sign(
        &domain::<C>(RESULT_DOMAIN),
        &[&setup.session_id, &epoch.to_be_bytes(), &group_key, &vshare],
    );
    Ok(RepairOutput {
        key_package,
        public_key_package,
        group_key,
        epoch,
        signature,
    })
}

/// Checks the target's signed statement that it now holds the share for `verifying_share`.
pub fn verify_result<C: Ciphersuite>(
    key: &IdentityPublic,
    session_id: &[u8],
    epoch: u32,
    group_key: &[u8],
    verifying_share: &[u8],
    signature: &[u8],
) -> bool {
    key.verify(
        &domain::<C>(RESULT_DOMAIN),
        &[session_id, &epoch.to_be_bytes(), group_key, verifying_share],
        signature,
    )
    .is_ok()
}
