//! Decoding the messages that carry secrets without a `serde_json::Value` in between.
//!
//! The general decoder parses a frame into a `Value` first, and the secret inside (the
//! Session Description's `secret_key`, the token of Identify and Resume) would sit in that
//! `Value`'s buffers, which are freed without being zeroed. These three messages are decoded
//! straight from the text into their types instead, whose secret fields ([`SecretKey`],
//! [`Token`]) are zeroized on drop; nothing of the secret outlives the parse but the caller's
//! own text.
//!
//! The fast path only ever succeeds where the general decoder succeeds with the same result: a
//! JSON object (not an array: serde would read a struct from one) whose `op` is the message's,
//! whose `d` is an object, and without duplicate keys (the general decoder keeps the last; serde's
//! derive refuses them). For anything else it steps aside (`None`) and the general decoder gives
//! its result and its precise error, secret or not (a malformed message is no key in use).
//!
//! [`SecretKey`]: crate::secret::SecretKey
//! [`Token`]: crate::secret::Token

use core::fmt;
use core::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::SessionDescription;
use super::{ClientMessage, Identify, Opcode, Resume, ServerFrame, ServerMessage};

/// Op 4 from the server, or `None` to use the general decoder.
pub(crate) fn session_description(text: &str) -> Option<ServerFrame> {
    let (d, seq) = typed::<SessionDescription>(text, Opcode::SessionDescription)?;
    Some(ServerFrame {
        seq,
        message: ServerMessage::SessionDescription(d),
    })
}

/// Op 0 or op 7 from a client, or `None` to use the general decoder.
pub(crate) fn identify_or_resume(text: &str) -> Option<ClientMessage> {
    if let Some((identify, _)) = typed::<Identify>(text, Opcode::Identify) {
        return Some(ClientMessage::Identify(identify));
    }
    typed::<Resume>(text, Opcode::Resume).map(|(resume, _)| ClientMessage::Resume(resume))
}

/// `{"op": op, "d": {...T...}, "seq": N}` straight into `T`, with the seq read as the general
/// decoder reads it.
fn typed<T: for<'de> Deserialize<'de>>(text: &str, op: Opcode) -> Option<(T, Option<u64>)> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    // Unknown fields (`d` among them here) are skipped without building a `Value`.
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        op: Option<Value>,
    }
    let head: Head = serde_json::from_str(text).ok()?;
    if head.op.as_ref().and_then(Value::as_u64) != Some(u64::from(op.as_u8())) {
        return None;
    }
    #[derive(Deserialize)]
    #[serde(bound = "T: Deserialize<'de>")]
    struct Whole<T> {
        d: InObject<T>,
        #[serde(default)]
        seq: Option<Value>,
    }
    let whole: Whole<T> = serde_json::from_str(text).ok()?;
    let seq = whole.seq.as_ref().and_then(Value::as_u64);
    Some((whole.d.0, seq))
}

/// A `T` that must be written as a JSON object (serde's derive would also read a struct from an
/// array, which the general decoder refuses).
struct InObject<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for InObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(InObject)
    }
}
