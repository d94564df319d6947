//! HPACK's Huffman code (RFC 7541, Appendix B) and a table-driven decoder for it: an automaton
//! over the code tree's inner nodes that consumes four bits per step.

use std::sync::LazyLock;

use super::hpack::HpackError;

/// The Huffman code's symbols (256 is EOS) by code length. The code is canonical: within a length,
/// codes are consecutive in symbol order, and each length's first code follows the previous
/// length's last. So these lengths define it completely.
const HUFFMAN_LENGTHS: [(u8, &[u16]); 21] = [
    (5, &[48, 49, 50, 97, 99, 101, 105, 111, 115, 116]),
    (
        6,
        &[
            32, 37, 45, 46, 47, 51, 52, 53, 54, 55, 56, 57, 61, 65, 95, 98, 100, 102, 103, 104,
            108, 109, 110, 112, 114, 117,
        ],
    ),
    (
        7,
        &[
            58, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86,
            87, 89, 106, 107, 113, 118, 119, 120, 121, 122,
        ],
    ),
    (8, &[38, 42, 44, 59, 88, 90]),
    (10, &[33, 34, 40, 41, 63]),
    (11, &[39, 43, 124]),
    (12, &[35, 62]),
    (13, &[0, 36, 64, 91, 93, 126]),
    (14, &[94, 125]),
    (15, &[60, 96, 123]),
    (19, &[92, 195, 208]),
    (20, &[128, 130, 131, 162, 184, 194, 224, 226]),
    (
        21,
        &[
            153, 161, 167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230,
        ],
    ),
    (
        22,
        &[
            129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173, 178, 181, 185,
            186, 187, 189, 190, 196, 198, 228, 232, 233,
        ],
    ),
    (
        23,
        &[
            1, 135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166,
            168, 174, 175, 180, 182, 183, 188, 191, 197, 231, 239,
        ],
    ),
    (
        24,
        &[9, 142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237],
    ),
    (25, &[199, 207, 234, 235]),
    (
        26,
        &[
            192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255,
        ],
    ),
    (
        27,
        &[
            203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252,
            253, 254,
        ],
    ),
    (
        28,
        &[
            2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28,
            29, 30, 31, 127, 220, 249,
        ],
    ),
    (30, &[10, 13, 22, 256]),
];

const EOS: u16 = 256;

/// Each symbol's (code, length in bits), from `HUFFMAN_LENGTHS`.
pub(super) fn huffman_codes() -> [(u32, u8); 257] {
    let mut codes = [(0u32, 0u8); 257];
    let mut code = 0u32;
    let mut prev_len = HUFFMAN_LENGTHS[0].0;
    for &(len, symbols) in &HUFFMAN_LENGTHS {
        code <<= len - prev_len;
        prev_len = len;
        for &sym in symbols {
            codes[sym as usize] = (code, len);
            code += 1;
        }
    }
    codes
}

/// One step of the Huffman decoder: the state after feeding a 4-bit nibble to a state.
#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    sym: u8,
    flags: u8,
}

/// The step emits `sym`.
const STEP_EMIT: u8 = 1;
/// The nibble runs into EOS: an error.
const STEP_FAIL: u8 = 2;
/// A string may end in `next`: the bits since the last symbol are at most 7 bits of EOS's prefix.
const STEP_ACCEPT: u8 = 4;

/// The decoding automaton: states are the code tree's 256 inner nodes (0 is the root), 16 steps
/// each, one per nibble.
static HUFFMAN_STEPS: LazyLock<Vec<Step>> = LazyLock::new(|| {
    #[derive(Clone, Copy)]
    enum Child {
        None,
        Node(u8),
        Leaf(u16),
    }
    let mut nodes: Vec<[Child; 2]> = vec![[Child::None; 2]];
    for (sym, &(code, len)) in huffman_codes().iter().enumerate() {
        let mut node = 0;
        for bit in (0..len).rev() {
            let b = (code >> bit & 1) as usize;
            if bit == 0 {
                nodes[node][b] = Child::Leaf(sym as u16);
            } else {
                node = match nodes[node][b] {
                    Child::Node(n) => n as usize,
                    _ => {
                        nodes.push([Child::None; 2]);
                        let n = nodes.len() - 1;
                        nodes[node][b] = Child::Node(n as u8);
                        n
                    }
                };
            }
        }
    }
    assert_eq!(
        nodes.len(),
        256,
        "a complete code over 257 symbols has 256 inner nodes"
    );
    // A string may end at the root or after up to 7 one-bits (a prefix of EOS's code).
    let mut accepting = vec![false; nodes.len()];
    accepting[0] = true;
    let mut node = 0;
    for _ in 0..7 {
        let Child::Node(n) = nodes[node][1] else {
            unreachable!("EOS is 30 one-bits")
        };
        node = n as usize;
        accepting[node] = true;
    }
    let mut steps = vec![Step::default(); nodes.len() * 16];
    for (state, _) in nodes.iter().enumerate() {
        for nibble in 0..16u8 {
            let mut step = Step::default();
            let mut node = state;
            for bit in (0..4).rev() {
                match nodes[node][(nibble >> bit & 1) as usize] {
                    Child::Node(n) => node = n as usize,
                    Child::Leaf(EOS) | Child::None => {
                        step.flags |= STEP_FAIL;
                        break;
                    }
                    Child::Leaf(sym) => {
                        step.sym = sym as u8;
                        step.flags |= STEP_EMIT;
                        node = 0;
                    }
                }
            }
            step.next = node as u8;
            if accepting[node] {
                step.flags |= STEP_ACCEPT;
            }
            steps[state * 16 + nibble as usize] = step;
        }
    }
    steps
});

/// Decodes the Huffman-coded `src`, appending to `dst`.
pub(super) fn huffman_decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
    let steps = &*HUFFMAN_STEPS;
    dst.reserve(src.len() * 8 / 5);
    let mut state = 0usize;
    let mut accept = true;
    for &b in src {
        for nibble in [b >> 4, b & 0x0f] {
            let step = steps[state * 16 + nibble as usize];
            if step.flags & STEP_FAIL != 0 {
                return Err(HpackError::Huffman);
            }
            if step.flags & STEP_EMIT != 0 {
                dst.push(step.sym);
            }
            state = step.next as usize;
            accept = step.flags & STEP_ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(HpackError::Huffman)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::h2shim::test_support::*;

    #[test]
    fn authority_huffman_codes_match_rfc_7541_appendix_b() {
        let codes = huffman_codes();
        for (sym, code, len) in [
            (0usize, 0x1ff8u32, 13u8),
            (1, 0x7fffd8, 23),
            (9, 0xffffea, 24),
            (10, 0x3ffffffc, 30),
            (b' ' as usize, 0x14, 6),
            (b'0' as usize, 0x0, 5),
            (b'a' as usize, 0x3, 5),
            (b'z' as usize, 0x7b, 7),
            (b'~' as usize, 0x1ffd, 13),
            (255, 0x3ffffee, 26),
            (256, 0x3fffffff, 30),
        ] {
            assert_eq!(codes[sym], (code, len), "symbol {sym}");
        }
        // Kraft equality: a complete prefix code.
        let kraft: f64 = codes.iter().map(|&(_, len)| 0.5f64.powi(len as i32)).sum();
        assert!((kraft - 1.0).abs() < 1e-12);
    }

    #[test]
    fn authority_huffman_rfc_vectors() {
        for (coded, plain) in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
        ] {
            let mut out = Vec::new();
            huffman_decode(&hex(coded), &mut out).unwrap();
            assert_eq!(out, plain.as_bytes());
            assert_eq!(huffman_encode(plain.as_bytes()), hex(coded));
        }
    }

    #[test]
    fn authority_huffman_round_trips_every_byte() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..300 {
            let s: Vec<u8> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if len % 3 == 0 {
                        (i % 256) as u8
                    } else {
                        x as u8
                    }
                })
                .collect();
            let mut out = Vec::new();
            huffman_decode(&huffman_encode(&s), &mut out).unwrap();
            assert_eq!(out, s);
        }
    }

    #[test]
    fn authority_huffman_rejects_bad_padding_and_eos() {
        let mut out = Vec::new();
        // 'a' (00011) padded with zeros instead of ones.
        assert_eq!(
            huffman_decode(&[0b0001_1000], &mut out),
            Err(HpackError::Huffman)
        );
        // '0' (00000) + 111, then a whole byte of padding: 11 bits.
        assert_eq!(
            huffman_decode(&[0b0000_0111, 0xff], &mut out),
            Err(HpackError::Huffman)
        );
        // EOS (30 one-bits) inside the string.
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HpackError::Huffman)
        );
        // Up to 7 one-bits of padding are fine.
        out.clear();
        huffman_decode(&[0b0000_0111], &mut out).unwrap();
        assert_eq!(out, b"0");
    }
}
