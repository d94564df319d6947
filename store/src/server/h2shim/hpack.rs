//! The HPACK decoder (RFC 7541) that mirrors the client's dynamic table and writes each header
//! field back out without touching the receiver's dynamic table.

use std::collections::VecDeque;

use super::authority::authority_value;
use super::huffman::huffman_decode;
use super::static_table::{static_name_index, AUTHORITY, STATIC_TABLE};

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("header block truncated")]
    Truncated,
    #[error("integer too large")]
    IntegerOverflow,
    #[error("table index {0} out of range")]
    BadIndex(usize),
    #[error("dynamic table size update to {0}, above the advertised maximum")]
    TableSizeTooLarge(usize),
    #[error("dynamic table size update after a header field")]
    LateTableSizeUpdate,
    #[error("invalid Huffman code")]
    Huffman,
}

/// A dynamic table entry: name and value in one allocation.
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
    /// Static index of an entry with the same name, or 0: lets the re-encoding reference the name.
    name_index: u8,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }

    /// The size RFC 7541 counts for it.
    fn size(&self) -> usize {
        self.bytes.len() + 32
    }
}

/// An HPACK decoder that tracks the client's dynamic table and writes each field back out in a
/// representation that doesn't touch the receiver's dynamic table.
pub struct Decoder {
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// The largest `max_size` the encoder may choose (our SETTINGS_HEADER_TABLE_SIZE).
    limit: usize,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: limit,
            limit,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decodes the header block `src` and appends its fields to `out` as static-table references
    /// and non-indexed literals, with `:authority` made acceptable to h2 (see `authority_value`).
    pub fn decode_block(&mut self, src: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
        let mut pos = 0;
        let mut may_resize = true;
        while pos < src.len() {
            let b = src[pos];
            if b & 0x80 != 0 {
                // Indexed field.
                let index = read_int(src, &mut pos, 7)?;
                match index {
                    0 => return Err(HpackError::BadIndex(0)),
                    1..=61 => out.push(0x80 | index as u8),
                    _ => {
                        let e = self
                            .table
                            .get(index - 62)
                            .ok_or(HpackError::BadIndex(index))?;
                        emit_field(out, e.name_index, e.name(), e.value(), false);
                    }
                }
            } else if b & 0x20 != 0 && b & 0x40 == 0 {
                // Dynamic table size update.
                if !may_resize {
                    return Err(HpackError::LateTableSizeUpdate);
                }
                let size = read_int(src, &mut pos, 5)?;
                if size > self.limit {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.max_size = size;
                self.evict();
                continue;
            } else {
                // Literal: with incremental indexing (01), without indexing (0000), never
                // indexed (0001).
                let insert = b & 0x40 != 0;
                let never = !insert && b & 0x10 != 0;
                let index = read_int(src, &mut pos, if insert { 6 } else { 4 })?;
                let (name_index, name): (u8, &[u8]) = match index {
                    0 => {
                        let name = read_string(src, &mut pos, &mut self.name_buf)?;
                        (static_name_index(name), name)
                    }
                    1..=61 => (index as u8, STATIC_TABLE[index - 1].0),
                    _ => {
                        let e = self
                            .table
                            .get(index - 62)
                            .ok_or(HpackError::BadIndex(index))?;
                        (e.name_index, e.name())
                    }
                };
                let value = read_string(src, &mut pos, &mut self.value_buf)?;
                emit_field(out, name_index, name, value, never);
                if insert {
                    let mut bytes = Vec::with_capacity(name.len() + value.len());
                    bytes.extend_from_slice(name);
                    bytes.extend_from_slice(value);
                    let entry = Entry {
                        bytes: bytes.into_boxed_slice(),
                        name_len: name.len(),
                        name_index,
                    };
                    self.insert(entry);
                }
            }
            may_resize = false;
        }
        Ok(())
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            // RFC 7541 4.4: an entry larger than the table empties it and is not added.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.size += size;
        self.table.push_front(entry);
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            let e = self
                .table
                .pop_back()
                .expect("a non-empty table over its size");
            self.size -= e.size();
        }
    }
}

/// Appends one field: a static-table reference when name and value are a static entry, else a
/// literal without indexing (never indexed when the client said so), the name by static index
/// when there is one.
fn emit_field(out: &mut Vec<u8>, name_index: u8, name: &[u8], value: &[u8], never: bool) {
    let value = if name_index == AUTHORITY {
        match authority_value(value) {
            Some(v) => v,
            None => return,
        }
    } else {
        value
    };
    if !never && name_index != 0 {
        let first = name_index as usize - 1;
        for (i, (n, v)) in STATIC_TABLE[first..].iter().enumerate() {
            if *n != name {
                break;
            }
            if *v == value {
                out.push(0x80 | (first + i + 1) as u8);
                return;
            }
        }
    }
    write_int(out, 4, if never { 0x10 } else { 0x00 }, name_index as usize);
    if name_index == 0 {
        write_int(out, 7, 0, name.len());
        out.extend_from_slice(name);
    }
    write_int(out, 7, 0, value.len());
    out.extend_from_slice(value);
}

/// Reads an integer with a `prefix`-bit prefix at `*pos` (RFC 7541 5.1).
pub(super) fn read_int(src: &[u8], pos: &mut usize, prefix: u32) -> Result<usize, HpackError> {
    let mask = (1u8 << prefix) - 1;
    let first = *src.get(*pos).ok_or(HpackError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(first as usize);
    }
    let mut value = first as u64;
    let mut shift = 0;
    loop {
        let b = *src.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return usize::try_from(value)
                .ok()
                .filter(|&v| v <= u32::MAX as usize)
                .ok_or(HpackError::IntegerOverflow);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Writes `value` with a `prefix`-bit prefix, the bits above the prefix in the first byte set to
/// `high`.
pub(super) fn write_int(out: &mut Vec<u8>, prefix: u32, high: u8, value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(high | value as u8);
        return;
    }
    out.push(high | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Reads a string literal at `*pos`: raw bytes from `src`, or Huffman-decoded into `scratch`.
fn read_string<'a>(
    src: &'a [u8],
    pos: &mut usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], HpackError> {
    let huffman = *src.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = read_int(src, pos, 7)?;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= src.len())
        .ok_or(HpackError::Truncated)?;
    let raw = &src[*pos..end];
    *pos = end;
    if !huffman {
        return Ok(raw);
    }
    scratch.clear();
    huffman_decode(raw, scratch)?;
    Ok(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::h2shim::test_support::*;

    fn table(dec: &Decoder) -> Vec<(String, String)> {
        dec.table
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(e.name()).into_owned(),
                    String::from_utf8_lossy(e.value()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn authority_hpack_integers() {
        for prefix in 1..=8u32 {
            for v in [
                0usize,
                1,
                30,
                31,
                126,
                127,
                128,
                254,
                255,
                1337,
                16_384,
                1 << 20,
                u32::MAX as usize,
            ] {
                let mut out = Vec::new();
                write_int(&mut out, prefix.min(7), 0, v);
                let mut pos = 0;
                assert_eq!(read_int(&out, &mut pos, prefix.min(7)), Ok(v));
                assert_eq!(pos, out.len());
            }
        }
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut pos = 0;
        assert_eq!(read_int(&[0x1f, 0x9a, 0x0a], &mut pos, 5), Ok(1337));
        // Too long, and truncated.
        assert_eq!(
            read_int(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut 0, 7),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(
            read_int(&[0x7f, 0xff], &mut 0, 7),
            Err(HpackError::Truncated)
        );
    }

    /// RFC 7541 C.3 and C.4: three requests on one connection, without and with Huffman coding.
    #[test]
    fn authority_hpack_rfc_request_examples() {
        for blocks in [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ] {
            let mut dec = Decoder::new(4096);
            let base = [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ];
            assert_eq!(decode(&mut dec, &hex(blocks[0])), fields(&base));
            assert_eq!(dec.size, 57);
            let mut second = base.to_vec();
            second.push(("cache-control", "no-cache"));
            assert_eq!(decode(&mut dec, &hex(blocks[1])), fields(&second));
            assert_eq!(dec.size, 110);
            let third = [
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ];
            assert_eq!(decode(&mut dec, &hex(blocks[2])), fields(&third));
            assert_eq!(dec.size, 164);
            let expect = [
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ];
            assert_eq!(
                table(&dec),
                expect.map(|(n, v)| (n.to_string(), v.to_string()))
            );
        }
    }

    #[test]
    fn authority_rewritten_in_literals_and_dynamic_references() {
        for huffman in [false, true] {
            let mut dec = Decoder::new(4096);
            assert_eq!(
                decode(&mut dec, &status_block(huffman, true)),
                status_fields("4999958u")
            );
            // The table holds what the client sent, so sizes (and evictions) stay in step with it.
            assert_eq!(
                table(&dec)[3],
                (":authority".into(), "http://127.0.0.1:2379".into())
            );
            let size: usize = status_fields("")[2..7]
                .iter()
                .map(|(n, v)| n.len() + v.len() + 32)
                .sum();
            assert_eq!(dec.size, size + "http://".len());
            for _ in 0..3 {
                assert_eq!(
                    decode(&mut dec, &status_block(huffman, false)),
                    status_fields("4999950u")
                );
            }
        }
    }

    #[test]
    fn authority_never_indexed_stays_never_indexed() {
        let mut dec = Decoder::new(4096);
        let mut b = Vec::new();
        enc_literal(&mut b, Lit::Never, Name::Index(23), "secret", true);
        enc_literal(&mut b, Lit::Never, Name::Literal("token"), "t0k3n", false);
        enc_literal(&mut b, Lit::Without, Name::Index(2), "GET", false);
        let mut out = Vec::new();
        dec.decode_block(&b, &mut out).unwrap();
        let (f, never) = strict_read(&out);
        assert_eq!(
            f,
            fields(&[
                ("authorization", "secret"),
                ("token", "t0k3n"),
                (":method", "GET")
            ])
        );
        assert_eq!(never, [true, true, false]);
        assert_eq!(
            out.last(),
            Some(&0x82),
            "a field equal to a static entry becomes a reference"
        );
        assert!(dec.table.is_empty());
    }

    #[test]
    fn authority_dynamic_table_eviction_and_size_updates() {
        let mut dec = Decoder::new(4096);
        // Shrink to 100 bytes: room for two 44-byte entries (5 + 7 + 32).
        let mut b = Vec::new();
        enc_size_update(&mut b, 100);
        for i in 0..5 {
            enc_literal(
                &mut b,
                Lit::Incremental,
                Name::Literal("x-key"),
                &format!("value-{i}"),
                i % 2 == 0,
            );
        }
        enc_indexed(&mut b, 62);
        enc_indexed(&mut b, 63);
        let got = decode(&mut dec, &b);
        assert_eq!(
            got[5..],
            fields(&[("x-key", "value-4"), ("x-key", "value-3")])
        );
        assert_eq!(dec.size, 88);
        // Index 64 was evicted.
        let mut out = Vec::new();
        assert_eq!(
            dec.decode_block(&[0x80 | 64], &mut out),
            Err(HpackError::BadIndex(64))
        );
        // An entry larger than the table empties it.
        let mut b = Vec::new();
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Literal("big"),
            &"v".repeat(100),
            false,
        );
        decode(&mut dec, &b);
        assert!(dec.table.is_empty() && dec.size == 0);
        // Two updates at a block's start (0 then back up) are fine; one after a field is not; nor
        // one above SETTINGS_HEADER_TABLE_SIZE.
        let mut b = Vec::new();
        enc_size_update(&mut b, 0);
        enc_size_update(&mut b, 4096);
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Index(31),
            "application/grpc",
            true,
        );
        enc_indexed(&mut b, 62);
        assert_eq!(decode(&mut dec, &b).len(), 2);
        let mut b = Vec::new();
        enc_indexed(&mut b, 2);
        enc_size_update(&mut b, 10);
        assert_eq!(
            dec.decode_block(&b, &mut out),
            Err(HpackError::LateTableSizeUpdate)
        );
        let mut b = Vec::new();
        enc_size_update(&mut b, 4097);
        assert_eq!(
            dec.decode_block(&b, &mut out),
            Err(HpackError::TableSizeTooLarge(4097))
        );
        // Truncated and out-of-range input.
        assert_eq!(
            dec.decode_block(&[0x41, 0x05, b'a'], &mut out),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            dec.decode_block(&[0x80], &mut out),
            Err(HpackError::BadIndex(0))
        );
        assert_eq!(
            dec.decode_block(&[0x7f, 0x07, 0x00], &mut out),
            Err(HpackError::BadIndex(70))
        );
    }
}
