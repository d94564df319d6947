//! The plain-text AppendEntries stream between members: a TCP connection on the peer port
//! that carries length-prefixed messages, one request then its answer, as etcd's rafthttp
//! streams carry Raft messages without an RPC layer per message.
//!
//! Why: on a gRPC stream each AppendEntries crosses several tasks on each side (the request
//! body's pipe and the HTTP/2 connection on the leader, the connection and the stream's task
//! on the follower); about 0.2 ms of a write's ~0.6 ms round trip to a follower on this
//! machine went there (BENCHMARKS.md, "The write path, hop by hop"). Here the leader's
//! replication task writes and reads the socket itself and the follower answers on the
//! connection's own task.
//!
//! The connection opens with [`MAGIC`], which the peer listener tells from the HTTP/2 preface
//! by its first bytes ([`sniff`]); the member answers [`ACCEPTED`]. A member without this
//! stream (an older version) answers anything else or closes, and the leader goes on with gRPC
//! for that peer. Peers on https keep gRPC (the listener's TLS is tonic's).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::network::MAX_PEER_MESSAGE;

/// What a leader sends first on a new connection.
pub const MAGIC: &[u8; 20] = b"STORE-RAFT-APPEND/1\n";
/// The member's answer to [`MAGIC`].
pub const ACCEPTED: &[u8; 3] = b"OK\n";

/// How long the listener waits for a new connection's first bytes before handing it to
/// the gRPC server as it is.
const SNIFF_WAIT: Duration = Duration::from_secs(10);

/// Whether the accepted connection `conn` opens with [`MAGIC`] (nothing is consumed). A
/// connection that sends other bytes, ends, or sends nothing for [`SNIFF_WAIT`] is not ours.
pub async fn sniff(conn: &TcpStream) -> bool {
    let look = async {
        let mut buf = [0u8; MAGIC.len()];
        loop {
            let n = conn.peek(&mut buf).await?;
            if n == 0 || buf[..n] != MAGIC[..n] {
                return Ok::<bool, io::Error>(false);
            }
            if n == MAGIC.len() {
                return Ok(true);
            }
            // Part of it has arrived: peek returns at once until the rest does.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    matches!(tokio::time::timeout(SNIFF_WAIT, look).await, Ok(Ok(true)))
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
    /// Not connected, or no answer to [`MAGIC`].
    Unreachable(String),
    /// The peer answered, not with [`ACCEPTED`]: it has no such stream.
    Refused,
}

/// Connects to `addr` (`host:port`) and opens an AppendEntries stream.
pub async fn open(addr: &str, wait: Duration) -> Result<TcpStream, OpenError> {
    let opened = async {
        let mut conn = TcpStream::connect(addr)
            .await
            .map_err(|e| OpenError::Unreachable(e.to_string()))?;
        let _ = conn.set_nodelay(true);
        conn.write_all(MAGIC)
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
            let mut seen = Vec::new();
            for _ in 0..3 {
                let (mut conn, _) = listener.accept().await.unwrap();
                let ours = sniff(&conn).await;
                seen.push(ours);
                if ours {
                    let mut magic = [0u8; MAGIC.len()];
                    conn.read_exact(&mut magic).await.unwrap();
                    conn.write_all(ACCEPTED).await.unwrap();
                } else {
                    // An HTTP/2 server's first frame (SETTINGS), as a member without the
                    // stream would answer.
                    let _ = conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
                }
            }
            seen
        });
        assert!(open(&addr, Duration::from_secs(5)).await.is_ok());
        let mut h2 = TcpStream::connect(&addr).await.unwrap();
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        // Sent in two parts: the listener waits for the rest before deciding.
        let mut split = TcpStream::connect(&addr).await.unwrap();
        split.write_all(&MAGIC[..5]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        split.write_all(&MAGIC[5..]).await.unwrap();
        assert_eq!(server.await.unwrap(), vec![true, false, true]);

        let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = refusing.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut conn, _) = refusing.accept().await.unwrap();
            let _ = conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
        });
        assert!(matches!(
            open(&addr, Duration::from_secs(5)).await,
            Err(OpenError::Refused)
        ));
    }
}
