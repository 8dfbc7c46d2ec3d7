//! Storage form of a node's [`PolicyState`]: versioned JSON. Documents are stored in their
//! canonical bytes and re-validated on load.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::identity::IdentityPublic;

use super::{
    doc::PolicyDoc,
    eval::AdminSignature,
    governance::{Pending, PolicyState, SignedPolicy},
};

const STATE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SigRecord {
    admin: String,
    signature: String,
}

#[derive(Serialize, Deserialize)]
struct SignedRecord {
    doc: String,
    signatures: Vec<SigRecord>,
}

#[derive(Serialize, Deserialize)]
struct StateRecord {
    version: u32,
    current: SignedRecord,
    pending: Option<(SignedRecord, u64)>,
    vetoed: Vec<String>,
}

/// A stored state that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored policy state: {0}")]
pub struct StateError(String);

fn signed_record(s: &SignedPolicy) -> SignedRecord {
    SignedRecord {
        doc: String::from_utf8_lossy(&s.doc.encode()).into_owned(),
        signatures: s
            .signatures
            .iter()
            .map(|a| SigRecord {
                admin: a.admin.to_string(),
                signature: hex::encode(&a.signature),
            })
            .collect(),
    }
}

fn signed_policy(r: SignedRecord) -> Result<SignedPolicy, StateError> {
    let doc = PolicyDoc::decode(r.doc.as_bytes()).map_err(|e| StateError(e.to_string()))?;
    let signatures = r
        .signatures
        .into_iter()
        .map(|s| {
            Ok(AdminSignature {
                admin: IdentityPublic::from_hex(&s.admin).map_err(|e| StateError(e.to_string()))?,
                signature: hex::decode(&s.signature).map_err(|e| StateError(e.to_string()))?,
            })
        })
        .collect::<Result<_, StateError>>()?;
    Ok(SignedPolicy { doc, signatures })
}

/// Bytes to store.
pub fn encode_state(s: &PolicyState) -> Vec<u8> {
    let r = StateRecord {
        version: STATE_VERSION,
        current: signed_record(&s.current),
        pending: s
            .pending
            .as_ref()
            .map(|p| (signed_record(&p.policy), p.effective_at_ms)),
        vetoed: s.vetoed.iter().map(hex::encode).collect(),
    };
    serde_json::to_vec(&r).unwrap_or_else(|_| unreachable!("plain data serialises"))
}

/// Inverse of [`encode_state`].
pub fn decode_state(bytes: &[u8]) -> Result<PolicyState, StateError> {
    let r: StateRecord = serde_json::from_slice(bytes).map_err(|e| StateError(e.to_string()))?;
    if r.version != STATE_VERSION {
        return Err(StateError(format!(
            "schema version {} is not supported",
            r.version
        )));
    }
    let vetoed = r
        .vetoed
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| StateError("vetoed hash".into()))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(PolicyState {
        current: signed_policy(r.current)?,
        pending: r
            .pending
            .map(|(p, at)| {
                Ok::<_, StateError>(Pending {
                    policy: signed_policy(p)?,
                    effective_at_ms: at,
                })
            })
            .transpose()?,
        vetoed,
    })
}
