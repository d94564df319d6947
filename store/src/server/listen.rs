//! Where the member's sockets come from: the listeners for clients, peers and metrics, bound
//! from their URLs, and their TLS from the flags. Peers get TLS from tonic; client connections
//! are decrypted here (rustls) and wrapped in [`FixAuthority`] before the HTTP/2 server sees
//! them, because the shim must read the plain bytes. The dialing side of peer TLS is here too.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Router;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};

use super::h2shim::{fix_authority, FixAuthority};
use crate::config::{split_urls, ServerConfig};

/// How long a client gets for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

// ---- TLS from the flags -----------------------------------------------------------------------

/// A listener's TLS files, checked for consistency: the CA is present only when clients
/// must present a certificate.
struct TlsFiles<'a> {
    cert: &'a Path,
    key: &'a Path,
    client_ca: Option<&'a Path>,
}

/// Checks a listener's TLS flags; `None` means plain text.
fn tls_files<'a>(
    cert: &'a Option<PathBuf>,
    key: &'a Option<PathBuf>,
    ca: &'a Option<PathBuf>,
    client_auth: bool,
) -> anyhow::Result<Option<TlsFiles<'a>>> {
    match (cert, key) {
        (None, None) => {
            if client_auth {
                anyhow::bail!(
                    "client certificate authentication needs --cert-file and --key-file (TLS)"
                );
            }
            Ok(None)
        }
        (Some(cert), Some(key)) => {
            let client_ca = if client_auth {
                Some(
                    ca.as_deref()
                        .context("client certificate authentication needs a trusted CA file")?,
                )
            } else {
                None
            };
            Ok(Some(TlsFiles {
                cert,
                key,
                client_ca,
            }))
        }
        _ => anyhow::bail!("a TLS certificate needs both its cert file and its key file"),
    }
}

/// The peer listeners' TLS (tonic) from the peer flags.
fn peer_server_tls(cfg: &ServerConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let Some(files) = tls_files(
        &cfg.peer_cert_file,
        &cfg.peer_key_file,
        &cfg.peer_trusted_ca_file,
        cfg.peer_client_cert_auth,
    )?
    else {
        return Ok(None);
    };
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(read(files.cert)?, read(files.key)?));
    if let Some(ca) = files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(tls))
}

/// TLS used when this member dials its peers.
pub fn peer_client_tls(cfg: &ServerConfig) -> anyhow::Result<Option<ClientTlsConfig>> {
    let mut tls = ClientTlsConfig::new();
    let mut any = false;
    if let Some(ca) = &cfg.peer_trusted_ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        any = true;
    }
    if let (Some(c), Some(k)) = (&cfg.peer_cert_file, &cfg.peer_key_file) {
        tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
        any = true;
    }
    Ok(any.then_some(tls))
}

fn pem_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot parse the certificates in {}", path.display()))
}

/// The client listeners' TLS: what `peer_server_tls` configures for tonic (the certificate and
/// key; with client certificate authentication, clients must present a certificate the CA
/// signed), built for rustls directly, since the handshake has to happen before
/// [`FixAuthority`].
fn client_tls_acceptor(cfg: &ServerConfig) -> anyhow::Result<Option<TlsAcceptor>> {
    let Some(files) = tls_files(
        &cfg.cert_file,
        &cfg.key_file,
        &cfg.trusted_ca_file,
        cfg.client_cert_auth,
    )?
    else {
        return Ok(None);
    };
    let certs = pem_certs(files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(files.key)?)
        .with_context(|| format!("cannot parse the private key in {}", files.key.display()))?;
    let builder = tokio_rustls::rustls::ServerConfig::builder();
    let builder = match files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(pem_certs(ca)?);
            let verifier = WebPkiClientVerifier::builder(roots.into())
                .build()
                .with_context(|| format!("cannot use the trusted CA file {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("invalid TLS certificate or key")?;
    config.alpn_protocols.push(b"h2".to_vec());
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

// ---- Sockets ----------------------------------------------------------------------------------

fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let u = url::Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
    let host = u
        .host_str()
        .with_context(|| format!("URL {url:?} has no host"))?;
    let port = u
        .port()
        .with_context(|| format!("URL {url:?} has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h
            .parse()
            .with_context(|| format!("URL {url:?}: host must be an IP address or localhost"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// A listening socket for `url` (`scheme://ip-or-localhost:port`).
pub(super) async fn bind(url: &str) -> anyhow::Result<TcpListener> {
    let addr = socket_addr(url)?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {url}"))
}

/// Accepted connections with Nagle's algorithm off: small gRPC frames must not wait for the
/// peer's delayed ACK (~40 ms).
fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> + Send + 'static {
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    })
}

// ---- Peer listeners ---------------------------------------------------------------------------

/// A bound peer listener (`--listen-peer-urls`), TLS done by tonic.
pub(super) struct PeerListener {
    /// The URL it listens on.
    pub url: String,
    tcp: TcpListener,
    tls: Option<ServerTlsConfig>,
}

/// Binds every peer URL, checking each URL's scheme against the peer TLS flags.
pub(super) async fn bind_peers(cfg: &ServerConfig) -> anyhow::Result<Vec<PeerListener>> {
    let tls = peer_server_tls(cfg)?;
    let mut out = Vec::new();
    for url in split_urls(&cfg.listen_peer_urls) {
        if url.starts_with("https") != tls.is_some() {
            anyhow::bail!(
                "peer URL {url} and the peer TLS flags disagree (https needs --peer-cert-file \
                 and --peer-key-file, and they need https)"
            );
        }
        let tcp = bind(&url).await?;
        out.push(PeerListener {
            url,
            tcp,
            tls: tls.clone(),
        });
    }
    Ok(out)
}

impl PeerListener {
    /// A server for this listener, with its TLS; services are added by the caller.
    pub fn server(&self) -> anyhow::Result<Server> {
        let mut builder = Server::builder().tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone())?;
        }
        Ok(builder)
    }

    /// Serves `router` (made from [`PeerListener::server`]) on the listener until it fails.
    /// On plain text, a connection that opens a plain request stream of
    /// [`crate::raft::wire`] goes to `wire` instead, with its kind (the listener tells it
    /// from HTTP/2 by its first bytes).
    pub async fn serve(
        self,
        router: Router,
        wire: impl Fn(TcpStream, crate::raft::wire::StreamKind) + Send + Sync + 'static,
    ) -> Result<(), tonic::transport::Error> {
        if self.tls.is_some() {
            return router.serve_with_incoming(incoming(self.tcp)).await;
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<TcpStream>>(64);
        let wire = Arc::new(wire);
        let mut accepted = Box::pin(incoming(self.tcp));
        tokio::spawn(async move {
            while let Some(conn) = accepted.next().await {
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(e) => {
                        if tx.send(Err(e)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let (tx, wire) = (tx.clone(), wire.clone());
                tokio::spawn(async move {
                    match crate::raft::wire::sniff(&conn).await {
                        Some(kind) => wire(conn, kind),
                        None => {
                            let _ = tx.send(Ok(conn)).await;
                        }
                    }
                });
            }
        });
        router
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    }
}

// ---- Client listeners -------------------------------------------------------------------------

/// A bound client listener (`--listen-client-urls`), TLS done here.
pub(super) struct ClientListener {
    /// The URL it listens on.
    pub url: String,
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

/// Binds every client URL, checking each URL's scheme against the TLS flags.
pub(super) async fn bind_clients(cfg: &ServerConfig) -> anyhow::Result<Vec<ClientListener>> {
    let tls = client_tls_acceptor(cfg)?;
    let mut out = Vec::new();
    for url in split_urls(&cfg.listen_client_urls) {
        if url.starts_with("https") != tls.is_some() {
            anyhow::bail!(
                "client URL {url} and the TLS flags disagree (https needs --cert-file and \
                 --key-file, and they need https)"
            );
        }
        let tcp = bind(&url).await?;
        out.push(ClientListener {
            url,
            tcp,
            tls: tls.clone(),
        });
    }
    Ok(out)
}

impl ClientListener {
    /// Serves `router` on the listener until it fails. Connections go through
    /// [`FixAuthority`]: etcdctl 3.4 sends `:authority` values such as
    /// `http://127.0.0.1:2379`, which h2 would reset.
    pub async fn serve(self, router: Router) -> Result<(), tonic::transport::Error> {
        match self.tls {
            Some(tls) => {
                router
                    .serve_with_incoming(tls_incoming(incoming(self.tcp), tls))
                    .await
            }
            None => {
                router
                    .serve_with_incoming(plain_incoming(incoming(self.tcp)))
                    .await
            }
        }
    }
}

/// Plain-text client connections, each wrapped in [`FixAuthority`].
fn plain_incoming(
    tcp: impl Stream<Item = io::Result<TcpStream>> + Send + 'static,
) -> impl Stream<Item = io::Result<FixAuthority<TcpStream>>> + Send + 'static {
    tcp.map(|conn| conn.map(fix_authority))
}

/// TLS client connections: each handshake runs on its own task (a slow client holds up no one),
/// and the decrypted stream is wrapped in [`FixAuthority`]. Accept errors go to tonic as they
/// would without TLS; failed handshakes are logged and dropped, as tonic does.
fn tls_incoming(
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
}
