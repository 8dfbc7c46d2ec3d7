//! The signer link at the edge: protobuf messages of `quorate.signer.v1` to and from the typed
//! protocol of [`quorate_core::link`].
//!
//! A signer converts each `CoordinatorMessage` body into a [`Request`] (what does not convert is
//! [`Malformed`], refused with [`Malformed::refusal`]) and each [`Answer`] back; a coordinator
//! converts each [`Request`] it sends and each `SignerMessage` body it gets (what does not
//! convert is [`MalformedAnswer`]). Reasons are worded as the signer's handlers worded them
//! before the protocol was typed, so refusals and their audit records read the same.

use prost::Message as _;
use quorate_core::{
    dkg::{SignedEcho, SignedResult, SignedRound1},
    link::{self as l, Answer, Hello, Malformed, MalformedAnswer, Request, RequestKind as K},
    message::Scheme,
    policy::{PolicyDoc, SignedPolicy},
    refusal::{Refusal, Rule},
    repair::{Contribution, Offer},
    seal::Sealed,
};

use super::{audit, policy};
use crate::signer::{self as pb, coordinator_message::Body as Req, signer_message::Body as Ans};

/// The wire value of a key group.
pub fn scheme_to_proto(s: Scheme) -> pb::KeyScheme {
    match s {
        Scheme::Secp256k1 => pb::KeyScheme::Secp256k1,
        Scheme::Ed25519 => pb::KeyScheme::Ed25519,
    }
}

fn scheme_i32(s: Scheme) -> i32 {
    scheme_to_proto(s) as i32
}

mod answer;
mod parts;
mod request;
#[cfg(test)]
mod tests;

pub use answer::*;
pub use parts::*;
use request::*;
