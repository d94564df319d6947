//! Binary encoding of internal records (Raft entries, metadata, snapshots): bincode with serde.

use serde::{de::DeserializeOwned, Serialize};

/// A record that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(pub String);

/// Encodes a value.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
        .map_err(|e| CodecError(e.to_string()))
}

/// Decodes a value encoded by [`encode`].
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| CodecError(e.to_string()))
}

/// Decodes a value encoded by [`encode`] that must take all of `b` (where [`decode`] ignores
/// what follows the value): to tell an older, shorter layout of a record from a newer one.
pub fn decode_whole<T: DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map_err(|e| CodecError(e.to_string()))?;
    if used != b.len() {
        return Err(CodecError(format!(
            "{} bytes left after the record",
            b.len() - used
        )));
    }
    Ok(v)
}

/// `#[serde(with = "codec::bytes")]` for a `Vec<u8>` field: serde's own `Vec<u8>` is a
/// sequence, encoded and decoded one byte at a time, where this is one length and one copy.
/// bincode writes both alike (the length as a varint, then the bytes), so records and peer
/// messages written either way read either way; other formats get a sequence back too.
pub mod bytes {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    /// Writes `v` as a byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Reads a byte string (or a sequence of bytes).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{decode, encode};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum AsSequence {
        Put(Vec<u8>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum AsBytes {
        Put(#[serde(with = "super::bytes")] Vec<u8>),
    }

    /// Log entries and peer messages written before (a sequence) and after (bytes) read the
    /// same both ways: a member's log, and its peers, may be of either build.
    #[test]
    fn bytes_encode_as_the_sequence_did() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let old = encode(&AsSequence::Put(data.clone())).expect("encoded");
            let new = encode(&AsBytes::Put(data.clone())).expect("encoded");
            assert_eq!(old, new, "{len} bytes");
            assert_eq!(
                decode::<AsBytes>(&old).expect("decoded"),
                AsBytes::Put(data.clone())
            );
            assert_eq!(
                decode::<AsSequence>(&new).expect("decoded"),
                AsSequence::Put(data)
            );
        }
        // Other formats see a sequence of numbers either way.
        let json = serde_json::to_string(&AsBytes::Put(vec![1, 2])).expect("json");
        assert_eq!(
            json,
            serde_json::to_string(&AsSequence::Put(vec![1, 2])).expect("json")
        );
        assert_eq!(
            serde_json::from_str::<AsBytes>(&json).expect("from json"),
            AsBytes::Put(vec![1, 2])
        );
    }
}
