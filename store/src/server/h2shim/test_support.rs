//! Test-only helpers shared by the shim's tests: an HPACK encoder for blocks in every
//! representation, a strict reader of re-encoded blocks, and the header blocks etcdctl 3.4 sends.

use super::hpack::{read_int, write_int, Decoder};
use super::huffman::huffman_codes;
use super::static_table::STATIC_TABLE;

pub(crate) fn huffman_encode(s: &[u8]) -> Vec<u8> {
    let codes = huffman_codes();
    let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for &c in s {
        let (code, len) = codes[c as usize];
        acc = acc << len | code as u64;
        bits += len as u32;
        while bits >= 8 {
            out.push((acc >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}

pub(crate) fn enc_str(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
    if huffman {
        let h = huffman_encode(s);
        write_int(out, 7, 0x80, h.len());
        out.extend_from_slice(&h);
    } else {
        write_int(out, 7, 0, s.len());
        out.extend_from_slice(s);
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Lit {
    Incremental,
    Without,
    Never,
}

#[derive(Clone, Copy)]
pub(crate) enum Name<'a> {
    Index(usize),
    Literal(&'a str),
}

pub(crate) fn enc_indexed(out: &mut Vec<u8>, index: usize) {
    write_int(out, 7, 0x80, index);
}

pub(crate) fn enc_literal(out: &mut Vec<u8>, lit: Lit, name: Name, value: &str, huffman: bool) {
    let (prefix, high) = match lit {
        Lit::Incremental => (6, 0x40),
        Lit::Without => (4, 0x00),
        Lit::Never => (4, 0x10),
    };
    match name {
        Name::Index(i) => write_int(out, prefix, high, i),
        Name::Literal(n) => {
            write_int(out, prefix, high, 0);
            enc_str(out, n.as_bytes(), huffman);
        }
    }
    enc_str(out, value.as_bytes(), huffman);
}

pub(crate) fn enc_size_update(out: &mut Vec<u8>, size: usize) {
    write_int(out, 5, 0x20, size);
}

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Reads a re-encoded block, insisting on what `emit_field` may produce: static references,
/// and literals without indexing or never indexed, not Huffman-coded. Returns the fields and,
/// for each, whether it was never-indexed.
pub(crate) fn strict_read(block: &[u8]) -> (Fields, Vec<bool>) {
    let (mut pos, mut out, mut never) = (0, Vec::new(), Vec::new());
    let raw = |pos: &mut usize| {
        assert_eq!(
            block[*pos] & 0x80,
            0,
            "re-encoded strings are not Huffman-coded"
        );
        let len = read_int(block, pos, 7).unwrap();
        let s = block[*pos..*pos + len].to_vec();
        *pos += len;
        s
    };
    while pos < block.len() {
        let b = block[pos];
        if b & 0x80 != 0 {
            let i = read_int(block, &mut pos, 7).unwrap();
            assert!(
                (1..=61).contains(&i),
                "indexed field {i} outside the static table"
            );
            out.push((
                STATIC_TABLE[i - 1].0.to_vec(),
                STATIC_TABLE[i - 1].1.to_vec(),
            ));
            never.push(false);
        } else {
            assert_eq!(
                b & 0xe0,
                0,
                "representation {b:#x} touches the dynamic table"
            );
            never.push(b & 0x10 != 0);
            let i = read_int(block, &mut pos, 4).unwrap();
            assert!(i <= 61, "name index {i} outside the static table");
            let name = if i == 0 {
                raw(&mut pos)
            } else {
                STATIC_TABLE[i - 1].0.to_vec()
            };
            out.push((name, raw(&mut pos)));
        }
    }
    (out, never)
}

pub(crate) fn decode(dec: &mut Decoder, block: &[u8]) -> Fields {
    let mut out = Vec::new();
    dec.decode_block(block, &mut out).unwrap();
    strict_read(&out).0
}

/// What etcdctl 3.4's `endpoint status` sends, in grpc-go's style: everything indexed, then
/// referenced from the dynamic table in the next block.
pub(crate) fn status_block(huffman: bool, first: bool) -> Vec<u8> {
    let mut b = Vec::new();
    if first {
        enc_indexed(&mut b, 3); // :method POST
        enc_indexed(&mut b, 6); // :scheme http
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Index(4),
            "/etcdserverpb.Maintenance/Status",
            huffman,
        );
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Index(1),
            "http://127.0.0.1:2379",
            huffman,
        );
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Index(31),
            "application/grpc",
            huffman,
        );
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Index(58),
            "grpc-go/1.26.0",
            huffman,
        );
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Literal("te"),
            "trailers",
            huffman,
        );
        enc_literal(
            &mut b,
            Lit::Without,
            Name::Literal("grpc-timeout"),
            "4999958u",
            huffman,
        );
    } else {
        enc_indexed(&mut b, 3);
        enc_indexed(&mut b, 6);
        for i in [66, 65, 64, 63, 62] {
            enc_indexed(&mut b, i);
        }
        enc_literal(
            &mut b,
            Lit::Without,
            Name::Literal("grpc-timeout"),
            "4999950u",
            huffman,
        );
    }
    b
}

pub(crate) fn status_fields(timeout: &str) -> Fields {
    fields(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/etcdserverpb.Maintenance/Status"),
        (":authority", "127.0.0.1:2379"),
        ("content-type", "application/grpc"),
        ("user-agent", "grpc-go/1.26.0"),
        ("te", "trailers"),
        ("grpc-timeout", timeout),
    ])
}
