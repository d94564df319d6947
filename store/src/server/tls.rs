//! rustls configuration of the client listeners, from the TLS flags.

use std::sync::Arc;

use anyhow::Context as _;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::{read, tls_files};

fn pem_certs(path: &std::path::Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot parse the certificates in {}", path.display()))
}

/// The client listeners' TLS: what `server_tls` configures for tonic (the certificate and key;
/// with client certificate authentication, clients must present a certificate the CA signed),
/// built for rustls directly, since the handshake has to happen before `authority::FixAuthority`.
pub(super) fn tls_acceptor(
    cert: &Option<std::path::PathBuf>,
    key: &Option<std::path::PathBuf>,
    ca: &Option<std::path::PathBuf>,
    client_auth: bool,
) -> anyhow::Result<Option<TlsAcceptor>> {
    let Some(files) = tls_files(cert, key, ca, client_auth)? else {
        return Ok(None);
    };
    let certs = pem_certs(files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(files.key)?)
        .with_context(|| format!("cannot parse the private key in {}", files.key.display()))?;
    let builder = ServerConfig::builder();
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
