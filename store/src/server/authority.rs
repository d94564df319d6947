//! Makes a scheme-bearing HTTP/2 `:authority` acceptable to the h2 server.
//!
//! etcdctl 3.4 dials `endpoint status`, `defrag` and `endpoint hashkv` targets with grpc-go's
//! `passthrough:///http://127.0.0.1:2379`, so its `:authority` is the literal
//! `http://127.0.0.1:2379`. etcd (a grpc-go server) takes it; h2 parses `:authority` as a URI
//! authority and resets the stream with PROTOCOL_ERROR. h2 has no option to relax that, so
//! [`FixAuthority`] sits between the accepted (and, for TLS, decrypted) byte stream and the
//! HTTP/2 server and rewrites such an `:authority` to `host:port` before h2 reads it.
//!
//! How: the client-to-server direction is parsed frame by frame. Every header block (HEADERS
//! plus its CONTINUATION frames) is decoded with an HPACK decoder that mirrors the client's
//! dynamic table, and re-encoded with static-table references and literals that are never
//! indexed, so the server's HPACK table stays empty and can't disagree with the client's. All
//! other frames (DATA above all) pass through untouched: they are read straight into the
//! caller's buffer and only their 9-byte frame headers are looked at. Server-to-client bytes
//! are not touched. A stream that doesn't open with the HTTP/2 preface passes through as is.
//!
//! The HPACK decoder (RFC 7541) is ours: the crates on crates.io are either unmaintained or
//! rebuild a hash-map Huffman table for every string they decode (see the commit message).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD: usize = 9;

const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// Largest payload of a frame we emit: the SETTINGS_MAX_FRAME_SIZE every HTTP/2 peer accepts.
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// SETTINGS_HEADER_TABLE_SIZE of the server (h2's default; neither hyper nor tonic changes it): the
/// largest dynamic table a client may ask for.
const HEADER_TABLE_SIZE: usize = 4_096;
/// The most header block bytes a client may send for one block (h2 itself allows at most six
/// 16 KiB frames per block at its defaults).
const MAX_BLOCK_IN: usize = 256 * 1024;
/// The most bytes a re-encoded block may take. Above hyper's 16 KiB header list limit, which h2
/// answers per stream; a block this large would break h2's CONTINUATION-flood limit anyway.
const MAX_BLOCK_OUT: usize = 64 * 1024;
/// How long a client gets for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Wraps `io` so that a `:authority` of the form `scheme://host:port[/...]` reaches the HTTP/2
/// server as `host:port`.
pub fn fix_authority<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> FixAuthority<S> {
    FixAuthority {
        inner: io,
        rd: Box::default(),
    }
}

/// An accepted connection whose client header blocks are re-encoded on the way in; see the
/// module documentation.
pub struct FixAuthority<S> {
    inner: S,
    rd: Box<Reader>,
}

impl<S: Connected> Connected for FixAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FixAuthority<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rd = &mut *this.rd;
        let start = buf.filled().len();
        loop {
            // Rewritten frames go first: they precede whatever is still stashed.
            if rd.out_pos < rd.out.len() {
                let n = buf.remaining().min(rd.out.len() - rd.out_pos);
                buf.put_slice(&rd.out[rd.out_pos..rd.out_pos + n]);
                rd.out_pos += n;
                if rd.out_pos < rd.out.len() {
                    return Poll::Ready(Ok(()));
                }
                rd.out.clear();
                rd.out_pos = 0;
                trim(&mut rd.out);
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if rd.stash_pos < rd.stash.len() {
                rd.drain_stash(buf)?;
                continue;
            }
            if buf.filled().len() > start {
                return Poll::Ready(Ok(()));
            }
            // Nothing pending: read into the caller's buffer and let frames we don't rewrite stay
            // where they landed.
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let after = buf.filled().len();
            if after == before {
                return Poll::Ready(Ok(())); // end of stream
            }
            let keep = rd.scan_in_place(&buf.filled()[before..after]);
            if before + keep < after {
                rd.stash
                    .extend_from_slice(&buf.filled()[before + keep..after]);
                buf.set_filled(before + keep);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FixAuthority<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

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

/// A parsed frame header.
#[derive(Clone, Copy, Debug, Default)]
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(h: &[u8]) -> FrameHead {
        FrameHead {
            len: (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize,
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        }
    }

    fn write(out: &mut [u8], len: usize, kind: u8, flags: u8, stream: u32) {
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
struct OpenBlock {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
}

/// The read side's state.
struct Reader {
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
    stash: Vec<u8>,
    stash_pos: usize,
    /// Bytes ready for the server: rewritten header frames and frame headers from the stash.
    out: Vec<u8>,
    out_pos: usize,
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
fn trim(buf: &mut Vec<u8>) {
    if buf.capacity() > 32 * 1024 {
        *buf = Vec::new();
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    let msg = msg.into();
    tracing::debug!("closing client connection: {msg}");
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Reader {
    /// Walks bytes just read into the caller's buffer (with nothing stashed or pending) and returns
    /// how many of them may stay there; the rest must go through the stash.
    fn scan_in_place(&mut self, data: &[u8]) -> usize {
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
    fn drain_stash(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
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
            &p[..]
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

/// Decodes the header block `fragment` and appends it to `out` re-encoded, as a HEADERS frame
/// followed by CONTINUATION frames if it doesn't fit in one.
fn emit_block(
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

/// `value` as an `:authority` h2 accepts: `scheme://host:port[/...]` becomes `host:port`; any
/// other value stays. `None`: `scheme://` with no host, so the field is better left out.
fn authority_value(value: &[u8]) -> Option<&[u8]> {
    let Some(sep) = value.windows(3).position(|w| w == b"://") else {
        return Some(value);
    };
    let scheme = &value[..sep];
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return Some(value);
    }
    let rest = &value[sep + 3..];
    let end = rest
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    (end > 0).then_some(&rest[..end])
}

// ---- HPACK (RFC 7541) -------------------------------------------------------------------------

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

/// The static table (RFC 7541, Appendix A).
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// Static index of `:authority`.
const AUTHORITY: u8 = 1;

/// The 1-based static index of the first entry named `name`, or 0.
fn static_name_index(name: &[u8]) -> u8 {
    STATIC_TABLE
        .iter()
        .position(|(n, _)| *n == name)
        .map_or(0, |i| i as u8 + 1)
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
                // Literal: with incremental indexing (01), without indexing (0000), never indexed (0001).
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
fn read_int(src: &[u8], pos: &mut usize, prefix: u32) -> Result<usize, HpackError> {
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
fn write_int(out: &mut Vec<u8>, prefix: u32, high: u8, value: usize) {
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

// ---- Huffman code (RFC 7541, Appendix B) -------------------------------------------------------

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
fn huffman_codes() -> [(u32, u8); 257] {
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
fn huffman_decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
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

// ---- Client listeners -------------------------------------------------------------------------

/// Plain-text client connections, each wrapped in [`FixAuthority`].
pub(super) fn plain_incoming(
    tcp: impl Stream<Item = io::Result<TcpStream>> + Send + 'static,
) -> impl Stream<Item = io::Result<FixAuthority<TcpStream>>> + Send + 'static {
    tcp.map(|conn| conn.map(fix_authority))
}

/// TLS client connections: each handshake runs on its own task (a slow client holds up no one),
/// and the decrypted stream is wrapped in [`FixAuthority`]. Accept errors go to tonic as they
/// would without TLS; failed handshakes are logged and dropped, as tonic does.
pub(super) fn tls_incoming(
    tcp: impl Stream<Item = io::Result<TcpStream>> + Send + 'static,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = io::Result<FixAuthority<TlsStream<TcpStream>>>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut tcp = std::pin::pin!(tcp);
        loop {
            let next = tokio::select! {
                _ = tx.closed() => break,
                next = tcp.next() => next,
            };
            match next {
                None => break,
                Some(Err(e)) => {
                    if tx.send(Err(e)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(stream)) => {
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => {
                                let _ = tx.send(Ok(fix_authority(tls))).await;
                            }
                            Ok(Err(e)) => tracing::debug!("client TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!("client TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- A test-only HPACK encoder, for blocks in every representation --------------------------

    fn huffman_encode(s: &[u8]) -> Vec<u8> {
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

    fn enc_str(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
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
    enum Lit {
        Incremental,
        Without,
        Never,
    }

    #[derive(Clone, Copy)]
    enum Name<'a> {
        Index(usize),
        Literal(&'a str),
    }

    fn enc_indexed(out: &mut Vec<u8>, index: usize) {
        write_int(out, 7, 0x80, index);
    }

    fn enc_literal(out: &mut Vec<u8>, lit: Lit, name: Name, value: &str, huffman: bool) {
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

    fn enc_size_update(out: &mut Vec<u8>, size: usize) {
        write_int(out, 5, 0x20, size);
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn fields(list: &[(&str, &str)]) -> Fields {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Reads a re-encoded block, insisting on what `emit_field` may produce: static references,
    /// and literals without indexing or never indexed, not Huffman-coded. Returns the fields and,
    /// for each, whether it was never-indexed.
    fn strict_read(block: &[u8]) -> (Fields, Vec<bool>) {
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

    fn decode(dec: &mut Decoder, block: &[u8]) -> Fields {
        let mut out = Vec::new();
        dec.decode_block(block, &mut out).unwrap();
        strict_read(&out).0
    }

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

    // ---- Huffman --------------------------------------------------------------------------------

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

    // ---- HPACK ----------------------------------------------------------------------------------

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

    /// What etcdctl 3.4's `endpoint status` sends, in grpc-go's style: everything indexed, then
    /// referenced from the dynamic table in the next block.
    fn status_block(huffman: bool, first: bool) -> Vec<u8> {
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

    fn status_fields(timeout: &str) -> Fields {
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
    fn authority_values() {
        let cases: [(&str, Option<&str>); 10] = [
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("https://localhost:2379/", Some("localhost:2379")),
            ("http://h:1/path?q#f", Some("h:1")),
            ("http://h:1?q", Some("h:1")),
            ("http://[::1]:2379", Some("[::1]:2379")),
            ("127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("", Some("")),
            ("1http://x:1", Some("1http://x:1")),
            ("unix:///tmp/sock", None),
            ("http://", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                authority_value(value.as_bytes()),
                want.map(str::as_bytes),
                "{value}"
            );
        }
        // A `:authority` with no host is left out of the block.
        let mut dec = Decoder::new(4096);
        let mut b = Vec::new();
        enc_indexed(&mut b, 3);
        enc_literal(
            &mut b,
            Lit::Incremental,
            Name::Literal(":authority"),
            "unix:///tmp/sock",
            true,
        );
        enc_indexed(&mut b, 62);
        assert_eq!(decode(&mut dec, &b), fields(&[(":method", "POST")]));
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

    // ---- The stream adapter ---------------------------------------------------------------------

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0; FRAME_HEAD];
        FrameHead::write(&mut f, payload.len(), kind, flags, stream);
        f.extend_from_slice(payload);
        f
    }

    /// What the server should get: frames passed through as they were, and header blocks.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Frame(Vec<u8>),
        Block {
            stream: u32,
            flags: u8,
            priority: Option<[u8; 5]>,
            fields: Fields,
            frames: usize,
        },
    }

    /// Parses what the adapter emitted, checking frame sizes and that blocks only use the static table.
    fn parse_output(bytes: &[u8]) -> Vec<Seen> {
        assert_eq!(&bytes[..24], PREFACE);
        let mut pos = 24;
        let mut seen = Vec::new();
        let next = |pos: &mut usize| {
            let h = FrameHead::parse(&bytes[*pos..*pos + 9]);
            let f = bytes[*pos..*pos + 9 + h.len].to_vec();
            *pos += 9 + h.len;
            (h, f)
        };
        while pos < bytes.len() {
            let (h, f) = next(&mut pos);
            if h.kind != HEADERS {
                assert_ne!(h.kind, CONTINUATION);
                seen.push(Seen::Frame(f));
                continue;
            }
            assert!(h.len <= MAX_FRAME_PAYLOAD);
            assert_eq!(h.flags & PADDED, 0);
            let mut payload = &f[9..];
            let mut priority = None;
            if h.flags & PRIORITY != 0 {
                priority = Some(<[u8; 5]>::try_from(&payload[..5]).unwrap());
                payload = &payload[5..];
            }
            let mut block = payload.to_vec();
            let mut frames = 1;
            let mut end = h.flags & END_HEADERS != 0;
            while !end {
                let (c, cf) = next(&mut pos);
                assert_eq!((c.kind, c.stream), (CONTINUATION, h.stream));
                assert!(c.len <= MAX_FRAME_PAYLOAD);
                block.extend_from_slice(&cf[9..]);
                frames += 1;
                end = c.flags & END_HEADERS != 0;
            }
            let flags = h.flags & (END_STREAM | PRIORITY);
            seen.push(Seen::Block {
                stream: h.stream,
                flags,
                priority,
                fields: strict_read(&block).0,
                frames,
            });
        }
        seen
    }

    /// A client stream exercising every path, and what the server should see of it.
    fn client_stream() -> (Vec<u8>, Vec<Seen>) {
        let mut s = PREFACE.to_vec();
        let mut want = Vec::new();
        let pass = |s: &mut Vec<u8>, want: &mut Vec<Seen>, f: Vec<u8>| {
            s.extend_from_slice(&f);
            want.push(Seen::Frame(f));
        };
        // SETTINGS and WINDOW_UPDATE.
        pass(&mut s, &mut want, frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        pass(&mut s, &mut want, frame(8, 0, 0, &[0, 0, 0x40, 0]));
        // HEADERS, padded and with priority, the first status block.
        let block = status_block(true, true);
        let mut p = vec![7];
        p.extend_from_slice(&[0, 0, 0, 0, 15]);
        p.extend_from_slice(&block);
        p.extend_from_slice(&[0; 7]);
        s.extend_from_slice(&frame(HEADERS, END_HEADERS | PADDED | PRIORITY, 1, &p));
        want.push(Seen::Block {
            stream: 1,
            flags: PRIORITY,
            priority: Some([0, 0, 0, 0, 15]),
            fields: status_fields("4999958u"),
            frames: 1,
        });
        // Its DATA.
        pass(
            &mut s,
            &mut want,
            frame(0, END_STREAM, 1, &[0, 0, 0, 0, 2, 8, 1]),
        );
        // The second block split into HEADERS + two CONTINUATIONs, mid-field.
        let block = status_block(false, false);
        let (a, rest) = block.split_at(3);
        let (b, c) = rest.split_at(4);
        s.extend_from_slice(&frame(HEADERS, 0, 3, a));
        s.extend_from_slice(&frame(CONTINUATION, 0, 3, b));
        s.extend_from_slice(&frame(CONTINUATION, END_HEADERS, 3, c));
        want.push(Seen::Block {
            stream: 3,
            flags: 0,
            priority: None,
            fields: status_fields("4999950u"),
            frames: 1,
        });
        // A full-size DATA frame, an empty one, PING, an unknown frame type.
        let data: Vec<u8> = (0..MAX_FRAME_PAYLOAD).map(|i| (i * 7) as u8).collect();
        pass(&mut s, &mut want, frame(0, 0, 3, &data));
        pass(&mut s, &mut want, frame(0, END_STREAM, 3, &[]));
        pass(&mut s, &mut want, frame(6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]));
        pass(&mut s, &mut want, frame(0xfa, 0x3, 0, b"extension"));
        // A block that grows past one frame when re-encoded: references to a 4000-byte entry.
        let mut block = Vec::new();
        enc_indexed(&mut block, 3);
        enc_literal(
            &mut block,
            Lit::Incremental,
            Name::Literal("x-big"),
            &"b".repeat(4000),
            false,
        );
        for _ in 0..5 {
            enc_indexed(&mut block, 62);
        }
        s.extend_from_slice(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &block));
        let mut big = vec![(":method", "POST")];
        let value = "b".repeat(4000);
        big.extend(std::iter::repeat_n(("x-big", value.as_str()), 6));
        want.push(Seen::Block {
            stream: 5,
            flags: END_STREAM,
            priority: None,
            fields: fields(&big),
            frames: 1,
        });
        // Trailers-only HEADERS with an empty block, then RST_STREAM and GOAWAY.
        s.extend_from_slice(&frame(HEADERS, END_HEADERS | END_STREAM, 7, &[]));
        want.push(Seen::Block {
            stream: 7,
            flags: END_STREAM,
            priority: None,
            fields: vec![],
            frames: 1,
        });
        pass(&mut s, &mut want, frame(3, 0, 7, &[0, 0, 0, 8]));
        pass(&mut s, &mut want, frame(7, 0, 0, &[0, 0, 0, 7, 0, 0, 0, 0]));
        (s, want)
    }

    /// A client that hands over `chunk` bytes per read, and (with `stall`) says Pending every
    /// other time.
    struct Feed {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        stall: bool,
        stalled: bool,
    }

    impl Feed {
        fn new(data: Vec<u8>, chunk: usize, stall: bool) -> Feed {
            Feed {
                data,
                pos: 0,
                chunk,
                stall,
                stalled: false,
            }
        }
    }

    impl AsyncRead for Feed {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.stall && !self.stalled {
                self.stalled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.stalled = false;
            let n = self
                .chunk
                .min(self.data.len() - self.pos)
                .min(buf.remaining());
            buf.put_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Feed {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Reads everything with a `size`-byte buffer that already holds 3 bytes.
    async fn read_all<S: AsyncRead + Unpin>(io: &mut S, size: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut storage = vec![0u8; size + 3];
        loop {
            let mut rb = ReadBuf::new(&mut storage);
            rb.put_slice(b"xyz");
            std::future::poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut rb)).await?;
            assert_eq!(&rb.filled()[..3], b"xyz");
            if rb.filled().len() == 3 {
                return Ok(out);
            }
            out.extend_from_slice(&rb.filled()[3..]);
        }
    }

    #[tokio::test]
    async fn authority_stream_rewrites_blocks_whatever_the_read_boundaries() {
        let (input, want) = client_stream();
        let mut reference = None;
        for chunk in [1, 2, 3, 7, 9, 10, 64, 1000, 4096, usize::MAX] {
            for size in [1, 5, 9, 100, 8192, 1 << 20] {
                for stall in [false, true] {
                    let mut io = fix_authority(Feed::new(input.clone(), chunk, stall));
                    let out = read_all(&mut io, size).await.unwrap();
                    match &reference {
                        None => {
                            let seen = parse_output(&out);
                            // The 6 x 4000-byte block needed CONTINUATION frames.
                            let Seen::Block { frames, .. } = &seen[9] else {
                                panic!("{:?}", seen[9])
                            };
                            assert!(*frames > 1);
                            assert_eq!(seen.len(), want.len());
                            for (s, w) in seen.iter().zip(&want) {
                                match (s, w) {
                                    (
                                        Seen::Block {
                                            stream,
                                            flags,
                                            priority,
                                            fields,
                                            ..
                                        },
                                        Seen::Block {
                                            stream: ws,
                                            flags: wf,
                                            priority: wp,
                                            fields: wfs,
                                            ..
                                        },
                                    ) => assert_eq!(
                                        (stream, flags, priority, fields),
                                        (ws, wf, wp, wfs)
                                    ),
                                    _ => assert_eq!(s, w),
                                }
                            }
                            reference = Some(out);
                        }
                        Some(r) => assert!(
                            r == &out,
                            "chunk {chunk}, buffer {size}, stall {stall}: output differs"
                        ),
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn authority_stream_without_preface_passes_through() {
        let input = b"GET /version HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n".repeat(3);
        for chunk in [1, 5, 1000] {
            for size in [1, 7, 4096] {
                let mut io = fix_authority(Feed::new(input.clone(), chunk, false));
                assert_eq!(read_all(&mut io, size).await.unwrap(), input);
            }
        }
        // Diverging only late in the preface.
        let mut input = PREFACE[..20].to_vec();
        input.extend_from_slice(b"not http/2");
        for chunk in [1, 3, 100] {
            let mut io = fix_authority(Feed::new(input.clone(), chunk, false));
            assert_eq!(read_all(&mut io, 64).await.unwrap(), input);
        }
    }

    #[tokio::test]
    async fn authority_stream_protocol_errors_close_the_connection() {
        let headers = frame(HEADERS, 0, 1, &[0x83]);
        let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
            (
                "CONTINUATION without HEADERS",
                vec![frame(CONTINUATION, END_HEADERS, 1, &[0x83])],
            ),
            (
                "frame inside a block",
                vec![headers.clone(), frame(0, 0, 1, b"x")],
            ),
            (
                "HEADERS inside a block",
                vec![headers.clone(), frame(HEADERS, END_HEADERS, 3, &[0x83])],
            ),
            (
                "CONTINUATION of another stream",
                vec![headers.clone(), frame(CONTINUATION, END_HEADERS, 3, &[])],
            ),
            (
                "PUSH_PROMISE",
                vec![frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2, 0x83])],
            ),
            (
                "padding too long",
                vec![frame(HEADERS, END_HEADERS | PADDED, 1, &[3, 0x83, 0])],
            ),
            (
                "priority too short",
                vec![frame(HEADERS, END_HEADERS | PRIORITY, 1, &[0, 0, 0])],
            ),
            ("bad HPACK", vec![frame(HEADERS, END_HEADERS, 1, &[0xbe])]),
        ];
        for (what, frames) in cases {
            let mut input = PREFACE.to_vec();
            for f in frames {
                input.extend_from_slice(&f);
            }
            for chunk in [1, 1000] {
                let mut io = fix_authority(Feed::new(input.clone(), chunk, false));
                let err = read_all(&mut io, 4096).await.expect_err(what);
                assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}");
            }
        }
    }

    /// Timing, not a check: `cargo test -p store --lib authority_throughput -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn authority_throughput() {
        use std::time::Instant;
        // DATA-heavy: 16 KiB DATA frames.
        let mut input = PREFACE.to_vec();
        let data = vec![7u8; MAX_FRAME_PAYLOAD];
        for _ in 0..8000 {
            input.extend_from_slice(&frame(0, 0, 1, &data));
        }
        for size in [16 * 1024 + 9, 64 * 1024] {
            let t = Instant::now();
            let mut io = fix_authority(Feed::new(input.clone(), usize::MAX, false));
            let mut buf = vec![0u8; size];
            let mut total = 0;
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut io, &mut buf)
                    .await
                    .unwrap();
                if n == 0 {
                    break;
                }
                total += n;
            }
            let el = t.elapsed();
            let t2 = Instant::now();
            let mut raw = Feed::new(input.clone(), usize::MAX, false);
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut raw, &mut buf)
                    .await
                    .unwrap();
                if n == 0 {
                    break;
                }
            }
            println!(
                "DATA {total} bytes, buffer {size}: adapter {:?} ({:.0} MB/s), raw {:?}",
                el,
                total as f64 / el.as_secs_f64() / 1e6,
                t2.elapsed()
            );
        }
        // Header-heavy: unary requests, HEADERS (dynamic refs) + small DATA each.
        let mut input = PREFACE.to_vec();
        input.extend_from_slice(&frame(HEADERS, END_HEADERS, 1, &status_block(true, true)));
        let n = 200_000u32;
        for i in 0..n {
            input.extend_from_slice(&frame(
                HEADERS,
                END_HEADERS,
                3 + 2 * i,
                &status_block(true, false),
            ));
            input.extend_from_slice(&frame(
                0,
                END_STREAM,
                3 + 2 * i,
                &[0, 0, 0, 0, 5, 10, 3, 102, 111, 111],
            ));
        }
        let t = Instant::now();
        let mut io = fix_authority(Feed::new(input.clone(), 16 * 1024, false));
        let out = read_all(&mut io, 16 * 1024).await.unwrap();
        let el = t.elapsed();
        println!(
            "{n} requests: {:?}, {:.2} us/request, in {} bytes out {} bytes",
            el,
            el.as_secs_f64() * 1e6 / n as f64,
            input.len(),
            out.len()
        );
    }

    // ---- Through tonic --------------------------------------------------------------------------

    use proto::etcdserverpb::kv_client::KvClient;
    use proto::etcdserverpb::kv_server::{Kv, KvServer};
    use proto::etcdserverpb::{
        CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
        PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
    };
    use tonic::{Request, Response, Status};

    /// Answers Range with the `x-echo` header it got as the value of one key.
    struct Echo;

    #[tonic::async_trait]
    impl Kv for Echo {
        async fn range(
            &self,
            req: Request<RangeRequest>,
        ) -> Result<Response<RangeResponse>, Status> {
            let echo = req
                .metadata()
                .get("x-echo")
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default();
            let kv = proto::mvccpb::KeyValue {
                key: req.into_inner().key,
                value: echo,
                ..Default::default()
            };
            Ok(Response::new(RangeResponse {
                kvs: vec![kv],
                count: 1,
                ..Default::default()
            }))
        }
        async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
            Err(Status::unimplemented("put"))
        }
        async fn delete_range(
            &self,
            _: Request<DeleteRangeRequest>,
        ) -> Result<Response<DeleteRangeResponse>, Status> {
            Err(Status::unimplemented("delete_range"))
        }
        async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
            Err(Status::unimplemented("txn"))
        }
        async fn compact(
            &self,
            _: Request<CompactionRequest>,
        ) -> Result<Response<CompactionResponse>, Status> {
            Err(Status::unimplemented("compact"))
        }
    }

    /// h2's own client encoder indexes headers and references them across requests; varying
    /// values of varying sizes make it evict too. Every request must come through intact.
    #[tokio::test]
    async fn authority_tonic_client_and_server_through_the_adapter() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = plain_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let server = tokio::spawn(
            Server::builder()
                .add_service(KvServer::new(Echo))
                .serve_with_incoming(incoming),
        );
        let mut client = KvClient::connect(format!("http://{addr}")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..400usize {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                let echo = format!("{i}-{}", "e".repeat(i * 37 % 700));
                let mut req = Request::new(RangeRequest {
                    key: format!("k{i}").into_bytes(),
                    ..Default::default()
                });
                req.metadata_mut().insert("x-echo", echo.parse().unwrap());
                req.metadata_mut()
                    .insert("x-fixed", "same-every-time".parse().unwrap());
                let resp = client.range(req).await.unwrap().into_inner();
                assert_eq!(resp.kvs[0].key, format!("k{i}").into_bytes());
                assert_eq!(resp.kvs[0].value, echo.into_bytes());
            }));
            if i % 50 == 49 {
                for t in tasks.drain(..) {
                    t.await.unwrap();
                }
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let resp = client
            .range(RangeRequest {
                key: b"last".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(resp.into_inner().kvs[0].value, b"");
        server.abort();
    }

    use tonic::transport::Server;
}
