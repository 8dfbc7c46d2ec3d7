//! The protobuf codec of every Quorate service: prost's, except that a message that does not
//! decode (truncated, a wrong wire type, nesting past prost's recursion limit, …) is the
//! caller's fault, answered `INVALID_ARGUMENT` with the rule tag `request-malformed`, not a
//! server fault (`INTERNAL`, as the stock codec reports it).

use std::marker::PhantomData;

use prost::Message;
use quorate_core::refusal::Rule;
use tonic::{
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
    Status,
};
use tonic_prost::{ProstCodec, ProstEncoder};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(PhantomData)
    }
}

/// Decodes with prost; a decode error becomes `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let rule = Rule::RequestMalformed;
        let mut s = match Message::decode(buf) {
            Ok(m) => return Ok(Some(m)),
            Err(e) => Status::invalid_argument(format!(
                "{rule}: the message is not valid protobuf for this method: {e}"
            )),
        };
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(rule.as_str().as_ref()) {
            s.metadata_mut().insert(crate::RULE_METADATA_KEY, v);
        }
        Err(s)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
