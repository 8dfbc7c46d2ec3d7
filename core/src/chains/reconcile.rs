//! Reconciliation: every payout a vault made must be a withdrawal that `t` signers' verified
//! audit logs show they co-signed, with the same id, token, destination and amount. A payout
//! without one is an alarm: a stolen key, or a vault that pays without the group.
//!
//! The signers' logs are the evidence (each signed by its signer's pinned identity key); the
//! coordinator's word is not needed and not trusted.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    address::Chain,
    audit::{kind, VerifiedLog},
    chains::evm::{
        address_bytes, withdrawal_id, Address20, AdminEvent, VaultDomain, WithdrawnEvent,
    },
};

/// One payout the signers released shares for, as the vault will see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    /// Intent id.
    pub intent_id: String,
    /// The chain id in the digest.
    pub chain_id: u64,
    /// The vault in the digest.
    pub vault: Address20,
    /// Token, or the zero address.
    pub token: Address20,
    /// Recipient.
    pub to: Address20,
    /// Base units.
    pub amount: u128,
}

/// Payouts that at least `threshold` distinct signers released shares for on `chain`, keyed
/// by the vault's id for them (`keccak256` of the intent id). One id may have more than one
/// (the same withdrawal signed for two vaults before and after a policy change).
pub fn cosigned(
    signers: &[VerifiedLog],
    chain: Chain,
    threshold: u16,
) -> BTreeMap<[u8; 32], Vec<Release>> {
    let mut by: BTreeMap<Release, BTreeSet<&str>> = BTreeMap::new();
    for log in signers.iter().filter(|l| l.head.role == "signer") {
        for r in &log.records {
            let e = &r.event;
            if e.kind != kind::SHARE_RELEASED || e.field("chain") != Some(chain.as_str()) {
                continue;
            }
            let release = (|| {
                let token: Address20 = hex::decode(e.field("token")?).ok()?.try_into().ok()?;
                Some(Release {
                    intent_id: e.field("withdrawal")?.to_string(),
                    chain_id: e.field("chain_id")?.parse().ok()?,
                    vault: address_bytes(chain, e.field("vault")?).ok()?,
                    token,
                    to: address_bytes(chain, e.field("destination")?).ok()?,
                    amount: e.field("amount")?.parse().ok()?,
                })
            })();
            if let Some(release) = release {
                by.entry(release)
                    .or_default()
                    .insert(log.head.node.as_str());
            }
        }
    }
    let mut out: BTreeMap<[u8; 32], Vec<Release>> = BTreeMap::new();
    for (r, who) in by {
        if who.len() >= usize::from(threshold) {
            out.entry(withdrawal_id(&r.intent_id)).or_default().push(r);
        }
    }
    out
}

/// A payout event as read from the chain.
#[derive(Debug, Clone)]
pub struct Payout {
    /// The decoded event, or why it does not decode as one.
    pub event: Result<WithdrawnEvent, String>,
    /// Transaction hash.
    pub tx: String,
    /// Block number.
    pub block: u64,
}

/// A payout with no co-signed withdrawal behind it.
#[derive(Debug, Clone)]
pub struct Alarm {
    /// The payout.
    pub payout: Payout,
    /// What is wrong.
    pub why: String,
}

/// The outcome of matching one vault's payouts.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    /// Intent ids of payouts matched to a co-signed withdrawal.
    pub matched: Vec<String>,
    /// Payouts that match none.
    pub alarms: Vec<Alarm>,
    /// Co-signed withdrawals for this vault with no payout yet (signed, not sent, or sent
    /// later than the blocks read).
    pub unpaid: Vec<String>,
}

/// Matches `payouts` of the vault `vault` on chain id `chain_id` to `cosigned`.
pub fn reconcile(
    cosigned: &BTreeMap<[u8; 32], Vec<Release>>,
    chain_id: u64,
    vault: &Address20,
    payouts: Vec<Payout>,
) -> Reconciled {
    let mut out = Reconciled::default();
    let mut paid = BTreeSet::new();
    let here = |r: &&Release| r.chain_id == chain_id && r.vault == *vault;
    for p in payouts {
        let why = match &p.event {
            Err(e) => Some(format!("not a payout Quorate can sign: {e}")),
            Ok(ev) => {
                let releases = cosigned.get(&ev.id).map(Vec::as_slice).unwrap_or_default();
                let mine: Vec<&Release> = releases.iter().filter(here).collect();
                match mine
                    .iter()
                    .find(|r| (r.token, r.to, r.amount) == (ev.token, ev.to, ev.amount))
                {
                    _ if releases.is_empty() => {
                        Some("no withdrawal with this id was co-signed by t signers".into())
                    }
                    None if mine.is_empty() => Some(format!(
                        "withdrawal `{}` was co-signed for another vault or chain",
                        releases[0].intent_id
                    )),
                    None => Some(format!(
                        "withdrawal `{}` was co-signed for token 0x{}, to 0x{}, amount {}",
                        mine[0].intent_id,
                        hex::encode(mine[0].token),
                        hex::encode(mine[0].to),
                        mine[0].amount
                    )),
                    Some(r) if !paid.insert(ev.id) => {
                        Some(format!("withdrawal `{}` paid a second time", r.intent_id))
                    }
                    Some(r) => {
                        out.matched.push(r.intent_id.clone());
                        None
                    }
                }
            }
        };
        if let Some(why) = why {
            out.alarms.push(Alarm { payout: p, why });
        }
    }
    out.unpaid = cosigned
        .iter()
        .filter(|(id, rs)| rs.iter().any(|r| here(&r)) && !paid.contains(*id))
        .filter_map(|(_, rs)| rs.first().map(|r| r.intent_id.clone()))
        .collect();
    out
}

/// Vault administration messages at least `threshold` distinct signers released shares for on
/// `chain` (each digest names its vault and chain id).
pub fn cosigned_admin(signers: &[VerifiedLog], chain: Chain, threshold: u16) -> BTreeSet<[u8; 32]> {
    let mut by: BTreeMap<[u8; 32], BTreeSet<&str>> = BTreeMap::new();
    for log in signers.iter().filter(|l| l.head.role == "signer") {
        for r in &log.records {
            let e = &r.event;
            if e.kind != kind::VAULT_SHARE_RELEASED || e.field("chain") != Some(chain.as_str()) {
                continue;
            }
            let message: Option<[u8; 32]> = e
                .field("message")
                .and_then(|m| hex::decode(m).ok())
                .and_then(|m| m.try_into().ok());
            if let Some(m) = message {
                by.entry(m).or_default().insert(log.head.node.as_str());
            }
        }
    }
    by.into_iter()
        .filter(|(_, who)| who.len() >= usize::from(threshold))
        .map(|(m, _)| m)
        .collect()
}

/// A vault administration event read from the chain.
#[derive(Debug, Clone)]
pub struct AdminLog {
    /// The decoded event, or why it does not decode.
    pub event: Result<AdminEvent, String>,
    /// Transaction hash.
    pub tx: String,
    /// Block number.
    pub block: u64,
}

/// A vault administration event no co-signed message explains, and why.
#[derive(Debug, Clone)]
pub struct AdminAlarm {
    /// The event.
    pub log: AdminLog,
    /// What is wrong.
    pub why: String,
}

/// Matches the vault's administration events to the messages t signers co-signed: a key
/// rotation or cap change they never signed means the group key signed outside Quorate.
pub fn reconcile_admin(
    messages: &BTreeSet<[u8; 32]>,
    domain: &VaultDomain,
    logs: Vec<AdminLog>,
) -> Vec<AdminAlarm> {
    let mut out = Vec::new();
    for log in logs {
        let why = match &log.event {
            Err(e) => Some(e.clone()),
            Ok(ev) if messages.contains(&ev.message(domain)) => None,
            Ok(ev) => Some(format!(
                "vault administration at admin nonce {} that t signers never co-signed",
                ev.nonce()
            )),
        };
        if let Some(why) = why {
            out.push(AdminAlarm { log, why });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Event, Head, Record};

    fn log(node: &str, releases: &[(&str, &str, u128)]) -> VerifiedLog {
        let records = releases
            .iter()
            .enumerate()
            .map(|(i, (id, to, amount))| Record {
                seq: i as u64 + 1,
                at_ms: 1,
                prev: [0; 32],
                hash: [0; 32],
                event: Event::new(kind::SHARE_RELEASED)
                    .with("withdrawal", id)
                    .with("chain", "ethereum")
                    .with("destination", to)
                    .with("amount", amount.to_string())
                    .with("chain_id", "31337")
                    .with("vault", "0x5FbDB2315678afecb367f032d93F642f64180aa3")
                    .with("token", hex::encode([0u8; 20])),
            })
            .collect();
        VerifiedLog {
            head: Head {
                node: node.into(),
                role: "signer".into(),
                seq: 0,
                hash: String::new(),
                threshold: None,
                identity_key: None,
                signature: None,
                nonce: None,
            },
            records,
            key: None,
        }
    }

    const TO: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    fn payout(id: &str, amount: u128) -> Payout {
        Payout {
            event: Ok(WithdrawnEvent {
                id: withdrawal_id(id),
                token: [0; 20],
                to: address_bytes(Chain::Ethereum, TO).unwrap(),
                amount,
            }),
            tx: format!("tx-{id}"),
            block: 1,
        }
    }

    #[test]
    fn only_payouts_t_signers_released_match() {
        let logs = [
            log("s1", &[("a", TO, 5), ("b", TO, 7)]),
            log("s2", &[("a", TO, 5)]),
            log("s3", &[("b", TO, 7)]),
        ];
        let c = cosigned(&logs, Chain::Ethereum, 2);
        assert_eq!(c.len(), 2);
        let vault = address_bytes(
            Chain::Ethereum,
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        )
        .unwrap();
        let r = reconcile(
            &c,
            31337,
            &vault,
            vec![
                payout("a", 5),
                payout("b", 8),
                payout("x", 1),
                payout("a", 5),
            ],
        );
        assert_eq!(r.matched, vec!["a".to_string()]);
        let whys: Vec<&str> = r.alarms.iter().map(|a| a.why.as_str()).collect();
        assert_eq!(whys.len(), 3, "{whys:?}");
        assert!(whys[0].contains("amount 7"), "{whys:?}");
        assert!(whys[1].contains("no withdrawal"), "{whys:?}");
        assert!(whys[2].contains("second time"), "{whys:?}");
        assert_eq!(r.unpaid, vec!["b".to_string()]);
        // One signer alone is not the group; another chain id or vault matches nothing.
        assert!(cosigned(&logs[..1], Chain::Ethereum, 2).is_empty());
        let other = reconcile(&c, 1, &vault, vec![payout("a", 5)]);
        assert_eq!(other.alarms.len(), 1);
    }

    #[test]
    fn admin_events_need_a_cosigned_message() {
        use crate::chains::evm::{admin_topics, decode_admin_event};
        let domain = VaultDomain {
            chain_id: 1,
            vault: [7; 20],
        };
        let key = [3u8; 33];
        let [scheduled, cancelled, changed, _raise] = admin_topics();
        let word = |v: u128| {
            let mut w = [0u8; 32];
            w[16..].copy_from_slice(&v.to_be_bytes());
            w
        };
        let rotation = |nonce: u128, eta: Option<u128>| {
            let mut d = Vec::new();
            d.extend(word(nonce));
            d.extend(word(3));
            d.extend(&key[1..]);
            if let Some(eta) = eta {
                d.extend(word(eta));
            }
            d
        };
        let mut token_topic = [0u8; 32];
        token_topic[12..].copy_from_slice(&[9; 20]);
        let mut cap = Vec::new();
        cap.extend(word(500));
        cap.extend(word(1));
        cap.extend(word(5));
        let decode = |topics: &[[u8; 32]], data: &[u8]| decode_admin_event(topics, data).unwrap();
        let events = [
            decode(&[scheduled], &rotation(4, Some(999))),
            decode(&[changed, token_topic], &cap),
            decode(&[cancelled], &rotation(6, None)),
            decode(&[cancelled], &rotation(7, None)),
        ];
        let rotate = events[0].as_ref().unwrap().message(&domain);
        assert_eq!(rotate, domain.rotate_digest(4, &key));
        // The group signed the rotation at 4 and the cancel at 6 (a rotation to the key in
        // force), nothing else.
        let messages = BTreeSet::from([rotate, domain.rotate_digest(6, &key)]);
        let logs = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| AdminLog {
                event,
                tx: format!("tx{i}"),
                block: 1,
            })
            .collect();
        let alarms = reconcile_admin(&messages, &domain, logs);
        let txs: Vec<&str> = alarms.iter().map(|a| a.log.tx.as_str()).collect();
        // The cap at nonce 5 and the cancel at nonce 7 were never co-signed.
        assert_eq!(txs, ["tx1", "tx3"]);
        // Another vault's digest does not explain this vault's event.
        let other = VaultDomain {
            chain_id: 1,
            vault: [8; 20],
        };
        let one = AdminLog {
            event: decode(&[scheduled], &rotation(4, Some(999))),
            tx: "tx".into(),
            block: 1,
        };
        assert_eq!(reconcile_admin(&messages, &other, vec![one]).len(), 1);
        // A log with an admin topic but another layout is an alarm, not ignored.
        assert!(decode_admin_event(&[scheduled], &[0; 64]).unwrap().is_err());
        assert!(decode_admin_event(&[[0; 32]], &[]).is_none());
    }
}
