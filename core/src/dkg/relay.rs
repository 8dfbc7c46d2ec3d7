//! The coordinator's decisions while it relays a key ceremony (a DKG, a refresh, a repair),
//! apart from the I/O: whom a refusal blames, where a sealed package goes, and whether every
//! participant finished with the same result.
//!
//! The relay is trusted for liveness only. What it decides here can stop a ceremony and name
//! a culprit; it can never change a ceremony's outcome, since every participant checks what it
//! is sent itself (signed round-1 packages, sealed round-2 packages, signed results).

use std::collections::BTreeMap;

use crate::refusal::Rule;

/// A ceremony stopped: why, and the signers shown to be at fault (none when nobody can be
/// named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    /// What went wrong, for the operator.
    pub detail: String,
    /// The signers at fault.
    pub culprits: Vec<u16>,
}

impl Abort {
    fn by(signer: u16, detail: String) -> Self {
        Self {
            detail,
            culprits: vec![signer],
        }
    }
}

impl From<Abort> for (String, Vec<u16>) {
    fn from(a: Abort) -> Self {
        (a.detail, a.culprits)
    }
}

/// Whether `rule` is a refusal an honest signer gives at a ceremony step: an abort that names
/// culprits of its own (or none, when the relay is to blame), or a state of its own (a share
/// of another epoch, a refresh waiting, a retired signer, no share yet, a storage failure).
pub fn honest_refusal(rule: &Rule) -> bool {
    matches!(
        rule,
        Rule::DkgAborted
            | Rule::RepairAborted
            | Rule::RefreshPending
            | Rule::RefreshParticipants
            | Rule::KeyEpochMismatch
            | Rule::ShareExists
            | Rule::SignerRetired
            | Rule::NoKeyShare
            | Rule::SignerStorage
    )
}

/// Whom `refuser`'s refusal of a ceremony step under `rule` blames: the culprits it names;
/// naming none, the refuser itself, unless the rule is one an honest signer gives
/// ([`honest_refusal`]).
pub fn blame(refuser: u16, rule: &Rule, named: &[u16]) -> Vec<u16> {
    if named.is_empty() && !honest_refusal(rule) {
        return vec![refuser];
    }
    named.to_vec()
}

/// Sealed packages sorted by recipient. Each is relayed as sent; its recipient checks it.
#[derive(Debug)]
pub struct Mailbox<T> {
    boxes: BTreeMap<u16, Vec<T>>,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self {
            boxes: BTreeMap::new(),
        }
    }
}

impl<T: Clone> Mailbox<T> {
    /// An empty mailbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Files `item`, which `answerer` sent saying it is from `sender` for `recipient`. The
    /// sender is who answered, whatever the package says: a package in another's name stops
    /// the ceremony and names `answerer`. (An identifier no signer can have does not get this
    /// far: the answer carrying it does not convert at the link's edge.)
    pub fn post(
        &mut self,
        answerer: u16,
        sender: u16,
        recipient: u16,
        item: T,
    ) -> Result<(), Abort> {
        if sender != answerer {
            return Err(Abort::by(
                answerer,
                format!("signer {answerer} sent a package in another's name"),
            ));
        }
        self.boxes.entry(recipient).or_default().push(item);
        Ok(())
    }

    /// Everything filed for `recipient`, in the order it was filed.
    pub fn for_recipient(&self, recipient: u16) -> Vec<T> {
        self.boxes.get(&recipient).cloned().unwrap_or_default()
    }
}

/// The one result every participant must finish with (group key, transcript, public key
/// package).
#[derive(Debug)]
pub struct Agreement<T> {
    agreed: Option<T>,
}

impl<T> Default for Agreement<T> {
    fn default() -> Self {
        Self { agreed: None }
    }
}

impl<T: PartialEq> Agreement<T> {
    /// Nothing offered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `signer` finished with `result`. A result unlike the ones before stops the ceremony
    /// naming nobody: the relay cannot tell which side saw the true transcript.
    pub fn offer(&mut self, signer: u16, result: T) -> Result<(), Abort> {
        match &self.agreed {
            None => self.agreed = Some(result),
            Some(a) if *a == result => {}
            Some(_) => {
                return Err(Abort {
                    detail: format!(
                        "signer {signer} finished with a different transcript or group key"
                    ),
                    culprits: vec![],
                })
            }
        }
        Ok(())
    }

    /// The result everyone finished with.
    pub fn agreed(self) -> Result<T, Abort> {
        self.agreed.ok_or_else(|| Abort {
            detail: "no results".into(),
            culprits: vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_blames_whom_it_names_else_the_refuser_unless_honest() {
        assert_eq!(blame(2, &Rule::DkgAborted, &[3, 1]), vec![3, 1]);
        // An honest state names nobody.
        assert_eq!(blame(2, &Rule::KeyEpochMismatch, &[]), Vec::<u16>::new());
        assert_eq!(blame(2, &Rule::DkgAborted, &[]), Vec::<u16>::new());
        // Anything else without names is the refuser's own doing.
        assert_eq!(blame(2, &Rule::BadRequest, &[]), vec![2]);
        assert_eq!(blame(2, &Rule::parse("from-a-newer-peer"), &[]), vec![2]);
    }

    #[test]
    fn the_mailbox_takes_packages_only_in_the_answerers_name() {
        let mut m = Mailbox::new();
        m.post(1, 1, 2, "1→2").unwrap();
        m.post(3, 3, 2, "3→2").unwrap();
        m.post(2, 2, 1, "2→1").unwrap();
        assert_eq!(m.for_recipient(2), vec!["1→2", "3→2"]);
        assert_eq!(m.for_recipient(1), vec!["2→1"]);
        assert!(m.for_recipient(4).is_empty());
        let forged = m.post(1, 3, 2, "3→2 again").unwrap_err();
        assert_eq!(forged.culprits, vec![1]);
        // Nothing refused was filed.
        assert_eq!(m.for_recipient(2).len(), 2);
    }

    #[test]
    fn every_participant_must_finish_with_the_same_result() {
        let mut a = Agreement::new();
        a.offer(1, ("gk", "t")).unwrap();
        a.offer(2, ("gk", "t")).unwrap();
        let split = a.offer(3, ("gk", "other")).unwrap_err();
        assert!(split.culprits.is_empty(), "{split:?}");
        assert_eq!(
            Agreement::<u8>::new().agreed().unwrap_err().detail,
            "no results"
        );
        let mut b = Agreement::new();
        b.offer(1, 7).unwrap();
        assert_eq!(b.agreed().unwrap(), 7);
    }
}
