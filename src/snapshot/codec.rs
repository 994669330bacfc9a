//! The byte encoding of saved state: serde with postcard (see the module
//! doc of `crate::snapshot` for why), plus the serde adapters the state
//! structs need: byte buffers as one length-prefixed run of bytes, and
//! arrays longer than the 32 elements serde derives for.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why saved state could not be taken or put back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state does not decode ({0})")]
    Decode(#[from] postcard::Error),
    #[error("{0}")]
    Mismatch(String),
}

/// Encodes plain-data state.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, StateError> {
    Ok(postcard::to_allocvec(v)?)
}

/// Decodes what [`encode`] wrote; trailing bytes are an error (a shorter
/// struct than the one saved means the file is not what it claims).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    let (v, rest) = postcard::take_from_bytes(bytes)?;
    if !rest.is_empty() {
        return Err(StateError::Mismatch(format!(
            "{} bytes left over after the state",
            rest.len()
        )));
    }
    Ok(v)
}

/// `#[serde(with = "bytes")]` on a `Vec<u8>`: one length and the bytes,
/// instead of one serde call per element (RAM chunks, VRAM, disk sectors).
pub mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// `#[serde(with = "boxed_bytes")]` on a `Box<[u8]>` (as [`bytes`]).
pub mod boxed_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u8]>, D::Error> {
        super::bytes::deserialize(d).map(Vec::into_boxed_slice)
    }
}

/// `#[serde(with = "array")]` on a `[T; N]` of any length (serde derives
/// only up to 32): a sequence whose length must be N when read back.
pub mod array {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize, const N: usize>(
        v: &[T; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter())
    }

    pub fn deserialize<'de, D, T, const N: usize>(d: D) -> Result<[T; N], D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        let v = Vec::<T>::deserialize(d)?;
        let len = v.len();
        v.try_into()
            .map_err(|_| D::Error::invalid_length(len, &"the array's fixed length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct S {
        #[serde(with = "array")]
        a: [u8; 40],
        #[serde(with = "bytes")]
        b: Vec<u8>,
        c: u64,
    }

    #[test]
    fn round_trip_and_refuse_trailing_bytes() {
        let s = S {
            a: [7; 40],
            b: vec![1, 2, 3],
            c: 0x1234_5678_9ABC,
        };
        let mut e = encode(&s).unwrap();
        assert_eq!(decode::<S>(&e).unwrap(), s);
        e.push(0);
        assert!(decode::<S>(&e).is_err());
        assert!(decode::<S>(&e[..10]).is_err());
    }
}
