//! HTTP/2 frames (RFC 9113, section 4): the frame header, the frame types and flags the shim
//! looks at, and the re-encoded header block written back out as HEADERS plus CONTINUATION
//! frames.

use std::io;

use super::hpack::Decoder;
use super::reader::invalid;

pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(super) const FRAME_HEAD: usize = 9;

pub(super) const HEADERS: u8 = 0x1;
pub(super) const PUSH_PROMISE: u8 = 0x5;
pub(super) const CONTINUATION: u8 = 0x9;

pub(super) const END_STREAM: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY: u8 = 0x20;

/// Largest payload of a frame we emit: the SETTINGS_MAX_FRAME_SIZE every HTTP/2 peer accepts.
pub(super) const MAX_FRAME_PAYLOAD: usize = 16_384;
/// The most bytes a re-encoded block may take. Above hyper's 16 KiB header list limit, which h2
/// answers per stream; a block this large would break h2's CONTINUATION-flood limit anyway.
pub(super) const MAX_BLOCK_OUT: usize = 64 * 1024;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FrameHead {
    pub(super) len: usize,
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
}

impl FrameHead {
    pub(super) fn parse(h: &[u8]) -> FrameHead {
        FrameHead {
            len: (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize,
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        }
    }

    pub(super) fn write(out: &mut [u8], len: usize, kind: u8, flags: u8, stream: u32) {
        out[0] = (len >> 16) as u8;
        out[1] = (len >> 8) as u8;
        out[2] = len as u8;
        out[3] = kind;
        out[4] = flags;
        out[5..9].copy_from_slice(&stream.to_be_bytes());
    }
}

/// A header block whose HEADERS frame has been read but not its END_HEADERS.
#[derive(Clone, Copy, Debug)]
pub(super) struct OpenBlock {
    pub(super) stream: u32,
    pub(super) end_stream: bool,
    pub(super) priority: Option<[u8; 5]>,
}

/// Decodes the header block `fragment` and appends it to `out` re-encoded, as a HEADERS frame
/// followed by CONTINUATION frames if it doesn't fit in one.
pub(super) fn emit_block(
    hpack: &mut Decoder,
    fragment: &[u8],
    open: OpenBlock,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let frame_start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    let mut flags = if open.end_stream { END_STREAM } else { 0 };
    if let Some(prio) = open.priority {
        out.extend_from_slice(&prio);
        flags |= PRIORITY;
    }
    let body_start = out.len();
    hpack
        .decode_block(fragment, out)
        .map_err(|e| invalid(format!("HPACK: {e}")))?;
    if out.len() - body_start > MAX_BLOCK_OUT {
        return Err(invalid("decoded header block too large"));
    }
    let len = out.len() - frame_start - FRAME_HEAD;
    if len <= MAX_FRAME_PAYLOAD {
        FrameHead::write(
            &mut out[frame_start..],
            len,
            HEADERS,
            flags | END_HEADERS,
            open.stream,
        );
        return Ok(());
    }
    let first = MAX_FRAME_PAYLOAD - (body_start - frame_start - FRAME_HEAD);
    let rest = out.split_off(body_start + first);
    FrameHead::write(
        &mut out[frame_start..],
        MAX_FRAME_PAYLOAD,
        HEADERS,
        flags,
        open.stream,
    );
    let mut chunks = rest.chunks(MAX_FRAME_PAYLOAD).peekable();
    while let Some(chunk) = chunks.next() {
        let mut head = [0; FRAME_HEAD];
        let flags = if chunks.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        FrameHead::write(&mut head, chunk.len(), CONTINUATION, flags, open.stream);
        out.extend_from_slice(&head);
        out.extend_from_slice(chunk);
    }
    Ok(())
}
