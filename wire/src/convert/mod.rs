//! Conversions between protobuf messages and domain types, at the edge. Anything that does not
//! convert is invalid input (`InvalidArgument`).

use quorate_core::{
    chains::solana::{self, ComputeBudget, Lifetime},
    intent::{IntentError, SolanaTerms, WithdrawalIntent},
};

use crate::withdrawal as pb;

pub mod link;

/// The key group a signer-link message names (`KeyScheme`; unset is secp256k1).
pub fn key_scheme(value: i32) -> Result<quorate_core::message::Scheme, String> {
    use crate::signer::KeyScheme;
    use quorate_core::message::Scheme;
    match KeyScheme::try_from(value) {
        Ok(KeyScheme::Secp256k1) => Ok(Scheme::Secp256k1),
        Ok(KeyScheme::Ed25519) => Ok(Scheme::Ed25519),
        Err(_) => Err(format!("unknown key scheme {value}")),
    }
}

/// Converts a wire intent into a validated domain intent.
pub fn intent_from_proto(p: &pb::Intent) -> Result<WithdrawalIntent, IntentError> {
    let intent = WithdrawalIntent::from_parts(
        &p.id,
        &p.chain,
        &p.asset,
        &p.destination,
        &p.amount,
        p.created_at_ms,
        p.expires_at_ms,
        (!p.customer_ref.is_empty()).then_some(p.customer_ref.as_str()),
    )?;
    match &p.solana {
        None => Ok(intent),
        Some(t) => intent.with_solana(solana_terms_from_proto(t)?),
    }
}

fn base58_32(text: &str, what: &'static str) -> Result<[u8; 32], IntentError> {
    solana::address_bytes(text).map_err(|_| IntentError::Terms(what))
}

/// Solana terms from their wire form.
pub fn solana_terms_from_proto(t: &pb::SolanaTerms) -> Result<SolanaTerms, IntentError> {
    let lifetime = match (
        t.nonce_account.is_empty(),
        t.nonce_value.is_empty(),
        t.recent_blockhash.is_empty(),
    ) {
        (false, false, true) => Lifetime::DurableNonce {
            account: base58_32(
                &t.nonce_account,
                "nonce_account: not a base58 address of 32 bytes",
            )?,
            nonce: base58_32(&t.nonce_value, "nonce_value: not base58 of 32 bytes")?,
        },
        (true, true, false) => Lifetime::Blockhash(base58_32(
            &t.recent_blockhash,
            "recent_blockhash: not base58 of 32 bytes",
        )?),
        _ => {
            return Err(IntentError::Terms(
                "give nonce_account with nonce_value, or recent_blockhash, not both",
            ))
        }
    };
    Ok(SolanaTerms {
        lifetime,
        create_destination_account: t.create_destination_account,
        compute: ComputeBudget {
            unit_limit: (t.compute_unit_limit > 0).then_some(t.compute_unit_limit),
            unit_price: (t.compute_unit_price > 0).then_some(t.compute_unit_price),
        },
    })
}

/// Wire form of Solana terms.
pub fn solana_terms_to_proto(t: &SolanaTerms) -> pb::SolanaTerms {
    let (nonce_account, nonce_value, recent_blockhash) = match &t.lifetime {
        Lifetime::DurableNonce { account, nonce } => (
            solana::address_text(account),
            solana::address_text(nonce),
            String::new(),
        ),
        Lifetime::Blockhash(h) => (String::new(), String::new(), solana::address_text(h)),
    };
    pb::SolanaTerms {
        nonce_account,
        nonce_value,
        recent_blockhash,
        create_destination_account: t.create_destination_account,
        compute_unit_limit: t.compute.unit_limit.unwrap_or(0),
        compute_unit_price: t.compute.unit_price.unwrap_or(0),
    }
}

/// Converts a domain intent to its wire form.
pub fn intent_to_proto(i: &WithdrawalIntent) -> pb::Intent {
    pb::Intent {
        id: i.id.clone(),
        chain: i.chain.as_str().to_string(),
        asset: i.asset.clone(),
        destination: i.destination.clone(),
        amount: i.amount.to_string(),
        created_at_ms: i.created_at_ms,
        expires_at_ms: i.expires_at_ms,
        customer_ref: i.customer_ref.clone().unwrap_or_default(),
        solana: i.solana.as_ref().map(solana_terms_to_proto),
    }
}

/// Admin signatures and signed policies.
pub mod policy {
    use quorate_core::{
        identity::IdentityPublic,
        policy::{
            AdminSignature, PolicyDoc, PolicyState, PolicyStatus, SignedPolicy, StatusReceipt,
        },
    };

    use crate::policy as pb;

    /// Longest admin signature accepted (DER ECDSA is at most 72 bytes).
    pub const MAX_SIGNATURE_BYTES: usize = 80;
    /// Most signatures carried with one policy or withdrawal.
    pub const MAX_SIGNATURES: usize = 64;

    /// Wire form of an admin signature.
    pub fn sig_to_proto(s: &AdminSignature) -> pb::AdminSignature {
        pb::AdminSignature {
            admin: s.admin.as_bytes().to_vec(),
            signature: s.signature.clone(),
        }
    }

    /// Domain form; the message names the field that is wrong.
    pub fn sig_from_proto(p: &pb::AdminSignature) -> Result<AdminSignature, String> {
        let admin = IdentityPublic::from_bytes(&p.admin)
            .map_err(|_| "admin: expected a 33-byte compressed secp256k1 public key".to_string())?;
        if p.signature.is_empty() || p.signature.len() > MAX_SIGNATURE_BYTES {
            return Err(format!(
                "signature: expected 1..={MAX_SIGNATURE_BYTES} bytes, got {}",
                p.signature.len()
            ));
        }
        Ok(AdminSignature {
            admin,
            signature: p.signature.clone(),
        })
    }

    /// Domain form of a list of signatures.
    pub fn sigs_from_proto(p: &[pb::AdminSignature]) -> Result<Vec<AdminSignature>, String> {
        if p.len() > MAX_SIGNATURES {
            return Err(format!("at most {MAX_SIGNATURES} signatures"));
        }
        p.iter().map(sig_from_proto).collect()
    }

    /// Wire form of a signed policy.
    pub fn signed_to_proto(s: &SignedPolicy) -> pb::SignedPolicy {
        pb::SignedPolicy {
            document: s.doc.encode(),
            signatures: s.signatures.iter().map(sig_to_proto).collect(),
        }
    }

    /// Domain form: the document must be canonical and valid on its own.
    pub fn signed_from_proto(p: &pb::SignedPolicy) -> Result<SignedPolicy, String> {
        Ok(SignedPolicy {
            doc: PolicyDoc::decode(&p.document).map_err(|e| format!("document: {e}"))?,
            signatures: sigs_from_proto(&p.signatures)?,
        })
    }

    /// Wire form of a status receipt.
    pub fn receipt_to_proto(r: &StatusReceipt) -> pb::StatusReceipt {
        pb::StatusReceipt {
            node: r.node.clone(),
            challenge: r.challenge.clone(),
            version: r.version,
            hash: r.hash.clone(),
            frozen: r.frozen,
            locally_frozen: r.locally_frozen,
            pending_version: r.pending_version,
            pending_hash: r.pending_hash.clone(),
            pending_effective_at_ms: r.pending_effective_at_ms,
            clock_ms: r.clock_ms,
            signature: r.signature.clone(),
        }
    }

    /// Domain form of a status receipt; only its signature check makes it evidence.
    pub fn receipt_from_proto(p: &pb::StatusReceipt) -> StatusReceipt {
        StatusReceipt {
            node: p.node.clone(),
            challenge: p.challenge.clone(),
            version: p.version,
            hash: p.hash.clone(),
            frozen: p.frozen,
            locally_frozen: p.locally_frozen,
            pending_version: p.pending_version,
            pending_hash: p.pending_hash.clone(),
            pending_effective_at_ms: p.pending_effective_at_ms,
            clock_ms: p.clock_ms,
            signature: p.signature.clone(),
        }
    }

    /// Status of a node's policy (`None`: none installed).
    pub fn status(s: Option<&PolicyState>) -> pb::PolicyStatus {
        status_to_proto(&PolicyStatus::of(s))
    }

    /// Wire form of a policy status.
    pub fn status_to_proto(s: &PolicyStatus) -> pb::PolicyStatus {
        pb::PolicyStatus {
            version: s.version,
            hash: s.hash.clone(),
            frozen: s.frozen,
            pending_version: s.pending_version,
            pending_hash: s.pending_hash.clone(),
            pending_effective_at_ms: s.pending_effective_at_ms,
        }
    }

    /// Domain form of a policy status (what a node states; nothing to validate).
    pub fn status_from_proto(p: &pb::PolicyStatus) -> PolicyStatus {
        PolicyStatus {
            version: p.version,
            hash: p.hash.clone(),
            frozen: p.frozen,
            pending_version: p.pending_version,
            pending_hash: p.pending_hash.clone(),
            pending_effective_at_ms: p.pending_effective_at_ms,
        }
    }

    /// How a signed policy is kept (a signer's history of accepted versions): its wire
    /// encoding, byte for byte what the admins' tool sent, as the document is canonical.
    pub fn encode_signed(s: &SignedPolicy) -> Vec<u8> {
        prost::Message::encode_to_vec(&signed_to_proto(s))
    }

    /// A signed policy as [`encode_signed`] kept it.
    pub fn decode_signed(bytes: &[u8]) -> Result<SignedPolicy, String> {
        let p: pb::SignedPolicy = prost::Message::decode(bytes).map_err(|e| e.to_string())?;
        signed_from_proto(&p)
    }
}

/// The file form of a signed policy (the genesis file, `admin show --json`):
/// `{"document": <the canonical document as JSON>, "signatures": [{"admin", "signature"}]}`.
pub mod policy_file {
    use quorate_core::{
        identity::IdentityPublic,
        policy::{AdminSignature, PolicyDoc, SignedPolicy},
    };

    /// Pretty JSON.
    pub fn signed_to_json(s: &SignedPolicy) -> String {
        let doc: serde_json::Value =
            serde_json::from_slice(&s.doc.encode()).unwrap_or(serde_json::Value::Null);
        let v = serde_json::json!({
            "document": doc,
            "signatures": s.signatures.iter().map(|a| serde_json::json!({
                "admin": a.admin.to_string(),
                "signature": hex::encode(&a.signature),
            })).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// Parses the file form; the document must re-encode canonically and validate.
    pub fn signed_from_json(text: &str) -> Result<SignedPolicy, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Sig {
            admin: String,
            signature: String,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            document: serde_json::Value,
            signatures: Vec<Sig>,
        }
        let f: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let doc: PolicyDoc = serde_json::from_value(f.document).map_err(|e| e.to_string())?;
        let doc = PolicyDoc::decode(&doc.encode()).map_err(|e| e.to_string())?;
        let signatures = f
            .signatures
            .iter()
            .map(|s| {
                Ok(AdminSignature {
                    admin: IdentityPublic::from_hex(&s.admin).map_err(|e| e.to_string())?,
                    signature: hex::decode(&s.signature).map_err(|e| e.to_string())?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(SignedPolicy { doc, signatures })
    }
}

/// Audit records and heads.
pub mod audit {
    use quorate_core::audit::{Event, Head, Record};

    use crate::audit as pb;

    /// Most records in one page.
    pub const MAX_PAGE: usize = 1000;
    /// A page stops growing at about this many bytes (one record is at most ~10 KiB), well
    /// inside the gRPC message limit.
    pub const PAGE_BYTES: usize = 128 * 1024;

    /// The longest prefix of `records` that fits a page (at least one record).
    pub fn fit_page(records: &mut Vec<Record>) {
        let mut total = 0;
        let mut keep = 0;
        for r in records.iter() {
            total += r.to_json().len();
            if keep > 0 && total > PAGE_BYTES {
                break;
            }
            keep += 1;
        }
        records.truncate(keep);
    }

    /// A record's wire form.
    pub fn record_to_proto(r: &Record) -> pb::AuditRecord {
        pb::AuditRecord {
            seq: r.seq,
            at_ms: r.at_ms,
            prev: r.prev.to_vec(),
            kind: r.event.kind.clone(),
            fields: r.event.fields.clone().into_iter().collect(),
            hash: r.hash.to_vec(),
        }
    }

    /// A record from its wire form (its hash is checked by the verifier, not here).
    pub fn record_from_proto(p: &pb::AuditRecord) -> Result<Record, String> {
        let h = |b: &[u8], f: &str| -> Result<[u8; 32], String> {
            b.try_into().map_err(|_| format!("{f}: must be 32 bytes"))
        };
        Ok(Record {
            seq: p.seq,
            at_ms: p.at_ms,
            prev: h(&p.prev, "prev")?,
            event: Event {
                kind: p.kind.clone(),
                fields: p.fields.clone().into_iter().collect(),
            },
            hash: h(&p.hash, "hash")?,
        })
    }

    /// A head's wire form.
    pub fn head_to_proto(h: &Head) -> pb::AuditHead {
        let bytes = |s: &Option<String>| {
            s.as_deref()
                .and_then(|x| hex::decode(x).ok())
                .unwrap_or_default()
        };
        pb::AuditHead {
            node: h.node.clone(),
            role: h.role.clone(),
            seq: h.seq,
            hash: hex::decode(&h.hash).unwrap_or_default(),
            threshold: h.threshold.map_or(0, u32::from),
            identity_key: bytes(&h.identity_key),
            signature: bytes(&h.signature),
            nonce: bytes(&h.nonce),
        }
    }

    /// A head from its wire form (its signature is checked by the verifier, not here).
    pub fn head_from_proto(p: &pb::AuditHead) -> Result<Head, String> {
        if p.hash.len() != 32 {
            return Err("head.hash: must be 32 bytes".into());
        }
        let opt = |b: &[u8]| (!b.is_empty()).then(|| hex::encode(b));
        Ok(Head {
            node: p.node.clone(),
            role: p.role.clone(),
            seq: p.seq,
            hash: hex::encode(&p.hash),
            threshold: match p.threshold {
                0 => None,
                t => Some(u16::try_from(t).map_err(|_| "head.threshold: out of range")?),
            },
            identity_key: opt(&p.identity_key),
            signature: opt(&p.signature),
            nonce: opt(&p.nonce),
        })
    }

    /// A page's wire form.
    pub fn page_to_proto(records: &[Record], head: &Head) -> pb::AuditPage {
        pb::AuditPage {
            records: records.iter().map(record_to_proto).collect(),
            head: Some(head_to_proto(head)),
        }
    }
}
