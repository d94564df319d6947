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
//!
//! The parts: [`frame`] (frame headers, and header blocks written back out as frames),
//! [`reader`] (the client-to-server direction, frame by frame), [`hpack`] (the decoder and
//! re-encoder) with its [`static_table`] and [`huffman`] code, and [`authority`] (the rewrite
//! itself). The listeners that wrap accepted connections in [`FixAuthority`] are in
//! `server::listen`.

mod authority;
mod frame;
mod hpack;
mod huffman;
mod reader;
mod static_table;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use reader::{trim, Reader};

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
