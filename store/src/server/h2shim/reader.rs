//! The client-to-server direction, frame by frame: frames that pass through stay in the
//! caller's buffer and only their 9-byte headers are looked at; HEADERS and CONTINUATION frames
//! are collected into header blocks, which go out re-encoded (see [`super::frame::emit_block`]).

use std::io;

use tokio::io::ReadBuf;

use super::frame::{
    emit_block, FrameHead, OpenBlock, CONTINUATION, END_HEADERS, END_STREAM, FRAME_HEAD, HEADERS,
    PADDED, PREFACE, PRIORITY, PUSH_PROMISE,
};
use super::hpack::Decoder;

/// SETTINGS_HEADER_TABLE_SIZE of the server (h2's default; neither hyper nor tonic changes it): the
/// largest dynamic table a client may ask for.
const HEADER_TABLE_SIZE: usize = 4_096;
/// The most header block bytes a client may send for one block (h2 itself allows at most six
/// 16 KiB frames per block at its defaults).
const MAX_BLOCK_IN: usize = 256 * 1024;

/// Where the client-to-server stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In the connection preface, with this many of its bytes seen.
    Preface(usize),
    /// Not HTTP/2 with prior knowledge: everything passes through.
    Raw,
    /// At (or inside, see `head_len`) a 9-byte frame header.
    Head,
    /// Inside the payload of a frame that passes through: this many bytes left.
    Skip(usize),
    /// Inside the payload of a HEADERS or CONTINUATION frame: this many bytes left.
    Block(usize),
}

/// The read side's state.
pub(super) struct Reader {
    phase: Phase,
    /// A frame header split across reads (only ever filled from the stash).
    head: [u8; FRAME_HEAD],
    head_len: usize,
    /// The HEADERS or CONTINUATION frame being collected, and its payload so far.
    cur: FrameHead,
    payload: Vec<u8>,
    /// The open header block, and its fragments so far when it spans several frames.
    open: Option<OpenBlock>,
    fragment: Vec<u8>,
    /// Bytes read from the client but not yet looked at.
    pub(super) stash: Vec<u8>,
    pub(super) stash_pos: usize,
    /// Bytes ready for the server: rewritten header frames and frame headers from the stash.
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    hpack: Decoder,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            phase: Phase::Preface(0),
            head: [0; FRAME_HEAD],
            head_len: 0,
            cur: FrameHead::default(),
            payload: Vec::new(),
            open: None,
            fragment: Vec::new(),
            stash: Vec::new(),
            stash_pos: 0,
            out: Vec::new(),
            out_pos: 0,
            hpack: Decoder::new(HEADER_TABLE_SIZE),
        }
    }
}

/// Lets an emptied buffer that once held something large go, so that an idle connection (a
/// watcher, say) doesn't keep it.
pub(super) fn trim(buf: &mut Vec<u8>) {
    if buf.capacity() > 32 * 1024 {
        *buf = Vec::new();
    }
}

pub(super) fn invalid(msg: impl Into<String>) -> io::Error {
    let msg = msg.into();
    tracing::debug!("closing client connection: {msg}");
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Reader {
    /// Walks bytes just read into the caller's buffer (with nothing stashed or pending) and returns
    /// how many of them may stay there; the rest must go through the stash.
    pub(super) fn scan_in_place(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() {
            match self.phase {
                Phase::Raw => return data.len(),
                Phase::Preface(seen) => {
                    let n = (PREFACE.len() - seen).min(data.len() - i);
                    if data[i..i + n] != PREFACE[seen..seen + n] {
                        self.phase = Phase::Raw;
                        return data.len();
                    }
                    i += n;
                    self.phase = if seen + n == PREFACE.len() {
                        Phase::Head
                    } else {
                        Phase::Preface(seen + n)
                    };
                }
                Phase::Skip(left) => {
                    let n = left.min(data.len() - i);
                    i += n;
                    self.phase = if n == left {
                        Phase::Head
                    } else {
                        Phase::Skip(left - n)
                    };
                }
                Phase::Head => {
                    if self.head_len > 0 || data.len() - i < FRAME_HEAD || self.open.is_some() {
                        return i;
                    }
                    let h = FrameHead::parse(&data[i..i + FRAME_HEAD]);
                    if matches!(h.kind, HEADERS | CONTINUATION | PUSH_PROMISE) {
                        return i;
                    }
                    i += FRAME_HEAD;
                    self.phase = if h.len == 0 {
                        Phase::Head
                    } else {
                        Phase::Skip(h.len)
                    };
                }
                Phase::Block(_) => return i,
            }
        }
        i
    }

    /// Moves stashed bytes on: through to `buf`, or into a header block (and from there to `out`).
    /// Returns when the stash is empty, `buf` is full or `out` has bytes to deliver first.
    pub(super) fn drain_stash(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        while self.stash_pos < self.stash.len() && self.out.is_empty() && buf.remaining() > 0 {
            let avail = &self.stash[self.stash_pos..];
            match self.phase {
                Phase::Raw => {
                    let n = avail.len().min(buf.remaining());
                    buf.put_slice(&avail[..n]);
                    self.stash_pos += n;
                }
                Phase::Preface(seen) => {
                    let n = (PREFACE.len() - seen).min(avail.len()).min(buf.remaining());
                    if avail[..n] != PREFACE[seen..seen + n] {
                        self.phase = Phase::Raw;
                        continue;
                    }
                    buf.put_slice(&avail[..n]);
                    self.stash_pos += n;
                    self.phase = if seen + n == PREFACE.len() {
                        Phase::Head
                    } else {
                        Phase::Preface(seen + n)
                    };
                }
                Phase::Skip(left) => {
                    let n = left.min(avail.len()).min(buf.remaining());
                    buf.put_slice(&avail[..n]);
                    self.stash_pos += n;
                    self.phase = if n == left {
                        Phase::Head
                    } else {
                        Phase::Skip(left - n)
                    };
                }
                Phase::Head => {
                    let n = (FRAME_HEAD - self.head_len).min(avail.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&avail[..n]);
                    self.head_len += n;
                    self.stash_pos += n;
                    if self.head_len == FRAME_HEAD {
                        self.head_len = 0;
                        self.on_frame_head()?;
                    }
                }
                Phase::Block(left) => {
                    let n = left.min(avail.len());
                    self.payload.extend_from_slice(&avail[..n]);
                    self.stash_pos += n;
                    if n == left {
                        self.on_header_frame()?;
                    } else {
                        self.phase = Phase::Block(left - n);
                    }
                }
            }
        }
        if self.stash_pos == self.stash.len() {
            self.stash.clear();
            self.stash_pos = 0;
            trim(&mut self.stash);
        }
        Ok(())
    }

    /// A whole frame header is in `head`.
    fn on_frame_head(&mut self) -> io::Result<()> {
        let h = FrameHead::parse(&self.head);
        match h.kind {
            HEADERS | CONTINUATION => {
                match (h.kind, self.open) {
                    (HEADERS, None) => {}
                    (CONTINUATION, Some(open)) if open.stream == h.stream => {}
                    (HEADERS, Some(_)) => {
                        return Err(invalid("HEADERS frame inside an open header block"))
                    }
                    (_, None) => return Err(invalid("CONTINUATION frame without a header block")),
                    _ => return Err(invalid("CONTINUATION frame for another stream")),
                }
                if h.len > MAX_BLOCK_IN {
                    return Err(invalid(format!("{}-byte header frame", h.len)));
                }
                self.cur = h;
                self.payload.clear();
                if h.len == 0 {
                    self.on_header_frame()
                } else {
                    self.phase = Phase::Block(h.len);
                    Ok(())
                }
            }
            PUSH_PROMISE => Err(invalid("PUSH_PROMISE frame from a client")),
            _ if self.open.is_some() => Err(invalid("frame inside an open header block")),
            _ => {
                self.out.extend_from_slice(&self.head);
                self.phase = if h.len == 0 {
                    Phase::Head
                } else {
                    Phase::Skip(h.len)
                };
                Ok(())
            }
        }
    }

    /// The payload of the HEADERS or CONTINUATION frame `cur` is in `payload`.
    fn on_header_frame(&mut self) -> io::Result<()> {
        self.phase = Phase::Head;
        let h = self.cur;
        let p = &self.payload[..];
        let fragment = if h.kind == HEADERS {
            let (mut start, mut end) = (0, p.len());
            let mut pad = 0;
            if h.flags & PADDED != 0 {
                pad = *p
                    .first()
                    .ok_or_else(|| invalid("PADDED HEADERS frame without a pad length"))?
                    as usize;
                start = 1;
            }
            let mut priority = None;
            if h.flags & PRIORITY != 0 {
                let prio = p
                    .get(start..start + 5)
                    .ok_or_else(|| invalid("HEADERS frame too short for PRIORITY"))?;
                priority = Some(<[u8; 5]>::try_from(prio).expect("5 bytes"));
                start += 5;
            }
            if pad > end - start {
                return Err(invalid("HEADERS padding longer than the frame"));
            }
            end -= pad;
            self.open = Some(OpenBlock {
                stream: h.stream,
                end_stream: h.flags & END_STREAM != 0,
                priority,
            });
            &p[start..end]
        } else {
            p
        };
        let open = self.open.expect("an open header block");
        if h.flags & END_HEADERS == 0 {
            if self.fragment.len() + fragment.len() > MAX_BLOCK_IN {
                return Err(invalid("header block too large"));
            }
            self.fragment.extend_from_slice(fragment);
            return Ok(());
        }
        self.open = None;
        if self.fragment.is_empty() {
            emit_block(&mut self.hpack, fragment, open, &mut self.out)?;
        } else {
            if self.fragment.len() + fragment.len() > MAX_BLOCK_IN {
                return Err(invalid("header block too large"));
            }
            self.fragment.extend_from_slice(fragment);
            emit_block(&mut self.hpack, &self.fragment, open, &mut self.out)?;
            self.fragment.clear();
            trim(&mut self.fragment);
        }
        trim(&mut self.payload);
        Ok(())
    }
}
