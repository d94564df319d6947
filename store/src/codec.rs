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
