//! Conversions between protobuf messages and domain types, at the edge. Anything that does not
//! convert is invalid input (`InvalidArgument`).

use quorate_core::intent::{IntentError, WithdrawalIntent};

use crate::withdrawal as pb;

/// Converts a wire intent into a validated domain intent.
pub fn intent_from_proto(p: &pb::Intent) -> Result<WithdrawalIntent, IntentError> {
    WithdrawalIntent::from_parts(
        &p.id,
        &p.chain,
        &p.asset,
        &p.destination,
        &p.amount,
        p.created_at_ms,
        p.expires_at_ms,
        (!p.customer_ref.is_empty()).then_some(p.customer_ref.as_str()),
    )
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
    }
}
