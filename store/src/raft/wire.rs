//! Plain request streams between members on http: a TCP connection on the peer port that
//! carries length-prefixed messages, one request then its answer, as etcd's rafthttp streams
//! carry Raft messages without an RPC layer per message. Two kinds: a leader's AppendEntries
//! to a follower, and a follower's proposals forwarded to the leader.
//!
//! Why: on a gRPC stream each message crosses several tasks on each side (the request body's
//! pipe and the HTTP/2 connection on the sender, the connection and the stream's task on the
//! receiver); about 0.2 ms of a write's ~0.6 ms round trip to a follower on this machine went
//! there (BENCHMARKS.md, "The write path, hop by hop"). Here the sender's task writes and
//! reads the socket itself and the receiver answers on the connection's own task.
//!
//! A connection opens with its kind's magic line ([`StreamKind::magic`]), which the peer
//! listener tells from the HTTP/2 preface by its first bytes ([`sniff`]); the member answers
//! [`ACCEPTED`]. A member without these streams (an older version) answers anything else or
//! closes, and the sender goes on with gRPC for that peer. Peers on https keep gRPC (the
//! listener's TLS is tonic's).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::network::MAX_PEER_MESSAGE;

/// The kinds of plain stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A leader's AppendEntries to a follower.
    AppendEntries,
    /// A follower's proposals (log entries) forwarded to the leader.
    Propose,
}

/// The length of every magic line.
pub const MAGIC_LEN: usize = 20;

impl StreamKind {
    const ALL: [StreamKind; 2] = [StreamKind::AppendEntries, StreamKind::Propose];

    /// What the sender writes first on a new connection of this kind.
    pub fn magic(self) -> &'static [u8; MAGIC_LEN] {
        match self {
            StreamKind::AppendEntries => b"STORE-PEER/1 append\n",
            StreamKind::Propose => b"STORE-PEER/1 propos\n",
        }
    }
}

/// The member's answer to a magic line.
pub const ACCEPTED: &[u8; 3] = b"OK\n";

/// How long the listener waits for a new connection's first bytes before handing it to
/// the gRPC server as it is.
const SNIFF_WAIT: Duration = Duration::from_secs(10);

/// The kind of plain stream the accepted connection `conn` opens, if it opens with one's
/// magic line (nothing is consumed). A connection that sends other bytes, ends, or sends
/// nothing for [`SNIFF_WAIT`] is not one.
pub async fn sniff(conn: &TcpStream) -> Option<StreamKind> {
    let look = async {
        let mut buf = [0u8; MAGIC_LEN];
        loop {
            let n = conn.peek(&mut buf).await.ok()?;
            let mut kinds = StreamKind::ALL
                .into_iter()
                .filter(|k| n > 0 && buf[..n] == k.magic()[..n]);
            let kind = kinds.next()?;
            if n == MAGIC_LEN {
                return Some(kind);
            }
            // Part of it has arrived: peek returns at once until the rest does.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(SNIFF_WAIT, look).await.ok().flatten()
}

/// Whether an idle stream is still open: the peer has not closed it nor sent anything
/// unasked (nothing is in flight on an idle stream).
pub fn is_open(conn: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(conn.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Writes `payload` as one message (a 4-byte big-endian length, then the bytes) in one write.
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n as usize <= MAX_PEER_MESSAGE)
        .ok_or_else(|| too_large(payload.len()))?;
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    w.write_all(&out).await
}

/// Reads one message into `buf` (replacing its contents); false at a clean end of the stream
/// before a message.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_PEER_MESSAGE {
        return Err(too_large(len));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(true)
}

fn too_large(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("peer message of {len} bytes is over the limit of {MAX_PEER_MESSAGE}"),
    )
}

/// How opening a stream to a peer failed.
#[derive(Debug)]
pub enum OpenError {
    /// Not connected, or no answer to the magic line.
    Unreachable(String),
    /// The peer answered, not with [`ACCEPTED`]: it has no such stream.
    Refused,
}

/// Connects to `addr` (`host:port`) and opens a stream of `kind`.
pub async fn open(addr: &str, kind: StreamKind, wait: Duration) -> Result<TcpStream, OpenError> {
    let opened = async {
        let mut conn = TcpStream::connect(addr)
            .await
            .map_err(|e| OpenError::Unreachable(e.to_string()))?;
        let _ = conn.set_nodelay(true);
        conn.write_all(kind.magic())
            .await
            .map_err(|e| OpenError::Unreachable(e.to_string()))?;
        let mut answer = [0u8; ACCEPTED.len()];
        match conn.read_exact(&mut answer).await {
            Ok(_) if &answer == ACCEPTED => Ok(conn),
            Ok(_) => Err(OpenError::Refused),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(OpenError::Refused),
            Err(e) => Err(OpenError::Unreachable(e.to_string())),
        }
    };
    match tokio::time::timeout(wait, opened).await {
        Ok(r) => r,
        Err(_) => Err(OpenError::Unreachable(format!(
            "{addr} did not open a stream within {wait:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_and_a_clean_end_is_not_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_message(&mut a, b"hello").await.unwrap();
        write_message(&mut a, b"").await.unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert!(read_message(&mut b, &mut buf).await.unwrap());
        assert_eq!(buf, b"hello");
        assert!(read_message(&mut b, &mut buf).await.unwrap());
        assert!(buf.is_empty());
        assert!(!read_message(&mut b, &mut buf).await.unwrap());
    }

    #[tokio::test]
    async fn a_length_over_the_limit_is_refused_before_reading_it() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err = read_message(&mut b, &mut Vec::new()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn the_listener_tells_our_stream_from_http2_and_a_member_without_it_refuses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut seen, mut kept) = (Vec::new(), Vec::new());
            for _ in 0..4 {
                let (mut conn, _) = listener.accept().await.unwrap();
                let kind = sniff(&conn).await;
                seen.push(kind);
                if kind.is_some() {
                    let mut magic = [0u8; MAGIC_LEN];
                    conn.read_exact(&mut magic).await.unwrap();
                    conn.write_all(ACCEPTED).await.unwrap();
                } else {
                    // An HTTP/2 server's first frame (SETTINGS), as a member without the
                    // stream would answer.
                    let _ = conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
                }
                kept.push(conn);
            }
            (seen, kept)
        });
        let wait = Duration::from_secs(5);
        let append = open(&addr, StreamKind::AppendEntries, wait).await.unwrap();
        assert!(is_open(&append));
        assert!(open(&addr, StreamKind::Propose, wait).await.is_ok());
        let mut h2 = TcpStream::connect(&addr).await.unwrap();
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        // Sent in two parts: the listener waits for the rest before deciding.
        let magic = StreamKind::Propose.magic();
        let mut split = TcpStream::connect(&addr).await.unwrap();
        split.write_all(&magic[..15]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        split.write_all(&magic[15..]).await.unwrap();
        let (seen, kept) = server.await.unwrap();
        assert_eq!(
            seen,
            vec![
                Some(StreamKind::AppendEntries),
                Some(StreamKind::Propose),
                None,
                Some(StreamKind::Propose)
            ]
        );
        // The server's side of the streams is gone: the idle stream shows it.
        drop(kept);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!is_open(&append));

        let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = refusing.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut conn, _) = refusing.accept().await.unwrap();
            let _ = conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
        });
        assert!(matches!(
            open(&addr, StreamKind::AppendEntries, wait).await,
            Err(OpenError::Refused)
        ));
    }
}
