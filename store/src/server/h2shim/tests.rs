//! Tests of the stream adapter: whatever the read boundaries, the server gets the same frames
//! with every header block re-encoded; streams that are not HTTP/2 pass through untouched; and
//! protocol errors close the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::fix_authority;
use super::frame::{
    FrameHead, CONTINUATION, END_HEADERS, END_STREAM, FRAME_HEAD, HEADERS, MAX_FRAME_PAYLOAD,
    PADDED, PREFACE, PRIORITY, PUSH_PROMISE,
};
use super::test_support::*;

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
pub(crate) struct Feed {
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
pub(crate) async fn read_all<S: AsyncRead + Unpin>(io: &mut S, size: usize) -> io::Result<Vec<u8>> {
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
                                ) => {
                                    assert_eq!((stream, flags, priority, fields), (ws, wf, wp, wfs))
                                }
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
